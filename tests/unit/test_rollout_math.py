"""Replica arithmetic for canaries without a router, and the pod-template hash.

The table covers every N from 1 to 10 and every weight from 0 to 100: the promises users rely on
(a canary gets pods as soon as it gets weight, stable keeps pods until 100, never more than N+1
pods, never fewer than N) are checked on each of the 1010 cells, and the rounding rule itself on
a hand-written table.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from gitsync.rollout.math import (
    HASH_LABEL,
    ROLE_LABEL,
    actual_weight,
    canary_replicas,
    next_replicas,
    round_half_up,
    template_hash,
)


def check_cell(total: int, weight: int) -> None:
    canary, stable = canary_replicas(total, weight)
    assert canary >= 0 and stable >= 0
    if weight > 0:
        assert canary >= 1, "never 0 canary pods at w > 0"
    if weight < 100:
        assert stable >= 1, "never all pods on the canary at w < 100"
    if weight == 0:
        assert (canary, stable) == (0, total)
    if weight == 100:
        assert (canary, stable) == (total, 0)
    assert total <= canary + stable <= total + 1, "never below N, never above N + 1"
    if total >= 2:
        assert canary + stable == total  # only N = 1 needs the extra pod


@pytest.mark.parametrize("total", range(1, 11))
def test_every_cell_keeps_the_promises(total: int) -> None:
    for weight in range(101):
        try:
            check_cell(total, weight)
        except AssertionError as exc:
            raise AssertionError(f"N={total} w={weight}: {exc}") from exc


@pytest.mark.parametrize("total", range(1, 11))
def test_monotonic_in_weight(total: int) -> None:
    shares = [canary_replicas(total, w) for w in range(101)]
    for (c1, s1), (c2, s2) in itertools.pairwise(shares):
        assert c2 >= c1 and s2 <= s1


@pytest.mark.parametrize(
    ("total", "weight", "expected"),
    [
        (10, 20, (2, 8)),
        (10, 50, (5, 5)),
        (10, 5, (1, 9)),  # 0.5 rounds half up to 1
        (10, 15, (2, 8)),  # 1.5 -> 2
        (10, 14, (1, 9)),  # 1.4 -> 1
        (10, 95, (9, 1)),  # 9.5 -> 10, clamped to N-1
        (4, 25, (1, 3)),
        (4, 10, (1, 3)),  # 0.4 -> 0, raised to 1
        (3, 50, (2, 1)),  # 1.5 -> 2
        (3, 90, (2, 1)),  # 2.7 -> 3, clamped
        (2, 1, (1, 1)),
        (2, 99, (1, 1)),
        (1, 1, (1, 1)),  # N = 1: one of each, N + 1 in total
        (1, 99, (1, 1)),
        (1, 100, (1, 0)),
        (7, 33, (2, 5)),  # 2.31 -> 2
        (7, 50, (4, 3)),  # 3.5 -> 4
    ],
)
def test_rounding_rule(total: int, weight: int, expected: tuple[int, int]) -> None:
    assert canary_replicas(total, weight) == expected


def test_zero_replicas_and_bad_input() -> None:
    assert canary_replicas(0, 50) == (0, 0)
    with pytest.raises(ValueError):
        canary_replicas(-1, 10)
    with pytest.raises(ValueError):
        canary_replicas(3, 101)
    with pytest.raises(ValueError):
        actual_weight(-1, 2)


def test_round_half_up_is_exact_for_ties() -> None:
    assert [round_half_up(n, 2) for n in range(6)] == [0, 1, 1, 2, 2, 3]
    assert round_half_up(2 * 35, 100) == 1  # 0.7
    assert round_half_up(10 * 25, 100) == 3  # 2.5 up, not to even


def test_actual_weight_counts_ready_pods() -> None:
    assert actual_weight(0, 0) == 0
    assert actual_weight(2, 8) == 20
    assert actual_weight(1, 2) == 33
    assert actual_weight(2, 1) == 67
    assert actual_weight(1, 7) == 13  # 12.5 -> 13
    assert actual_weight(3, 0) == 100


@pytest.mark.parametrize("total", range(2, 11))
def test_the_canary_share_is_the_closest_the_pod_count_allows(total: int) -> None:
    for weight in range(1, 100):
        canary, _ = canary_replicas(total, weight)
        # in integers (x N): exact, so ties are ties; a tie goes to the larger canary (half up)
        distances = {c: abs(100 * c - weight * total) for c in range(1, total)}
        best = min(distances.values())
        assert canary == max(c for c, d in distances.items() if d == best), (total, weight)


# -- moving between steps ---------------------------------------------------------------------


def converge(
    total: int, start: tuple[int, int], weight: int, ready_lag: int = 0
) -> list[tuple[int, int]]:
    """Replica counts along the way when canary pods turn ready ``ready_lag`` calls late."""
    target = canary_replicas(total, weight)
    current, seen = start, [start]
    history = [start[0]]
    for _ in range(4 * total + 10):
        ready = history[max(0, len(history) - 1 - ready_lag)]
        current = next_replicas(total, target, current, min(ready, current[0]))
        history.append(current[0])
        seen.append(current)
        if current == target and ready >= target[0]:
            break
    assert current == target, f"did not reach {target}: {seen}"
    return seen


@pytest.mark.parametrize("total", range(1, 11))
@pytest.mark.parametrize("lag", [0, 1, 3])
def test_steps_never_exceed_n_plus_one_nor_drop_below_n(total: int, lag: int) -> None:
    for weight in range(101):
        for counts in converge(total, (0, total), weight, ready_lag=lag):
            assert total <= sum(counts) <= total + 1, (total, weight, counts)
    # and from one step's share to the next one's
    for low, high in itertools.pairwise([0, 5, 20, 25, 50, 80, 100]):
        for counts in converge(total, canary_replicas(total, low), high, ready_lag=lag):
            assert total <= sum(counts) <= total + 1, (total, low, high, counts)


def test_no_stable_pod_goes_before_a_canary_pod_is_ready() -> None:
    # canary pods never become ready: stable never shrinks
    current = (0, 10)
    for _ in range(10):
        current = next_replicas(10, (5, 5), current, ready_canary=0)
    assert current == (1, 10)


def test_lower_weight_returns_pods_to_stable_at_once() -> None:
    assert next_replicas(10, (0, 10), (5, 5), ready_canary=5) == (0, 10)
    assert next_replicas(10, (2, 8), (5, 5), ready_canary=5) == (2, 8)


# -- the template hash ------------------------------------------------------------------------

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web", "tier": "front"}},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "web:1",
                "ports": [{"containerPort": 8080}],
                "resources": {"limits": {"cpu": 1.0}},
            }
        ]
    },
}


def reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def test_hash_ignores_key_order_nulls_and_equivalent_spellings() -> None:
    h = template_hash(TEMPLATE)
    assert len(h) == 16 and h.isalnum()
    assert template_hash(reordered(TEMPLATE)) == h
    spelled = copy.deepcopy(TEMPLATE)
    spelled["metadata"]["creationTimestamp"] = None
    spelled["metadata"]["annotations"] = None
    spelled["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"  # what sync adds
    spelled["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 1
    assert template_hash(spelled) == h


def test_hash_ignores_the_labels_a_rollout_adds() -> None:
    labelled = copy.deepcopy(TEMPLATE)
    labelled["metadata"]["labels"].update({ROLE_LABEL: "canary", HASH_LABEL: "abc"})
    assert template_hash(labelled) == template_hash(TEMPLATE)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["spec"]["containers"][0].update(image="web:2"),
        lambda t: t["metadata"]["labels"].update(tier="back"),
        lambda t: t["metadata"].update(annotations={"kubectl.kubernetes.io/restartedAt": "x"}),
        lambda t: t["spec"]["containers"][0]["ports"][0].update(protocol="UDP"),
        lambda t: t["spec"].update(volumes=[{"name": "v", "emptyDir": {}}]),
    ],
)
def test_hash_changes_with_the_template(change: Any) -> None:
    changed = copy.deepcopy(TEMPLATE)
    change(changed)
    assert template_hash(changed) != template_hash(TEMPLATE)


def test_hash_does_not_modify_its_input() -> None:
    original = copy.deepcopy(TEMPLATE)
    template_hash(TEMPLATE)
    assert original == TEMPLATE
