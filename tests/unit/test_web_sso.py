"""Single sign-on and cookie sessions: gitsync's web app (Flask's test client) against the real
OpenID provider of tests/support/oidcprovider.py on loopback (authlib's server components).

The browser's part is played by ``requests``: it posts the provider's login form and follows the
provider's redirect back to gitsync's callback by hand, so every step can be tampered with."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import ADMIN_PASSWORD, FakeController, application, make_app

from gitsync.localenv.processes import free_port
from gitsync.web.oidc import OidcClient, OidcLoginError, OidcSettings, OidcUnavailable
from gitsync.web.rbac import Authorizer, Role, parse_policy
from gitsync.web.sessions import LocalRevocations, SessionCookies, read_session_keys
from tests.support.oidcprovider import CLIENT_ID, CLIENT_SECRET, TAMPERINGS, OidcProvider
from tests.support.oidcprovider import serve_provider as serve_oidc_provider

EXTERNAL = "http://localhost"
KEY = b"k" * 40
OLD_KEY = b"o" * 40


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with serve_oidc_provider(free_port(), [EXTERNAL + "/auth/callback"]) as running:
        yield running


def settings_for(provider: OidcProvider, **limits: float) -> OidcSettings:
    return OidcSettings.build(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        external_url=EXTERNAL,
        admin_groups=("gitsync-admins",),
        **limits,
    )


# OIDC users other than --oidc-admin-group members get their roles from the RBAC policy alone
TEAM_A_VIEWS = """\
bindings:
  - subjects: [group:team-a]
    role: viewer
    projects: [team-a]
"""


def sso_app(
    provider: OidcProvider,
    keys: tuple[bytes, ...] = (KEY,),
    policy: str | None = TEAM_A_VIEWS,
    **kw: object,
) -> Flask:
    controller = FakeController([application("web"), application("other", "team-b")])
    authorizer = Authorizer(parse_policy(policy)) if policy is not None else Authorizer()
    return make_app(
        controller,
        session_keys=keys,
        oidc=settings_for(provider),
        authorizer=authorizer,
        **kw,  # type: ignore[arg-type]
    )


def start_login(client: FlaskClient) -> str:
    """GET /login/oidc: the provider's authorization URL gitsync redirects to."""
    response = client.get("/login/oidc?next=/apps/team-a/web")
    assert response.status_code == 303
    return response.headers["Location"]


def provider_login(authorize_url: str, user: str = "alice") -> str:
    """Post the provider's login form: the callback URL it redirects the browser to."""
    form = requests.get(authorize_url, timeout=10)
    assert "Sign in to the test provider" in form.text
    answer = requests.post(
        authorize_url,
        data={"username": user, "password": f"{user}-password"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback(client: FlaskClient, url: str) -> tuple[int, str, list[str]]:
    parts = urlsplit(url)
    response = client.get(parts.path + "?" + parts.query)
    return (
        response.status_code,
        response.get_data(as_text=True),
        response.headers.getlist("Set-Cookie"),
    )


def session_cookies(set_cookies: list[str]) -> list[str]:
    return [
        c
        for c in set_cookies
        if c.startswith("gitsync_session=") and "Expires=Thu, 01 Jan 1970" not in c
    ]


def test_alice_logs_in_with_pkce_state_and_nonce(provider: OidcProvider) -> None:
    client = sso_app(provider).test_client()
    authorize = start_login(client)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0] and query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [EXTERNAL + "/auth/callback"]
    status, _, cookies = callback(client, provider_login(authorize))
    assert status == 303, _
    assert session_cookies(cookies), cookies
    assert provider.token_requests[-1]["code_verifier"]  # the verifier went to the provider
    page = client.get("/apps/team-a/web")
    assert page.status_code == 200 and "alice" in page.get_data(as_text=True)
    assert client.get("/api/v1/applications").status_code == 200
    # the policy makes her a viewer of team-a: reads, may not act
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    sync = client.post(
        "/api/v1/applications/team-a/web/sync",
        json={},
        headers={"X-CSRF-Token": csrf.group(1)},
    )
    assert sync.status_code == 403


def test_a_signed_in_user_without_any_grant_sees_empty_lists(provider: OidcProvider) -> None:
    """Without a policy binding, an OIDC user outside the admin groups may see nothing: the list
    is empty with a message saying why (not a 500), an app's page and API are 403."""
    client = sso_app(provider, policy=None).test_client()
    status, _, _ = callback(client, provider_login(start_login(client), "alice"))
    assert status == 303
    listing = client.get("/api/v1/applications")
    assert listing.status_code == 200 and listing.get_json()["items"] == []
    page = client.get("/")
    assert page.status_code == 200
    assert "no role in any project" in page.get_data(as_text=True)
    assert client.get("/apps/team-a/web").status_code == 403
    assert client.get("/api/v1/applications/team-a/web").status_code == 403


@pytest.mark.parametrize(
    ("subject", "sees"), [("user:alice@example.test", True), ("user:alice", False)]
)
def test_user_bindings_match_the_email_not_the_display_name(
    provider: OidcProvider, subject: str, sees: bool
) -> None:
    """A ``user:`` binding names an OIDC user by the email the provider vouches for (else the
    ``sub``), never by ``preferred_username``, which most providers let users choose."""
    policy = f"bindings:\n  - subjects: [{subject}]\n    role: viewer\n    projects: [team-a]\n"
    client = sso_app(provider, policy=policy).test_client()
    status, _, _ = callback(client, provider_login(start_login(client), "alice"))
    assert status == 303
    items = client.get("/api/v1/applications").get_json()["items"]
    assert [i["name"] for i in items] == (["web"] if sees else [])


def test_a_member_of_an_admin_group_may_act(provider: OidcProvider) -> None:
    client = sso_app(provider).test_client()
    status, _, _ = callback(client, provider_login(start_login(client), "carol"))
    assert status == 303
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    sync = client.post(
        "/api/v1/applications/team-a/web/sync", json={}, headers={"X-CSRF-Token": csrf.group(1)}
    )
    assert sync.status_code == 202, sync.get_data(as_text=True)


@pytest.mark.parametrize("how", TAMPERINGS)
def test_a_tampered_id_token_is_refused_and_no_session_is_made(
    provider: OidcProvider, how: str
) -> None:
    client = sso_app(provider).test_client()
    url = provider_login(start_login(client))
    provider.tamper = how
    status, body, cookies = callback(client, url)
    assert status == 401, body
    assert "Login refused" in body
    assert not session_cookies(cookies)
    assert client.get("/").status_code == 303  # still not logged in


def test_a_replayed_state_is_refused(provider: OidcProvider) -> None:
    client = sso_app(provider).test_client()
    authorize = start_login(client)
    state_cookie = client.get_cookie("gitsync_oidc", path="/auth/callback")
    assert state_cookie is not None
    url = provider_login(authorize)
    assert callback(client, url)[0] == 303
    # the same callback URL and state cookie again (captured, or the back button)
    client.delete_cookie("gitsync_session")
    client.set_cookie("gitsync_oidc", state_cookie.value, path="/auth/callback")
    status, body, cookies = callback(client, url)
    assert status == 400 and "already used" in body
    assert not session_cookies(cookies)


def test_a_state_that_does_not_match_the_cookie_is_refused(provider: OidcProvider) -> None:
    client = sso_app(provider).test_client()
    url = provider_login(start_login(client))
    forged = re.sub(r"state=[^&]+", "state=forged", url)
    status, body, cookies = callback(client, forged)
    assert status == 400 and "state does not match" in body
    assert not session_cookies(cookies)
    # the refusal page's password form works (it carries a fresh login-form token)
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert token
    login = client.post("/login", data={"csrf_token": token.group(1), "password": ADMIN_PASSWORD})
    assert login.status_code == 303
    other = sso_app(provider).test_client()  # no state cookie at all (login not started here)
    status, body, _ = callback(other, url)
    assert status == 400 and "not started here" in body


@pytest.mark.parametrize(
    ("verifier", "error"), [("", "invalid_request"), ("x" * 64, "invalid_grant")]
)
def test_a_missing_or_wrong_pkce_verifier_is_refused_by_the_provider(
    provider: OidcProvider, verifier: str, error: str
) -> None:
    client = sso_app(provider).test_client()
    authorize = start_login(client)
    cookie = client.get_cookie("gitsync_oidc", path="/auth/callback")
    assert cookie is not None
    sealer = SessionCookies([KEY], idle=3600, max_age=3600)
    started = sealer.open_value(cookie.value, 600)
    assert started is not None
    started["verifier"] = verifier
    client.set_cookie("gitsync_oidc", sealer.seal_value(started), path="/auth/callback")
    status, body, cookies = callback(client, provider_login(authorize))
    assert status == 401, body
    assert f"the identity provider refused the code: {error}" in body
    assert not session_cookies(cookies)


def test_an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval(
    provider: OidcProvider,
) -> None:
    now = [0.0]
    client = OidcClient(settings_for(provider, jwks_refresh_seconds=60), clock=lambda: now[0])
    client.key_set()
    assert client.jwks_fetches == 1
    unknown_kid = provider.tampered(_fresh_id_token(provider), "unknown-kid")
    for step in (61.0, 1.0, 1.0, 61.0):
        now[0] += step
        for _ in range(5):
            with pytest.raises(OidcLoginError, match="key the provider does not list"):
                client.verify_id_token(unknown_kid, nonce="n")
    assert client.jwks_fetches == 3  # one refresh per 60 s however many unknown kids arrive


def _fresh_id_token(provider: OidcProvider) -> str:
    from joserfc import jwt

    return jwt.encode(
        {"alg": "RS256", "kid": "key-1"},
        {"iss": provider.issuer, "aud": [CLIENT_ID], "sub": "x", "iat": 0, "exp": 1, "nonce": "n"},
        provider.key,
    )


def test_logout_revokes_the_session_and_ends_the_providers(provider: OidcProvider) -> None:
    client = sso_app(provider).test_client()
    callback(client, provider_login(start_login(client)))
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    stolen = client.get_cookie("gitsync_session")
    assert stolen is not None
    response = client.post("/logout", data={"csrf_token": csrf.group(1)})
    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == provider.issuer + "/logout"
    query = parse_qs(target.query)
    assert query["id_token_hint"][0].count(".") == 2
    assert query["post_logout_redirect_uri"] == [EXTERNAL + "/login"]
    client.set_cookie("gitsync_session", stolen.value)  # a copy kept from before the logout
    assert client.get("/").status_code == 303


def test_the_csp_lets_the_logout_form_end_on_the_provider(provider: OidcProvider) -> None:
    csp = sso_app(provider).test_client().get("/login").headers["Content-Security-Policy"]
    assert f"form-action 'self' {provider.issuer}" in csp


# -- cookie sessions --------------------------------------------------------------------------


def test_a_session_made_by_one_app_works_in_another_with_the_same_key(
    provider: OidcProvider,
) -> None:
    first, second = sso_app(provider).test_client(), sso_app(provider).test_client()
    callback(first, provider_login(start_login(first)))
    cookie = first.get_cookie("gitsync_session")
    assert cookie is not None
    second.set_cookie("gitsync_session", cookie.value)
    assert second.get("/").status_code == 200
    stranger = sso_app(provider, keys=(b"z" * 40,)).test_client()
    stranger.set_cookie("gitsync_session", cookie.value)
    assert stranger.get("/").status_code == 303


def test_the_previous_key_is_still_accepted_after_rotation() -> None:
    old = SessionCookies([OLD_KEY], idle=3600, max_age=3600)
    rotated = SessionCookies([KEY, OLD_KEY], idle=3600, max_age=3600)
    value = old.encode(old.create(Role.VIEWER, "alice"))
    session, _ = rotated.decode(value)
    assert session is not None and session.name == "alice"
    staged = SessionCookies([OLD_KEY, KEY], idle=3600, max_age=3600)  # roll-out step 1
    assert staged.decode(rotated.encode(session))[0] is not None
    retired = SessionCookies([KEY], idle=3600, max_age=3600)
    assert retired.decode(value)[0] is None


def test_a_changed_cookie_is_not_a_session() -> None:
    cookies = SessionCookies([KEY], idle=3600, max_age=3600)
    value = cookies.encode(cookies.create("admin", "admin"))
    flipped = value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
    assert cookies.decode(flipped)[0] is None


def test_revoking_a_subject_ends_its_earlier_sessions() -> None:
    now = [1000.0]
    revocations = LocalRevocations(clock=lambda: now[0])
    cookies = SessionCookies(
        [KEY], idle=3600, max_age=3600, revocations=revocations, clock=lambda: now[0]
    )
    before = cookies.encode(cookies.create(Role.VIEWER, "alice", subject="user-alice"))
    revocations.merge({}, {"user-alice": 1000.0})
    now[0] += 1
    after = cookies.encode(cookies.create(Role.VIEWER, "alice", subject="user-alice"))
    assert cookies.decode(before)[0] is None
    assert cookies.decode(after)[0] is not None


def test_session_key_file_needs_long_keys(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "key"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 32"):
        read_session_keys(path)
    path.write_text("# current\n" + "a" * 40 + "\n" + "b" * 40 + "\n")
    assert read_session_keys(path) == [b"a" * 40, b"b" * 40]


# -- limits on what the provider sends ----------------------------------------------------------


def test_a_provider_answer_over_the_size_limit_is_refused(provider: OidcProvider) -> None:
    client = OidcClient(settings_for(provider, max_response_bytes=200))
    with pytest.raises(OidcUnavailable, match="larger than 200 bytes"):
        client.metadata()


def test_a_provider_that_drips_its_answer_is_cut_off_at_the_deadline() -> None:
    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(100):  # one byte every 0.1 s: each read is quick, the whole is not
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = OidcSettings.build(
            issuer=f"http://127.0.0.1:{server.server_address[1]}",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            external_url=EXTERNAL,
            timeout=1.0,
        )
        began = time.monotonic()
        with pytest.raises(OidcUnavailable, match="took too long"):
            OidcClient(settings).metadata()
        assert time.monotonic() - began < 3
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"nonce": "another-login"}, "nonce"), ({"iss": "https://elsewhere.example"}, "iss")],
)
def test_an_id_token_for_another_login_or_issuer_is_refused(
    provider: OidcProvider, change: dict[str, str], reason: str
) -> None:
    """A correctly signed token whose ``nonce`` belongs to another login (a token replayed into
    this one) or whose ``iss`` is another provider's."""
    from joserfc import jwt

    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": [CLIENT_ID], "sub": "user-alice", "nonce": "mine"}
    token = jwt.encode(
        {"alg": "RS256", "kid": "key-1"},
        {**claims, "iat": now, "exp": now + 300, **change},
        provider.key,
    )
    client = OidcClient(settings_for(provider))
    with pytest.raises(OidcLoginError, match=reason):
        client.verify_id_token(token, nonce="mine")
    unchanged = jwt.encode(
        {"alg": "RS256", "kid": "key-1"}, {**claims, "iat": now, "exp": now + 300}, provider.key
    )
    assert client.verify_id_token(unchanged, nonce="mine")["sub"] == "user-alice"


def test_the_revocation_list_forgets_entries_once_their_sessions_would_have_expired() -> None:
    now = [1000.0]
    revocations = LocalRevocations(clock=lambda: now[0], max_age=24 * 3600)
    cookies = SessionCookies(
        [KEY], idle=3600, max_age=24 * 3600, revocations=revocations, clock=lambda: now[0]
    )
    session = cookies.create(Role.VIEWER, "alice")
    cookies.revoke(session)
    revocations.merge({}, {"user-alice": now[0]})
    assert all(revocations.snapshot())
    now[0] += 24 * 3600 + 1  # past the session's and the subject entry's use (max_age 24 h)
    revocations.merge({}, {})
    assert revocations.snapshot() == ({}, {})


def test_an_unverified_email_is_not_taken_as_the_users_name(provider: OidcProvider) -> None:
    client = OidcClient(settings_for(provider))
    claims = {"sub": "u-1", "email": "ceo@example.test", "preferred_username": "mallory"}
    assert client._identity({**claims, "email_verified": False}).email == ""
    assert client._identity(claims).email == "ceo@example.test"
    assert client._identity({**claims, "email_verified": True}).email == "ceo@example.test"
