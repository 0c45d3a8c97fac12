"""Single sign-on end to end: real ``gitsync serve`` processes on the test control plane, the real
OpenID provider of tests/support/oidcprovider.py on loopback, and (for the login through the
provider's pages) headless Debian chromium through Playwright.

* alice logs in through the provider's login page and lands on the page she asked for
  (screenshot ``.artifacts/screenshots/sso-login.png``);
* two replicas with the same ``--session-key-file`` share her session (cookies are per host, not
  per port, so 127.0.0.1:A and 127.0.0.1:B are "one address" to the browser); a restart keeps it;
  logout on one replica revokes it on both through the ConfigMap revocation list;
* tampered ID tokens, a replayed ``state`` and a missing or wrong PKCE verifier are refused by
  the running server with no session cookie set.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gitsync.kube import KubeClient
from gitsync.localenv.processes import free_port
from gitsync.web.revocations import CONFIGMAP_NAME
from gitsync.web.sessions import SessionCookies
from tests.support.browser import WatchedPage, screenshot_path
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.oidcprovider import CLIENT_ID, CLIENT_SECRET, TAMPERINGS, OidcProvider
from tests.support.oidcprovider import serve_provider as serve_oidc_provider
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REVOCATION_REFRESH = "1"


class Replicas:
    """``gitsync serve`` replicas sharing one session key, an external URL and a provider."""

    def __init__(self, cluster: TestCluster, workdir: Path, namespace: str, count: int):
        self.ports = [free_port() for _ in range(count)]
        self.external = f"http://127.0.0.1:{self.ports[0]}"
        self.key_file = workdir / "session-key"
        self.key_file.write_text(secrets.token_urlsafe(48) + "\n")
        self.secret_file = workdir / "oidc-client-secret"
        self.secret_file.write_text(CLIENT_SECRET + "\n")
        self.cluster, self.workdir, self.namespace = cluster, workdir, namespace
        self.procs: list[ServeProcess] = []

    def redirect_uris(self) -> list[str]:
        return [f"http://127.0.0.1:{p}/auth/callback" for p in self.ports]

    def start(self, provider: OidcProvider, index: int) -> ServeProcess:
        proc = ServeProcess(
            self.cluster.kubeconfig_path,
            self.workdir,
            [
                f"--namespaces={self.namespace}",
                f"--controller-namespace={self.namespace}",
                f"--external-url={self.external}",
                f"--oidc-issuer={provider.issuer}",
                f"--oidc-client-id={CLIENT_ID}",
                f"--oidc-client-secret-file={self.secret_file}",
                "--oidc-admin-group=gitsync-admins",
                f"--session-key-file={self.key_file}",
                f"--session-revocation-refresh={REVOCATION_REFRESH}",
            ],
            port=self.ports[index],
        )
        self.procs.append(proc)
        return proc.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def replicas(cluster: TestCluster, tmp_path: Path, namespace: str, crd: None) -> Iterator[Replicas]:
    group = Replicas(cluster, tmp_path, namespace, 2)
    yield group
    group.stop()


@pytest.fixture
def provider(replicas: Replicas) -> Iterator[OidcProvider]:
    with serve_oidc_provider(free_port(), replicas.redirect_uris()) as running:
        yield running


def test_alice_logs_in_through_the_provider_and_her_session_lives_on_both_replicas(
    replicas: Replicas, provider: OidcProvider, browser: Any, kube: KubeClient, namespace: str
) -> None:
    a = replicas.start(provider, 0)
    b = replicas.start(provider, 1)
    alice = WatchedPage(browser, height=800)
    context, page = alice.context, alice.page

    page.goto(a.url + "/")
    assert "/login" in page.url
    page.click("#sso-login")
    page.wait_for_url(provider.issuer + "/authorize*")
    page.fill("#username", "alice")
    page.fill("#password", "alice-password")
    page.click("#sign-in")
    page.wait_for_url(a.url + "/")
    assert "alice (read-only)" in page.inner_text("header")
    page.screenshot(path=str(screenshot_path("sso-login.png")), full_page=True)
    stolen = next(c for c in context.cookies() if c["name"] == "gitsync_session")

    # the other replica knows the session
    page.goto(b.url + "/")
    assert "alice (read-only)" in page.inner_text("header")
    # a restart keeps it
    a.stop()
    a.start()
    page.goto(a.url + "/")
    assert "alice (read-only)" in page.inner_text("header")

    # logout on A ends the provider's session too, and revokes gitsync's on both replicas (on
    # A, the --external-url origin: a form's redirects may only go to the page's own origin and
    # the provider's, and the provider returns the browser to the external URL)
    page.click("header form[action='/logout'] button")
    page.wait_for_url(replicas.external + "/login")
    assert provider.end_session_requests[-1].get("id_token_hint")
    assert all(c["name"] != "gitsync_session" for c in context.cookies())

    for replica in (b, a):  # a copy of the cookie kept from before the logout

        def refused(url: str = replica.url) -> bool:
            answer = requests.get(
                url + "/api/v1/applications",
                cookies={"gitsync_session": stolen["value"]},
                timeout=10,
            )
            return answer.status_code == 401

        began = time.monotonic()
        wait_for(refused, timeout=10, what=f"the revoked session refused by {replica.url}")
        print(f"revoked session refused by {replica.url} after {time.monotonic() - began:.1f} s")
    revoked = kube.get("v1", "ConfigMap", CONFIGMAP_NAME, namespace)
    assert revoked is not None and revoked["data"]["sessions"] != "{}"  # digests, not ids
    assert stolen["value"] not in revoked["data"]["sessions"]
    alice.close()  # fails on a console error (CSP)


def login_until_callback(
    replica: ServeProcess, user: str = "alice"
) -> tuple[requests.Session, str]:
    """A browser's part up to the callback: start at gitsync, sign in at the provider; the
    session (holding the state cookie) and the callback URL the provider sent it to."""
    browser = requests.Session()
    start = browser.get(replica.url + "/login/oidc", allow_redirects=False, timeout=10)
    assert start.status_code == 303, start.text
    authorize = start.headers["Location"]
    answer = browser.post(
        authorize,
        data={"username": user, "password": f"{user}-password"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return browser, answer.headers["Location"]


def session_set(response: requests.Response) -> bool:
    return "gitsync_session=" in response.headers.get("Set-Cookie", "")


def test_tampered_tokens_replayed_state_and_bad_pkce_are_refused_by_a_running_server(
    replicas: Replicas, provider: OidcProvider
) -> None:
    a = replicas.start(provider, 0)

    for how in TAMPERINGS:
        browser, url = login_until_callback(a)
        provider.tamper = how
        answer = browser.get(url, allow_redirects=False, timeout=10)
        assert answer.status_code == 401, (how, answer.text)
        assert "Login refused" in answer.text and not session_set(answer), how

    # a replayed state: the callback URL and the state cookie again, after a good login
    browser, url = login_until_callback(a)
    state_cookie = browser.cookies.get("gitsync_oidc")
    assert state_cookie
    first = browser.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == 303 and session_set(first)
    replay = requests.get(
        url, cookies={"gitsync_oidc": state_cookie}, allow_redirects=False, timeout=10
    )
    assert replay.status_code == 400 and "already used" in replay.text
    assert not session_set(replay)

    # a missing and a wrong PKCE verifier: the provider refuses the code, gitsync says so
    sealer = SessionCookies([replicas.key_file.read_text().strip().encode()], idle=60, max_age=60)
    for verifier, error in (("", "invalid_request"), ("w" * 64, "invalid_grant")):
        browser, url = login_until_callback(a)
        started = sealer.open_value(browser.cookies["gitsync_oidc"], 600)
        assert started is not None
        started["verifier"] = verifier
        browser.cookies.set(
            "gitsync_oidc", sealer.seal_value(started), domain="127.0.0.1", path="/auth/callback"
        )
        answer = browser.get(url, allow_redirects=False, timeout=10)
        assert answer.status_code == 401, answer.text
        assert f"the identity provider refused the code: {error}" in answer.text
        assert not session_set(answer)
    assert CLIENT_SECRET not in a.log(400)
