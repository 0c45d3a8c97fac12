"""A list+watch that keeps nothing: each object is handed to a callback and forgotten.

Why not ``WatchCache``: the cache stores every object of a kind in a scope, which is right for
the objects an app manages and wrong for ``v1 Event`` - a busy namespace holds tens of thousands
of Events, and the controller wants only the newest few per app (``gitsync.controller.events``).
``KindStream`` runs the same loop as a ``WatchCache`` watch (list in pages, watch from the list's
resourceVersion, resume from the last one seen, relist on 410 Gone, back off on errors) but what
to keep is the receiver's decision, made one object at a time: a list of 10,000 Events is never
in memory at once, only its current page of ``LIST_PAGE`` objects.

After each complete list ``on_listed`` receives the ids ``(namespace, name)`` the list held, so
the receiver can forget what disappeared while the watch was not looking (a relist after 410).
``prepare``, when given, runs once on the stream's thread before the first list (work the
receiver needs done first, without making whoever started the stream wait for it).
Callbacks run on the stream's thread; an exception in one is logged and never ends the stream.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from gitsync.kube.client import ApiError, KubeClient

log = structlog.get_logger(__name__)

ObjectHandler = Callable[[str, dict[str, Any]], None]
"""``on_object(type, obj)``: type is ``ADDED``, ``MODIFIED`` or ``DELETED`` (a listed object
comes as ``ADDED``, again on every relist)."""
ListedHandler = Callable[[set[tuple[str, str]]], None]

LIST_PAGE = 500
_LIST_TIMEOUT = 60.0
_STREAM_GRACE = 30.0
_BACKOFF_START, _BACKOFF_MAX = 0.5, 10.0


def watch_error(obj: dict[str, Any], path: str) -> ApiError:
    """The ``ApiError`` a watch stream's ``ERROR`` event carries (410 Gone: relist)."""
    return ApiError(
        int(obj.get("code") or 500),
        str(obj.get("reason") or "WatchError"),
        str(obj.get("message") or ""),
        method="WATCH",
        path=path,
    )


def watch_query(resource_version: str, timeout: int) -> dict[str, str]:
    """The query of one watch request from ``resource_version``, bookmarks on, ended by the
    server after ``timeout`` seconds (shared by ``KindStream`` and ``cache.WatchCache``)."""
    return {
        "watch": "1",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(timeout),
    }


class KindStream:
    """One list+watch loop for one kind in one namespace, in a daemon thread."""

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        kind: str,
        namespace: str,
        *,
        on_object: ObjectHandler,
        on_listed: ListedHandler,
        prepare: Callable[[], None] | None = None,
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.path = client.path(api_version, kind, namespace)
        self._on_object = on_object
        self._on_listed = on_listed
        self._prepare = prepare
        self.watch_timeout_seconds = watch_timeout_seconds
        self.resource_version = ""
        self.listed = threading.Event()
        self.last_error: BaseException | None = None
        self._stopping = threading.Event()
        self._close: Callable[[], None] | None = None
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._loop, name=f"gitsync-stream {kind} {namespace}", daemon=True
        )
        self.log = log.bind(kind=kind, namespace=namespace)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with self._close_lock:
            close = self._close
        if close is not None:
            close()
        self._thread.join(timeout)

    def _loop(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception:
                self.log.exception("stream prepare failed")
        delay = _BACKOFF_START
        need_list = True
        while not self._stopping.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                    delay = _BACKOFF_START
                if self._watch_once() > 0:
                    delay = _BACKOFF_START
                    continue
            except ApiError as exc:
                if self._stopping.is_set():
                    return
                self.last_error = exc
                need_list = need_list or exc.status == 410 or not exc.transient
                if exc.status == 410:
                    self.log.info("watch expired; relisting", message=exc.message)
                    continue
                self.log.warning("stream failed; retrying", error=str(exc), retry_in=delay)
            except Exception as exc:  # a bug or undecodable data must not end the stream
                if self._stopping.is_set():
                    return
                self.last_error = exc
                need_list = True
                self.log.exception("stream loop error; retrying", retry_in=delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    def _list(self) -> None:
        """Every object of the scope, page by page; each page is handed over and dropped."""
        seen: set[tuple[str, str]] = set()
        token = ""
        rv = ""
        while True:
            query = {"limit": str(LIST_PAGE)}
            if token:
                query["continue"] = token
            page = self.client.request("GET", self.path, query=query, timeout=_LIST_TIMEOUT)
            meta = page.get("metadata") or {}
            if not token:
                rv = str(meta.get("resourceVersion") or "")
            for obj in page.get("items") or ():
                obj.setdefault("apiVersion", self.api_version)
                obj.setdefault("kind", self.kind)
                m = obj.get("metadata") or {}
                seen.add((str(m.get("namespace") or ""), str(m.get("name") or "")))
                self._deliver("ADDED", obj)
            token = str(meta.get("continue") or "")
            if not token or self._stopping.is_set():
                break
        self.resource_version = rv
        try:
            self._on_listed(seen)
        except Exception:
            self.log.exception("stream list handler failed")
        self.listed.set()

    def _watch_once(self) -> int:
        """One watch request from the current resourceVersion; returns the events received."""
        timeout = int(self.watch_timeout_seconds * random.uniform(1.0, 1.2))  # noqa: S311
        query = watch_query(self.resource_version, timeout)
        began = time.monotonic()
        events, close = self.client.open_watch(
            self.path, query=query, timeout=timeout + _STREAM_GRACE
        )
        with self._close_lock:
            self._close = close
        received = 0
        try:
            for event in events:
                if self._stopping.is_set():
                    break
                kind = str(event.get("type") or "")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise watch_error(obj, self.path)
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    received += 1
                    obj.setdefault("apiVersion", self.api_version)
                    obj.setdefault("kind", self.kind)
                    self._deliver(kind, obj)
                if rv:
                    self.resource_version = rv
        finally:
            with self._close_lock:
                self._close = None
            close()
        # a server ending streams at once must not make this loop spin
        return received if received or time.monotonic() - began >= 1.0 else 0

    def _deliver(self, kind: str, obj: dict[str, Any]) -> None:
        try:
            self._on_object(kind, obj)
        except Exception:
            self.log.exception("stream object handler failed", event=kind)
