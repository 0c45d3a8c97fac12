"""The live tree on the app page in a real browser (headless Debian chromium through Playwright).

Against a live ``gitsync serve`` on the test control plane, logged in as admin: a gitsync canary
Rollout paused mid-rollout (4 replicas, setWeight 50 then pause). The page's list view shows the
stable Deployment's ReplicaSet with its Pods labelled ``stable`` and, under the Rollout, the
canary Deployment's ReplicaSet with its Pods labelled ``canary``; the nodes collapse (details /
summary, no script); the Graph switch (CSS alone) shows the same nodes as boxes.

Screenshots: .artifacts/screenshots/tree-canary.png and tree-graph.png. Every page is watched
for console errors, so a Content-Security-Policy violation fails the test.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application, github_webhook
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.rollouts import canary_started
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPLICAS = 4
CANARY = canary_rollout([{"setWeight": 50}, {"pause": {}}], deadline=300)


def healthy_at(kube: KubeClient, namespace: str, sha: str) -> bool:
    status = app_status(kube, namespace, "web")
    return (
        status.get("sync", {}).get("revision") == sha
        and status.get("health", {}).get("status") == "Healthy"
    )


def paused(kube: KubeClient, namespace: str) -> bool:
    live = kube.get("gitsync.dev/v1alpha1", "Rollout", "web", namespace) or {}
    status = live.get("status") or {}
    return status.get("phase") == "Paused" and status.get("currentWeight") == 50


def pods_by_role(doc: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            if n["kind"] == "Pod":
                counts[n["role"]] = counts.get(n["role"], 0) + 1
            walk(n["children"])

    walk(doc["nodes"])
    return counts


def test_the_canary_app_s_tree_shows_stable_and_canary_replicasets_with_pods_and_labels(
    ui: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    rollout_crd: None,
) -> None:
    from playwright.sync_api import expect

    ctl = ui.serve()
    repo = git_server.create_repo(
        f"ui-tree-{secrets.token_hex(3)}",
        files={
            "app/deployment.yaml": yaml.safe_dump(web_deployment("nginx:1.25", REPLICAS)),
            "app/service.yaml": yaml.safe_dump(web_service()),
            "app/rollout.yaml": yaml.safe_dump(CANARY),
        },
    )
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: healthy_at(kube, namespace, repo.head()), timeout=120, what="first sync")
    sha = repo.commit(
        {"app/deployment.yaml": yaml.safe_dump(web_deployment("nginx:1.26", REPLICAS))}, "v2"
    )
    repo.push()
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
    canary_started(kube, namespace, "nginx:1.26")
    wait_for(lambda: paused(kube, namespace), timeout=90, what="the canary paused at 50 %")

    view = ui.open(ctl, "tree")
    try:
        page = view.page
        api = f"{ctl.url}/api/v1/applications/{namespace}/web/tree"
        wait_for(
            lambda: (
                pods_by_role(view.context.request.get(api).json())
                == {"stable": REPLICAS // 2, "canary": REPLICAS // 2}
            ),
            timeout=60,
            what="the tree's pods settled (old ones gone)",
        )
        page.goto(f"{ctl.url}/apps/{namespace}/web")
        tree = page.locator("#tree-list")
        stable = tree.locator(f'li.tnode[data-node="apps/Deployment/{namespace}/web"]')
        expect(stable).to_have_attribute("data-role", "stable")
        stable_rs = stable.locator('li.tnode[data-node^="apps/ReplicaSet/"][data-role="stable"]')
        live_stable = stable_rs.filter(has=page.locator('li.tnode[data-node^="/Pod/"]'))
        expect(live_stable).to_have_count(1)
        expect(live_stable.locator('li.tnode[data-node^="/Pod/"]')).to_have_count(REPLICAS // 2)
        expect(live_stable.locator('li.tnode[data-node^="/Pod/"] .role').first).to_have_text(
            "stable"
        )

        rollout = tree.locator(f'li.tnode[data-node="gitsync.dev/Rollout/{namespace}/web"]')
        canary = rollout.locator(f'li.tnode[data-node="apps/Deployment/{namespace}/web-canary"]')
        expect(canary).to_have_attribute("data-role", "canary")
        canary_rs = canary.locator('li.tnode[data-node^="apps/ReplicaSet/"][data-role="canary"]')
        expect(canary_rs).to_have_count(1)
        canary_pods = canary_rs.locator('li.tnode[data-node^="/Pod/"][data-role="canary"]')
        expect(canary_pods).to_have_count(REPLICAS // 2)
        first_pod = canary_pods.first
        expect(first_pod.locator(".role")).to_have_text("canary")
        expect(first_pod.locator(".role")).to_have_attribute(
            "title", re.compile(r"rollouts\.gitsync\.dev/role=canary")
        )
        expect(first_pod.locator(".pod-ready")).to_have_text("1/1")
        expect(first_pod.locator(".pod-phase")).to_have_text("Running")
        view.shot("canary")

        # collapsible without a script: closing the Rollout hides its canary
        rollout.locator(":scope > details > summary").click()
        expect(canary).to_be_hidden()
        rollout.locator(":scope > details > summary").click()
        expect(canary).to_be_visible()

        # the graph view: the same nodes as boxes
        page.locator('label[for="tree-view-graph"]').click()
        expect(tree).to_be_hidden()
        graph = page.locator("#tree-graph")
        expect(graph).to_be_visible()
        expect(graph.locator('.g-box[data-role="canary"][data-node^="/Pod/"]')).to_have_count(
            REPLICAS // 2
        )
        expect(
            graph.locator(f'.g-box[data-node="apps/Deployment/{namespace}/web"]')
        ).to_have_attribute("data-role", "stable")
        graph.scroll_into_view_if_needed()
        view.shot("graph")
    except Exception:
        print(ctl.log(120))
        raise
    finally:
        view.close()
