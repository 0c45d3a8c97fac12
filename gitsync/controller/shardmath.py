"""Pure sharding math: which shard an Application is in, and which replica should hold which shard.

Two layers of hashing, each chosen for what it has to survive:

* **App -> shard** is a jump consistent hash (Lamping & Veach) of the Application's UID. The
  number of shards is fixed by configuration, so this mapping never changes while replicas come
  and go; and if an operator does change ``--shards`` from N to N+1, only about 1/(N+1) of the
  apps move. UIDs, not names, so a deleted and re-created app may land elsewhere, as a new app.
* **Shard -> replica** is decided by every replica independently from what it sees in the shard
  Leases, with :func:`assign`: each live replica keeps the shards it already holds up to its fair
  quota, and free shards go to the replica under quota that ranks them highest (rendezvous
  hashing). Replicas with the same view compute the same answer, so they converge without talking
  to each other; when views differ (a heartbeat not seen yet) the Leases still guarantee one
  holder per shard, the answer only settles a few rounds later. When a replica joins, the only
  shards that move are the ones it takes; when one leaves, only its own shards move.

Nothing here does I/O, so it is tested exhaustively in ``tests/unit/test_sharding_core.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

_JUMP_MULTIPLIER = 2862933555777941757
_MASK64 = (1 << 64) - 1


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash of a 64-bit ``key`` into ``[0, buckets)``."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_of(uid: str, shards: int) -> int:
    """The shard of the Application with this UID (``namespace/name`` when it has no UID)."""
    return jump_hash(_hash64(uid), shards)


def preference(shard: int, replica: str) -> int:
    """Rendezvous weight: how much ``replica`` prefers ``shard`` (higher wins)."""
    return _hash64(f"{shard}\x00{replica}")


def quotas(shards: int, replicas: Iterable[str], held: Mapping[str, int]) -> dict[str, int]:
    """The fair share of each replica: ``shards // n`` each, and one more for ``shards % n`` of
    them - those already holding the most (then by name), so a balanced state stays put."""
    ordered = sorted(set(replicas), key=lambda r: (-held.get(r, 0), r))
    if not ordered:
        return {}
    base, extra = divmod(shards, len(ordered))
    return {r: base + (1 if i < extra else 0) for i, r in enumerate(ordered)}


def assign(shards: int, replicas: Iterable[str], holders: Mapping[int, str]) -> dict[int, str]:
    """The target holder of every shard, given the live replicas and who holds what now.

    ``holders`` maps a shard to its current live holder (free or dead-held shards are absent).
    Holders that are not in ``replicas`` are ignored. The result is balanced (quotas differ by
    at most one) and moves as few shards as balance allows.
    """
    live = sorted(set(replicas))
    if not live:
        return {}
    current = {s: r for s, r in holders.items() if r in live and 0 <= s < shards}
    held: dict[str, int] = {}
    for r in current.values():
        held[r] = held.get(r, 0) + 1
    quota = quotas(shards, live, held)
    target: dict[int, str] = {}
    count = dict.fromkeys(live, 0)
    for r in live:
        mine = sorted((s for s, h in current.items() if h == r), key=lambda s: -preference(s, r))
        for s in mine[: quota[r]]:
            target[s] = r
            count[r] += 1
    for s in range(shards):
        if s in target:
            continue
        candidates = [r for r in live if count[r] < quota[r]]
        best = max(candidates, key=lambda r: preference(s, r))
        target[s] = best
        count[best] += 1
    return target
