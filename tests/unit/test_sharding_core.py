"""The sharding math: apps spread evenly over shards, shards evenly over replicas, and replicas
coming and going move only the shards they must (the consistent-hash property)."""

from __future__ import annotations

import math
import uuid
from collections import Counter

import pytest

from gitsync.controller.shardmath import assign, jump_hash, quotas, shard_of

UIDS = [str(uuid.UUID(int=i * 2654435761 + 12345, version=4)) for i in range(3000)]


def settle(shards: int, replicas: list[str], holders: dict[int, str]) -> dict[int, str]:
    """Run the decentralized protocol to its fixed point: every replica sees the same Leases."""
    for _ in range(shards + 2):
        target = assign(shards, replicas, holders)
        if target == holders:
            return target
        holders = target
    raise AssertionError("assignment did not settle")


def test_jump_hash_stays_in_range() -> None:
    assert [jump_hash(k, 1) for k in (0, 1, 2**63)] == [0, 0, 0]
    assert all(0 <= jump_hash(k, 7) < 7 for k in range(1000))
    with pytest.raises(ValueError):
        jump_hash(1, 0)


@pytest.mark.parametrize("shards", [4, 16, 64])
def test_apps_spread_evenly_over_shards(shards: int) -> None:
    counts = Counter(shard_of(uid, shards) for uid in UIDS)
    mean = len(UIDS) / shards
    spread = 4 * math.sqrt(mean * (1 - 1 / shards))  # four standard deviations of a fair die
    assert set(counts) == set(range(shards))
    assert max(counts.values()) <= mean + spread, counts
    assert min(counts.values()) >= mean - spread, counts


def test_the_shard_of_an_app_is_stable() -> None:
    assert [shard_of(uid, 16) for uid in UIDS[:50]] == [shard_of(uid, 16) for uid in UIDS[:50]]


@pytest.mark.parametrize("shards", [4, 16])
def test_adding_a_shard_moves_only_the_apps_the_new_shard_takes(shards: int) -> None:
    before = {uid: shard_of(uid, shards) for uid in UIDS}
    after = {uid: shard_of(uid, shards + 1) for uid in UIDS}
    moved = [uid for uid in UIDS if before[uid] != after[uid]]
    assert all(after[uid] == shards for uid in moved), "apps only move to the new shard"
    assert len(moved) <= len(UIDS) / (shards + 1) * 1.3


@pytest.mark.parametrize(
    ("shards", "replicas", "expected"),
    [
        (4, ["a", "b"], {"a": 2, "b": 2}),
        (4, ["a", "b", "c"], {"a": 2, "b": 1, "c": 1}),
        (16, ["a", "b", "c"], {"a": 6, "b": 5, "c": 5}),
        (2, ["a", "b", "c"], {"a": 1, "b": 1, "c": 0}),
    ],
)
def test_quotas_are_fair(shards: int, replicas: list[str], expected: dict[str, int]) -> None:
    assert quotas(shards, replicas, {}) == expected


def test_the_extra_shard_goes_to_a_replica_that_already_holds_it() -> None:
    assert quotas(4, ["a", "b", "c"], {"c": 2, "a": 1, "b": 1}) == {"c": 2, "a": 1, "b": 1}


@pytest.mark.parametrize("shards", [4, 16])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_assignment_is_balanced_and_complete(shards: int, count: int) -> None:
    replicas = [f"replica-{i}" for i in range(count)]
    target = settle(shards, replicas, {})
    assert set(target) == set(range(shards))
    per_replica = Counter(target.values())
    assert max(per_replica.values()) - min(per_replica.get(r, 0) for r in replicas) <= 1
    apps = Counter(target[shard_of(uid, shards)] for uid in UIDS)
    assert sum(apps.values()) == len(UIDS)


@pytest.mark.parametrize("shards", [4, 16])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_a_joining_replica_takes_only_its_share(shards: int, count: int) -> None:
    replicas = [f"replica-{i}" for i in range(count)]
    before = settle(shards, replicas, {})
    after = settle(shards, [*replicas, "newcomer"], before)
    moved = {s for s in range(shards) if before[s] != after[s]}
    assert all(after[s] == "newcomer" for s in moved), "no shard moves between old replicas"
    assert (
        len(moved) == quotas(shards, [*replicas, "newcomer"], Counter(before.values()))["newcomer"]
    )


@pytest.mark.parametrize("shards", [4, 16])
@pytest.mark.parametrize("count", [2, 3, 5])
def test_a_leaving_replica_moves_only_its_own_shards(shards: int, count: int) -> None:
    replicas = [f"replica-{i}" for i in range(count)]
    before = settle(shards, replicas, {})
    gone = replicas[1]
    survivors = [r for r in replicas if r != gone]
    holders = {s: r for s, r in before.items() if r != gone}  # its Leases expired
    after = settle(shards, survivors, holders)
    moved = {s for s in range(shards) if before[s] != after[s]}
    assert moved == {s for s, r in before.items() if r == gone}
    per_replica = Counter(after.values())
    assert max(per_replica.values()) - min(per_replica.values()) <= 1


def test_every_replica_computes_the_same_target() -> None:
    holders = {0: "b", 1: "b", 2: "b", 5: "a"}
    views = [assign(8, order, holders) for order in (["a", "b", "c"], ["c", "b", "a"])]
    assert views[0] == views[1]


def test_holders_that_are_not_live_are_ignored() -> None:
    target = assign(4, ["a"], {0: "dead", 1: "dead"})
    assert target == dict.fromkeys(range(4), "a")
    assert assign(4, [], {0: "a"}) == {}
