"""One never-ready Pod on the app page in a real browser (issue 20's acceptance item): the tree
shows it ``0/1`` with the reason ``ContainersNotReady``, the Events section highlights the
``Unhealthy`` Warning the pod simulator records as a kubelet's prober would (the test writes no
Event), and the logs panel shows the Pod's log lines. Nothing here is staged by the test but the
Git repository: the Pod's state, Event and log all come from the simulator playing the kubelet.
Screenshot: ``.artifacts/screenshots/never-ready.png``; a console error (CSP) fails the test.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.localenv.simulator import PROBE_FAILED
from tests.integration.test_pod_logs_it import deployment
from tests.support.apps import application, synced_at
from tests.support.browser import screenshot_path
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINES = [
    "connecting to db:5432",
    "db:5432 refused the connection",
    "still waiting for the database",
]


def test_a_never_ready_pod_shows_its_reason_warning_and_logs_on_the_app_page(
    ui: Any, kube: KubeClient, namespace: str, git_server: GitServer, sim: None
) -> None:
    from playwright.sync_api import expect

    stuck = deployment(
        "stuck",
        {"sim.gitsync.dev/behavior": "never-ready", "sim.gitsync.dev/log-lines": "\n".join(LINES)},
    )
    repo = git_server.create_repo(
        f"neverready-{secrets.token_hex(3)}", files={"app/stuck.yaml": yaml.safe_dump(stuck)}
    )
    view = ui("never-ready")
    kube.create(application("shop", namespace, repo.file_url()))
    wait_for(lambda: synced_at(kube, namespace, "shop", repo.head()), timeout=120, what="synced")
    page = view.page
    app_page = f"{view.ctl.url}/apps/{namespace}/shop"
    pod_node = page.locator('li.tnode[data-node^="/Pod/"]')
    warning = page.locator("#events-rows tr.event-warning", has_text="Unhealthy")

    def pod_and_warning_shown() -> bool | None:
        page.goto(app_page)
        return (pod_node.count() == 1 and warning.count() == 1) or None

    wait_for(
        pod_and_warning_shown, timeout=90, interval=1.0, what="the Pod in the tree and its Warning"
    )

    # the tree: the Pod is running, none of its one container ready, and says why
    expect(pod_node.locator(".pod-phase")).to_have_text("Running")
    expect(pod_node.locator(".pod-ready")).to_have_text("0/1")
    expect(pod_node.locator(".pod-reason")).to_have_text("ContainersNotReady")
    pod_name = pod_node.locator(".name").first.text_content() or ""
    assert pod_name.startswith("stuck-")

    # the Events: the simulator's kubelet Warning about that Pod, highlighted
    expect(warning).to_contain_text(PROBE_FAILED)
    expect(warning).to_contain_text(f"Pod/{pod_name}")
    normal = page.locator("#events-rows tr", has_text="ScalingReplicaSet").first
    expect(normal).to_be_visible()
    background = "e => getComputedStyle(e.cells[0]).backgroundColor"
    assert warning.evaluate(background) != normal.evaluate(background)

    # the logs: the Pod's container log
    page.click("#logs-details > summary")
    option = page.locator("#logs-pod option", has_text="Deployment/stuck")
    expect(option).to_have_count(1)
    page.select_option("#logs-pod", value=option.get_attribute("value"))
    page.click("#logs-show")
    expect(page.locator("#logs-output")).to_have_text("\n".join(LINES) + "\n")

    page.screenshot(path=str(screenshot_path("never-ready.png")), full_page=True)
    assert not view.console_errors, view.console_errors
