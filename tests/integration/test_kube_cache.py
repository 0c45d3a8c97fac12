"""WatchCache against the real control plane: reads cost nothing, drift shows up in seconds."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from gitsync.kube import ApiError, KubeClient
from gitsync.kube import cache as cache_module
from gitsync.kube.cache import NotWatchedError, WatchCache
from gitsync.model import ResourceKey
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

Notice = tuple[str, ResourceKey, dict[str, Any] | None]


class Recorder:
    """Collects ``on_event`` calls from the watch threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notices: list[Notice] = []

    def __call__(self, kind: str, key: ResourceKey, obj: dict[str, Any] | None) -> None:
        with self.lock:
            self.notices.append((kind, key, obj))

    def in_namespace(self, namespace: str) -> list[tuple[str, str]]:
        """Notices about the test's own objects (the controller-manager adds kube-root-ca.crt to
        every new namespace whenever it gets round to it)."""
        with self.lock:
            return [
                (kind, key.name)
                for kind, key, _ in self.notices
                if key.namespace == namespace and key.name != "kube-root-ca.crt"
            ]


@pytest.fixture
def caches(cluster: TestCluster) -> Iterator[list[WatchCache]]:
    """Caches a test makes are stopped afterwards, whatever happens."""
    made: list[WatchCache] = []
    yield made
    for cache in made:
        cache.stop()


@pytest.fixture
def other(cluster: TestCluster) -> KubeClient:
    """Someone else editing the cluster: a separate client with its own connections."""
    return cluster.client(user_agent="someone-else")


def new_cache(
    cluster: TestCluster, caches: list[WatchCache], recorder: Recorder | None = None
) -> tuple[WatchCache, KubeClient]:
    client = cluster.client(user_agent="gitsync-cache")
    cache = WatchCache(client, on_event=recorder)
    caches.append(cache)
    return cache, client


def configmap(namespace: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "demo"}},
        "data": data,
    }


def event(namespace: str, name: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": "ConfigMap", "name": "demo", "namespace": namespace},
        "reason": "Testing",
        "message": message,
    }


def names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def server_state(client: KubeClient, kind: str, namespace: str) -> dict[str, str]:
    items = client.list("v1", kind, namespace)["items"]
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in items}


def cached_state(cache: WatchCache, kind: str, namespace: str) -> dict[str, str]:
    items = cache.list("v1", kind, namespace)
    assert len(items) == len(names(items)), "duplicate objects in the cache"
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in items}


def compact_etcd(cluster: TestCluster, revision: str) -> None:
    """Compact etcd's history up to ``revision``: older resourceVersions are gone for good."""
    assert cluster.control_plane is not None
    etcd = next(p for p in cluster.control_plane.processes if p.name == "etcd")
    url = next(a for a in etcd.argv if a.startswith("--listen-client-urls=")).split("=", 1)[1]
    request = urllib.request.Request(
        f"{url}/v3/kv/compaction",
        data=json.dumps({"revision": revision, "physical": True}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def test_reads_are_served_from_memory(
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    caches: list[WatchCache],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("alpha", "beta", "gamma"):
        kube.create(configmap(namespace, name, greeting=f"hello {name}"))
    monkeypatch.setattr(cache_module, "_LIST_PAGE", 2)  # the first list comes in many pages
    cache, client = new_cache(cluster, caches)

    cache.ensure("v1", "ConfigMap")
    lists = client.requests.counts[("GET", 200)]
    racers = [threading.Thread(target=cache.ensure, args=("v1", "ConfigMap")) for _ in range(8)]
    for racer in racers:  # idempotent and thread-safe: no second watch, no second list
        racer.start()
    for racer in racers:
        racer.join()
    assert client.requests.counts[("GET", 200)] == lists
    watching = [t for t in threading.enumerate() if t.name == "gitsync-watch ConfigMap.v1 *"]
    assert len(watching) == 1
    assert lists >= 3, "expected a paged list"
    # the controller-manager may publish kube-root-ca.crt between our list and this read: the
    # watch brings it in, so compare once the cache had a moment to see it
    wait_for(
        lambda: (
            cached_state(cache, "ConfigMap", namespace)
            == server_state(kube, "ConfigMap", namespace)
        ),
        timeout=10,
        what="the cache to match the server",
    )

    before = client.requests.total()
    for _ in range(200):
        alpha = cache.get("v1", "ConfigMap", "alpha", namespace)
        assert alpha is not None
        assert cache.get("v1", "ConfigMap", "missing", namespace) is None
        demo = cache.list("v1", "ConfigMap", namespace, label_selector={"app": "demo"})
    assert client.requests.total() == before, "a cached read made an API request"
    alpha = cache.get("v1", "ConfigMap", "alpha", namespace)
    assert alpha is not None

    assert alpha["data"] == {"greeting": "hello alpha"}
    assert (alpha["apiVersion"], alpha["kind"]) == ("v1", "ConfigMap")  # list items lack them
    assert alpha["metadata"]["managedFields"], "managedFields are kept for the diff"
    assert names(demo) == ["alpha", "beta", "gamma"]
    wait_for(  # created by the controller-manager, perhaps only after our list
        lambda: cache.get("v1", "ConfigMap", "kube-root-ca.crt", namespace),
        timeout=10,
        what="kube-root-ca.crt in the cache",
    )
    copied = cache.get("v1", "ConfigMap", "alpha", namespace, copy=True)
    assert copied == alpha
    assert copied is not alpha

    stats = cache.stats()[("v1", "ConfigMap")]
    assert stats.synced
    assert stats.namespaces is None
    assert stats.relists == 0
    assert stats.objects >= 4
    assert cache.synced("v1", "ConfigMap")
    assert cache.wait_synced(timeout=1)
    with pytest.raises(NotWatchedError):
        cache.get("v1", "Secret", "alpha", namespace)


def test_changes_by_someone_else_reach_the_cache_and_on_event(
    cluster: TestCluster,
    kube: KubeClient,
    other: KubeClient,
    namespace: str,
    caches: list[WatchCache],
) -> None:
    kube.create(configmap(namespace, "edited", value="1"))
    kube.create(configmap(namespace, "deleted", value="1"))
    recorder = Recorder()
    failures = {"left": 1}

    def flaky(kind: str, key: ResourceKey, obj: dict[str, Any] | None) -> None:
        if key.name == "ignored-by-broken-handler":
            failures["left"] -= 1
            raise RuntimeError("a handler bug must not end the watch")
        recorder(kind, key, obj)

    cache, _ = new_cache(cluster, caches)
    cache._on_event = flaky
    cache.ensure("v1", "ConfigMap")
    assert recorder.in_namespace(namespace) == [], "the initial list is loaded silently"

    kube.create(configmap(namespace, "ignored-by-broken-handler", value="1"))
    wait_for(lambda: failures["left"] == 0, timeout=10, what="the handler to raise once")

    other.patch("v1", "ConfigMap", "edited", {"data": {"value": "2"}}, namespace=namespace)
    edited = wait_for(
        lambda: (
            (o := cache.get("v1", "ConfigMap", "edited", namespace)) and o["data"]["value"] == "2"
        ),
        timeout=5,
        what="the edit to reach the cache",
    )
    assert edited
    wait_for(
        lambda: ("MODIFIED", "edited") in recorder.in_namespace(namespace),
        timeout=5,
        what="MODIFIED for the edit",
    )

    other.create(configmap(namespace, "created", value="1"))
    wait_for(
        lambda: ("ADDED", "created") in recorder.in_namespace(namespace),
        timeout=5,
        what="ADDED for the new object",
    )

    other.delete("v1", "ConfigMap", "deleted", namespace)
    wait_for(
        lambda: ("DELETED", "deleted") in recorder.in_namespace(namespace),
        timeout=5,
        what="DELETED for the removed object",
    )
    assert cache.get("v1", "ConfigMap", "deleted", namespace) is None
    # on_event runs after the store is updated: what it reports is already readable.
    assert recorder.in_namespace(namespace) == [
        ("MODIFIED", "edited"),
        ("ADDED", "created"),
        ("DELETED", "deleted"),
    ]
    with recorder.lock:  # the last notice about this namespace's objects: other tests'
        # namespaces going away (kube-root-ca.crt deleted with them) are watched too
        _, key, obj = [
            n
            for n in recorder.notices
            if n[1].namespace == namespace and n[1].name != "kube-root-ca.crt"
        ][-1]
    assert key == ResourceKey("", "ConfigMap", namespace, "deleted")
    assert obj is not None
    assert obj["metadata"]["name"] == "deleted"
    assert cached_state(cache, "ConfigMap", namespace) == server_state(kube, "ConfigMap", namespace)


def test_watch_survives_server_timeouts_and_resyncs_quietly(
    cluster: TestCluster,
    other: KubeClient,
    namespace: str,
    caches: list[WatchCache],
) -> None:
    """The server ends every watch after timeoutSeconds; the cache re-watches from where it was,
    and a periodic resync (a full relist) reports nothing when nothing changed."""
    other.create(configmap(namespace, "steady", value="1"))
    recorder = Recorder()
    client = cluster.client(user_agent="gitsync-cache")
    cache = WatchCache(client, on_event=recorder, watch_timeout_seconds=1, resync_seconds=2)
    caches.append(cache)
    cache.ensure("v1", "ConfigMap", namespace)

    wait_for(
        lambda: cache.stats()[("v1", "ConfigMap")].relists >= 1,
        timeout=10,
        what="a resync",
    )
    stats = cache.stats()[("v1", "ConfigMap")]
    assert stats.watch_restarts >= 1
    assert recorder.in_namespace(namespace) == [], "a resync without changes reports nothing"

    other.patch("v1", "ConfigMap", "steady", {"data": {"value": "2"}}, namespace=namespace)
    wait_for(
        lambda: ("MODIFIED", "steady") in recorder.in_namespace(namespace),
        timeout=5,
        what="the edit after several re-watches",
    )
    assert recorder.in_namespace(namespace) == [("MODIFIED", "steady")]


def test_expired_resource_version_relists_and_reports_what_was_missed(
    cluster: TestCluster,
    kube: KubeClient,
    other: KubeClient,
    namespace: str,
    caches: list[WatchCache],
) -> None:
    """A watch resumed from a compacted resourceVersion gets 410 Gone; the relist fills the gap.

    Events are the kind to use: the API server keeps no watch cache for them, so the watch is
    served by etcd, whose compaction makes the old resourceVersion really expire.
    """
    if cluster.control_plane is None:
        pytest.skip("needs the test control plane's etcd to compact its history")
    for name in ("kept", "changed", "removed"):
        kube.create(event(namespace, name, "original"))
    recorder = Recorder()
    cache, _ = new_cache(cluster, caches, recorder)
    cache.ensure("v1", "Event", namespace)
    watch = cache._watch_for("v1", "Event", namespace)

    watch._pause()  # the connection drops for a while...
    changed = other.get("v1", "Event", "changed", namespace)
    assert changed is not None
    changed["message"] = "updated while the watch was away"
    other.request("PUT", other.path("v1", "Event", namespace, "changed"), body=changed)
    other.delete("v1", "Event", "removed", namespace)
    other.create(event(namespace, "appeared", "new"))
    compact_etcd(cluster, other.list("v1", "Event", namespace)["metadata"]["resourceVersion"])
    assert cache.get("v1", "Event", "removed", namespace) is not None  # still the stale view
    watch._resume()  # ...and comes back with a resourceVersion etcd no longer has

    wait_for(lambda: len(recorder.in_namespace(namespace)) >= 3, timeout=10, what="three notices")
    time.sleep(0.5)  # anything extra (duplicates) would arrive now
    assert sorted(recorder.in_namespace(namespace)) == [
        ("ADDED", "appeared"),
        ("DELETED", "removed"),
        ("MODIFIED", "changed"),
    ]
    stats = cache.stats()[("v1", "Event")]
    assert stats.relists == 1
    assert stats.namespaces == (namespace,)
    assert isinstance(watch.last_error, ApiError)
    assert watch.last_error.status == 410
    assert cached_state(cache, "Event", namespace) == server_state(kube, "Event", namespace)
    refreshed = cache.get("v1", "Event", "changed", namespace)
    assert refreshed is not None
    assert refreshed["message"] == "updated while the watch was away"


def test_watch_resumed_from_resource_version_1_converges(
    cluster: TestCluster,
    kube: KubeClient,
    other: KubeClient,
    namespace: str,
    caches: list[WatchCache],
) -> None:
    """v1.20 replays history from its watch cache (or answers 410 once the window has moved on);
    either way the cache ends up equal to the server, without lost or duplicated objects."""
    for name in ("kept", "changed", "removed"):
        kube.create(configmap(namespace, name, value="1"))
    recorder = Recorder()
    cache, _ = new_cache(cluster, caches, recorder)
    cache.ensure("v1", "ConfigMap")
    watch = cache._watch_for("v1", "ConfigMap")

    watch._pause()
    other.patch("v1", "ConfigMap", "changed", {"data": {"value": "2"}}, namespace=namespace)
    other.delete("v1", "ConfigMap", "removed", namespace)
    other.create(configmap(namespace, "appeared", value="1"))
    watch._resume(from_resource_version="1")

    wait_for(
        lambda: (
            cached_state(cache, "ConfigMap", namespace)
            == server_state(kube, "ConfigMap", namespace)
        ),
        timeout=10,
        what="the cache to converge on the server's state",
    )
    time.sleep(0.5)
    assert sorted(recorder.in_namespace(namespace)) == [
        ("ADDED", "appeared"),
        ("DELETED", "removed"),
        ("MODIFIED", "changed"),
    ]
    assert cached_state(cache, "ConfigMap", namespace) == server_state(kube, "ConfigMap", namespace)


def test_namespace_watches_give_way_to_an_all_namespaces_watch(
    cluster: TestCluster,
    kube: KubeClient,
    other: KubeClient,
    namespace: str,
    caches: list[WatchCache],
) -> None:
    kube.create(configmap(namespace, "scoped", value="1"))
    recorder = Recorder()
    cache, _ = new_cache(cluster, caches, recorder)

    cache.ensure("v1", "ConfigMap", namespace)
    assert cache.get("v1", "ConfigMap", "scoped", namespace) is not None
    assert cache.synced("v1", "ConfigMap", namespace)
    assert not cache.synced("v1", "ConfigMap", "kube-system")
    with pytest.raises(NotWatchedError):
        cache.get("v1", "ConfigMap", "kube-root-ca.crt", "kube-system")
    assert cache.stats()[("v1", "ConfigMap")].namespaces == (namespace,)
    scoped_watch = cache._watch_for("v1", "ConfigMap", namespace)

    cache.ensure("v1", "ConfigMap")
    assert cache.get("v1", "ConfigMap", "kube-root-ca.crt", "kube-system") is not None
    assert cache.stats()[("v1", "ConfigMap")].namespaces is None
    wait_for(lambda: not scoped_watch.thread.is_alive(), timeout=3, what="the old watch to end")
    assert recorder.in_namespace(namespace) == []

    other.patch("v1", "ConfigMap", "scoped", {"data": {"value": "2"}}, namespace=namespace)
    wait_for(lambda: recorder.in_namespace(namespace), timeout=5, what="the edit")
    time.sleep(0.5)
    assert recorder.in_namespace(namespace) == [("MODIFIED", "scoped")], "reported exactly once"


def test_stop_is_prompt_and_ends_every_watch(
    cluster: TestCluster, namespace: str, caches: list[WatchCache]
) -> None:
    cache, _ = new_cache(cluster, caches)
    cache.ensure("v1", "ConfigMap")
    cache.ensure("v1", "Event", namespace)
    cache.ensure("coordination.k8s.io/v1", "Lease", namespace)
    cache.ensure("v1", "Namespace")  # cluster-scoped
    paused = cache._watch_for("v1", "Event", namespace)
    paused._pause()  # a parked watch must stop too

    began = time.monotonic()
    cache.stop()
    assert time.monotonic() - began < 2.0
    alive = [t.name for t in threading.enumerate() if t.name.startswith("gitsync-watch")]
    assert alive == []
    with pytest.raises(RuntimeError):
        cache.ensure("v1", "Secret")


def test_unknown_kind_is_reported_at_once(cluster: TestCluster, caches: list[WatchCache]) -> None:
    cache, _ = new_cache(cluster, caches)
    began = time.monotonic()
    with pytest.raises(ApiError) as unknown_kind:
        cache.ensure("v1", "NoSuchKind")
    with pytest.raises(ApiError) as unknown_group:
        cache.ensure("widgets.example.com/v1", "Widget")
    assert time.monotonic() - began < 5
    assert unknown_kind.value.status == 404
    assert unknown_group.value.status == 404
    assert cache.stats() == {}
