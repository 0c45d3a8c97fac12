"""The inventory read of a refresh comes from memory only while the watch cache proves it current.

Against the real API server and the controller's real watch cache: a no-change refresh reads
the inventory without a request, but a change by anyone else, or a cache that cannot say, means
a GET - an inventory read short of an entry would lose that entry at the next write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gitsync.controller.controller import inventory_version_of
from gitsync.kube import KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.sync.inventory import Inventory, InventoryEntry, InventoryMemo, configmap_name
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FIRST = [InventoryEntry("v1", "ConfigMap", "apps", "one")]
SECOND = [*FIRST, InventoryEntry("apps/v1", "Deployment", "apps", "web")]


class CountingGets:
    """The real client, counting the ConfigMap GETs that go to the API server."""

    def __init__(self, kube: KubeClient):
        self.kube = kube
        self.gets = 0

    def get(self, api_version: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "ConfigMap":
            self.gets += 1
        return self.kube.get(api_version, kind, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kube, name)


@pytest.fixture
def cache(cluster: TestCluster) -> Iterator[WatchCache]:
    made = WatchCache(cluster.client(user_agent="gitsync-test-cache"))
    yield made
    made.stop()


def _inventory(kube: CountingGets, namespace: str, memo: InventoryMemo, version: Any) -> Inventory:
    return Inventory(kube, namespace, "app", memo=memo, cached_version=version)  # type: ignore[arg-type]


def _written_version(kube: KubeClient, namespace: str) -> str:
    cm = kube.get("v1", "ConfigMap", configmap_name("app"), namespace) or {}
    return str(cm["metadata"]["resourceVersion"])


def test_an_unchanged_inventory_is_read_without_a_request(
    kube: KubeClient, namespace: str, cache: WatchCache
) -> None:
    counting, memo, version = CountingGets(kube), InventoryMemo(), inventory_version_of(cache)
    inventory = _inventory(counting, namespace, memo, version)
    assert inventory.store(FIRST, {}, revision="a" * 40)
    written = _written_version(kube, namespace)
    wait_for(lambda: version(namespace, configmap_name("app")) == written, what="the watch")
    counting.gets = 0
    assert inventory.load() == {e.key: e for e in FIRST}
    assert inventory.load() == {e.key: e for e in FIRST}
    assert counting.gets == 0


def test_a_change_by_someone_else_is_read_fresh(
    kube: KubeClient, cluster: TestCluster, namespace: str, cache: WatchCache
) -> None:
    counting, memo, version = CountingGets(kube), InventoryMemo(), inventory_version_of(cache)
    ours = _inventory(counting, namespace, memo, version)
    ours.store(FIRST, {}, revision="a" * 40)
    assert ours.load() == {e.key: e for e in FIRST}
    # another holder of the app (a replica that took it over) records one more object
    Inventory(cluster.client(user_agent="someone-else"), namespace, "app").store(
        SECOND, {e.key: e for e in FIRST}, revision="b" * 40
    )
    written = _written_version(kube, namespace)
    wait_for(lambda: version(namespace, configmap_name("app")) == written, what="the watch")
    counting.gets = 0
    assert ours.load() == {e.key: e for e in SECOND}
    assert counting.gets == 1


@pytest.mark.parametrize("cached", ["none", "older"])
def test_a_cache_that_cannot_vouch_for_the_inventory_means_a_get(
    kube: KubeClient, namespace: str, cached: str
) -> None:
    """The watch cache lacks the ConfigMap, or shows a version from before the last write."""
    counting, memo = CountingGets(kube), InventoryMemo()
    before = _inventory(counting, namespace, memo, lambda ns, name: None)
    before.store(FIRST, {}, revision="a" * 40)
    old = _written_version(kube, namespace)
    answer = None if cached == "none" else old
    inventory = _inventory(counting, namespace, memo, lambda ns, name: answer)
    inventory.store(SECOND, {e.key: e for e in FIRST}, revision="b" * 40)
    counting.gets = 0
    assert inventory.load() == {e.key: e for e in SECOND}
    assert counting.gets == 1
