"""Kubernetes Events per Application: the newest N of each app, from a watch, bounded.

The question a user asks when an app is Degraded is "what did Kubernetes say?" - the Warning
Events of its Pods, ReplicaSets and of the Application itself. Reading them with a GET per page
view would cost a list of every Event of every namespace per request, and a namespace can hold
10,000+ Events. So:

* **One stream per namespace, started when first asked** (``gitsync.kube.stream.KindStream``,
  core ``v1 Event``: every server serves it, and ``events.k8s.io/v1`` is the same objects under
  other field names). A namespace nobody looks at costs nothing; Events live an hour on the
  server, so a stream started late still lists what happened before it.
* **Kept only when they belong to an app** (``apps_of``): an Event whose ``involvedObject`` is the
  Application, one of its managed objects, or a child of one (a ReplicaSet or Pod reached by
  walking ``ownerReferences`` through the controller's watch cache; ``OwnerLookup`` is the one
  function to swap for the resource tree's index). Every other Event is dropped as it arrives.
* **At most ``per_app`` per app** (``AppEventStore``), the newest by the Event's own clock
  (series, lastTimestamp, eventTime, then creationTimestamp); messages are cut to
  ``MAX_MESSAGE`` characters. Memory is bounded by apps x N x a record, whatever the namespace
  produces.

The tenant fence (``membership_of``): an app sees Events only in its own namespace and in the
namespaces the destination policy lets its project use (``Policy.allowed_namespaces``), and only
Events recorded in the namespace of the object they are about - an Event is an object anyone
with ``create events`` in a namespace can write, naming any ``involvedObject``.

The pure parts (records, ordering, the store, the query, membership) are tested without a
control plane; ``ApplicationEvents`` wires them to streams.
"""

from __future__ import annotations

import contextlib
import fnmatch
import heapq
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog

from gitsync.controller.interface import MAX_EVENTS_PER_APP as MAX_PER_APP
from gitsync.controller.interface import MAX_FIELD, EventQuery, EventsUnavailableError
from gitsync.kinds import API_VERSION, APPLICATION
from gitsync.kube import KubeClient
from gitsync.kube.stream import KindStream
from gitsync.model import AppKey, ResourceKey

log = structlog.get_logger(__name__)

DEFAULT_PER_APP = 200
MAX_MESSAGE = 1024
MAX_OWNER_HOPS = 4  # Pod -> ReplicaSet -> Deployment (or Rollout), with room to spare
APP_GROUP = API_VERSION.partition("/")[0]
LOCAL_CLUSTERS = ("", "in-cluster")
FIRST_LIST_WAIT = 1.0  # a request waits this long for a first list, then answers "loading"

NO_FILTER = EventQuery()

OwnerLookup = Callable[[str, str, str, str], Mapping[str, Any] | None]
"""``lookup(api_version, kind, name, namespace)``: the live object from memory (never a request),
or None when it is not known - used to walk a child's ``ownerReferences`` up to a managed object."""


def _text(value: object, limit: int = MAX_FIELD) -> str:
    return str(value or "")[:limit]


def _epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _series(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    series = obj.get("series")
    return series if isinstance(series, Mapping) else {}


def event_time(obj: Mapping[str, Any]) -> float:
    """When the Event last happened, in seconds since the epoch (0 when it says nothing):
    the latest of ``series.lastObservedTime``, ``lastTimestamp`` and ``eventTime`` (a kubelet
    sets the first two on a repeated Event, newer clients only ``eventTime``), else
    ``metadata.creationTimestamp``."""
    series = _series(obj)
    found = [
        t
        for t in (
            _epoch(series.get("lastObservedTime")),
            _epoch(obj.get("lastTimestamp")),
            _epoch(obj.get("eventTime")),
        )
        if t is not None
    ]
    if found:
        return max(found)
    return _epoch((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _iso(epoch: float) -> str:
    if epoch <= 0:
        return ""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """What is kept of one Event: the fields a person reads, each cut to size."""

    id: tuple[str, str]  # the Event object's (namespace, name)
    involved: ResourceKey
    type: str
    reason: str
    message: str
    count: int
    source: str
    first_seen: str
    last_seen: str
    at: float  # ``event_time``: the ordering key
    sequence: int  # the resourceVersion as a number: ties in ``at`` go to the later write

    @property
    def order(self) -> tuple[float, int]:
        return (self.at, self.sequence)

    def to_dict(self) -> dict[str, Any]:
        """The API's document (docs/api.md)."""
        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
            "firstTimestamp": self.first_seen,
            "lastTimestamp": self.last_seen,
            "source": self.source,
            "name": self.id[1],
            "involvedObject": {
                "group": self.involved.group,
                "kind": self.involved.kind,
                "namespace": self.involved.namespace,
                "name": self.involved.name,
            },
        }


def record_of(obj: Mapping[str, Any]) -> EventRecord:
    """The record of a ``v1 Event``; every string bounded (``message``: ``MAX_MESSAGE``)."""
    meta = obj.get("metadata") or {}
    inv = obj.get("involvedObject") or {}
    api_version = _text(inv.get("apiVersion"))
    source = obj.get("source") or {}
    component = source.get("component") if isinstance(source, Mapping) else None
    at = event_time(obj)
    try:
        sequence = int(str(meta.get("resourceVersion") or "0"))
    except ValueError:
        sequence = 0
    try:
        count = max(1, int(obj.get("count") or 1))
    except (TypeError, ValueError):
        count = 1
    series = _series(obj)
    if series.get("count"):
        with contextlib.suppress(TypeError, ValueError):
            count = max(count, int(series["count"]))
    message = str(obj.get("message") or obj.get("note") or "")
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return EventRecord(
        id=(_text(meta.get("namespace")), _text(meta.get("name"))),
        involved=ResourceKey(
            group=api_version.rpartition("/")[0] if "/" in api_version else "",
            kind=_text(inv.get("kind"), 63),
            namespace=_text(inv.get("namespace")),
            name=_text(inv.get("name")),
        ),
        type=_text(obj.get("type") or "Normal", 32),
        reason=_text(obj.get("reason"), 128),
        message=message,
        count=count,
        source=_text(component or obj.get("reportingComponent"), 128),
        first_seen=_text(obj.get("firstTimestamp") or obj.get("eventTime"), 40),
        last_seen=_iso(at),
        at=at,
        sequence=sequence,
    )


def matches(query: EventQuery, record: EventRecord) -> bool:
    inv = record.involved
    return (
        (not query.kind or inv.kind == query.kind)
        and (not query.name or inv.name == query.name)
        and (not query.namespace or inv.namespace == query.namespace)
        and (not query.type or record.type == query.type)
    )


class AppEventStore:
    """The newest ``per_app`` Events of each app. Thread-safe.

    An Event may concern several apps (an object two apps both list); it is kept in each. A
    modified Event (its count went up) replaces the older state under the same id. When an app
    is full, the oldest record goes - or the new one is not kept at all if it is the oldest.

    The oldest of a full app is found in a heap per app (entries of records since replaced or
    dropped are skipped when they surface, and the heap is rebuilt when they pile up): a scan of
    all ``per_app`` records per Event made the first list of 10,000 Events cost seconds of CPU.
    """

    def __init__(self, per_app: int = DEFAULT_PER_APP) -> None:
        if not 1 <= per_app <= MAX_PER_APP:
            raise ValueError(f"events per app must be from 1 to {MAX_PER_APP}, not {per_app}")
        self.per_app = per_app
        self._lock = threading.Lock()
        self._apps: dict[AppKey, dict[tuple[str, str], EventRecord]] = {}
        self._ages: dict[AppKey, list[tuple[tuple[float, int], tuple[str, str]]]] = {}
        self._holders: dict[tuple[str, str], set[AppKey]] = {}

    def _oldest(self, app: AppKey, kept: Mapping[tuple[str, str], EventRecord]) -> EventRecord:
        ages = self._ages[app]
        while True:
            order, event_id = ages[0]
            record = kept.get(event_id)
            if record is not None and record.order == order:
                return record
            heapq.heappop(ages)  # replaced or dropped since

    def _keep(self, app: AppKey, record: EventRecord) -> None:
        kept = self._apps.setdefault(app, {})
        kept[record.id] = record
        ages = self._ages.setdefault(app, [])
        heapq.heappush(ages, (record.order, record.id))
        if len(ages) > 2 * self.per_app + 16:  # mostly stale entries: start again from the kept
            ages[:] = [(r.order, r.id) for r in kept.values()]
            heapq.heapify(ages)

    def put(self, record: EventRecord, apps: Iterable[AppKey]) -> None:
        wanted = set(apps)
        with self._lock:
            for app in self._holders.get(record.id, set()) - wanted:
                self._drop(app, record.id)  # no longer about this app (its owner changed)
            for app in wanted:
                kept = self._apps.get(app, {})
                if record.id not in kept and len(kept) >= self.per_app:
                    oldest = self._oldest(app, kept)
                    if record.order <= oldest.order:
                        continue
                    self._drop(app, oldest.id)
                self._keep(app, record)
                self._holders.setdefault(record.id, set()).add(app)

    def remove(self, event_id: tuple[str, str]) -> None:
        with self._lock:
            for app in list(self._holders.get(event_id, ())):
                self._drop(app, event_id)

    def retain(self, namespace: str, present: set[tuple[str, str]]) -> None:
        """After a relist of ``namespace``: forget its Events the list no longer had."""
        with self._lock:
            gone = [i for i in self._holders if i[0] == namespace and i not in present]
            for event_id in gone:
                for app in list(self._holders.get(event_id, ())):
                    self._drop(app, event_id)

    def forget_app(self, app: AppKey) -> None:
        with self._lock:
            for event_id in list(self._apps.get(app, {})):
                self._drop(app, event_id)

    def _drop(self, app: AppKey, event_id: tuple[str, str]) -> None:
        kept = self._apps.get(app)
        if kept is not None:
            kept.pop(event_id, None)
            if not kept:
                del self._apps[app]
                self._ages.pop(app, None)
        holders = self._holders.get(event_id)
        if holders is not None:
            holders.discard(app)
            if not holders:
                del self._holders[event_id]

    def query(self, app: AppKey, query: EventQuery = NO_FILTER) -> list[EventRecord]:
        """The app's Events matching ``query``, newest first."""
        with self._lock:
            records = list(self._apps.get(app, {}).values())
        found = sorted((r for r in records if matches(query, r)), key=lambda r: r.order)
        found.reverse()
        return found[: query.limit] if query.limit else found

    def size(self) -> int:
        """Records held, over all apps (a record two apps share counts twice)."""
        with self._lock:
            return sum(len(kept) for kept in self._apps.values())


@dataclass(frozen=True)
class Membership:
    """Which app each object belongs to, and which namespaces each app may see Events in."""

    owners: Mapping[ResourceKey, frozenset[AppKey]] = field(default_factory=dict)
    namespaces: Mapping[AppKey, frozenset[str]] = field(default_factory=dict)

    def watched(self) -> frozenset[str]:
        return frozenset(ns for spaces in self.namespaces.values() for ns in spaces)


def _allowed(namespace: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(namespace, g) for g in globs)


def membership_of(
    applications: Iterable[Mapping[str, Any]],
    allowed_namespaces: Callable[[str], tuple[str, ...]],
) -> Membership:
    """The owner index from the Applications' ``status.resources`` (what each app manages).

    An app's Event namespaces are its own and those of its managed objects that its project may
    use: an object in another namespace (which the policy refused to apply) does not make that
    namespace's Events visible. An app deploying to another cluster has only its own Events
    here - its objects' Events are on that cluster.
    """
    owners: dict[ResourceKey, set[AppKey]] = {}
    namespaces: dict[AppKey, frozenset[str]] = {}
    for app in applications:
        meta = app.get("metadata") or {}
        key: AppKey = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if not key[0] or not key[1]:
            continue
        owners.setdefault(ResourceKey(APP_GROUP, APPLICATION, *key), set()).add(key)
        spaces = {key[0]}
        destination = ((app.get("spec") or {}).get("destination")) or {}
        if str(destination.get("name") or "") in LOCAL_CLUSTERS:
            globs = allowed_namespaces(key[0])
            for row in (app.get("status") or {}).get("resources") or ():
                ns = str(row.get("namespace") or "")
                if not ns or not (ns == key[0] or _allowed(ns, globs)):
                    continue
                spaces.add(ns)
                rkey = ResourceKey(
                    str(row.get("group") or ""),
                    str(row.get("kind") or ""),
                    ns,
                    str(row.get("name") or ""),
                )
                owners.setdefault(rkey, set()).add(key)
        namespaces[key] = frozenset(spaces)
    return Membership({k: frozenset(v) for k, v in owners.items()}, namespaces)


def apps_of(obj: Mapping[str, Any], membership: Membership, lookup: OwnerLookup) -> set[AppKey]:
    """The apps an Event belongs to: its ``involvedObject`` is one of theirs, or owned (through
    ``ownerReferences``, at most ``MAX_OWNER_HOPS`` up) by one of theirs. Only in the Event's own
    namespace, and only for apps that may see that namespace."""
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    inv = obj.get("involvedObject") or {}
    involved_namespace = str(inv.get("namespace") or "")
    if not namespace or involved_namespace != namespace:
        return set()
    api_version = str(inv.get("apiVersion") or "")
    kind, name = str(inv.get("kind") or ""), str(inv.get("name") or "")
    found: set[AppKey] = set()
    for _hop in range(MAX_OWNER_HOPS + 1):
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        key = ResourceKey(group, kind, involved_namespace, name)
        found |= membership.owners.get(key, frozenset())
        if found:
            break
        live = lookup(api_version, kind, name, involved_namespace)
        refs = (live or {}).get("metadata", {}).get("ownerReferences") or ()
        owner = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
        if owner is None:
            break
        api_version, kind, name = (
            str(owner.get("apiVersion") or ""),
            str(owner.get("kind") or ""),
            str(owner.get("name") or ""),
        )
    return {app for app in found if namespace in membership.namespaces.get(app, ())}


class AppEventRecords(NamedTuple):
    """``ApplicationEvents.events``' answer: the records newest first, and the namespaces whose
    first list is not complete yet (the records are then those known so far)."""

    records: list[EventRecord]
    loading: tuple[str, ...]


class ApplicationEvents:
    """The controller's Events per app: streams per namespace, the owner index, the store."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        applications: Callable[[], list[dict[str, Any]]],
        allowed_namespaces: Callable[[str], tuple[str, ...]],
        lookup: OwnerLookup,
        watch_children: Callable[[str], None] = lambda namespace: None,
        per_app: int = DEFAULT_PER_APP,
        index_ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.store = AppEventStore(per_app)
        self._applications = applications
        self._allowed_namespaces = allowed_namespaces
        self._lookup = lookup
        self._watch_children = watch_children
        self._index_ttl = index_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._membership = Membership()
        self._built = float("-inf")
        self._streams: dict[str, KindStream] = {}
        self._stopped = False

    def membership(self, *, fresh: bool = False) -> Membership:
        """The owner index, rebuilt from the Applications at most every ``index_ttl`` seconds
        (10,000 Events arriving at once do not rebuild it 10,000 times)."""
        with self._lock:
            if fresh or self._clock() - self._built >= self._index_ttl:
                self._membership = membership_of(self._applications(), self._allowed_namespaces)
                self._built = self._clock()
            return self._membership

    def events(
        self, app: AppKey, query: EventQuery = NO_FILTER, *, wait: float = FIRST_LIST_WAIT
    ) -> AppEventRecords | None:
        """The app's Events, newest first; None when there is no such app.

        The first call for a namespace starts its stream; a call waits at most ``wait`` seconds
        for first lists and then answers with what is known, naming the namespaces still
        loading - a request never hangs on a slow list. A stream that has failed before its
        first list (RBAC forbids listing Events, the API server errors) raises
        ``EventsUnavailableError`` with the reason: failing is not loading."""
        spaces = self.membership().namespaces.get(app)
        if spaces is None:  # a new app, or none: look again at the Applications themselves
            spaces = self.membership(fresh=True).namespaces.get(app)
        if spaces is None:
            return None
        deadline = self._clock() + wait
        loading = []
        for stream in [self._stream(ns) for ns in sorted(spaces)]:
            if stream.listed.wait(max(0.0, deadline - self._clock())):
                continue
            if stream.last_error is not None:
                raise EventsUnavailableError(
                    f"the Events of namespace {stream.namespace} cannot be listed: "
                    f"{stream.last_error}"
                )
            loading.append(stream.namespace)
        return AppEventRecords(self.store.query(app, query), tuple(loading))

    def _stream(self, namespace: str) -> KindStream:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the Event streams are stopped")
            stream = self._streams.get(namespace)
            if stream is not None:
                return stream
            stream = self._streams[namespace] = KindStream(
                self.kube,
                "v1",
                "Event",
                namespace,
                on_object=self._on_object,
                on_listed=lambda present: self.store.retain(namespace, present),
                # on the stream's thread, before its first list: Pods and ReplicaSets must be
                # in the cache to walk an Event to its app, but a request must not wait for them
                prepare=lambda: self._prepare(namespace),
            )
        stream.start()
        return stream

    def _prepare(self, namespace: str) -> None:
        try:
            self._watch_children(namespace)  # so Pods and ReplicaSets can be walked to an app
        except Exception as exc:  # best effort: without them only direct Events are matched
            log.warning("cannot watch children for Events", namespace=namespace, error=str(exc))

    def _on_object(self, event_type: str, obj: dict[str, Any]) -> None:
        record = record_of(obj)
        if event_type == "DELETED":
            self.store.remove(record.id)
            return
        self.store.put(record, apps_of(obj, self.membership(), self._lookup))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            streams = list(self._streams.values())
        for stream in streams:
            stream.stop()
