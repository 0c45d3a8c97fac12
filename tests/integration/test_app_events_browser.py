"""The app page's Events section in a real browser (issue 20): a never-ready Pod's Warning Event
is on the page, highlighted, and a resource row's "events" link narrows the list to that object.

The Warning is the pod simulator's, recorded as a kubelet's prober would (``Unhealthy``, about
the Pod, with its uid); the test writes no Event. Screenshot: ``.artifacts/screenshots/events.png``.
"""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.localenv.simulator import PROBE_FAILED
from tests.integration.test_app_cli_it import deployment_repo
from tests.support.apps import application
from tests.support.browser import screenshot_path
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_never_ready_pods_warning_is_highlighted_and_filtered_by_node(
    ui: Any,
    sim: None,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
) -> None:
    from playwright.sync_api import expect

    repo = deployment_repo(git_server, "broken", "never-ready", deadline=600)
    view = ui("events")
    kube.create(application("web", namespace, repo.file_url()))

    def running_pod() -> dict[str, Any] | None:
        pods = kube.list("v1", "Pod", namespace, label_selector="app=broken")["items"]
        return next((p for p in pods if (p.get("status") or {}).get("phase") == "Running"), None)

    pod = wait_for(running_pod, timeout=120, what="the never-ready Pod running")
    meta = pod["metadata"]

    page = view.page
    rows = page.locator("#events-rows tr")
    warning = page.locator("#events-rows tr.event-warning", has_text="Unhealthy")

    def warning_shown() -> bool | None:  # the simulator records it once the Pod runs
        page.goto(f"{view.ctl.url}/apps/{namespace}/web")
        return warning.count() == 1 or None

    wait_for(warning_shown, timeout=60, interval=1.0, what="the simulator's Unhealthy Warning")
    expect(warning).to_contain_text(PROBE_FAILED)
    expect(warning).to_contain_text(f"Pod/{meta['name']}")
    # the real controller-manager's Normal Events of the Deployment are there, not highlighted
    normal = rows.filter(has_text="ScalingReplicaSet")
    expect(normal.first).to_be_visible()
    expect(normal.first).not_to_have_class("event event-warning")
    background = "e => getComputedStyle(e.cells[0]).backgroundColor"
    assert warning.evaluate(background) != normal.first.evaluate(background)
    page.locator("#events").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path("events.png")), full_page=True)

    # the Deployment's row links to its own Events: the Pod's Warning is not among them
    deployment = page.locator(f'li[data-resource="apps/Deployment/{namespace}/broken"]')
    deployment.locator("a.node-events").click()
    expect(page.locator("#events-object-name")).to_have_text("Deployment/broken")
    expect(warning).to_have_count(0)
    expect(rows.filter(has_text="ScalingReplicaSet").first).to_be_visible()
    expect(rows.filter(has_text="Pod/")).to_have_count(0)
    # Warnings only, then all objects again
    page.locator("#events-warnings").check()
    expect(rows).to_have_count(0)
    page.locator("#events-all").click()
    expect(warning).to_have_count(1)
    expect(rows.filter(has_text="ScalingReplicaSet")).to_have_count(0)
