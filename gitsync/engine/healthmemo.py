"""``HealthMemo``: each live object's health, remembered per resourceVersion.

Why: a refresh where nothing changed asks the health of every managed object again, and on a
controller with thousands of apps that was about a seventh of a no-change refresh's CPU (the
profile in BENCHMARKS.md). ``gitsync.health.assess`` is a pure function of the object and the
declared checks - no clock, no API - and an object with the same UID and resourceVersion has the
same content, so its answer can be reused until the object or the checks change.

What keys an entry: the object's UID, its resourceVersion, and the identity of the
``CustomChecks`` in force. The entry holds the checks object itself, so a replaced set of checks
never matches an old entry (not even one whose ``id`` Python reused). Objects without a UID or a
resourceVersion (not read from a server) are assessed every time. The memo is a bounded LRU
shared by the reconcile threads, behind one lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from gitsync.health import Health, assess
from gitsync.health.custom import CustomChecks, installed

DEFAULT_MAX_ENTRIES = 200_000


class HealthMemo:
    """``assess`` with its answers remembered by ``(uid, resourceVersion)``."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[CustomChecks, Health]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def assess(self, obj: Mapping[str, Any] | None) -> Health:
        checks = installed()
        key = _identity(obj)
        if key is None:
            return assess(obj, checks)
        with self._lock:
            known = self._entries.get(key)
            if known is not None and known[0] is checks:
                self._entries.move_to_end(key)
                self.hits += 1
                return known[1]
            self.misses += 1
        health = assess(obj, checks)
        with self._lock:
            self._entries[key] = (checks, health)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return health


def _identity(obj: Mapping[str, Any] | None) -> tuple[str, str] | None:
    if not isinstance(obj, Mapping):
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    if not isinstance(uid, str) or not isinstance(version, str) or not uid or not version:
        return None
    return uid, version
