"""A canary driven by Git through the controller: a pushed image change is held by the sync and
rolled out step by step; a timed pause survives a kill -9 of the controller with its original
deadline; promote finishes the rollout and the Application ends Synced and Healthy."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.controller import ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import app_status, application, github_webhook, rollout_status
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLLOUT_CRD = Path(__file__).resolve().parents[2] / "charts/gitsync/crds/rollouts.gitsync.dev.yaml"
REPLICAS = 10
PAUSE = 15


def deployment(image: str) -> dict[str, Any]:
    return web_deployment(image, REPLICAS)


ROLLOUT = canary_rollout(
    [{"setWeight": 20}, {"pause": {"duration": f"{PAUSE}s"}}, {"setWeight": 50}, {"pause": {}}]
)
SERVICE = web_service()


def canary_repo(git_server: GitServer) -> GitRepo:
    return git_server.create_repo(
        f"canary-{secrets.token_hex(3)}",
        files={
            "app/deployment.yaml": yaml.safe_dump(deployment("nginx:1.25")),
            "app/service.yaml": yaml.safe_dump(SERVICE),
            "app/rollout.yaml": yaml.safe_dump(ROLLOUT),
        },
    )


def endpoint_images(kube: KubeClient, namespace: str) -> list[str]:
    """The image behind each address the Service sends traffic to."""
    ep = kube.get("v1", "Endpoints", "web", namespace) or {}
    ips = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    pods = kube.list("v1", "Pod", namespace)["items"]
    return sorted(
        p["spec"]["containers"][0]["image"] for p in pods if p.get("status", {}).get("podIP") in ips
    )


def share_is(kube: KubeClient, namespace: str, canary: int) -> bool:
    images = endpoint_images(kube, namespace)
    return len(images) == REPLICAS and images.count("nginx:1.26") == canary


def app_ready(kube: KubeClient, namespace: str, sha: str) -> dict[str, Any] | None:
    status = app_status(kube, namespace, "web")
    ok = (
        status.get("sync", {}).get("status") == "Synced"
        and status.get("sync", {}).get("revision") == sha
        and status.get("health", {}).get("status") == "Healthy"
    )
    return status if ok else None


def test_canary_through_the_controller_survives_a_restart_in_a_timed_pause(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    ensure_crd(kube, yaml.safe_load(ROLLOUT_CRD.read_text()))
    repo = canary_repo(git_server)
    ctl = serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(
        lambda: app_ready(kube, namespace, repo.head()), timeout=120, what="first sync healthy"
    )

    sha = repo.commit({"app/deployment.yaml": yaml.safe_dump(deployment("nginx:1.26"))}, "v2")
    repo.push()
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202

    # step 1: 20 % of ready pods behind the Service run the new image (2 of 10)
    wait_for(
        lambda: share_is(kube, namespace, 2), timeout=60, what="2 of 10 endpoints on the canary"
    )
    status = wait_for(
        lambda: (s := rollout_status(kube, namespace)).get("pauseUntil") and s,
        timeout=30,
        what="the timed pause with its deadline in status",
    )
    deadline = datetime.fromisoformat(status["pauseUntil"].replace("Z", "+00:00"))
    live = kube.get("apps/v1", "Deployment", "web", namespace)
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"  # held

    ctl.kill()  # kill -9 in the middle of the timed pause
    time.sleep(2)
    serve()
    wait_for(lambda: share_is(kube, namespace, 5), timeout=PAUSE + 60, interval=0.2, what="step 3")
    moved = datetime.now(UTC)
    late = (moved - deadline).total_seconds()
    print(f"pause ended {late:+.1f}s from its original deadline (after a kill -9 and restart)")
    assert -5 <= late <= 5 + 3  # +-5 s, plus up to 3 s for the scale-up to show in Endpoints
    wait_for(
        lambda: rollout_status(kube, namespace).get("phase") == "Paused",
        timeout=30,
        what="the Rollout Paused at the promote step",
    )
    wait_for(
        lambda: app_status(kube, namespace, "web").get("health", {}).get("status") == "Suspended",
        timeout=30,
        what="a paused rollout shows on the Application as Suspended",
    )

    kube.patch(
        "gitsync.dev/v1alpha1",
        "Rollout",
        "web",
        {"metadata": {"annotations": {"rollouts.gitsync.dev/promote": "now"}}},
        namespace=namespace,
    )
    wait_for(
        lambda: rollout_status(kube, namespace).get("phase") == "Healthy",
        timeout=90,
        what="Healthy",
    )
    wait_for(
        lambda: share_is(kube, namespace, REPLICAS), timeout=90, what="all pods on the new image"
    )
    assert kube.get("apps/v1", "Deployment", "web-canary", namespace) is None
    wait_for(lambda: app_ready(kube, namespace, sha), timeout=60, what="the app Synced and Healthy")
