"""Live updates by server push in a real browser (issue 20's acceptance): the list and the app page
open on a live ``gitsync serve``, a commit is pushed, and both pages show the new revision within
a second of the controller's status write - with no request to the polling JSON endpoints while
the stream is healthy. And when the server refuses a stream, the page polls instead.

The second is measured from the status write, not from the push (fetch, render and apply are the
controller's business, not the page's), and both ends are stamped where they happen, so a loaded
machine does not blur them: the test's own watch of the Application stamps the first event
carrying the new revision (the same watch event the controller's hub gets), and a
MutationObserver in the page stamps the moment the revision's text changes (not when Playwright
next looks). Both are ``Date.now()`` / ``time.time()`` on the same host's clock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.integration.test_ui_browser import healthy_and_synced
from tests.support.apps import application, configmap_repo, github_webhook, push_value
from tests.support.browser import screenshot_path
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLLING_ENDPOINTS = "/api/v1/applications"  # the JSON the pages poll (streams end in /stream)

# Records in window.__shownAt when an element matching `selector` first reads `text`.
STAMP_WHEN_SHOWN = """([selector, text]) => {
  window.__shownAt = null;
  const check = () => {
    const node = document.querySelector(selector);
    if (window.__shownAt === null && node && node.textContent === text) {
      window.__shownAt = Date.now();
    }
  };
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true});
}"""


class StatusWriteClock:
    """Stamps (``time.time()``) the first watch event of Application ``name`` whose status
    carries ``revision``: when the controller's status write reached watchers."""

    def __init__(self, kube: KubeClient, namespace: str, name: str):
        self.revision = ""
        self.written_at: float | None = None
        path = kube.path(kinds.API_VERSION, "Application", namespace)
        self._events, self._close = kube.open_watch(
            path, query={"watch": "1", "fieldSelector": f"metadata.name={name}"}
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._events:
            status = (event.get("object") or {}).get("status") or {}
            shown = {
                (status.get("sourceRevision") or {}).get("sha"),
                (status.get("sync") or {}).get("revision"),
            }
            if self.revision and self.revision in shown and self.written_at is None:
                self.written_at = time.time()

    def close(self) -> None:
        self._close()
        self._thread.join(5)


def test_a_push_updates_the_open_pages_within_a_second_without_polling(
    ui: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    from playwright.sync_api import expect

    repo = configmap_repo(git_server)
    first = repo.head()
    view = ui("live")
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: healthy_and_synced(kube, namespace, first), timeout=90, what="Synced+Healthy")

    listing, app_page = view.page, view.context.new_page()
    listing.goto(view.ctl.url + "/")
    app_page.goto(f"{view.ctl.url}/apps/{namespace}/web")
    row = listing.locator(f'tr[data-app="{namespace}/web"]')
    summary = app_page.locator("section.summary")
    expect(row.locator('[data-field="revision.short"]')).to_have_text(first[:7])
    expect(summary.locator('[data-field="revision.short"]')).to_have_text(first[:7])
    for page in (listing, app_page):
        expect(page.locator('body[data-live="streaming"]')).to_have_count(1)

    requests: list[str] = []
    for page in (listing, app_page):
        page.on("request", lambda request: requests.append(request.url))
    second = push_value(repo, "v2")
    listing.evaluate(
        STAMP_WHEN_SHOWN,
        [f'tr[data-app="{namespace}/web"] [data-field="revision.short"]', second[:7]],
    )
    app_page.evaluate(
        STAMP_WHEN_SHOWN, ['section.summary [data-field="revision.short"]', second[:7]]
    )
    clock = StatusWriteClock(kube, namespace, "web")
    clock.revision = second
    try:
        assert github_webhook(view.ctl.url, repo.file_url(), "refs/heads/main", second) == 202
        expect(summary.locator('[data-field="revision.short"]')).to_have_text(second[:7])
        expect(row.locator('[data-field="revision.short"]')).to_have_text(second[:7])
        wait_for(lambda: clock.written_at, timeout=30, what="the status write seen by a watch")
    finally:
        clock.close()
    assert clock.written_at is not None
    for page in (listing, app_page):
        delay = page.evaluate("window.__shownAt") / 1000 - clock.written_at
        print(f"shown {delay:.3f} s after the status write: {page.url}")  # the figure, with -s
        assert delay < 1.0, (page.url, delay)
    polled = [url for url in requests if POLLING_ENDPOINTS in url and "/stream" not in url]
    assert polled == [], polled
    expect(summary.locator('[data-field="revision.message"]')).to_have_text("set value v2")
    app_page.screenshot(path=str(screenshot_path("live-update.png")), full_page=True)
    listing.screenshot(path=str(screenshot_path("live-update-list.png")), full_page=True)
    app_page.close()


def test_a_refused_stream_falls_back_to_polling(
    ui: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    from playwright.sync_api import expect

    repo = configmap_repo(git_server)
    view = ui("live-fallback", "--ui-max-streams=1")
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: healthy_and_synced(kube, namespace, repo.head()), timeout=90, what="synced")
    listing, app_page = view.page, view.context.new_page()  # the list: where the login led
    expect(listing.locator('body[data-live="streaming"]')).to_have_count(1)
    requests: list[str] = []
    app_page.on("request", lambda request: requests.append(request.url))
    app_page.goto(f"{view.ctl.url}/apps/{namespace}/web")  # the one stream is taken: 503
    expect(app_page.locator('body[data-live="polling"]')).to_have_count(1)
    second = push_value(repo, "v2")
    assert github_webhook(view.ctl.url, repo.file_url(), "refs/heads/main", second) == 202
    summary = app_page.locator("section.summary")
    expect(summary.locator('[data-field="revision.short"]')).to_have_text(second[:7])
    assert any(url.endswith(f"/api/v1/applications/{namespace}/web") for url in requests)
    app_page.close()
