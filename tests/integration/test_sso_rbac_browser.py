"""Issue 21's acceptance test: single sign-on and roles per project together, in a real browser.

A real ``gitsync serve`` on the test control plane signs people in through the real OpenID
provider of tests/support/oidcprovider.py (its login pages, in headless Debian chromium through
Playwright); the RBAC policy binds the provider's groups to roles per project:

* **alice** (group ``team-a``, operator on team-a) sees only team-a's apps, the list counters
  included, syncs one from its page (the sync-request annotation appears on the Application),
  and gets the same 403 for team-b's app - page, API, tree, logs - as for an app that does not
  exist; her live stream carries no team-b event;
* **bob** (group ``team-b``, viewer on team-b) sees only team-b's app and cannot act: no action
  buttons, and the API's POST is 403;
* **carol** (group ``gitsync-admins``, ``--oidc-admin-group``) sees all.

Screenshots: ``.artifacts/screenshots/sso-alice.png``, ``sso-bob.png``, ``sso-carol.png``.
Every page is watched for console errors (a CSP violation fails the test).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync import kinds
from gitsync.controller.interface import SYNC_REQUEST
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.localenv.processes import free_port
from tests.support.apps import application, configmap_repo
from tests.support.browser import WatchedPage, screenshot_path
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.controller import ServeProcess
from tests.support.oidcprovider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from tests.support.oidcprovider import serve_provider as serve_oidc_provider
from tests.support.sse import EventStreams, Stream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# the policy of the README's "Single sign-on and roles per project" (namespaces made unique here)
POLICY = """\
bindings:
  - subjects: [group:team-a]
    role: operator
    projects: [{team_a}]
  - subjects: [group:team-b]
    role: viewer
    projects: [{team_b}]
"""


@pytest.fixture
def projects(kube: KubeClient) -> Iterator[tuple[str, str, str]]:
    """Namespaces team-a, team-b and the controller's own (session revocations, tokens)."""
    with (
        temporary_namespace(kube, "team-a") as team_a,
        temporary_namespace(kube, "team-b") as team_b,
        temporary_namespace(kube, "sso-ctl") as controller,
    ):
        yield team_a, team_b, controller


@pytest.fixture
def sso_serve(
    cluster: TestCluster,
    tmp_path: Path,
    crd: None,
    projects: tuple[str, str, str],
) -> Iterator[tuple[ServeProcess, OidcProvider]]:
    """``gitsync serve`` with SSO through the test provider and the policy above."""
    team_a, team_b, controller = projects
    port = free_port()
    external = f"http://127.0.0.1:{port}"
    (tmp_path / "session-key").write_text(secrets.token_urlsafe(48) + "\n")
    (tmp_path / "oidc-client-secret").write_text(CLIENT_SECRET + "\n")
    (tmp_path / "rbac.yaml").write_text(POLICY.format(team_a=team_a, team_b=team_b))
    with serve_oidc_provider(free_port(), [external + "/auth/callback"]) as provider:
        ctl = ServeProcess(
            cluster.kubeconfig_path,
            tmp_path,
            [
                f"--namespaces={team_a},{team_b}",
                f"--controller-namespace={controller}",
                f"--external-url={external}",
                f"--oidc-issuer={provider.issuer}",
                f"--oidc-client-id={CLIENT_ID}",
                f"--oidc-client-secret-file={tmp_path / 'oidc-client-secret'}",
                "--oidc-admin-group=gitsync-admins",
                f"--session-key-file={tmp_path / 'session-key'}",
                f"--rbac-policy={tmp_path / 'rbac.yaml'}",
            ],
            port=port,
        )
        try:
            yield ctl.start(), provider
        finally:
            ctl.stop()


class Person(WatchedPage):
    """One person's browser, signed in through the provider's login page."""

    def __init__(self, browser: Any, ctl: ServeProcess, provider: OidcProvider, user: str):
        super().__init__(browser)
        self.ctl, self.user = ctl, user
        self.page.on("dialog", lambda dialog: dialog.accept())
        page = self.page
        page.goto(ctl.url + "/")
        assert "/login" in page.url
        page.click("#sso-login")
        page.wait_for_url(provider.issuer + "/authorize*")
        page.fill("#username", user)
        page.fill("#password", f"{user}-password")
        page.click("#sign-in")
        page.wait_for_url(ctl.url + "/")

    def listed(self) -> tuple[list[str], int]:
        """The apps the API lists for this person, and its total."""
        answer = self.context.request.get(self.ctl.url + "/api/v1/applications?per_page=100")
        assert answer.status == 200, answer.text()
        doc = answer.json()
        return sorted(f"{i['namespace']}/{i['name']}" for i in doc["items"]), doc["total"]

    def rows(self) -> list[str]:
        """The apps the list page shows (reloaded)."""
        self.page.goto(self.ctl.url + "/")
        return sorted(
            self.page.locator("tr[data-app]").evaluate_all("r => r.map(e => e.dataset.app)")
        )

    def counted(self) -> int:
        """The sum of the list page's sync counters (every app is counted once there)."""
        counts = self.page.locator("[data-count^='sync:']").all_inner_texts()
        return sum(int(c) for c in counts)

    def answer(self, method: str, path: str) -> tuple[int, str]:
        """An API call with this person's session (and its CSRF token for a POST)."""
        url = self.ctl.url + path
        if method == "GET":
            got = self.context.request.get(url)
        else:
            csrf = self.page.locator("meta[name='csrf-token']").get_attribute("content") or ""
            got = self.context.request.post(
                url, data="{}", headers={"Content-Type": "application/json", "X-CSRF-Token": csrf}
            )
        return got.status, got.text()

    def visit(self, path: str) -> tuple[int, str]:
        """A page opened in a tab of its own (not console-watched: Chromium logs a refused
        page as an error)."""
        tab = self.context.new_page()
        try:
            response = tab.goto(self.ctl.url + path)
            assert response is not None
            return response.status, response.text()
        finally:
            tab.close()

    def session_cookie(self) -> str:
        cookie = next(c for c in self.context.cookies() if c["name"] == "gitsync_session")
        return f"gitsync_session={cookie['value']}"

    def shot(self) -> None:
        self.page.screenshot(path=str(screenshot_path(f"sso-{self.user}.png")), full_page=True)


def touch(kube: KubeClient, namespace: str, name: str) -> None:
    """An Application event (an annotation changed) for the live streams to carry or not."""
    kube.patch(
        kinds.API_VERSION,
        kinds.APPLICATION,
        name,
        {"metadata": {"annotations": {"test.gitsync.dev/touched": secrets.token_hex(4)}}},
        namespace=namespace,
    )


def names_on(stream: Stream, namespace: str) -> set[str]:
    return {
        str(e.data.get("name"))
        for e in stream.events
        if e.name in ("app", "deleted") and e.data.get("namespace") == namespace
    }


def test_alice_bob_and_carol_see_and_do_what_their_groups_grant(
    sso_serve: tuple[ServeProcess, OidcProvider],
    browser: Any,
    kube: KubeClient,
    git_server: GitServer,
    projects: tuple[str, str, str],
) -> None:
    from playwright.sync_api import expect

    ctl, provider = sso_serve
    team_a, team_b, _ = projects
    for namespace, name, policy in (
        (team_a, "web", {}),  # manual sync: alice's request is what syncs it
        (team_a, "api", {}),
        (team_b, "web", {"automated": {"prune": True, "selfHeal": True}}),
    ):
        kube.create(
            application(name, namespace, configmap_repo(git_server).file_url(), syncPolicy=policy)
        )
    everything = sorted([f"{team_a}/api", f"{team_a}/web", f"{team_b}/web"])

    carol = Person(browser, ctl, provider, "carol")
    wait_for(lambda: carol.listed() == (everything, 3), timeout=60, what="carol lists all")
    assert carol.rows() == everything and carol.counted() == 3
    assert "carol" in carol.page.inner_text("header") and "read-only" not in carol.page.inner_text(
        "header"
    )
    carol.shot()

    # -- alice: operator on team-a only ---------------------------------------------------------
    alice = Person(browser, ctl, provider, "alice")
    assert alice.listed() == ([f"{team_a}/api", f"{team_a}/web"], 2)
    assert alice.rows() == [f"{team_a}/api", f"{team_a}/web"]
    assert alice.counted() == 2
    assert team_b not in alice.page.inner_text("body")
    alice.shot()

    page = alice.page
    page.goto(f"{ctl.url}/apps/{team_a}/web")
    page.locator("details.action summary").click()
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#action-result")).to_have_text("sync requested")
    synced = kube.get(kinds.API_VERSION, kinds.APPLICATION, "web", team_a) or {}
    assert SYNC_REQUEST in synced["metadata"].get("annotations", {})

    # team-b's app: the same refusal as for an app that does not exist, everywhere
    for path in (f"/apps/{team_b}/web", f"/api/v1/applications/{team_b}/web"):
        asked = alice.visit(path) if path.startswith("/apps") else alice.answer("GET", path)
        missing = path.replace("/web", "/no-such-app")
        same = alice.visit(missing) if path.startswith("/apps") else alice.answer("GET", missing)
        assert asked[0] == 403 and asked == same, (asked, same)
    for sub in ("tree", "logs"):
        status, body = alice.answer("GET", f"/api/v1/applications/{team_b}/web/{sub}")
        assert status == 403, body
        assert (status, body) == alice.answer("GET", f"/api/v1/applications/{team_b}/none/{sub}")
    status, body = alice.answer("POST", f"/api/v1/applications/{team_b}/web/sync")
    assert status == 403 and "sync is not allowed" in body, body

    # her live stream carries team-a's events and never team-b's
    with EventStreams(ctl.url, cookie=alice.session_cookie()) as streams:
        stream = streams.open("/api/v1/stream")
        assert streams.wait(lambda: stream.status == 200, 30), stream.status
        touch(kube, team_b, "web")
        time.sleep(2)  # the hub handles team-b's event first
        touch(kube, team_a, "api")
        assert streams.wait(lambda: "api" in names_on(stream, team_a), 30), stream.events
        touch(kube, team_b, "web")
        time.sleep(2)
        assert names_on(stream, team_b) == set(), stream.events

    # -- bob: viewer on team-b only -------------------------------------------------------------
    bob = Person(browser, ctl, provider, "bob")
    assert bob.listed() == ([f"{team_b}/web"], 1)
    assert bob.rows() == [f"{team_b}/web"] and bob.counted() == 1
    assert "bob (read-only)" in bob.page.inner_text("header")
    bob.page.goto(f"{ctl.url}/apps/{team_b}/web")
    expect(bob.page.locator("section.summary")).to_be_visible()
    assert bob.page.locator("section.actions").count() == 0
    assert bob.page.get_by_role("button", name="Sync now").count() == 0
    bob.shot()
    status, body = bob.answer("POST", f"/api/v1/applications/{team_b}/web/sync")
    assert status == 403, body
    assert bob.visit(f"/apps/{team_a}/web")[0] == 403
    unsynced = kube.get(kinds.API_VERSION, kinds.APPLICATION, "web", team_b) or {}
    assert SYNC_REQUEST not in unsynced["metadata"].get("annotations", {})

    for person in (alice, bob, carol):
        person.close()
