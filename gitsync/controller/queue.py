"""A coalescing, delaying work queue: at most one reconcile per app at a time.

Triggers (timer, webhook, live change, manual request) all end up as ``add(key)``. Adding a key
that is already waiting merges the reasons and keeps the earlier due time; adding a key that is
being processed marks it dirty so it runs once more afterwards - a burst of pushes to one repo
costs one reconcile (plus at most one follow-up), never a pile-up, and two workers never handle
the same app at once.
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


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[K, _Pending] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._active: set[K] = set()
        self._dirty: dict[K, _Pending] = {}
        self._closed = False

    def add(self, key: K, reason: str, *, delay: float = 0.0) -> None:
        due = time.monotonic() + max(delay, 0.0)
        with self._cond:
            if self._closed:
                return
            if key in self._active:
                dirty = self._dirty.setdefault(key, _Pending(due))
                dirty.due = min(dirty.due, due)
                dirty.reasons.add(reason)
                return
            pending = self._pending.get(key)
            if pending is not None:
                pending.reasons.add(reason)
                if due >= pending.due:
                    return
                pending.due = due
            else:
                self._pending[key] = _Pending(due, {reason})
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> tuple[K, set[str]] | None:
        """The next due key and its merged reasons; ``None`` on timeout or close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._heap:
                    due, _, key = self._heap[0]
                    pending = self._pending.get(key)
                    if pending is None or pending.due != due:
                        heapq.heappop(self._heap)  # superseded entry
                        continue
                    if due > now:
                        break
                    heapq.heappop(self._heap)
                    del self._pending[key]
                    self._active.add(key)
                    return key, pending.reasons
                wait = None if not self._heap else self._heap[0][0] - now
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)
            return None

    def done(self, key: K) -> None:
        """Mark ``key`` finished; if it was re-added meanwhile, it is queued again."""
        with self._cond:
            self._active.discard(key)
            dirty = self._dirty.pop(key, None)
        if dirty is not None:
            for reason in dirty.reasons:
                self.add(key, reason, delay=max(dirty.due - time.monotonic(), 0.0))

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
