"""The Pod logs panel in a real browser (headless Debian chromium through Playwright) on a live
``gitsync serve``: a never-ready Pod's container log shown as text (markup in a log line stays
text), the previous container of a crashing one, and a follow stream that grows and stops. The
screenshot is ``.artifacts/screenshots/logs.png``; console errors (a CSP violation) fail the test.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.integration.test_pod_logs_it import deployment
from tests.support.apps import application, synced_at
from tests.support.browser import screenshot_path
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARKUP = '<b id="injected">not bold</b>'


def test_the_logs_panel_shows_a_never_ready_pods_log_and_follows(
    ui: Any, kube: KubeClient, namespace: str, git_server: GitServer, sim: None
) -> None:
    from playwright.sync_api import expect

    lines = ["connecting to db:5432", MARKUP, "still waiting for the database"]
    files = {
        "app/stuck.yaml": yaml.safe_dump(
            deployment(
                "stuck",
                {"sim.gitsync.dev/behavior": "never-ready",
                 "sim.gitsync.dev/log-lines": "\n".join(lines)},
                containers=("main", "proxy"),
            )
        ),
        "app/crash.yaml": yaml.safe_dump(
            deployment(
                "crash",
                {"sim.gitsync.dev/behavior": "crashloop",
                 "sim.gitsync.dev/previous-log-lines": "panic: config key missing"},
            )
        ),
    }  # fmt: skip
    repo = git_server.create_repo(f"logsui-{secrets.token_hex(3)}", files=files)
    view = ui("logs", "--logs-max-seconds=20")
    kube.create(application("shop", namespace, repo.file_url()))
    wait_for(lambda: synced_at(kube, namespace, "shop", repo.head()), timeout=120, what="synced")
    page = view.page

    def two_pods() -> bool | None:
        page.goto(f"{view.ctl.url}/apps/{namespace}/shop")
        page.click("#logs-details > summary")
        # a locator, not wait_for_function("..."): a string predicate is eval, which the CSP refuses
        page.locator("#logs-pod option").first.wait_for(state="attached")
        return page.locator("#logs-pod option").count() == 2 or None

    wait_for(two_pods, timeout=90, what="two Pods in the logs panel")
    panel = page.locator("#logs-panel")
    stuck = page.locator("#logs-pod option", has_text="Deployment/stuck")
    page.select_option("#logs-pod", value=stuck.get_attribute("value"))
    expect(page.locator("#logs-container option")).to_have_count(2)
    page.select_option("#logs-container", value="main")
    page.click("#logs-show")
    output = page.locator("#logs-output")
    expect(output).to_have_text("\n".join(lines) + "\n")
    assert page.locator("#injected").count() == 0  # the log's markup stayed text
    expect(page.locator("#logs-status")).to_contain_text("End of the log")
    panel.screenshot(path=str(screenshot_path("logs.png")))

    crash = page.locator("#logs-pod option", has_text="Deployment/crash")
    page.select_option("#logs-pod", value=crash.get_attribute("value"))
    page.check("#logs-previous")
    page.click("#logs-show")
    expect(output).to_have_text("panic: config key missing\n")

    page.uncheck("#logs-previous")
    page.fill("#logs-tail", "1")
    page.check("#logs-follow")
    page.click("#logs-show")
    expect(output).to_contain_text("tick 2", timeout=15_000)
    page.click("#logs-stop")
    expect(page.locator("#logs-status")).to_have_text("Stopped.")
    stopped = output.text_content()
    page.wait_for_timeout(2_000)
    assert output.text_content() == stopped  # nothing more after Stop
