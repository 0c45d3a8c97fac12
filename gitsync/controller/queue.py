"""A coalescing, delaying work queue: at most one reconcile per app at a time.

Triggers (timer, webhook, live change, manual request) all end up as ``add(key)``. Adding a key
that is already waiting merges the reasons and keeps the earlier due time; adding a key that is
being processed marks it dirty so it runs once more afterwards - a burst of pushes to one repo
costs one reconcile (plus at most one follow-up), never a pile-up, and two workers never handle
the same app at once.

Among the keys that are due, ``urgent`` ones come out first. A push to a monorepo refreshes every
app that follows it, but usually changed the files of one: without urgency that app waits its
turn behind hundreds of no-op refreshes. Urgency sticks to a key until it is handed out: an urgent
add promotes a waiting key (which also takes the earlier due time), and a key that is being
processed keeps the urgency for its follow-up run. Starvation is bounded by coalescing: each key
is waiting at most once, so normal keys wait behind at most one urgent run per app.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Pending:
    due: float
    reasons: set[str] = field(default_factory=set)
    urgent: bool = False


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[K, _Pending] = {}
        # One heap per urgency, ordered by due time. An entry whose key is no longer pending with
        # that due time and urgency is stale (superseded) and is dropped when it surfaces.
        self._heaps: dict[bool, list[tuple[float, int, K]]] = {True: [], False: []}
        self._seq = itertools.count()
        self._active: set[K] = set()
        self._dirty: dict[K, _Pending] = {}
        self._closed = False

    def add(self, key: K, reason: str, *, delay: float = 0.0, urgent: bool = False) -> None:
        """Queue ``key`` to run after ``delay`` seconds; ``urgent`` keys run before other due
        keys."""
        due = time.monotonic() + max(delay, 0.0)
        with self._cond:
            if self._closed:
                return
            if key in self._active:
                dirty = self._dirty.setdefault(key, _Pending(due))
                dirty.due = min(dirty.due, due)
                dirty.reasons.add(reason)
                dirty.urgent |= urgent
                return
            pending = self._pending.get(key)
            if pending is not None:
                pending.reasons.add(reason)
                promoted = urgent and not pending.urgent
                if due >= pending.due and not promoted:
                    return
                pending.due = min(due, pending.due)
                pending.urgent |= urgent
            else:
                pending = self._pending[key] = _Pending(due, {reason}, urgent)
            heapq.heappush(self._heaps[pending.urgent], (pending.due, next(self._seq), key))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> tuple[K, set[str]] | None:
        """The next due key (urgent ones first) and its merged reasons; ``None`` on timeout or
        close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                wait: float | None = None
                for urgent in (True, False):
                    heap = self._heaps[urgent]
                    self._drop_stale(heap, urgent)
                    if not heap:
                        continue
                    due, _, key = heap[0]
                    if due <= now:
                        heapq.heappop(heap)
                        pending = self._pending.pop(key)
                        self._active.add(key)
                        return key, pending.reasons
                    wait = due - now if wait is None else min(wait, due - now)
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)
            return None

    def _drop_stale(self, heap: list[tuple[float, int, K]], urgent: bool) -> None:
        while heap:
            due, _, key = heap[0]
            pending = self._pending.get(key)
            if pending is not None and pending.due == due and pending.urgent == urgent:
                return
            heapq.heappop(heap)

    def done(self, key: K) -> None:
        """Mark ``key`` finished; if it was re-added meanwhile, it is queued again."""
        with self._cond:
            self._active.discard(key)
            dirty = self._dirty.pop(key, None)
        if dirty is not None:
            delay = max(dirty.due - time.monotonic(), 0.0)
            for reason in dirty.reasons:
                self.add(key, reason, delay=delay, urgent=dirty.urgent)

    def forget(self, key: K) -> None:
        with self._cond:
            self._pending.pop(key, None)
            self._dirty.pop(key, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def active(self) -> int:
        with self._cond:
            return len(self._active)
