"""The list's counters and the history diff in a real browser (Debian's chromium through
Playwright) against a live ``gitsync serve`` on the test control plane (issue 20's acceptance:
"the list's counters filter the list").

Clicking the Degraded counter lists only the degraded app, the URL carries the filter and a
reload keeps it; on the app page the deploy timeline shows both deploys, and comparing them shows
the ConfigMap's change with the Secret's values masked. The page is watched for console errors
(a CSP violation fails the test). Screenshots: ``.artifacts/screenshots/list-filters.png``,
``history.png`` and ``history-diff.png``.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.integration.test_list_history_it import (
    PASSWORD_1,
    PASSWORD_2,
    health_of,
    labelled,
    never_ready_repo,
    secret_files,
    secret_repo,
)
from tests.support.apps import application, github_webhook, synced_at
from tests.support.browser import screenshot_path
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def shown_apps(page: Any) -> list[str]:
    return sorted(page.eval_on_selector_all("tr[data-app]", "rows => rows.map(r => r.dataset.app)"))


def test_counters_filter_the_list_and_the_timeline_diffs_two_deploys(
    ui: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
) -> None:
    from playwright.sync_api import expect

    repo = secret_repo(git_server)
    broken = never_ready_repo(git_server, "broken")
    kube.create(labelled(application("web", namespace, repo.file_url()), tier="front"))
    kube.create(labelled(application("broken", namespace, broken.file_url()), tier="back"))
    view = ui("listhist")
    page = view.page
    first = repo.head()
    assert wait_for(lambda: synced_at(kube, namespace, "web", first), timeout=120)
    second = repo.commit(secret_files("v2", PASSWORD_2), "rotate the db password")
    repo.push()
    github_webhook(view.ctl.url, repo.file_url(), "refs/heads/main", second)
    assert wait_for(lambda: synced_at(kube, namespace, "web", second), timeout=120)
    assert wait_for(lambda: health_of(kube, namespace, "broken") == "Degraded", timeout=120)

    # the list: both apps, the counters say so; a click on Degraded lists only the degraded one
    page.goto(view.ctl.url + "/")
    assert shown_apps(page) == [f"{namespace}/broken", f"{namespace}/web"]
    degraded = page.locator('a[data-counter="health:Degraded"]')
    expect(degraded.locator(".counter-count")).to_have_text("1")
    expect(page.locator('a[data-counter="health:Healthy"] .counter-count')).to_have_text("1")
    degraded.click()
    page.wait_for_url("**/?health=degraded")
    assert parse_qs(urlsplit(page.url).query) == {"health": ["degraded"]}
    assert shown_apps(page) == [f"{namespace}/broken"]
    expect(page.locator('a[data-counter="health:Degraded"]')).to_have_attribute(
        "aria-current", "true"
    )
    # the other dimension counts within the filter; its own counters stay the whole list's
    expect(page.locator('a[data-counter="sync:Synced"] .counter-count')).to_have_text("1")
    expect(page.locator('a[data-counter="health:Healthy"] .counter-count')).to_have_text("1")
    page.reload()
    assert parse_qs(urlsplit(page.url).query) == {"health": ["degraded"]}
    assert shown_apps(page) == [f"{namespace}/broken"]
    # a label typed into the filter form joins the URL; the counters keep it
    page.fill('input[name="label"]', "tier=front")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**label=tier%3Dfront**")
    assert shown_apps(page) == []
    page.click('a[data-counter="health:Degraded"]')  # active: the click drops the filter
    page.wait_for_url("**/?label=tier%3Dfront")
    assert shown_apps(page) == [f"{namespace}/web"]
    page.goto(view.ctl.url + "/?health=degraded")
    page.screenshot(path=str(screenshot_path("list-filters.png")), full_page=True)

    # the app page's timeline: both deploys with author, duration and result
    page.goto(f"{view.ctl.url}/apps/{namespace}/web")
    rows = page.locator("#history tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td[data-label=Revision]")).to_have_text(second[:7])
    expect(rows.nth(0).locator("td[data-label=Result]")).to_contain_text("Succeeded")
    expect(rows.nth(0).locator("td[data-label=Duration]")).to_have_text(
        re.compile(r"^\d+s$|^\d+m \d+s$")
    )
    expect(rows.nth(0).locator("td[data-label=Commit]")).to_contain_text("rotate the db password")
    page.locator("#history-card").screenshot(path=str(screenshot_path("history.png")))

    # compare the two deploys (the form preselects the previous and the newest)
    page.click("form.history-compare button[type=submit]")
    page.wait_for_url("**/history/diff?from=*&to=*")
    cm = page.locator("section.diff-resource", has_text="ConfigMap")
    expect(cm.locator("pre.diff")).to_contain_text("+  value: v2")
    expect(page.locator("section.diff-resource", has_text="Secret")).to_contain_text("Changed")
    html = page.content()
    for password in (PASSWORD_1, PASSWORD_2):
        assert password not in html and base64.b64encode(password.encode()).decode() not in html
    page.screenshot(path=str(screenshot_path("history-diff.png")), full_page=True)
