"""The live resource tree against a real ``gitsync serve`` on the test control plane (issue 20).

An app with a Deployment whose pods the simulator keeps in CrashLoopBackOff, a Service and a
ConfigMap: ``GET .../tree`` shows Deployment -> ReplicaSet -> Pods (with phase, ready
containers, restarts and the reason) and Service -> EndpointSlice (the version the server
serves), all linked by owner UID; a Pod nobody manages appears only with ``?orphans=true``;
repeated trees are read from the watch cache, not with a GET per object; ``gitsync app get``
prints the same tree.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application
from tests.support.cli import run_gitsync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWER = "viewer-" + secrets.token_hex(12)
REPLICAS = 2


def manifests() -> dict[str, str]:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": REPLICAS,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"sim.gitsync.dev/behavior": "crashloop"},
                },
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}
    return {
        "app/deploy.yaml": yaml.safe_dump(deploy),
        "app/service.yaml": yaml.safe_dump(service),
        "app/config.yaml": yaml.safe_dump(config),
    }


def api_tree(ctl: Any, namespace: str, query: str = "") -> dict[str, Any]:
    request = urllib.request.Request(
        f"{ctl.url}/api/v1/applications/{namespace}/web/tree{query}",
        headers={"Authorization": f"Bearer {VIEWER}"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def node(nodes: list[dict[str, Any]], kind: str, name: str = "") -> dict[str, Any]:
    found = [n for n in nodes if n["kind"] == kind and (not name or n["name"] == name)]
    assert len(found) == 1, (kind, name, [(n["kind"], n["name"]) for n in nodes])
    return found[0]


def crashing_pods_shown(ctl: Any, namespace: str) -> dict[str, Any] | None:
    doc = api_tree(ctl, namespace)
    kinds = [n["kind"] for n in doc["nodes"]]
    if sorted(kinds) != ["ConfigMap", "Deployment", "Service"]:
        return None
    deployment = node(doc["nodes"], "Deployment")
    pods = [p for rs in deployment["children"] for p in rs["children"]]
    service = node(doc["nodes"], "Service")
    reasons = {p.get("pod", {}).get("reason") for p in pods}
    if len(pods) != REPLICAS or reasons != {"CrashLoopBackOff"} or not service["children"]:
        return None
    return doc


def test_the_tree_shows_replicasets_pods_and_endpoint_slices_linked_by_uid(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path, sim: None
) -> None:
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    ctl = serve(f"--read-only-token-file={tmp_path / 'viewer-tokens'}")
    repo = git_server.create_repo(f"tree-{secrets.token_hex(3)}", files=manifests())
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(
        lambda: app_status(kube, namespace, "web").get("sync", {}).get("status") == "Synced",
        timeout=120,
        what="app synced",
    )
    try:
        doc = wait_for(
            lambda: crashing_pods_shown(ctl, namespace), timeout=90, what="tree with pods"
        )
    except Exception:
        print(ctl.log(80))
        raise
    deployment = node(doc["nodes"], "Deployment", "web")
    assert deployment["managed"] is True and deployment["sync"] == "Synced"
    live_rs = kube.list("apps/v1", "ReplicaSet", namespace)
    (rs_node,) = deployment["children"]
    assert rs_node["kind"] == "ReplicaSet"
    assert rs_node["uid"] == live_rs["items"][0]["metadata"]["uid"]
    for pod in rs_node["children"]:
        live = kube.get("v1", "Pod", pod["name"], namespace)
        assert live is not None
        assert live["metadata"]["ownerReferences"][0]["uid"] == rs_node["uid"]
        assert pod["pod"] == {
            "phase": "Running",
            "ready": "0/1",
            "restarts": 3,
            "reason": "CrashLoopBackOff",
        }
        assert pod["health"]["status"] == "Degraded"
        assert pod["age"]
    service = node(doc["nodes"], "Service", "web")
    assert {c["kind"] for c in service["children"]} <= {"EndpointSlice", "Endpoints"}
    assert service["children"][0]["kind"] == "EndpointSlice"  # served on every supported version
    assert node(doc["nodes"], "ConfigMap", "config")["children"] == []
    assert doc["orphans"] is None

    # a Pod nobody manages: not in the tree; listed with ?orphans=true
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug", "namespace": namespace},
            "spec": {"containers": [{"name": "sh", "image": "busybox"}]},
        }
    )
    orphaned = wait_for(
        lambda: [o for o in api_tree(ctl, namespace, "?orphans=true")["orphans"] or []] or None,
        timeout=30,
        what="the orphan pod",
    )
    assert [(o["kind"], o["name"], o["managed"]) for o in orphaned] == [("Pod", "debug", False)]
    assert "debug" not in json.dumps(api_tree(ctl, namespace)["nodes"])

    # the trees come from the watch cache: ten of them cost no GET per object
    gets_before = ctl.metric("gitsync_kube_request_total", verb="GET")
    for _ in range(10):
        api_tree(ctl, namespace)
    assert ctl.metric("gitsync_kube_request_total", verb="GET") - gets_before < 10

    # the CLI prints the same tree, indented
    shown = run_gitsync(
        "app",
        "get",
        f"{namespace}/web",
        env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": VIEWER},
        timeout=60,
    )
    assert shown.code == 0, shown
    assert "\n  Deployment/web  Synced" in shown.stdout
    assert f"\n    ReplicaSet/{rs_node['name']}" in shown.stdout
    assert "\n      Pod/" in shown.stdout and "CrashLoopBackOff" in shown.stdout
    assert "\n    EndpointSlice/" in shown.stdout
