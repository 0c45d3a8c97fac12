"""The resource tree of an Application read from the controller's watch cache, never by GETs.

The managed objects are already in the cache: every sync reads them there (``Controller``'s live
reader). Their children are not - ReplicaSets, Pods, Jobs, EndpointSlices (or Endpoints) are not
in Git - so ``LiveTree`` watches those kinds *in the namespaces the app manages only*, started
lazily the first time someone asks for a tree of an app there:

* Pods and ReplicaSets cluster-wide would hold every Pod of every tenant in memory, most of
  which no one ever looks at; a namespace watch holds only what a tree can show.
* Lazily, so a controller whose UI nobody opens pays nothing, and the first tree of a namespace
  pays one list; after that the watch stays open and every tree there is read from memory -
  a thousand page loads cost no API request. ``WatchCache.ensure`` of a namespace is served by
  an all-namespaces watch of the kind when one exists already.
* At most ``MAX_NAMESPACES`` namespaces per app, and a kind the controller may not list (403)
  or the server does not serve is skipped with a note in ``warnings`` rather than failing the
  whole tree.
* At most ``TREE_TIMEOUT`` seconds of one tree spent waiting for first lists: what has not
  loaded by then is left out with a note, and shown by a later tree once its watch has synced.
* At most ``MAX_WATCHED_NAMESPACES`` namespaces in all (per cluster) get watches started by
  trees: watches are never stopped, and a tenant may create many apps, each naming other
  namespaces (non-existent ones cost a watch too). Past the limit a tree reads a new namespace
  only if another watch already covers it, and says so in ``warnings``.
* Only what the destination policy lets the app deploy (``may_read``): objects, and children
  in namespaces, it allows. The tree reads with the controller's own rights, which reach every
  tenant; ``spec.destination.namespace`` is the tenant's to write, and ``status.resources``
  lists what its Git asked for, including the objects the policy refused. Neither may show
  another tenant's objects (or a cluster-scoped one), their Pods or orphans.

EndpointSlices are read at the version the server serves (``discovery.k8s.io/v1`` on 1.21+,
``v1beta1`` on 1.20); a server without them gets Endpoints.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from gitsync.application_status import ResourceStatus
from gitsync.controller.tree import ManagedObject, build_tree
from gitsync.engine.pipeline import HEALTHS
from gitsync.health import Health
from gitsync.kube.cache import NotWatchedError, WatchCache
from gitsync.kube.client import ApiError, KubeClient
from gitsync.model import ResourceKey

log = structlog.get_logger(__name__)

MAX_NAMESPACES = 32
MAX_WATCHED_NAMESPACES = 256
"""Namespaces whose children trees may start watches in, per cluster (the watches stay open)."""
ENSURE_TIMEOUT = 10.0
"""How long a first tree waits for one kind's first list in one namespace."""
TREE_TIMEOUT = 20.0
"""How long one tree waits for first lists in all (up to 32 namespaces x 5 kinds could otherwise
hold a web thread for minutes when the API server is slow); the watches keep loading after."""

CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),  # a Rollout's canary / preview Deployment
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("batch/v1", "Job"),
)
ENDPOINT_SLICE_VERSIONS = ("discovery.k8s.io/v1", "discovery.k8s.io/v1beta1")
KNOWN_VERSIONS = {
    ("", "Service"): "v1",
    ("apps", "Deployment"): "apps/v1",
    ("apps", "StatefulSet"): "apps/v1",
    ("apps", "DaemonSet"): "apps/v1",
    ("apps", "ReplicaSet"): "apps/v1",
    ("batch", "Job"): "batch/v1",
    ("", "Pod"): "v1",
}
"""Kinds a tree reads live even when no sync has watched them yet (a follower, a restart)."""


class LiveTree:
    """Trees of the apps of one cluster, from that cluster's watch cache."""

    def __init__(
        self,
        kube: KubeClient,
        cache: WatchCache,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_watched_namespaces: int = MAX_WATCHED_NAMESPACES,
        tree_timeout: float = TREE_TIMEOUT,
    ):
        self.kube = kube
        self.cache = cache
        self.clock = clock
        self.max_watched_namespaces = max_watched_namespaces
        self.tree_timeout = tree_timeout
        self._endpoint_kind: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._started: set[str] = set()  # namespaces trees have started watches in

    def _may_start(self, namespace: str) -> bool:
        """Whether a tree may start watches in ``namespace`` (within the per-cluster limit)."""
        with self._lock:
            if namespace in self._started:
                return True
            if len(self._started) >= self.max_watched_namespaces:
                return False
            self._started.add(namespace)
            return True

    def judge(self, obj: Mapping[str, Any]) -> Health:
        """``health.assess(obj)``, kept while the object's resourceVersion and the declared
        checks are unchanged (the engine's memo, shared with the reconciles: half of a 1,000-node
        tree's time was ``health.assess``)."""
        return HEALTHS.assess(obj)

    def endpoint_kind(self) -> tuple[str, str]:
        """(apiVersion, kind) of what lists a Service's endpoints on this server."""
        if self._endpoint_kind is None:
            chosen = ("v1", "Endpoints")
            for version in ENDPOINT_SLICE_VERSIONS:
                try:
                    self.kube.resource(version, "EndpointSlice")
                except ApiError:
                    continue
                chosen = (version, "EndpointSlice")
                break
            self._endpoint_kind = chosen
        return self._endpoint_kind

    def document(
        self,
        app: str,
        resources: Sequence[ResourceStatus],
        *,
        destination_namespace: str,
        may_read: Callable[[ResourceKey], bool],
        orphans: bool = False,
    ) -> dict[str, Any]:
        """The tree of app ``app`` (``<namespace>/<name>``) whose status lists ``resources``;
        ``may_read(key)``: whether the app's destination policy allows that object (a Pod
        without a name: children in its namespace) - nothing else is read live; a refused
        object keeps the status the reconciler wrote."""
        warnings: list[str] = []
        deadline = time.monotonic() + self.tree_timeout
        wanted = {r.namespace for r in resources if r.namespace} | {destination_namespace}
        refused = sorted(ns for ns in wanted if ns and not may_read(ResourceKey("", "Pod", ns, "")))
        if refused:
            shown = ", ".join(refused[:8]) + (", ..." if len(refused) > 8 else "")
            warnings.append(f"not read: namespaces outside the app's destination policy ({shown})")
        namespaces = sorted(ns for ns in wanted if ns and ns not in refused)
        if len(namespaces) > MAX_NAMESPACES:
            warnings.append(
                f"children shown for the first {MAX_NAMESPACES} of {len(namespaces)} namespaces"
            )
            namespaces = namespaces[:MAX_NAMESPACES]
        startable = [ns for ns in namespaces if self._may_start(ns)]
        if len(startable) < len(namespaces):
            warnings.append(
                f"children read only where already watched in {len(namespaces) - len(startable)} "
                f"namespace(s): trees watch {self.max_watched_namespaces} namespaces already"
            )
        live: list[dict[str, Any]] = []
        for api_version, kind in (*CHILD_KINDS, self.endpoint_kind()):
            for ns in namespaces:
                live += self._watched(
                    api_version, kind, ns, warnings, start=ns in startable, deadline=deadline
                )
        if orphans:
            for api_version, kind in self._other_watched_kinds():
                for ns in namespaces:
                    live += self._watched(api_version, kind, ns, warnings, start=False)
        watched = list(self.cache.stats())
        managed, outside = [], []
        for r in resources:
            key = ResourceKey(r.group, r.kind, r.namespace, r.name)
            readable = r.namespace not in refused and may_read(key)
            if not readable and not r.namespace:
                outside.append(f"{r.kind}/{r.name}")
            managed.append(
                self._managed(
                    r, watched, readable=readable, start=r.namespace in startable, deadline=deadline
                )
            )
        if outside:
            shown = ", ".join(outside[:8]) + (", ..." if len(outside) > 8 else "")
            warnings.append(f"not read: cluster-scoped objects outside the policy ({shown})")
        doc = build_tree(
            managed,
            _unique(live),
            app=app,
            now=self.clock(),
            orphans=orphans,
            judge=self.judge,
        )
        doc["warnings"] = warnings
        return doc

    def _watched(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        warnings: list[str],
        *,
        start: bool = True,
        deadline: float = 0.0,
    ) -> list[dict[str, Any]]:
        """The cached objects of ``kind`` in ``namespace``, starting its watch when ``start``
        and waiting for its first list until ``deadline`` (``time.monotonic()``) at most."""
        try:
            if start:
                self.cache.ensure(api_version, kind, namespace, timeout=_left(deadline))
            return self.cache.list(api_version, kind, namespace)
        except NotWatchedError:
            return []
        except (ApiError, TimeoutError) as exc:
            status = getattr(exc, "status", 0)
            reason = "forbidden" if status == 403 else "not served" if status == 404 else "failed"
            if isinstance(exc, TimeoutError):
                reason = "not loaded yet"
            warnings.append(f"{kind} in {namespace}: watch {reason}")
            log.info("tree: children not watched", kind=kind, namespace=namespace, error=str(exc))
            return []

    def _other_watched_kinds(self) -> list[tuple[str, str]]:
        """The kinds the cache watches besides the children's (tracked objects gone from Git)."""
        children = {*CHILD_KINDS, self.endpoint_kind()}
        return sorted(k for k in self.cache.stats() if k not in children)

    def _managed(
        self,
        r: ResourceStatus,
        watched: list[tuple[str, str]],
        *,
        readable: bool,
        start: bool,
        deadline: float,
    ) -> ManagedObject:
        key = ResourceKey(r.group, r.kind, r.namespace, r.name)
        return ManagedObject(
            key=key,
            sync=r.status,
            health=r.health.status,
            health_message=r.health.message,
            live=self._live(key, watched, start=start, deadline=deadline) if readable else None,
        )

    def _live(
        self, key: ResourceKey, watched: list[tuple[str, str]], *, start: bool, deadline: float
    ) -> dict[str, Any] | None:
        """The managed object from the cache at a version the cache watches (``watched``: its
        (apiVersion, kind) pairs) or one this module knows, whose watch is started when
        ``start``; None when no watch covers it."""
        versions = [
            api_version
            for api_version, kind in watched
            if kind == key.kind and (api_version.rpartition("/")[0]) == key.group
        ]
        known = KNOWN_VERSIONS.get((key.group, key.kind))
        if known and known not in versions:
            versions.append(known)
        for api_version in versions:
            try:
                if api_version == known and start:
                    self.cache.ensure(
                        api_version, key.kind, key.namespace or None, timeout=_left(deadline)
                    )
                return self.cache.get(api_version, key.kind, key.name, key.namespace)
            except (NotWatchedError, ApiError, TimeoutError):
                continue
        return None


def _left(deadline: float) -> float:
    """Seconds a first list may still be waited for: ``ENSURE_TIMEOUT`` at most, 0 past the
    tree's ``deadline`` (``WatchCache.ensure`` then answers at once from a synced watch and
    raises ``TimeoutError`` otherwise)."""
    return max(0.0, min(ENSURE_TIMEOUT, deadline - time.monotonic()))


def _unique(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each object once (a kind listed for two namespaces an all-namespaces watch serves)."""
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        identity = (
            str(obj.get("apiVersion")),
            str(obj.get("kind")),
            str(meta.get("namespace")),
            str(meta.get("name")),
        )
        if identity not in seen:
            seen.add(identity)
            out.append(obj)
    return out
