"""Who may read and act through the UI and the API: authentication on every route, CSRF, media
types, roles, sessions and the login rate limit - through Flask's test client (and, for the login
flood, a real waitress server on loopback)."""

from __future__ import annotations

import http.client
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bcrypt
import pytest
import waitress
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import (
    ADMIN_PASSWORD,
    API_TOKEN,
    READ_ONLY_TOKEN,
    SECRETS,
    FakeController,
    application,
    bearer,
    login,
    login_form_token,
    make_app,
)
from waitress import wasyncore

from gitsync.web import AuthConfigError, AuthSettings, LoginLimits
from gitsync.web.actions import ACTIONS

OPEN_ENDPOINTS = {
    "static",
    "favicon",
    "healthz",
    "readyz",
    "metrics",
    "webhook.receive",
    "auth.login",
    "auth.login_post",
    "auth.logout",
    "sso.start",  # single sign-on's start and callback (GITSYNC_TEST_WEB_SSO=1)
    "sso.callback",
}
ARGS = {"namespace": "team-a", "name": "web", "action": "sync"}


@pytest.fixture
def controller() -> FakeController:
    return FakeController([application("web"), application("other", "team-b")])


@pytest.fixture
def app(controller: FakeController) -> Flask:
    return make_app(controller)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def protected_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, URL) for every route of the UI and API - new routes are covered automatically."""
    out = []
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN_ENDPOINTS:
            continue
        actions = ACTIONS if "action" in rule.arguments else ("sync",)
        for action in actions:
            args = {**ARGS, "action": action}
            url = adapter.build(rule.endpoint, {k: args[k] for k in rule.arguments})
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                out.append((method, url))
    return out


def test_every_route_refuses_anonymous_requests_by_default(
    app: Flask, client: FlaskClient, controller: FakeController
) -> None:
    routes = protected_routes(app)
    assert ("GET", "/") in routes and ("POST", "/api/v1/applications/team-a/web/sync") in routes
    assert len(routes) >= 6 + 2 * len(ACTIONS)
    for method, url in routes:
        response = client.open(url, method=method, json={})
        if url.startswith("/api/"):
            assert response.status_code == 401, (method, url)
            assert response.get_json() == {"error": "authentication required"}
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert response.status_code == 303, (method, url)
            assert response.headers["Location"].startswith("/login")
        assert "team-b" not in response.get_data(as_text=True)
    assert controller.store.patches == [] and controller.refreshed == []
    assert controller.diff_calls == 0


def test_anonymous_read_lets_anyone_read_but_not_act(controller: FakeController) -> None:
    client = make_app(controller, anonymous_read=True).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/apps/team-a/web").status_code == 200
    assert client.get("/api/v1/applications").get_json()["total"] == 2
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    assert "Sync now" not in page and "Roll back" not in page
    response = client.post("/api/v1/applications/team-a/web/sync", json={})
    assert response.status_code == 401
    assert client.post("/apps/team-a/web/sync", data={}).status_code == 303
    assert controller.store.patches == []


def test_probes_metrics_and_login_stay_open(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/login").status_code == 200
    with client.get("/static/app.js") as script:
        assert script.status_code == 200


# -- CSRF and media types ---------------------------------------------------------------------


def test_actions_without_the_csrf_token_are_refused(
    client: FlaskClient, controller: FakeController
) -> None:
    csrf = login(client)
    api = "/api/v1/applications/team-a/web/sync"
    assert client.post(api, json={}).status_code == 403
    assert client.post(api, json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post(api, json={}, headers={"X-CSRF-Token": ""}).status_code == 403
    assert client.post("/apps/team-a/web/sync", data={"prune": "on"}).status_code == 403
    assert client.post("/apps/team-a/web/sync", data={"csrf_token": "x"}).status_code == 403
    for site in ("cross-site", "same-site"):
        other = {"X-CSRF-Token": csrf, "Sec-Fetch-Site": site}
        assert client.post(api, json={}, headers=other).status_code == 403
    assert controller.store.patches == []

    assert client.post(api, json={}, headers={"X-CSRF-Token": csrf}).status_code == 202
    form = client.post("/apps/team-a/web/refresh", data={"csrf_token": csrf})
    assert form.status_code == 303 and form.headers["Location"] == "/apps/team-a/web"
    assert len(controller.store.patches) == 2
    assert "refresh requested" in client.get("/apps/team-a/web").get_data(as_text=True)


def test_text_plain_and_form_posts_never_reach_an_action(
    client: FlaskClient, controller: FakeController
) -> None:
    csrf = login(client)
    api = "/api/v1/applications/team-a/web/sync"
    # what a cross-site <form enctype="text/plain"> or a no-preflight fetch can send
    plain = client.post(
        api, data='{"prune": true}', content_type="text/plain", headers={"X-CSRF-Token": csrf}
    )
    assert plain.status_code == 415
    form = client.post(api, data={"prune": "true"}, headers={"X-CSRF-Token": csrf})
    assert form.status_code == 415
    page_plain = client.post(
        "/apps/team-a/web/sync", data=f"csrf_token={csrf}", content_type="text/plain"
    )
    assert page_plain.status_code == 415
    for headers in (bearer(API_TOKEN), {**bearer(API_TOKEN), "X-CSRF-Token": csrf}):
        assert (
            client.post(api, data="{}", content_type="text/plain", headers=headers).status_code
            == 415
        )
    assert controller.store.patches == []


def test_bearer_tokens_need_no_csrf_but_still_json(app: Flask, controller: FakeController) -> None:
    client = app.test_client()
    response = client.post(
        "/api/v1/applications/team-a/web/sync", json={"prune": True}, headers=bearer(API_TOKEN)
    )
    assert response.status_code == 202
    ((key, annotations),) = controller.store.patches
    assert key == ("team-a", "web")
    assert annotations["gitsync.dev/sync-request"].endswith(";prune")


def test_the_login_form_has_its_own_csrf_token(client: FlaskClient) -> None:
    no_token = client.post("/login", data={"password": ADMIN_PASSWORD})
    assert no_token.status_code == 403
    wrong = client.post("/login", data={"password": ADMIN_PASSWORD, "csrf_token": "forged"})
    assert wrong.status_code == 403
    token = login_form_token(client)
    plain = client.post(
        "/login", data=f"csrf_token={token}&password={ADMIN_PASSWORD}", content_type="text/plain"
    )
    assert plain.status_code == 415
    assert client.get("/").status_code == 303  # still not logged in


def test_logout_needs_the_csrf_token_and_ends_the_session(client: FlaskClient) -> None:
    csrf = login(client)
    assert client.post("/logout", data={"x": "1"}).status_code == 403
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/").status_code == 303
    assert client.get("/api/v1/applications").status_code == 401


# -- roles ------------------------------------------------------------------------------------


def test_read_only_token_reads_but_cannot_act(
    client: FlaskClient, controller: FakeController
) -> None:
    headers = bearer(READ_ONLY_TOKEN)
    assert client.get("/api/v1/applications", headers=headers).status_code == 200
    assert client.get("/api/v1/applications/team-a/web", headers=headers).status_code == 200
    for action, body in [("sync", {}), ("refresh", {}), ("rollback", {"id": 1}), ("pause", {})]:
        response = client.post(
            f"/api/v1/applications/team-a/web/{action}", json=body, headers=headers
        )
        assert response.status_code == 403, action
    assert controller.store.patches == []


def test_read_only_login_sees_no_buttons_and_cannot_act(
    client: FlaskClient, controller: FakeController
) -> None:
    csrf = login(client, READ_ONLY_TOKEN)
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    assert "(read-only)" in page
    assert "Sync now" not in page and "Roll back" not in page
    response = client.post(
        "/api/v1/applications/team-a/web/sync", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 403
    assert client.post("/apps/team-a/web/sync", data={"csrf_token": csrf}).status_code == 403
    assert controller.store.patches == []


def test_wrong_and_malformed_bearer_tokens_are_401(client: FlaskClient) -> None:
    for header in ["Bearer nope", "Bearer ", "Basic YWRtaW46YWRtaW4=", API_TOKEN, "bearer"]:
        response = client.get(
            "/api/v1/applications",
            headers={"Authorization": header},
            environ_base={"REMOTE_ADDR": "10.9.9.9"},  # failures count against this address
        )
        assert response.status_code == 401, header
    # the header wins over a session: a wrong token is not rescued by a cookie
    login(client)
    assert client.get("/api/v1/applications", headers=bearer("wrong")).status_code == 401


def test_the_admin_password_is_not_a_bearer_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/applications", headers=bearer(ADMIN_PASSWORD)).status_code == 401


# -- sessions ---------------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_strict(client: FlaskClient) -> None:
    token = login_form_token(client)
    response = client.post("/login", data={"csrf_token": token, "password": ADMIN_PASSWORD})
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("gitsync_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie and "Expires" not in cookie


def test_behind_tls_the_cookie_is_secure_and_host_locked(controller: FakeController) -> None:
    client = make_app(controller, secure_cookie=True).test_client()
    page = client.get("/login", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]
    token = login_form_token_https(client)
    response = client.post(
        "/login",
        data={"csrf_token": token, "password": ADMIN_PASSWORD},
        base_url="https://localhost",
    )
    assert response.status_code == 303
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "gitsync_session=" in c)
    assert cookie.startswith("__Host-gitsync_session=") and "; Secure" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def login_form_token_https(client: FlaskClient) -> str:
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    match = re.search(
        r'action="/login">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page
    )
    assert match
    return match.group(1)


def test_an_invented_session_id_is_not_a_session(client: FlaskClient) -> None:
    client.set_cookie("gitsync_session", "x" * 43)
    assert client.get("/").status_code == 303


def test_sessions_expire_when_idle(controller: FakeController) -> None:
    now = [1000.0]
    client = make_app(controller, clock=lambda: now[0]).test_client()
    login(client)
    now[0] += 7 * 3600
    assert client.get("/").status_code == 200
    now[0] += 8 * 3600 + 1
    assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        ("/apps/team-a/web", "/apps/team-a/web"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_login_only_returns_to_local_pages(
    client: FlaskClient, next_url: str, location: str
) -> None:
    token = login_form_token(client)
    response = client.post(
        "/login", data={"csrf_token": token, "password": ADMIN_PASSWORD, "next": next_url}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == location


# -- credentials ------------------------------------------------------------------------------


def test_bcrypt_admin_password(controller: FakeController) -> None:
    hashed = bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt(rounds=4)).decode()
    app = make_app(controller, admin_password=None, admin_password_bcrypt=hashed)
    client = app.test_client()
    token = login_form_token(client)
    wrong = client.post("/login", data={"csrf_token": token, "password": "correct horse"})
    assert wrong.status_code == 401
    login(client, "correct horse battery")
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"admin_password_bcrypt": "not-a-hash"},
        {"admin_password_bcrypt": "$2b$12$" + "x" * 10},
        {"admin_password": ""},
        {"admin_password": "a", "admin_password_bcrypt": "$2b$04$" + "a" * 53},
        {"api_tokens": ["short"]},
        {"api_tokens": ["t" * 20], "read_only_tokens": ["t" * 20]},
    ],
)
def test_bad_credential_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(AuthConfigError):
        AuthSettings.build(**kwargs)


def test_settings_never_print_secrets() -> None:
    settings = AuthSettings.build(
        admin_password=ADMIN_PASSWORD, api_tokens=[API_TOKEN], read_only_tokens=[READ_ONLY_TOKEN]
    )
    text = repr(settings)
    assert not any(s in text for s in SECRETS)


def test_no_page_or_response_reveals_a_credential(controller: FakeController) -> None:
    controller.store.objs[("team-a", "web")]["spec"]["source"]["repoURL"] = (
        "https://deploy:repo-password-123@git.example/org/x.git"
    )
    client = make_app(controller).test_client()
    login(client)
    urls = [
        "/",
        "/apps/team-a/web",
        "/apps/team-a/web/diff",
        "/api/v1/applications",
        "/api/v1/applications/team-a/web",
        "/api/v1/applications/team-a/web/diff",
        "/login",
    ]
    for url in urls:
        response = client.get(url)
        text = response.get_data(as_text=True) + str(response.headers)
        for secret in (*SECRETS, "repo-password-123"):
            assert secret not in text, (url, secret)


# -- login rate limit -------------------------------------------------------------------------


def attempt(client: FlaskClient, password: str, ip: str = "10.0.0.1") -> Any:
    token = login_form_token(client)
    return client.post(
        "/login",
        data={"csrf_token": token, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_login_attempts_are_rate_limited_per_client(controller: FakeController) -> None:
    now = [0.0]
    limits = LoginLimits(per_client_burst=3, per_client_refill_seconds=10.0, global_burst=100)
    client = make_app(controller, limits=limits, clock=lambda: now[0]).test_client()
    assert [attempt(client, "guess").status_code for _ in range(3)] == [401, 401, 401]
    limited = attempt(client, "guess")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # the right password is not even checked while the bucket is empty
    assert attempt(client, ADMIN_PASSWORD).status_code == 429
    # another client is not affected
    assert attempt(client, ADMIN_PASSWORD, ip="10.0.0.2").status_code == 303
    now[0] += 10.0
    assert attempt(client, ADMIN_PASSWORD).status_code == 303


def test_login_attempts_are_rate_limited_globally(controller: FakeController) -> None:
    now = [0.0]
    limits = LoginLimits(per_client_burst=100, global_burst=5, global_per_second=1.0)
    client = make_app(controller, limits=limits, clock=lambda: now[0]).test_client()
    codes = [attempt(client, "guess", ip=f"10.1.0.{i}").status_code for i in range(8)]
    assert codes == [401] * 5 + [429] * 3
    now[0] += 1.0
    assert attempt(client, ADMIN_PASSWORD, ip="10.2.0.1").status_code == 303


def test_wrong_bearer_tokens_count_as_failed_attempts(controller: FakeController) -> None:
    now = [0.0]
    limits = LoginLimits(per_client_burst=2, global_burst=100)
    client = make_app(controller, limits=limits, clock=lambda: now[0]).test_client()
    codes = [
        client.get("/api/v1/applications", headers=bearer(f"wrong-{i}")).status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 429, 429]
    assert client.get("/api/v1/applications", headers=bearer(API_TOKEN)).status_code == 200


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def test_a_thousand_parallel_bad_logins_neither_succeed_nor_take_the_server_down(
    controller: FakeController,
) -> None:
    app = make_app(controller)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8, ident="gitsync")
    port = server.effective_port  # type: ignore[union-attr]
    closing = threading.Event()

    def run() -> None:
        # Closing the sockets from this thread while run() sits in select() raises EBADF
        # there; that is the shutdown, not a failure (gitsync serve does the same).
        try:
            server.run()
        except OSError:
            if not closing.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        _, headers, page = http_request(port, "GET", "/login")
        cookie = headers["Set-Cookie"].split(";")[0]
        token = re.search(
            r'action="/login">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page
        )
        assert token and cookie.startswith("gitsync_login=")

        def bad_login(i: int) -> int:
            body = f"csrf_token={token.group(1)}&password=guess-{i}".encode()
            form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
            return http_request(port, "POST", "/login", body, form)[0]

        probe_times: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                started = time.monotonic()
                assert http_request(port, "GET", "/healthz")[0] == 200
                probe_times.append(time.monotonic() - started)
                time.sleep(0.05)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=100) as pool:
            codes = list(pool.map(bad_login, range(1000)))
        elapsed = time.monotonic() - started
        stop.set()
        prober.join(30)
        counts = {code: codes.count(code) for code in sorted(set(codes))}
        print(
            f"1000 parallel bad logins in {elapsed:.2f}s: {counts}; /healthz meanwhile "
            f"max {max(probe_times):.3f}s over {len(probe_times)} probes"
        )
        assert set(codes) <= {401, 429}
        assert counts.get(401, 0) <= LoginLimits().per_client_burst
        assert probe_times
        # still serving afterwards
        status, _, _ = http_request(port, "GET", "/api/v1/applications", None, bearer(API_TOKEN))
        assert status == 200
    finally:
        closing.set()
        server.close()
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        wasyncore.close_all(server._map)  # type: ignore[union-attr]  # ends server.run()
        thread.join(10)
        assert not thread.is_alive()
