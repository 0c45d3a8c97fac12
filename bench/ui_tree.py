"""The app page and its live tree for an Application of 200 objects and 600 Pods (issue 20).

How long a user waits for the page of a big app, and for the tree document the page and
``gitsync app get`` are built from. Measured with real parts:

* on the given API server (the test control plane's kube-controller-manager creates the
  ReplicaSets, Pods and EndpointSlices), ``deployments`` Deployments of ``replicas`` Pods each
  and as many Services - 200 managed objects and 600 Pods at the default size; without nodes the
  Pods stay Pending, which changes nothing for the tree;
* the tree read the way the controller reads it: ``gitsync.controller.live_tree.LiveTree`` over
  a ``WatchCache`` of that cluster (managed objects and children from watches, no GET per object),
  behind the web layer's ``ControllerView`` - an in-memory Application whose status lists the
  200 objects, as the controller's store would hold it;
* the Flask app ``gitsync serve`` builds (``create_app``) behind a real waitress server on
  loopback, logged in with the admin password over HTTP (cookies, CSRF).

Figures, ``requests`` times each (after one untimed request): the app page's time to first byte
(the status line and headers read; Flask sends the page in one piece, so the page is rendered by
then) and to its last byte, and the tree document (``GET .../tree``) complete. The first tree,
which starts the namespace watches, is reported apart. Milliseconds; p50 and p95 (nearest rank).
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.diff_view import login
from bench.scenarios import BenchError, Row
from bench.ui_list import percentile, waitress_server
from gitsync.application_status import ApplicationStatus
from gitsync.controller.interface import AppEvents, EventQuery
from gitsync.controller.live_tree import LiveTree
from gitsync.kube import KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.web import AuthSettings, create_app
from gitsync.webhook import PushEvent
from tests.support.cluster import temporary_namespace

APP = "big"


def workload(i: int, replicas: int) -> list[dict[str, Any]]:
    """Deployment ``web-<i>`` with ``replicas`` Pods and its Service."""
    labels = {"app": f"web-{i:03d}"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"web-{i:03d}", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"web-{i:03d}"},
            "spec": {"selector": labels, "ports": [{"port": 80, "protocol": "TCP"}]},
        },
    ]


class TreeView:
    """The controller as the web layer sees it, with one Application whose tree is read by the
    controller's own ``LiveTree`` over a watch cache of the real cluster."""

    def __init__(self, kube: KubeClient, namespace: str, objects: list[dict[str, Any]]):
        self.kube = kube
        self.cache = WatchCache(kube)
        self.tree = LiveTree(kube, self.cache)
        self.ready = True
        self.store = self
        self.obj: dict[str, Any] = {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": APP,
                "namespace": namespace,
                "uid": "bench",
                "resourceVersion": "1",
            },
            "spec": {
                "source": {"repoURL": "https://git.example.com/big.git", "path": "app"},
                "destination": {"namespace": namespace},
            },
            "status": {
                "sync": {"status": "Synced"},
                "health": {"status": "Progressing"},
                "resources": [
                    {
                        "group": o["apiVersion"].rpartition("/")[0],
                        "kind": o["kind"],
                        "namespace": namespace,
                        "name": o["metadata"]["name"],
                        "status": "Synced",
                        "health": {"status": "Progressing"},
                    }
                    for o in objects
                ],
            },
        }

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        meta = self.obj["metadata"]
        return self.obj if key == (meta["namespace"], meta["name"]) else None

    def patch_annotations(self, key: tuple[str, str], annotations: dict[str, str | None]) -> None:
        raise BenchError("the bench does not act")

    def on_push(self, event: PushEvent) -> int:
        return 0

    def application_objects(self) -> list[dict[str, Any]]:
        return [self.obj]

    def application_set_objects(self) -> list[dict[str, Any]]:
        return []

    def refresh(self, key: tuple[str, str], reason: str = "manual") -> None:
        pass

    def application_diff(self, key: tuple[str, str]) -> None:
        raise BenchError("the bench does not ask for diffs")

    def application_tree(
        self, key: tuple[str, str], *, orphans: bool = False
    ) -> dict[str, Any] | None:
        obj = self.get(key)
        if obj is None:
            return None
        status = ApplicationStatus.from_dict(obj["status"])
        return self.tree.document(
            f"{key[0]}/{key[1]}",
            status.resources or (),
            destination_namespace=key[0],
            may_read=lambda resource: resource.namespace == key[0],
            orphans=orphans,
        )

    def application_events(self, key: tuple[str, str], query: EventQuery) -> AppEvents:
        return AppEvents([])  # the tree's figures: the page's Events section reads none

    def application_manifests(self, key: tuple[str, str], revision: str) -> None:
        raise BenchError("the tree bench does not ask for history diffs")

    def cluster_client(self, name: str) -> KubeClient:
        return self.kube


def _timed(fetch: Callable[[], tuple[float, float, bytes]], check: str) -> tuple[float, float]:
    first, last, body = fetch()
    if check.encode() not in body:
        raise BenchError(f"the answer lacks {check!r}")
    return first, last


def _create(kube: KubeClient, namespace: str, objects: list[dict[str, Any]]) -> None:
    def create(obj: dict[str, Any]) -> None:
        kube.create({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, objects))


def _wait_for_pods(view: TreeView, namespace: str, want: int, timeout: float = 300) -> None:
    """Until the controller-manager has made every Pod and the Services' endpoint objects."""
    endpoints = view.tree.endpoint_kind()
    deadline = time.monotonic() + timeout
    while True:
        pods = view.kube.list("v1", "Pod", namespace).get("items") or []
        slices = view.kube.list(*endpoints, namespace).get("items") or []
        if len(pods) >= want and slices:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"only {len(pods)} of {want} pods after {timeout:.0f}s")
        time.sleep(1)


def run(kubeconfig: Path, deployments: int, replicas: int, requests: int) -> dict[str, Any]:
    kube = KubeClient.from_kubeconfig(str(kubeconfig), user_agent="gitsync-bench")
    objects = [o for i in range(deployments) for o in workload(i, replicas)]
    with temporary_namespace(kube, "bench-tree") as namespace:
        _create(kube, namespace, objects)
        view = TreeView(kube, namespace, objects)
        _wait_for_pods(view, namespace, deployments * replicas)
        password = "bench-" + secrets.token_urlsafe(12)
        app = create_app(
            view,
            metrics_exposition=lambda: b"",
            webhook_secrets=lambda provider: [],
            auth=AuthSettings.build(admin_password=password),
        )
        try:
            with waitress_server(app) as base:
                opener = login(base, password)

                def get(path: str) -> Callable[[], tuple[float, float, bytes]]:
                    def fetch() -> tuple[float, float, bytes]:
                        started = time.perf_counter()
                        with opener.open(base + path, timeout=120) as resp:
                            first = time.perf_counter() - started
                            body = bytes(resp.read())
                        return first * 1000, (time.perf_counter() - started) * 1000, body

                    return fetch

                page = get(f"/apps/{namespace}/{APP}")
                tree = get(f"/api/v1/applications/{namespace}/{APP}/tree")
                pod_check = f'"name":"web-{deployments - 1:03d}-'
                cold = _timed(tree, '"kind":"Pod"')[1]  # starts the namespace watches
                _timed(page, 'id="tree-graph"')
                page_first, page_last, tree_last = [], [], []
                for _ in range(requests):
                    first, last = _timed(page, f"web-{deployments - 1:03d}")
                    page_first.append(first)
                    page_last.append(last)
                    tree_last.append(_timed(tree, pod_check)[1])
                doc_pods = tree()[2].count(b'"kind":"Pod"')
        finally:
            view.cache.stop()
    if doc_pods != deployments * replicas:
        raise BenchError(f"the tree shows {doc_pods} pods, not {deployments * replicas}")

    def figure(samples: list[float]) -> dict[str, float]:
        return {
            "p50": round(statistics.median(samples), 1),
            "p95": round(percentile(samples, 95), 1),
            "max": round(max(samples), 1),
        }

    return {
        "benchmark": "ui_tree",
        "managed": len(objects),
        "pods": deployments * replicas,
        "requests": requests,
        "first_tree_ms": round(cold, 1),
        "page_first_byte_ms": figure(page_first),
        "page_last_byte_ms": figure(page_last),
        "tree_document_ms": figure(tree_last),
    }


def ui_tree_rows(kubeconfig: Path, deployments: int, replicas: int, requests: int) -> list[Row]:
    result = run(kubeconfig, deployments, replicas, requests)
    n = result["managed"]
    size = f"{n} objects, {result['pods']} pods"
    rows = []
    for label, key in (
        ("UI app page with live tree, first byte", "page_first_byte_ms"),
        ("UI app page with live tree, last byte", "page_last_byte_ms"),
        ("tree API document complete", "tree_document_ms"),
    ):
        f = result[key]
        rows.append(
            Row(
                f"{label}, p50",
                n,
                "ms",
                f["p50"],
                "",
                None,
                requests,
                note=f"{size}; p95 {f['p95']:.1f} ms; first tree (watches start) "
                f"{result['first_tree_ms']:.0f} ms",
            )
        )
    return rows
