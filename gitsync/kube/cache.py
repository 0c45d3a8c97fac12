"""A watch-based cache of live objects (an informer), so refreshes read memory, not the API.

Why: the controller compares Git with the live state of every managed object on every refresh.
GETting each object each cycle costs one request per object per app per cycle and still notices
drift only at the next cycle. Instead, ``WatchCache`` lists a kind once and then keeps a watch open
(the shape of client-go's reflector and gitops-engine's cluster cache): a refresh where nothing
changed costs zero API requests, and an edit or delete made by someone else is in memory - and
reported through ``on_event`` - within moments.

How it stays correct:

* One list+watch per kind and scope (all namespaces, or one namespace), each in a daemon thread.
  The watch resumes from the last resourceVersion it saw (bookmarks included) when the server ends
  the stream (``timeoutSeconds``), and backs off 0.5 s doubling to 10 s on connection errors.
* When the resourceVersion has expired (410 Gone, as an HTTP status or as an ``ERROR`` event) the
  watch relists and compares the fresh list with memory, reporting what changed or disappeared in
  the meantime as synthetic ``ADDED``/``MODIFIED``/``DELETED`` events. So does the periodic
  resync (``resync_seconds``, like gitops-engine's watch resync), a cheap net for a missed event.
  Note that a v1.20 API server answers a watch from an old resourceVersion that is still inside its
  watch-cache window by replaying history rather than with 410; the store converges either way.
* A namespace-scoped watch is superseded by a later all-namespaces watch of the same kind: the new
  watch's first list replaces the namespaces it already covered (reporting differences) and the
  old watches are stopped, so each change is reported once.
* The initial list of a scope is loaded silently; ``on_event`` reports changes after that.

Memory: objects are stored as the API server returns them, ``metadata.managedFields`` included,
because the diff's ``managedFieldsManagers`` ignore rules need them. That roughly doubles the size
of a typical object; a cluster-wide cache of a kind with many objects (Pods, Events) costs real
memory, which is why a namespace-scoped ``ensure`` exists.

Readers get the stored dict itself (no copy, so reads are cheap): callers must not mutate it - ask
for ``copy=True`` when you need to. Each kind has its own lock; the ``on_event`` callback runs on
the watch thread after the store is updated and outside the lock, so it may read the cache. An
exception in the callback is logged and never ends the watch.
"""

from __future__ import annotations

import copy as copying
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from gitsync.kube.client import ApiError, APIResource, KubeClient
from gitsync.kube.stream import watch_error, watch_query
from gitsync.model import ResourceKey

log = structlog.get_logger(__name__)

EventHandler = Callable[[str, ResourceKey, dict[str, Any] | None], None]
"""``on_event(type, key, obj)``: type is ``ADDED``, ``MODIFIED`` or ``DELETED``; for ``DELETED``
``obj`` is the last state the cache knew."""

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
_BACKOFF_START, _BACKOFF_MAX = 0.5, 10.0
_LIST_PAGE = 500
_LIST_TIMEOUT = 60.0
_STREAM_GRACE = 30.0  # read timeout beyond timeoutSeconds before a silent stream counts as dead

_ObjectId = tuple[str, str]  # (namespace, name) within one kind


class NotWatchedError(LookupError):
    """A read for a kind (or namespace) that no ``ensure`` covers: call ``ensure`` first."""


@dataclass(frozen=True)
class KindStats:
    """What the cache holds and has done for one kind (all its scopes together)."""

    api_version: str
    kind: str
    objects: int
    relists: int
    watch_restarts: int
    events: int
    synced: bool
    namespaces: tuple[str, ...] | None  # None: watched in all namespaces


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _object_id(obj: dict[str, Any]) -> _ObjectId:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _matches(obj: dict[str, Any], label_selector: dict[str, str] | None) -> bool:
    if not label_selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in label_selector.items())


class _Backoff:
    def __init__(self) -> None:
        self.delay = _BACKOFF_START

    def next(self) -> float:
        current = self.delay
        self.delay = min(self.delay * 2, _BACKOFF_MAX)
        return current

    def reset(self) -> None:
        self.delay = _BACKOFF_START


class _Rounds:
    """What the watch loop carries from one round to the next."""

    def __init__(self) -> None:
        self.backoff = _Backoff()
        self.need_list = True
        self.last_list = 0.0
        """``time.monotonic()`` of the last complete list: the resync period counts from it."""


class _KindStore:
    """The objects of one kind, the watches feeding them, and their counters; one lock for all."""

    def __init__(self, api_version: str, kind: str, resource: APIResource) -> None:
        self.api_version = api_version
        self.kind = kind
        self.resource = resource
        self.group = api_version.rpartition("/")[0] if "/" in api_version else ""
        self.lock = threading.Lock()
        self.objects: dict[_ObjectId, dict[str, Any]] = {}
        self.watches: dict[str | None, _Watch] = {}
        self.relists = 0
        self.watch_restarts = 0
        self.events = 0

    def key(self, oid: _ObjectId) -> ResourceKey:
        return ResourceKey(self.group, self.kind, oid[0], oid[1])

    def covering(self, namespace: str | None) -> _Watch | None:
        """The synced watch whose scope includes ``namespace`` (None: the all-namespaces one)."""
        whole = self.watches.get(None)
        if whole is not None and whole.synced.is_set():
            return whole
        if namespace is None or not self.resource.namespaced:
            return None
        part = self.watches.get(namespace)
        return part if part is not None and part.synced.is_set() else None


_Notice = tuple[str, ResourceKey, dict[str, Any]]


class _Watch:
    """One list+watch loop for one kind in one scope (a namespace, or None for all)."""

    def __init__(self, cache: WatchCache, store: _KindStore, scope: str | None) -> None:
        self.cache = cache
        self.store = store
        self.scope = scope
        self.path = cache.client.path(store.api_version, store.kind, scope or "")
        self.resource_version = ""
        self.synced = threading.Event()
        self.settled = threading.Event()  # synced, or failed for good before syncing
        self.failure: ApiError | None = None
        self.last_error: BaseException | None = None
        self.superseded = False  # an all-namespaces watch took over; ignore what is still in flight
        self.stopping = threading.Event()
        self._close_stream: Callable[[], None] | None = None
        self._stream_lock = threading.Lock()
        self._running = threading.Event()  # cleared by the _pause test hook
        self._running.set()
        self._parked = threading.Event()
        self.thread = threading.Thread(
            target=self._run,
            name=f"gitsync-watch {store.kind}.{store.api_version} {scope or '*'}",
            daemon=True,
        )
        self.log = log.bind(kind=store.kind, api_version=store.api_version, scope=scope or "*")

    # -- control from other threads -----------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def signal_stop(self) -> None:
        self.stopping.set()
        self._running.set()
        self._interrupt_stream()

    def wait_synced(self, timeout: float) -> None:
        if not self.settled.wait(timeout):
            raise TimeoutError(
                f"{self.store.kind}.{self.store.api_version} ({self.scope or 'all namespaces'}) "
                f"not loaded after {timeout:.0f}s; last error: {self.last_error}"
            )
        failure = self.failure
        if failure is not None:
            raise ApiError(
                failure.status,
                failure.reason,
                failure.message,
                method=failure.method,
                path=failure.path,
            ) from failure

    def _interrupt_stream(self) -> None:
        with self._stream_lock:
            close = self._close_stream
        if close is not None:
            close()

    def _pause(self, timeout: float = 5.0) -> str:
        """Test hook: cut the stream and hold the loop (a partition, in effect); returns the rv."""
        self._parked.clear()
        self._running.clear()
        self._interrupt_stream()
        if not self._parked.wait(timeout):
            raise TimeoutError("watch did not pause")
        return self.resource_version

    def _resume(self, from_resource_version: str | None = None) -> None:
        """Test hook: continue after ``_pause``, optionally from another resourceVersion."""
        if from_resource_version is not None:
            self.resource_version = from_resource_version
        self._parked.clear()
        self._running.set()

    def _interrupted(self) -> bool:
        return self.stopping.is_set() or not self._running.is_set()

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if not self.settled.is_set():  # stopped or superseded before the first list
                self.failure = ApiError(0, "Stopped", "the watch stopped before it was loaded")
                self.settled.set()

    def _loop(self) -> None:
        rounds = _Rounds()
        while not self.stopping.is_set():
            if not self._running.is_set():
                self._parked.set()
                self._running.wait()
                continue
            try:
                received, lasted = self._list_and_watch(rounds)
            except ApiError as exc:
                if self._interrupted():
                    continue
                if not self._after_api_error(exc, rounds):
                    return
                continue
            except Exception as exc:  # a bug or undecodable data must not end the watch silently
                if self._interrupted():
                    continue
                self.last_error = exc
                delay = rounds.backoff.next()
                self.log.exception("watch loop error; retrying", retry_in=delay)
                rounds.need_list = True
                self.stopping.wait(delay)
                continue
            if self._interrupted():
                continue
            self._after_stream(rounds, received=received, lasted=lasted)

    def _list_and_watch(self, rounds: _Rounds) -> tuple[int, float]:
        """One round: a list first when due, then one watch stream until it ends."""
        if rounds.need_list:
            self._list()
            rounds.need_list = False
            rounds.last_list = time.monotonic()
            rounds.backoff.reset()
        return self._watch_once(rounds.last_list)

    def _after_api_error(self, exc: ApiError, rounds: _Rounds) -> bool:
        """Wait as the error asks (relist on 410, back off otherwise); False: the loop ends
        because the first list failed for a reason retrying will not fix."""
        self.last_error = exc
        if exc.status == 410:
            self.log.info("watch expired; relisting", message=exc.message)
            if rounds.need_list:  # the list itself said 410: do not hammer the server
                self.stopping.wait(rounds.backoff.next())
            rounds.need_list = True
            return True
        if not self.synced.is_set() and not exc.transient:
            self._fail(exc)
            return False
        if not exc.transient:
            rounds.need_list = True  # e.g. a rejected resourceVersion: start over from a list
        delay = rounds.backoff.next()
        self.log.warning("watch failed; retrying", error=str(exc), retry_in=delay)
        self.stopping.wait(delay)
        return True

    def _after_stream(self, rounds: _Rounds, *, received: int, lasted: float) -> None:
        """A stream ended normally: count it, relist when the resync period is up, and do not
        spin on a server that ends streams at once."""
        with self.store.lock:
            self.store.watch_restarts += 1
        resync = self.cache.resync_seconds
        if resync > 0 and time.monotonic() - rounds.last_list >= resync:
            rounds.need_list = True
        if received == 0 and lasted < 1.0:
            self.stopping.wait(rounds.backoff.next())
        else:
            rounds.backoff.reset()

    def _fail(self, exc: ApiError) -> None:
        """The first list failed for a reason retrying will not fix: report it and step aside."""
        self.failure = exc
        with self.store.lock:
            if self.store.watches.get(self.scope) is self:
                del self.store.watches[self.scope]
        self.settled.set()

    def _fetch_list(self) -> tuple[list[dict[str, Any]], str]:
        """All objects of the scope, in pages; the resourceVersion is that of the snapshot."""
        client = self.cache.client
        items: list[dict[str, Any]] = []
        rv = ""
        token = ""
        while True:
            query = {"limit": str(_LIST_PAGE)}
            if token:
                query["continue"] = token
            try:
                page = client.request("GET", self.path, query=query, timeout=_LIST_TIMEOUT)
            except ApiError as exc:
                if exc.status != 410 or not token:
                    raise
                # The continue token expired between pages: one unpaged list instead.
                page = client.request("GET", self.path, timeout=_LIST_TIMEOUT)
                meta = page.get("metadata") or {}
                return list(page.get("items") or []), str(meta.get("resourceVersion") or "")
            meta = page.get("metadata") or {}
            if not token:
                rv = str(meta.get("resourceVersion") or "")
            items.extend(page.get("items") or [])
            token = str(meta.get("continue") or "")
            if not token:
                return items, rv

    def _list(self) -> None:
        items, rv = self._fetch_list()
        for obj in items:  # list items carry no apiVersion/kind; the diff and ResourceKey need them
            obj.setdefault("apiVersion", self.store.api_version)
            obj.setdefault("kind", self.store.kind)
        notices, retired = self._replace(items)
        self.resource_version = rv
        self.synced.set()
        self.settled.set()
        for old in retired:
            old.signal_stop()
            self.cache._retire(old)
        self.cache._notify(notices)

    def _replace(self, items: list[dict[str, Any]]) -> tuple[list[_Notice], list[_Watch]]:
        """Swap this scope's objects for a fresh list; report the differences where due.

        Returns the notices to send and, for a first all-namespaces list, the namespace watches
        it supersedes.
        """
        store = self.store
        initial = not self.synced.is_set()
        fresh = {_object_id(obj): obj for obj in items}
        notices: list[_Notice] = []
        retired: list[_Watch] = []
        with store.lock:
            if self.superseded:
                return [], []
            # The first list is silent, except in namespaces that an earlier namespace watch
            # (superseded by this all-namespaces one) covered: there it is really a relist.
            reported: set[str] = set()
            if initial and self.scope is None:
                reported = {ns for ns, w in store.watches.items() if ns and w.synced.is_set()}
            if not initial:
                store.relists += 1
            old = {
                oid: obj
                for oid, obj in store.objects.items()
                if self.scope is None or oid[0] == self.scope
            }

            def due(oid: _ObjectId) -> bool:
                return not initial or oid[0] in reported

            for oid, obj in fresh.items():
                prev = old.get(oid)
                if prev is None:
                    if due(oid):
                        notices.append((ADDED, store.key(oid), obj))
                elif _rv(prev) != _rv(obj) and due(oid):
                    notices.append((MODIFIED, store.key(oid), obj))
            for oid, prev in old.items():
                if oid not in fresh:
                    del store.objects[oid]
                    if due(oid):
                        notices.append((DELETED, store.key(oid), prev))
            store.objects.update(fresh)
            if self.scope is None and initial:
                for ns in [ns for ns in store.watches if ns is not None]:
                    old_watch = store.watches.pop(ns)
                    old_watch.superseded = True
                    retired.append(old_watch)
        return notices, retired

    def _watch_once(self, last_list: float) -> tuple[int, float]:
        """One watch request from the current resourceVersion; returns (events, seconds open)."""
        timeout = int(self.cache.watch_timeout_seconds * random.uniform(1.0, 1.2))  # noqa: S311
        resync = self.cache.resync_seconds
        if resync > 0:
            timeout = max(1, min(timeout, int(resync - (time.monotonic() - last_list)) + 1))
        query = watch_query(self.resource_version, timeout)
        began = time.monotonic()
        events, close = self.cache.client.open_watch(
            self.path, query=query, timeout=timeout + _STREAM_GRACE
        )
        with self._stream_lock:
            self._close_stream = close
        received = 0
        try:
            if self._interrupted():
                return 0, 0.0
            for event in events:
                if self._interrupted():
                    break
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise watch_error(obj, self.path)
                rv = _rv(obj)
                if kind == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                if kind not in (ADDED, MODIFIED, DELETED):
                    self.log.warning("unknown watch event type", type=kind)
                    continue
                received += 1
                notice = self._apply(str(kind), obj)
                if rv:
                    self.resource_version = rv
                if notice is not None:
                    self.cache._notify([notice])
        finally:
            with self._stream_lock:
                self._close_stream = None
            close()
        return received, time.monotonic() - began

    def _apply(self, kind: str, obj: dict[str, Any]) -> _Notice | None:
        store = self.store
        oid = _object_id(obj)
        with store.lock:
            if self.superseded:
                return None
            store.events += 1
            if kind == DELETED:
                prev = store.objects.pop(oid, None)
                return None if prev is None else (DELETED, store.key(oid), obj)
            obj.setdefault("apiVersion", store.api_version)
            obj.setdefault("kind", store.kind)
            prev = store.objects.get(oid)
            store.objects[oid] = obj
            if prev is None:
                return (ADDED, store.key(oid), obj)
            if _rv(prev) == _rv(obj):
                return None  # the same version again (a replay): nothing changed
            return (MODIFIED, store.key(oid), obj)


class WatchCache:
    """Live objects of the kinds ``ensure``d, kept current by watches. Thread-safe."""

    def __init__(
        self,
        client: KubeClient,
        *,
        resync_seconds: float = 300,
        on_event: EventHandler | None = None,
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.client = client
        self.resync_seconds = resync_seconds
        self.watch_timeout_seconds = watch_timeout_seconds
        self._on_event = on_event
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], _KindStore] = {}
        self._retired: list[_Watch] = []
        self._stopped = False

    # -- starting watches ---------------------------------------------------------------------

    def ensure(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        """Watch ``kind`` in ``namespace`` (None: all namespaces); return once it is loaded.

        Idempotent and safe from many threads. Raises ``ApiError`` (404 for a kind the server does
        not serve, 403 when listing is forbidden) or ``TimeoutError`` when the first list did not
        succeed in ``timeout`` seconds - the watch then keeps trying in the background.
        """
        resource = self.client.resource(api_version, kind)
        scope = namespace if (resource.namespaced and namespace) else None
        with self._lock:
            if self._stopped:
                raise RuntimeError("the watch cache is stopped")
            store = self._kinds.get((api_version, kind))
            if store is None:
                store = self._kinds[(api_version, kind)] = _KindStore(api_version, kind, resource)
        deadline = time.monotonic() + timeout
        while True:
            with store.lock:
                watch = store.watches.get(None) or store.watches.get(scope)
                if watch is None:
                    watch = store.watches[scope] = _Watch(self, store, scope)
                    watch.start()
            try:
                watch.wait_synced(max(0.0, deadline - time.monotonic()))
            except ApiError as exc:
                if self._stopped:
                    raise RuntimeError("the watch cache was stopped") from exc
                if watch.superseded:
                    continue  # an all-namespaces watch took over while this one was loading
                raise
            return

    def ensure_namespaces(
        self, api_version: str, kind: str, namespaces: Iterable[str], *, timeout: float = 60.0
    ) -> None:
        """``ensure`` for each of ``namespaces`` (namespaced mode: one watch per namespace)."""
        for ns in namespaces:
            self.ensure(api_version, kind, ns, timeout=timeout)

    # -- reads (memory only, never a request) -------------------------------------------------

    def _store(self, api_version: str, kind: str) -> _KindStore:
        with self._lock:
            store = self._kinds.get((api_version, kind))
        if store is None:
            raise NotWatchedError(f"{kind}.{api_version} is not watched; call ensure() first")
        return store

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = "", *, copy: bool = False
    ) -> dict[str, Any] | None:
        """The cached object or ``None``. Do not mutate the result unless ``copy=True``."""
        store = self._store(api_version, kind)
        ns = namespace if store.resource.namespaced else ""
        with store.lock:
            if store.covering(ns or None) is None:
                raise NotWatchedError(f"{kind}.{api_version} in {ns!r} is not watched")
            obj = store.objects.get((ns, name))
        return copying.deepcopy(obj) if copy and obj is not None else obj

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: dict[str, str] | None = None,
        *,
        copy: bool = False,
    ) -> list[dict[str, Any]]:
        """Cached objects, optionally of one namespace and matching all of ``label_selector``.

        ``namespace=None`` returns every namespace the cache watches for this kind.
        """
        store = self._store(api_version, kind)
        with store.lock:
            if namespace and store.resource.namespaced:
                if store.covering(namespace) is None:
                    raise NotWatchedError(f"{kind}.{api_version} in {namespace!r} is not watched")
                found = [o for (ns, _), o in store.objects.items() if ns == namespace]
            else:
                if not any(w.synced.is_set() for w in store.watches.values()):
                    raise NotWatchedError(f"{kind}.{api_version} is not watched")
                found = list(store.objects.values())
        found = [o for o in found if _matches(o, label_selector)]
        return copying.deepcopy(found) if copy else found

    def synced(self, api_version: str, kind: str, namespace: str | None = None) -> bool:
        """Whether ``kind`` (in ``namespace``, or in every scope ensured) has been loaded."""
        with self._lock:
            store = self._kinds.get((api_version, kind))
        if store is None:
            return False
        with store.lock:
            if namespace is not None:
                return store.covering(namespace or None) is not None
            return bool(store.watches) and all(w.synced.is_set() for w in store.watches.values())

    def wait_synced(self, timeout: float = 60.0) -> bool:
        """Block until every watch started so far has loaded; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            stores = list(self._kinds.values())
        for store in stores:
            with store.lock:
                watches = list(store.watches.values())
            for watch in watches:
                if not watch.settled.wait(max(0.0, deadline - time.monotonic())):
                    return False
                if watch.failure is not None:
                    return False
        return True

    def stats(self) -> dict[tuple[str, str], KindStats]:
        """Per (apiVersion, kind): objects held, relists, watch restarts, watch events seen."""
        with self._lock:
            stores = list(self._kinds.values())
        out: dict[tuple[str, str], KindStats] = {}
        for s in stores:
            with s.lock:
                scopes = list(s.watches)
                out[(s.api_version, s.kind)] = KindStats(
                    api_version=s.api_version,
                    kind=s.kind,
                    objects=len(s.objects),
                    relists=s.relists,
                    watch_restarts=s.watch_restarts,
                    events=s.events,
                    synced=bool(s.watches) and all(w.synced.is_set() for w in s.watches.values()),
                    namespaces=None if None in scopes else tuple(sorted(str(n) for n in scopes)),
                )
        return out

    # -- stopping -----------------------------------------------------------------------------

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every watch: streams are shut down, threads joined (up to ``timeout``)."""
        with self._lock:
            self._stopped = True
            stores = list(self._kinds.values())
            watches = list(self._retired)
        for store in stores:
            with store.lock:
                watches.extend(store.watches.values())
        for watch in watches:
            watch.signal_stop()
        deadline = time.monotonic() + timeout
        for watch in watches:
            watch.thread.join(max(0.0, deadline - time.monotonic()))
        alive = [w.thread.name for w in watches if w.thread.is_alive()]
        if alive:
            log.warning("watch threads still running after stop", threads=alive)

    def __enter__(self) -> WatchCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals used by the watches --------------------------------------------------------

    def _retire(self, watch: _Watch) -> None:
        with self._lock:
            self._retired.append(watch)

    def _notify(self, notices: Iterable[_Notice]) -> None:
        handler = self._on_event
        if handler is None:
            return
        for kind, key, obj in notices:
            try:
                handler(kind, key, obj)
            except Exception:
                log.exception("watch event handler failed", event=kind, key=str(key))

    def _watch_for(self, api_version: str, kind: str, namespace: str | None = None) -> _Watch:
        """Test hook: the watch serving ``kind`` in ``namespace``."""
        store = self._store(api_version, kind)
        with store.lock:
            watch = store.covering(namespace)
        if watch is None:
            raise NotWatchedError(f"{kind}.{api_version} in {namespace!r} is not watched")
        return watch
