"""``KindStream`` (gitsync.kube.stream) on the test control plane: it lists in pages and hands
over every object, follows the watch (added, modified, deleted), and after an expired
resourceVersion (410 Gone) lists again and reports what the list held, so the receiver can
forget what disappeared meanwhile."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from gitsync.kube import ApiError, KubeClient
from gitsync.kube.stream import LIST_PAGE, KindStream
from tests.integration.test_kube_cache import compact_etcd, event
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []  # (type, name)
        self.listings: list[set[tuple[str, str]]] = []

    def on_object(self, event_type: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.seen.append((event_type, obj["metadata"]["name"]))

    def on_listed(self, present: set[tuple[str, str]]) -> None:
        with self.lock:
            self.listings.append(present)

    def saw(self, event_type: str, name: str) -> bool:
        with self.lock:
            return (event_type, name) in self.seen


def test_lists_in_pages_follows_the_watch_and_relists_after_410(
    cluster: TestCluster, kube: KubeClient, namespace: str
) -> None:
    """Events: the API server keeps no watch cache for them, so etcd's compaction really
    expires an old resourceVersion (as in test_kube_cache)."""
    if cluster.control_plane is None:
        pytest.skip("needs the test control plane's etcd to compact its history")
    names = [f"e-{i:04d}" for i in range(LIST_PAGE + 20)]  # more than one page
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(kube.create, [event(namespace, name, "original") for name in names]))
    receiver = Receiver()
    stream = KindStream(
        kube,
        "v1",
        "Event",
        namespace,
        on_object=receiver.on_object,
        on_listed=receiver.on_listed,
    )
    stream.start()
    try:
        assert stream.listed.wait(30)
        (first,) = receiver.listings
        assert {n for ns, n in first if ns == namespace} >= set(names)
        assert all(receiver.saw("ADDED", n) for n in names)
        listed_at = stream.resource_version

        kube.create(event(namespace, "late", "new"))
        kube.patch("v1", "Event", names[0], {"message": "changed"}, namespace=namespace)
        kube.delete("v1", "Event", names[1], namespace)
        wait_for(lambda: receiver.saw("ADDED", "late"), timeout=30, what="late ADDED")
        wait_for(lambda: receiver.saw("MODIFIED", names[0]), timeout=30, what="MODIFIED")
        wait_for(lambda: receiver.saw("DELETED", names[1]), timeout=30, what="DELETED")

        # the connection drops and comes back with a resourceVersion etcd no longer has: the
        # watch answers 410 Gone and the stream lists again
        compact_etcd(cluster, kube.list("v1", "Event", namespace)["metadata"]["resourceVersion"])
        stream.resource_version = listed_at
        with stream._close_lock:
            close = stream._close
        assert close is not None
        close()
        wait_for(lambda: len(receiver.listings) >= 2, timeout=30, what="a relist")
        second = receiver.listings[1]
        assert (namespace, names[1]) not in second and (namespace, "late") in second
        assert isinstance(stream.last_error, ApiError) and stream.last_error.status == 410
    finally:
        stream.stop()
