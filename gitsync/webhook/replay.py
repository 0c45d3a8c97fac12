"""Refusing a delivery seen before: the replay window of the webhook endpoint.

A signature proves who made a delivery, not when: anyone who saw one signed push (a proxy log,
a forge's delivery page, a tenant's own repository's hook) can send it again, as often as they
like, and each copy used to cost an ``ls-remote`` - through a follower replica, an Application
write (issue 13, finding 6). So every authenticated delivery is remembered for ``window`` seconds
under two names, and one that matches either is a replay:

* the forge's delivery id (``X-GitHub-Delivery``, ``X-Gitlab-Event-UUID``, ``X-Gitea-Delivery``,
  ``X-Request-UUID``...; ``gitsync.webhook.providers.delivery_id``), so a redelivery of the same
  event is refused even if the forge re-serialized the body;
* the SHA-256 of the body. Signatures cover the body only, so a replayer may change or drop the
  id header; two real pushes never have the same body (the commits differ). A generic sender
  that notifies the same ref twice without ``after`` within the window is refused the second
  time - the controller already looked - and should send ``after`` (or rely on the poll).

Names are kept per provider as digests (fixed size, whatever the sender put in a header), in
insertion order, at most ``capacity`` of them: when full, the oldest is forgotten first. Only
deliveries that passed verification are recorded, so unauthenticated noise cannot push real ones
out. Pure, with an injected clock; thread-safe, since waitress serves requests on several threads.
The memory is per process: replicas behind one Service each remember what reached them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

DEFAULT_WINDOW: Final = 600.0
DEFAULT_CAPACITY: Final = 10_000


class DeliveryLog:
    """The deliveries received in the last ``window`` seconds, by delivery id and body digest."""

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # name -> when it expires

    def is_replay(self, provider: str, body: bytes, delivery: str | None) -> bool:
        """Record this delivery; True when its id or body was already seen within the window
        (the delivery is then not recorded again, so a replay does not extend the window)."""
        names = [_name(provider, b"body", body)]
        if delivery is not None:
            names.append(_name(provider, b"id", delivery.encode("utf-8", "surrogateescape")))
        now = self._clock()
        with self._lock:
            self._expire(now)
            if any(name in self._seen for name in names):
                return True
            for name in names:
                self._seen[name] = now + self.window
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return False

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order (the window is fixed), so expired names are at the front.
        while self._seen:
            name, expires = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[name]

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


def _name(provider: str, kind: bytes, value: bytes) -> bytes:
    return hashlib.sha256(provider.encode() + b"\0" + kind + b"\0" + value).digest()
