"""Without a watch cache, the compare reads a kind the app has many of with one LIST, not a GET
per object - against the real API server, and it must see exactly what GETs would have seen."""

from __future__ import annotations

from typing import Any

import pytest
from test_sync import app_for, cm

from gitsync.kube import KubeClient
from gitsync.model import ResourceKey, SyncStatus
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from gitsync.sync import syncer as syncer_module
from tests.support.cluster import TestCluster

pytestmark = pytest.mark.integration

MANY = syncer_module.LIST_AT_LEAST + 4


class Reads(KubeClient):
    """The real client, recording each GET as ``(path, is a LIST)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gets: list[tuple[str, bool]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "GET":
            self.gets.append((path, path.endswith(("/configmaps", "/services"))))
        return super().request(method, path, **kwargs)

    def configmap_reads(self) -> tuple[int, int]:
        """(LISTs, single GETs) of ConfigMaps other than the inventory."""
        lists = sum(1 for path, is_list in self.gets if is_list and "configmaps" in path)
        singles = sum(
            1
            for path, is_list in self.gets
            if not is_list and "/configmaps/" in path and "gitsync-inventory" not in path
        )
        return lists, singles


@pytest.fixture
def reads(cluster: TestCluster) -> Reads:
    client = Reads.from_kubeconfig(str(cluster.kubeconfig_path), user_agent="gitsync")
    assert isinstance(client, Reads)
    return client


def service(name: str) -> RenderedManifest:
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP"}]},
    }
    return RenderedManifest(ResourceKey.of(obj), obj, "svc.yaml")


def test_many_objects_of_a_kind_are_read_with_one_list(reads: Reads, namespace: str) -> None:
    app = app_for(namespace)
    manifests = [cm(f"c{i:02d}") for i in range(MANY)] + [service("s1"), service("s2")]
    syncer = Syncer(reads)
    assert syncer.sync(app, manifests, revision="r1").succeeded  # a cold apply
    assert reads.configmap_reads() == (1, 0)
    assert sum(1 for path, _ in reads.gets if "/services/" in path) == 2  # few: a GET each
    reads.gets.clear()
    comparison = syncer.compare(app, manifests)
    assert {i.diff.status for i in comparison.items if i.diff} == {SyncStatus.SYNCED}
    assert all(i.live is not None and i.live["kind"] == i.key.kind for i in comparison.items)
    assert reads.configmap_reads() == (1, 0)


def test_a_drifted_object_read_by_list_is_out_of_sync(
    reads: Reads, kube: KubeClient, namespace: str
) -> None:
    app = app_for(namespace)
    manifests = [cm(f"c{i:02d}") for i in range(MANY)]
    syncer = Syncer(reads)
    syncer.sync(app, manifests, revision="r1")
    kube.patch("v1", "ConfigMap", "c07", {"data": {"k": "edited"}}, namespace=namespace)
    comparison = syncer.compare(app, manifests)
    drifted = [i.key.name for i in comparison.items if i.diff.status != SyncStatus.SYNCED]
    assert drifted == ["c07"]


def test_pages_are_followed(reads: Reads, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syncer_module, "LIST_PAGE", 7)
    app = app_for(namespace)
    manifests = [cm(f"c{i:02d}") for i in range(MANY)]
    syncer = Syncer(reads)
    syncer.sync(app, manifests, revision="r1")
    reads.gets.clear()
    comparison = syncer.compare(app, manifests)
    assert all(i.live is not None for i in comparison.items)
    lists, singles = reads.configmap_reads()
    # at least a page per 7 of ours (the inventory and kube-root-ca.crt are listed too)
    assert lists >= -(-MANY // 7) and singles == 0


def test_a_namespace_full_of_other_objects_is_read_one_by_one(
    reads: Reads, kube: KubeClient, namespace: str
) -> None:
    for i in range(syncer_module.LIST_OVERHEAD * MANY + 1):
        kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"other-{i:03d}"}},
            field_manager="someone-else",
            default_namespace=namespace,
        )
    app = app_for(namespace)
    manifests = [cm(f"c{i:02d}") for i in range(MANY)]
    syncer = Syncer(reads)
    assert syncer.sync(app, manifests, revision="r1").succeeded
    _, singles = reads.configmap_reads()
    assert singles == MANY  # the LIST was given up: the namespace holds mostly others' objects
    reads.gets.clear()
    comparison = syncer.compare(app, manifests)
    assert {i.diff.status for i in comparison.items if i.diff} == {SyncStatus.SYNCED}
