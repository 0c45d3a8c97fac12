"""How many audit Events the web layer may write: every action gets its log line, but an Event is
an API write into the Application's namespace, so a client repeating a refused request (or a
script syncing in a loop) must not turn into a flood of Events there.

An Event is recorded unless the same (Application, reason, principal, action) was recorded less
than ``repeat_seconds`` ago, and only while a process-wide token bucket has a token (``burst``,
refilled at ``per_second``). What is not recorded is still in the audit log line
(``eventRecorded=false``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from gitsync.web.auth import TokenBucket


class EventBudget:
    def __init__(
        self,
        *,
        per_second: float = 5.0,
        burst: int = 50,
        repeat_seconds: float = 30.0,
        max_remembered: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.repeat_seconds = repeat_seconds
        self.max_remembered = max_remembered
        self.clock = clock
        self._lock = threading.Lock()
        self._bucket = TokenBucket(burst, per_second, clock())
        self._recent: OrderedDict[Hashable, float] = OrderedDict()

    def allow(self, signature: Hashable) -> bool:
        """Whether an Event with this signature may be written now (and count it if so)."""
        with self._lock:
            now = self.clock()
            last = self._recent.get(signature)
            if last is not None and now - last < self.repeat_seconds:
                return False
            self._bucket.refill(now)
            if self._bucket.wait() > 0:
                return False
            self._bucket.tokens -= 1
            self._recent[signature] = now
            self._recent.move_to_end(signature)
            while len(self._recent) > self.max_remembered:
                self._recent.popitem(last=False)
            return True
