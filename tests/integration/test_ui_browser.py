"""The status UI in a real browser (headless Debian chromium through Playwright) against a live
``gitsync serve`` on the test control plane, logged in with an admin password: the list, the
resource tree, live updates after a push, the masked diff of a Secret, Sync and Rollback from the
page. Screenshots go to .artifacts/screenshots/.

Every page is also watched for console errors (tests/support/browser.py), so a
Content-Security-Policy violation (an inline script or style creeping into a template) fails the
test.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import (
    app_status,
    application,
    configmap_repo,
    configmap_value,
    github_webhook,
    push_value,
    repository_secret,
)
from tests.support.browser import screenshot_path
from tests.support.chartapps import chart_app, synced_healthy
from tests.support.chartrepo import CHART_REPO_PASSWORD, CHART_REPO_USER, ChartRepoServer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def healthy_and_synced(kube: KubeClient, namespace: str, sha: str) -> dict[str, Any] | None:
    status = app_status(kube, namespace, "web")
    sync, health = status.get("sync") or {}, status.get("health") or {}
    if sync.get("status") == "Synced" and sync.get("revision") == sha:
        return status if health.get("status") == "Healthy" else None
    return None


def test_list_tree_live_update_and_rollback(
    ui: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    from playwright.sync_api import expect

    repo = configmap_repo(git_server)
    first = repo.head()
    view = ui("rollback")
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: healthy_and_synced(kube, namespace, first), timeout=90, what="Synced+Healthy")
    page = view.page

    # the list: one row, with its revision, sync and health
    page.goto(view.ctl.url + "/")
    row = page.locator(f'tr[data-app="{namespace}/web"]')
    expect(row.locator('[data-badge="sync.status"]')).to_have_text("Synced")
    expect(row.locator('[data-badge="sync.status"]')).to_have_class("badge sync-synced")
    expect(row.locator('[data-badge="health.status"]')).to_have_text("Healthy")
    expect(row.locator('[data-field="revision.short"]')).to_have_text(first[:7])
    view.shot("list")
    phone = view.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(view.ctl.url + "/")
    expect(phone.locator(f'tr[data-app="{namespace}/web"]')).to_be_visible()
    phone.screenshot(path=str(screenshot_path("rollback-list-phone.png")), full_page=True)
    phone.close()

    # click through to the resource tree
    row.locator("a.app-link").click()
    page.wait_for_url(f"{view.ctl.url}/apps/{namespace}/web")
    tree = page.locator("#resources")
    config = tree.locator(f'li[data-resource="/ConfigMap/{namespace}/config"]')
    deployment = tree.locator(f'li[data-resource="apps/Deployment/{namespace}/web"]')
    expect(config).to_contain_text("Synced")
    expect(deployment).to_contain_text("Healthy")
    view.shot("detail")

    # a push and its webhook show up on the open page, without a reload
    page.evaluate("window.__notReloaded = true")
    second = push_value(repo, "v2")
    assert github_webhook(view.ctl.url, repo.file_url(), "refs/heads/main", second) == 202
    summary = page.locator("section.summary")
    expect(summary.locator('[data-field="revision.short"]')).to_have_text(second[:7])
    expect(summary.locator('[data-field="revision.message"]')).to_have_text("set value v2")
    expect(summary.locator('[data-badge="sync.status"]')).to_have_text("Synced")
    expect(page.locator("#history tr").first).to_contain_text(second[:7])
    assert page.evaluate("window.__notReloaded") is True
    assert configmap_value(kube, namespace) == "v2"
    view.shot("live-update")

    # roll back to the first revision from its history row
    entry = page.locator("#history tr", has=page.locator("code", has_text=first[:7])).first
    entry.get_by_role("button", name="Roll back").click()
    expect(page.locator("#action-result")).to_contain_text("rollback to history entry")
    assert any("Roll back" in d and first[:7] in d for d in view.dialogs), view.dialogs
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=30, what="rolled back")
    expect(summary.locator('[data-field="automation"]')).to_have_text("automated sync paused")
    expect(summary.locator('[data-field="lastAppliedRevision"]')).to_have_text(first[:7])
    expect(page.locator("#history tr").first).to_contain_text(first[:7])
    expect(page.locator("#history tr").first).to_contain_text("rollback")
    expect(page.get_by_role("button", name="Resume automation")).to_be_visible()
    view.shot("rolled-back")

    # and resume: Git's head is deployed again
    page.get_by_role("button", name="Resume automation").click()
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=30, what="resumed")
    expect(summary.locator('[data-field="automation"]')).to_contain_text("automated (")
    assert page.evaluate("window.__notReloaded") is True


def secret_manifest(value: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "type": "Opaque",
            "data": {"password": base64.b64encode(value.encode()).decode()},
        }
    )


def secret_repo(git_server: GitServer, value: str) -> GitRepo:
    repo = configmap_repo(git_server)
    repo.commit({"app/secret.yaml": secret_manifest(value)}, "add the db secret")
    repo.push()
    return repo


def test_manual_sync_and_a_masked_secret_diff(
    ui: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    from playwright.sync_api import expect

    initial, rotated = "initial-" + secrets.token_hex(6), "rotated-" + secrets.token_hex(6)
    repo = secret_repo(git_server, initial)
    view = ui("secret")
    kube.create(application("web", namespace, repo.file_url(), syncPolicy={}))  # manual sync
    wait_for(
        lambda: app_status(kube, namespace, "web").get("sync", {}).get("status") == "OutOfSync",
        timeout=60,
        what="OutOfSync before the first sync",
    )
    page = view.page
    page.goto(f"{view.ctl.url}/apps/{namespace}/web")
    summary = page.locator("section.summary")
    expect(summary.locator('[data-badge="sync.status"]')).to_have_text("OutOfSync")
    expect(summary.locator('[data-field="automation"]')).to_have_text("manual sync")

    # Sync from the page, through the confirmation dialog
    page.locator("details.action summary").click()
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#action-result")).to_have_text("sync requested")
    assert any(d.startswith(f"Sync {namespace}/web") for d in view.dialogs), view.dialogs
    expect(summary.locator('[data-badge="sync.status"]')).to_have_text("Synced")
    expect(summary.locator('[data-badge="health.status"]')).to_have_text("Healthy")
    live = kube.get("v1", "Secret", "db", namespace)
    assert live and base64.b64decode(live["data"]["password"]).decode() == initial
    expect(page.locator(f'li[data-resource="/Secret/{namespace}/db"]')).to_contain_text("Synced")
    view.shot("synced")

    # change the Secret in Git; automated sync is off, so the cluster keeps the old value
    repo.commit({"app/secret.yaml": secret_manifest(rotated)}, "rotate the db password")
    repo.push()
    assert github_webhook(view.ctl.url, repo.file_url(), "refs/heads/main", repo.head()) == 202
    expect(summary.locator('[data-badge="sync.status"]')).to_have_text("OutOfSync")
    expect(page.locator(f'li[data-resource="/Secret/{namespace}/db"]')).to_contain_text("OutOfSync")

    page.click("#show-diff")
    diff = page.locator(f'#diff .diff-resource[data-resource="/Secret/{namespace}/db"]')
    expect(diff).to_contain_text("password: ++++++++ (hmac-sha256:")
    expect(diff.locator("span.del")).to_contain_text(["password: ++++++++"])
    expect(diff.locator("span.add")).to_contain_text(["password: ++++++++"])
    view.shot("secret-diff")
    forbidden = [
        value
        for plain in (initial, rotated)
        for value in (plain, base64.b64encode(plain.encode()).decode())
    ]
    html = page.content()
    assert not [v for v in forbidden if v in html]

    # the server-rendered diff page (no JavaScript needed) masks the same way
    page.goto(f"{view.ctl.url}/apps/{namespace}/web/diff")
    expect(page.locator("pre.diff")).to_contain_text("++++++++ (hmac-sha256:")
    assert not [v for v in forbidden if v in page.content()]
    view.shot("secret-diff-page")


def test_a_chart_app_shows_its_chart_version_and_source_type(
    ui: Any, kube: KubeClient, namespace: str, chart_repo: ChartRepoServer
) -> None:
    """Issue 15: the pages name a chart source's chart, its deployed version (with the digest it
    was recorded with) and the source type, and follow a new version live."""
    from playwright.sync_api import expect

    for version in ("1.0.0", "1.1.0"):
        chart_repo.publish("web", version)
    kube.create(
        repository_secret(
            "chart-repo",
            namespace,
            {
                "url": chart_repo.url,
                "username": CHART_REPO_USER,
                "password": CHART_REPO_PASSWORD,
                "caData": chart_repo.ca_pem,
                "namespaces": namespace,
            },
        )
    )
    view = ui("chart", f"--controller-namespace={namespace}")
    kube.create(chart_app("web", namespace, chart_repo.url, "1.x"))
    wait_for(
        lambda: synced_healthy(kube, namespace, "web", "web@1.1.0"),
        timeout=90,
        what="Synced+Healthy at web@1.1.0",
    )
    page = view.page

    page.goto(view.ctl.url + "/")
    row = page.locator(f'tr[data-app="{namespace}/web"]')
    expect(row.locator("td[data-label=Source]")).to_contain_text("chart web @ 1.x")
    expect(row.locator('[data-field="sourceType"]')).to_have_text("HelmRepository")
    expect(row.locator('[data-field="revision.short"]')).to_have_text("web@1.1.0")
    view.shot("list")

    row.locator("a.app-link").click()
    page.wait_for_url(f"{view.ctl.url}/apps/{namespace}/web")
    summary = page.locator("section.summary")
    expect(summary.locator('[data-field="sourceType"]')).to_have_text("HelmRepository")
    expect(summary.locator('[data-field="chartVersion"]')).to_have_text("1.1.0")
    digest = app_status(kube, namespace, "web")["sourceRevision"]["digest"]
    expect(summary.locator('[data-field="revision.digest"]')).to_have_text(digest)
    view.shot("detail")

    # a new version in range is deployed by the refresh and shows up without a reload
    page.evaluate("window.__notReloaded = true")
    chart_repo.publish("web", "1.2.0")
    expect(summary.locator('[data-field="chartVersion"]')).to_have_text("1.2.0", timeout=90_000)
    expect(summary.locator('[data-field="revision.short"]')).to_have_text("web@1.2.0")
    assert page.evaluate("window.__notReloaded") is True
    assert CHART_REPO_PASSWORD not in page.content()
