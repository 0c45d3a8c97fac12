"""The new UI routes (issue 20) as a hostile tenant uses them, on the real control plane.

The resource tree reads the controller's watch cache with the controller's own rights, which
reach every namespace. What a tenant controls - ``spec.destination.namespace`` and the objects
its Git renders, which ``status.resources`` lists even when the destination policy refused
them - must not turn the tree into a window on another tenant's namespace: its Deployments'
ReplicaSets and Pods, their names, reasons and restarts, or its loose Pods as "orphans".
And the watches a tree starts stay open, so how many namespaces trees may watch is bounded
however many apps a tenant creates.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.application_status import HealthSummary, ResourceStatus
from gitsync.controller import live_tree
from gitsync.controller.live_tree import LiveTree
from gitsync.kube import KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.kube.client import ApiError
from gitsync.localenv.gitserver import GitServer
from gitsync.policy import Policy
from tests.integration.test_tree_it import VIEWER, api_tree
from tests.support.apps import app_status, application
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def deployment(name: str, namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx:1.25"}]},
            },
        },
    }


def admitted(kube: KubeClient, obj: dict[str, Any]) -> dict[str, Any] | None:
    """``obj`` created, or None while a fresh namespace's ServiceAccount token is not there yet
    (the API server refuses Pods until then)."""
    try:
        return kube.create(obj)
    except ApiError as exc:
        if "No API token found" in str(exc):
            return None
        raise


def listed(kube: KubeClient, namespace: str) -> dict[str, Any] | None:
    """The tenant app's status once it lists the refused Deployment and the synced ConfigMap."""
    resources = {r["name"]: r for r in app_status(kube, namespace, "web").get("resources") or []}
    if resources.get("config", {}).get("status") != "Synced" or "payroll" not in resources:
        return None
    return resources


def test_the_tree_reads_nothing_in_a_namespace_the_policy_refuses(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    ctl = serve(f"--read-only-token-file={tmp_path / 'viewer-tokens'}")
    with temporary_namespace(kube, "tree-victim") as victim:
        # the other tenant's workload and a Pod of its own that nothing owns
        kube.create(deployment("payroll", victim))
        loose = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "payroll-debug", "namespace": victim},
            "spec": {"containers": [{"name": "sh", "image": "busybox"}]},
        }
        wait_for(lambda: admitted(kube, loose), timeout=30, what="the loose Pod created")
        # the tenant: its destination is the victim's namespace (the built-in policy refuses
        # it), its Git names the victim's Deployment, and one ConfigMap of its own
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": namespace},
        }
        repo = git_server.create_repo(
            f"tree-peek-{secrets.token_hex(3)}",
            files={
                "app/deploy.yaml": yaml.safe_dump(deployment("payroll")),
                "app/config.yaml": yaml.safe_dump(config),
            },
        )
        kube.create(
            application("web", namespace, repo.file_url(), destination={"namespace": victim})
        )
        resources = wait_for(lambda: listed(kube, namespace), timeout=120, what="status")
        # listed (the reconciler never read it: the policy refused it), not deployed
        assert resources["payroll"]["namespace"] == victim
        assert resources["payroll"]["status"] != "Synced"
        victims = wait_for(
            lambda: (
                [
                    o["metadata"]["name"]
                    for kind in ("ReplicaSet", "Pod")
                    for o in kube.list("apps/v1" if kind == "ReplicaSet" else "v1", kind, victim)[
                        "items"
                    ]
                ]
                if len(kube.list("v1", "Pod", victim)["items"]) >= 2
                else None
            ),
            timeout=60,
            what="the victim's ReplicaSet and Pods",
        )
        live_deployment = kube.get("apps/v1", "Deployment", "payroll", victim)
        assert live_deployment is not None

        for query in ("", "?orphans=true"):
            doc = api_tree(ctl, namespace, query)
            shown = json.dumps(doc)
            for name in [*victims, live_deployment["metadata"]["uid"]]:
                assert name not in shown, (query, name)
            (payroll,) = [n for n in doc["nodes"] if n["name"] == "payroll"]
            assert payroll["uid"] == "" and payroll["children"] == []
            assert payroll["sync"] != "Synced"
            assert any(victim in w and "policy" in w for w in doc["warnings"]), doc["warnings"]
            # the tenant's own object is still read live
            (own,) = [n for n in doc["nodes"] if n["name"] == "config"]
            live_config = kube.get("v1", "ConfigMap", "config", namespace)
            assert live_config is not None and own["uid"] == live_config["metadata"]["uid"]
        assert doc["orphans"] == []


def test_trees_start_watches_in_a_bounded_number_of_namespaces(kube: KubeClient) -> None:
    """Many apps, each naming another namespace, cost at most ``max_watched_namespaces``
    namespaces of watches (the watches stay open); past it a tree says so instead."""
    cache = WatchCache(kube)
    tree = LiveTree(kube, cache, max_watched_namespaces=2)
    try:
        with contextlib.ExitStack() as stack:
            spaces = [stack.enter_context(temporary_namespace(kube, "tree-many")) for _ in range(3)]
            docs = [
                tree.document(
                    f"{ns}/web", (), destination_namespace=ns, may_read=lambda _: True, orphans=True
                )
                for ns in spaces
            ]
            assert [d["warnings"] for d in docs[:2]] == [[], []]
            assert "trees watch 2 namespaces already" in " ".join(docs[2]["warnings"])
            for (_, kind), stats in cache.stats().items():
                assert stats.namespaces == tuple(sorted(spaces[:2])), kind
    finally:
        cache.stop()


def test_a_cluster_scoped_object_the_policy_refuses_is_not_read(
    kube: KubeClient, namespace: str
) -> None:
    """A tenant's Git naming a cluster-scoped object (refused at sync, listed in its status):
    the tree does not read it, even when the cache watches its kind for another app; the
    app's own Namespace (which the built-in policy allows) is read."""
    cache = WatchCache(kube)
    cache.ensure("v1", "Namespace")  # watched, as when a platform app deploys Namespaces
    tree = LiveTree(kube, cache)
    policy = Policy()  # the built-in policy: own namespace and its Namespace object only
    resources = [
        ResourceStatus("", "Namespace", "", name, "Unknown", HealthSummary("Missing"))
        for name in ("kube-system", namespace)
    ]
    try:
        doc = tree.document(
            f"{namespace}/web",
            resources,
            destination_namespace=namespace,
            may_read=lambda key: policy.allows(namespace, key),
        )
    finally:
        cache.stop()
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["kube-system"]["uid"] == ""
    assert by_name["kube-system"]["health"]["status"] == "Missing"  # the reconciler's
    own = kube.get("v1", "Namespace", namespace)
    assert own is not None and by_name[namespace]["uid"] == own["metadata"]["uid"]
    assert "Namespace/kube-system" in " ".join(doc["warnings"])


def test_a_tree_waits_for_first_lists_a_bounded_time(cluster: TestCluster, tmp_path: Path) -> None:
    """An API server that fails every list (through the fault proxy): one tree over three
    namespaces would wait 10 s per kind and namespace (15 lists, 150 s) holding a web thread;
    it answers after its own budget, saying what is not loaded yet."""
    cp = cluster.control_plane
    if cp is None:
        pytest.skip("puts a proxy in front of the test control plane's own API server")
    pki = cp.pki
    with FaultProxy(cp.host, pki.serving_cert, pki.serving_key, pki.ca_cert) as proxy:
        config = proxy.write_kubeconfig(cluster.kubeconfig_path, tmp_path / "proxied.kubeconfig")
        kube = KubeClient.from_kubeconfig(str(config))
        cache = WatchCache(kube)
        tree = LiveTree(kube, cache, tree_timeout=2.0)
        tree.endpoint_kind()  # discovery answered; from here on every list fails
        for api_version, kind in live_tree.CHILD_KINDS:
            kube.resource(api_version, kind)
        proxy.inject(1.0, statuses=(500,), match=lambda r: "/namespaces/" in r.path)
        spaces = [f"tree-slow-{i}-{secrets.token_hex(3)}" for i in range(3)]
        resources = [
            ResourceStatus("", "ConfigMap", ns, "config", "Synced", HealthSummary("Healthy"))
            for ns in spaces
        ]
        started = time.monotonic()
        try:
            doc = tree.document(
                "t/web", resources, destination_namespace=spaces[0], may_read=lambda _: True
            )
        finally:
            cache.stop()
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert any("not loaded yet" in w for w in doc["warnings"]), doc["warnings"]
    assert [n["name"] for n in doc["nodes"]] == ["config"] * 3
