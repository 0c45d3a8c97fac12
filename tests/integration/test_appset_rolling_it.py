"""Rolling sync of an ApplicationSet end to end: a real ``gitsync serve``, the real control plane
with the pod simulator, and a real Git server on loopback.

Issue 18's acceptance item 4: over a staging and a prod app of one set, a push reaches prod only
after staging is Healthy at that revision; a staging app that turns Degraded stops the rollout
before prod, and the set's status names it. And a paused step waits for an approval of that
very commit (the ``gitsync.dev/promote`` annotation).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import github_webhook
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator")]

SET = "web"


def deployment(name: str, **annotations: str) -> str:
    """A Deployment whose pod the simulator runs as ``annotations`` say; a small progress
    deadline so a never-ready rollout turns Degraded in seconds."""
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "progressDeadlineSeconds": 5,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": annotations},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                },
            },
        }
    )


def web_repo(git_server: GitServer) -> GitRepo:
    """A staging and a prod directory, a ready Deployment in each."""
    return git_server.create_repo(
        f"rolling-{secrets.token_hex(3)}",
        files={
            "staging/deploy.yaml": deployment("web-staging"),
            "prod/deploy.yaml": deployment("web-prod"),
        },
    )


def rolling_set(namespace: str, url: str) -> dict[str, Any]:
    steps = [
        {"matchExpressions": [{"key": "env", "operator": "In", "values": [env]}]}
        for env in ("staging", "prod")
    ]
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION_SET,
        "metadata": {"name": SET, "namespace": namespace},
        "spec": {
            "goTemplate": True,
            "generators": [{"list": {"elements": [{"env": "staging"}, {"env": "prod"}]}}],
            "strategy": {"type": "RollingSync", "rollingSync": {"steps": steps}},
            "template": {
                "metadata": {"name": "web-{{ .env }}", "labels": {"env": "{{ .env }}"}},
                "spec": {
                    "source": {"repoURL": url, "targetRevision": "main", "path": "{{ .env }}"},
                    "destination": {"namespace": namespace},
                    "syncPolicy": {"automated": {"prune": True}},
                },
            },
        },
    }


def app(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(kinds.API_VERSION, kinds.APPLICATION, name, namespace) or {}


def pin(kube: KubeClient, namespace: str, name: str) -> str:
    return str(
        ((app(kube, namespace, name).get("spec") or {}).get("source") or {}).get("targetRevision")
        or ""
    )


def healthy_at(kube: KubeClient, namespace: str, name: str, sha: str) -> bool:
    status = app(kube, namespace, name).get("status") or {}
    return (
        (status.get("sync") or {}).get("revision") == sha
        and (status.get("sync") or {}).get("status") == "Synced"
        and (status.get("health") or {}).get("status") == "Healthy"
    )


def rolling_condition(kube: KubeClient, namespace: str) -> dict[str, Any]:
    obj = kube.get(kinds.API_VERSION, kinds.APPLICATION_SET, SET, namespace) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "RollingSync"), {})


def test_a_push_reaches_prod_only_after_staging_is_healthy_and_a_degraded_staging_stops_it(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = web_repo(git_server)
    url = repo.file_url()
    first = repo.head()
    proc = serve()
    kube.create(rolling_set(namespace, url))
    # the first rollout already goes step by step: prod is created once staging is proven
    wait_for(lambda: healthy_at(kube, namespace, "web-prod", first), timeout=120, what="prod at C1")
    assert pin(kube, namespace, "web-staging") == first

    # C2: staging's pod turns Ready only after 8 s; prod must wait for it
    second = repo.commit(
        {
            "staging/deploy.yaml": deployment(
                "web-staging", **{"sim.gitsync.dev/ready-after": "8"}
            ),
            "prod/deploy.yaml": deployment("web-prod", release="2"),
        }
    )
    repo.push()
    assert github_webhook(proc.url, url, "refs/heads/main", second) == 202
    wait_for(lambda: pin(kube, namespace, "web-staging") == second, timeout=60, what="staging pin")
    staging_healthy_at = prod_pinned_at = 0.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not prod_pinned_at:
        if not staging_healthy_at and healthy_at(kube, namespace, "web-staging", second):
            staging_healthy_at = time.monotonic()
        if pin(kube, namespace, "web-prod") == second:
            prod_pinned_at = time.monotonic()
            # the staging app's status is read after prod's pin: it must be Healthy by now
            assert healthy_at(kube, namespace, "web-staging", second)
            staging_healthy_at = staging_healthy_at or prod_pinned_at
        time.sleep(0.2)
    assert prod_pinned_at, "prod never got the second revision"
    assert staging_healthy_at <= prod_pinned_at
    wait_for(
        lambda: healthy_at(kube, namespace, "web-prod", second), timeout=120, what="prod at C2"
    )

    # C3: staging's pod never turns Ready; its rollout passes the deadline and is Degraded
    third = repo.commit(
        {
            "staging/deploy.yaml": deployment(
                "web-staging", **{"sim.gitsync.dev/behavior": "never-ready"}
            )
        }
    )
    repo.push()
    assert github_webhook(proc.url, url, "refs/heads/main", third) == 202
    wait_for(
        lambda: rolling_condition(kube, namespace).get("reason") == "RollingSyncStopped",
        timeout=90,
        what="the rollout stopped",
    )
    condition = rolling_condition(kube, namespace)
    assert condition["status"] == "False"
    assert "web-staging" in condition["message"] and third in condition["message"]
    time.sleep(3)  # a few more passes: prod stays where it was proven
    assert pin(kube, namespace, "web-prod") == second
    assert healthy_at(kube, namespace, "web-prod", second)
    obj = kube.get(kinds.API_VERSION, kinds.APPLICATION_SET, SET, namespace) or {}
    rolling = obj["status"]["rollingSync"]
    assert rolling["stoppedBy"] == ["web-staging"]
    assert rolling["provenRevision"] == second


def test_a_paused_step_waits_for_the_promote_annotation_of_that_commit(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, cluster: TestCluster
) -> None:
    repo = web_repo(git_server)
    head = repo.head()
    serve()
    doc = rolling_set(namespace, repo.file_url())
    doc["spec"]["strategy"]["rollingSync"]["steps"][1]["pause"] = {}
    kube.create(doc)
    wait_for(
        lambda: rolling_condition(kube, namespace).get("reason") == "RollingSyncPaused",
        timeout=120,
        what="the rollout paused before prod",
    )
    assert healthy_at(kube, namespace, "web-staging", head)
    assert not app(kube, namespace, "web-prod")  # held: a new set proves staging first

    def promote(value: str) -> None:
        patch = {"metadata": {"annotations": {"gitsync.dev/promote": value}}}
        kube.patch(kinds.API_VERSION, kinds.APPLICATION_SET, SET, patch, namespace=namespace)

    promote(f"2@{'0' * 40}")  # an approval of another commit approves nothing
    time.sleep(3)
    assert not app(kube, namespace, "web-prod")
    # gitsync appset promote approves the paused step for the revision the status shows
    where = ("--kubeconfig", str(cluster.kubeconfig_path))
    wrong = run_gitsync("appset", "promote", f"{namespace}/{SET}", "--step", "7", *where)
    assert wrong.code != 0 and "no step 7" in wrong.stderr, wrong
    done = run_gitsync("appset", "promote", f"{namespace}/{SET}", *where)
    assert done.code == 0 and f"2@{head}" in done.stdout, done
    wait_for(lambda: healthy_at(kube, namespace, "web-prod", head), timeout=120, what="prod")
    wait_for(
        lambda: rolling_condition(kube, namespace).get("reason") == "RollingSyncComplete",
        timeout=30,
        what="the rollout complete",
    )
