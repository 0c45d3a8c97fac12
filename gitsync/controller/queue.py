"""A coalescing, delaying work queue: at most one reconcile per app at a time.

Triggers (timer, webhook, live change, manual request) all end up as ``add(key)``. Adding a key
that is already waiting merges the reasons and keeps the earlier due time; adding a key that is
being processed marks it dirty so it runs once more afterwards - a burst of pushes to one repo
costs one reconcile (plus at most one follow-up), never a pile-up, and two workers never handle
the same app at once.

Among the keys that are due, the higher ``Priority`` comes out first: ``URGENT`` (a push changed
the app's files), then ``PUSHED`` (a push moved the app's repository and ref), then the rest. A
push to a monorepo refreshes every app that follows it, but usually changed the files of one:
without priority that app waits its turn behind hundreds of no-op refreshes. Priority sticks to
a key until it is handed out: a higher add promotes a waiting key (which also takes the earlier
due time), and a key that is being processed keeps it for its follow-up run. Starvation is
bounded by coalescing: each key is waiting at most once, so normal keys wait behind at most one
prioritized run per app.

Two limits keep one tenant's Git server from holding every worker (issue 13, finding 8): a
server that accepts a connection and never answers keeps a reconcile busy until the Git timeout.

* **Per host.** With ``max_per_host``, at most that many keys whose ``host_of`` is the same host
  are handed out at once; a due key whose host is full is *parked* - it waits here, not in a
  worker - and goes back in line when a key of that host is done. Every app of a fleet on one
  forge shares a host, so thousands may be parked at once: the parked keys of a host are a heap
  (the highest priority, then the earliest due, then the first parked), and a done costs
  O(log parked), not a scan of them - the scan made a no-change refresh of 3,000 apps on one
  host quadratic (about 1.2 s of CPU under the queue's lock; 14 s at 10,000).
* **A reserved worker.** ``get(min_priority=Priority.PUSHED)`` hands out only pushed keys, so a
  worker that asks that way is always free for the next push, whatever the interval refreshes of
  hanging servers are doing.

``Coalescer`` spaces repeated requests for one key a window apart (the webhook's "one
``ls-remote`` per repository per window" and "one hand-over per app per window").
"""

from __future__ import annotations

import enum
import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Priority(enum.IntEnum):
    NORMAL = 0
    PUSHED = 1  # a push webhook moved the app's repository and ref
    URGENT = 2  # ... and changed the files the app deploys


@dataclass
class _Pending:
    due: float
    reasons: set[str] = field(default_factory=set)
    priority: Priority = Priority.NORMAL
    host: str | None = None


_Entry = tuple[float, int, K]  # (due, sequence, key)
_Parked = tuple[int, float, int, K]  # (-priority, due, sequence, key): the heap's first is next


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        host_of: Callable[[K], str | None] | None = None,
        max_per_host: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``host_of(key)`` names the Git host a key's reconcile talks to (None: no limit for
        it); ``max_per_host`` > 0 is how many keys of one host may be out at once."""
        self._cond = threading.Condition()
        self._clock = clock
        self._host_of = host_of
        self._max_per_host = max_per_host
        self._pending: dict[K, _Pending] = {}
        # One heap per priority, ordered by due time. An entry whose key is no longer pending with
        # that due time and priority is stale (superseded) and is dropped when it surfaces.
        self._heaps: dict[Priority, list[_Entry[K]]] = {p: [] for p in Priority}
        self._seq = itertools.count()
        self._active: dict[K, str | None] = {}  # key -> the host it holds a slot of
        self._per_host: Counter[str] = Counter()
        # Due keys whose host is full: a heap per host, and the host each parked key waits on.
        # A heap entry is stale once its key is no longer parked there, or waits with another
        # priority or due time (``add`` then pushed a newer entry); stale entries are dropped
        # when they surface.
        self._parked: dict[str, list[_Parked[K]]] = {}
        self._parked_keys: dict[K, str] = {}
        self._dirty: dict[K, _Pending] = {}
        self._closed = False

    def add(
        self,
        key: K,
        reason: str,
        *,
        delay: float = 0.0,
        urgent: bool = False,
        pushed: bool = False,
    ) -> None:
        """Queue ``key`` to run after ``delay`` seconds; ``urgent`` keys run before ``pushed``
        ones, and those before the other due keys."""
        priority = Priority.URGENT if urgent else Priority.PUSHED if pushed else Priority.NORMAL
        host = self._host_of(key) if self._host_of is not None and self._max_per_host else None
        due = self._clock() + max(delay, 0.0)
        with self._cond:
            if self._closed:
                return
            if key in self._active:
                dirty = self._dirty.setdefault(key, _Pending(due))
                dirty.due = min(dirty.due, due)
                dirty.reasons.add(reason)
                dirty.priority = max(dirty.priority, priority)
                dirty.host = host
                return
            pending = self._pending.get(key)
            if pending is not None:
                pending.reasons.add(reason)
                pending.host = host
                promoted = priority > pending.priority
                if due >= pending.due and not promoted:
                    return
                pending.due = min(due, pending.due)
                pending.priority = max(pending.priority, priority)
                parked_on = self._parked_keys.get(key)
                if parked_on is not None:  # still parked, now further ahead among them
                    self._park(parked_on, key, pending)
                    return
            else:
                pending = self._pending[key] = _Pending(due, {reason}, priority, host)
            heapq.heappush(self._heaps[pending.priority], (pending.due, next(self._seq), key))
            self._cond.notify_all()

    def get(
        self, timeout: float | None = None, *, min_priority: Priority = Priority.NORMAL
    ) -> tuple[K, set[str]] | None:
        """The next due key (highest priority first) of at least ``min_priority``, and its merged
        reasons; ``None`` on timeout or close."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                wait: float | None = None
                for priority in sorted(Priority, reverse=True):
                    if priority < min_priority:
                        break
                    item, due = self._take(priority, now)
                    if item is not None:
                        return item
                    if due is not None:
                        wait = due - now if wait is None else min(wait, due - now)
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)
            return None

    def _take(
        self, priority: Priority, now: float
    ) -> tuple[tuple[K, set[str]] | None, float | None]:
        """The first due key of ``priority`` whose host has room (parking those whose host is
        full), or None and when the first waiting one is due."""
        heap = self._heaps[priority]
        while True:
            self._drop_stale(heap, priority)
            if not heap:
                return None, None
            due, _, key = heap[0]
            if due > now:
                return None, due
            heapq.heappop(heap)
            pending = self._pending[key]
            host = pending.host
            if host is not None and self._per_host[host] >= self._max_per_host:
                if key not in self._parked_keys:
                    self._parked_keys[key] = host
                    self._park(host, key, pending)
                continue
            del self._pending[key]
            self._parked_keys.pop(key, None)
            self._active[key] = host
            if host is not None:
                self._per_host[host] += 1
            return (key, pending.reasons), None

    def _drop_stale(self, heap: list[_Entry[K]], priority: Priority) -> None:
        while heap:
            due, _, key = heap[0]
            pending = self._pending.get(key)
            if (
                pending is not None
                and pending.due == due
                and pending.priority == priority
                and key not in self._parked_keys
            ):
                return
            heapq.heappop(heap)

    def _park(self, host: str, key: K, pending: _Pending) -> None:
        heapq.heappush(
            self._parked.setdefault(host, []),
            (-pending.priority, pending.due, next(self._seq), key),
        )

    def _unpark_one(self, host: str) -> None:
        """A slot of ``host`` is free: its parked key of the highest priority (the earliest due
        among equals, then the first parked) goes back in line. O(log parked) per done, plus the
        stale entries it drops (each dropped once)."""
        heap = self._parked.get(host)
        while heap:
            negative, due, _, key = heapq.heappop(heap)
            if self._parked_keys.get(key) != host:
                continue  # taken, forgotten or parked again elsewhere since
            pending = self._pending.get(key)
            if pending is None:
                del self._parked_keys[key]
                continue
            if (-pending.priority, pending.due) != (negative, due):
                continue  # promoted while parked: its newer entry is in this heap
            del self._parked_keys[key]
            heapq.heappush(self._heaps[pending.priority], (pending.due, next(self._seq), key))
            break
        if not heap:
            self._parked.pop(host, None)

    def done(self, key: K) -> None:
        """Mark ``key`` finished; if it was re-added meanwhile, it is queued again."""
        with self._cond:
            host = self._active.pop(key, None)
            if host is not None:
                self._per_host[host] -= 1
                if self._per_host[host] <= 0:
                    del self._per_host[host]
                self._unpark_one(host)
                self._cond.notify_all()
            dirty = self._dirty.pop(key, None)
        if dirty is not None:
            delay = max(dirty.due - self._clock(), 0.0)
            for reason in dirty.reasons:
                self.add(
                    key,
                    reason,
                    delay=delay,
                    urgent=dirty.priority == Priority.URGENT,
                    pushed=dirty.priority == Priority.PUSHED,
                )

    def forget(self, key: K) -> None:
        with self._cond:
            self._pending.pop(key, None)
            self._dirty.pop(key, None)
            self._parked_keys.pop(key, None)

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


class Coalescer(Generic[K]):
    """Runs for one key at least ``window`` seconds apart; requests in between join one run.

    ``delay(key)`` says how long to wait before running for ``key``: 0 for the first request
    (or one a window after the last run), else the time until the next free slot - the same
    slot for every request until it has passed, so a burst costs one run now and one at the end
    of the window, never more. Keys whose last run is a window old are forgotten once more than
    ``max_keys`` are remembered; not thread-safe on its own (the caller holds a lock).
    """

    def __init__(
        self, window: float, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._max_keys = max_keys
        self._clock = clock
        self._slots: dict[K, float] = {}  # key -> when its latest run is (or was) due

    def delay(self, key: K) -> float:
        now = self._clock()
        last = self._slots.get(key)
        if last is None or now >= last + self.window:
            self._remember(key, now)
            return 0.0
        if last > now:  # a run is already booked: join it
            return last - now
        self._slots[key] = last + self.window
        return last + self.window - now

    def _remember(self, key: K, now: float) -> None:
        if len(self._slots) >= self._max_keys:
            cutoff = now - self.window
            self._slots = {k: t for k, t in self._slots.items() if t > cutoff}
        self._slots[key] = now
