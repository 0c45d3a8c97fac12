"""The decisions inside ``Syncer.sync``, without a cluster: refuse an empty render, what is pruned
and when (off, by wave, ``PruneLast``), why a prune candidate is kept, which objects are applied,
what happens after each wave (go on, wait for health, abort), what the inventory keeps, and the
waits' timing (wave health, API retries) on an injected clock. They are pure functions over the
sync's own data (``Comparison``, ``Item``, ``InventoryEntry``, ``SyncResult``); the integration
tests (``tests/integration/test_sync.py``) show ``Syncer.sync`` wires them to a real API server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gitsync.application import Application, parse_application
from gitsync.diff import ResourceDiff
from gitsync.health import Health
from gitsync.kube import ApiError
from gitsync.model import HealthStatus, ResourceKey, ResultCode, SyncStatus
from gitsync.policy import Policy
from gitsync.sync import Comparison, EmptyRenderError, ResourceResult, SyncResult
from gitsync.sync.inventory import InventoryEntry
from gitsync.sync.syncer import (
    Item,
    WaveHealth,
    WaveVerdict,
    after_wave,
    apply_verdict,
    inventory_to_keep,
    judge_wave_health,
    plan_prune,
    prune_verdict,
    refuse_empty_render,
    wait_until_healthy,
    with_retries,
)
from gitsync.sync.tracking import TRACKING_ANNOTATION, tracking_id
from gitsync.sync_options import PRUNE_ANNOTATION

APP_NS = "shop"


def application(**automated: bool) -> Application:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "web", "namespace": APP_NS},
            "spec": {
                "source": {"repoURL": "https://git.example.com/shop.git", "path": "app"},
                "destination": {"namespace": APP_NS},
                "syncPolicy": {"automated": automated},
            },
        }
    )


def key(name: str, kind: str = "ConfigMap") -> ResourceKey:
    return ResourceKey("", kind, APP_NS, name)


def entry(name: str) -> InventoryEntry:
    return InventoryEntry("v1", "ConfigMap", APP_NS, name)


def item(name: str, status: SyncStatus | None = None, error: str = "") -> Item:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    diff = None if status is None else ResourceDiff(key(name), status)
    return Item(key(name), obj, wave=0, diff=diff, error=error)


def live(name: str, *, owner: str = f"{APP_NS}/web", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": APP_NS,
            "uid": "u-1",
            "annotations": {TRACKING_ANNOTATION: tracking_id(owner, key(name)), **annotations},
        },
    }


class Clock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# -- an empty render ---------------------------------------------------------------------------


def test_an_empty_render_of_an_app_that_manages_objects_is_refused() -> None:
    leftovers = Comparison([], {key("a"): entry("a")}, {key("a"): entry("a")})
    with pytest.raises(EmptyRenderError, match="allowEmpty"):
        refuse_empty_render(application(prune=True), leftovers, "c" * 40)


@pytest.mark.parametrize(
    ("comparison", "allow_empty"),
    [
        (Comparison([], {key("a"): entry("a")}, {key("a"): entry("a")}), True),
        (Comparison([], {}, {}), False),  # a new app with nothing yet
        (Comparison([item("b")], {key("a"): entry("a")}, {key("a"): entry("a")}), False),
    ],
)
def test_an_empty_render_goes_on_when_allowed_or_harmless(
    comparison: Comparison, allow_empty: bool
) -> None:
    refuse_empty_render(application(prune=True, allowEmpty=allow_empty), comparison, "c" * 40)


# -- what is pruned, and when ------------------------------------------------------------------


def test_prune_off_keeps_every_leftover_and_reads_nothing() -> None:
    asked: list[InventoryEntry] = []

    def wave_of(e: InventoryEntry) -> int:
        asked.append(e)
        return 0

    plan = plan_prune({key("a"): entry("a")}, prune=False, last=False, wave_of=wave_of)
    assert plan.candidates == {} and plan.by_wave == {}
    assert asked == []


def test_prune_goes_by_the_wave_the_live_object_declares() -> None:
    waves = {"early": -1, "late": 3, "plain": 0}
    extraneous = {key(n): entry(n) for n in waves}
    plan = plan_prune(extraneous, prune=True, last=False, wave_of=lambda e: waves[e.name])
    assert plan.candidates == extraneous
    assert {w: [e.name for e in es] for w, es in plan.by_wave.items()} == {
        -1: ["early"],
        3: ["late"],
        0: ["plain"],
    }


def test_prune_last_waits_for_every_wave_and_reads_no_wave() -> None:
    def wave_of(e: InventoryEntry) -> int:
        raise AssertionError("PruneLast does not read the live object's wave")

    plan = plan_prune({key("a"): entry("a")}, prune=True, last=True, wave_of=wave_of)
    assert [e.name for e in plan.last] == ["a"] and plan.by_wave == {}
    assert list(plan.candidates) == [key("a")]


def test_an_object_s_own_prune_last_goes_after_every_wave() -> None:
    """``wave_of`` answers None for a live object annotated ``PruneLast=true``."""
    waves = {"own-last": None, "plain": 0}
    plan = plan_prune(
        {key(n): entry(n) for n in waves}, prune=True, last=False, wave_of=lambda e: waves[e.name]
    )
    assert [e.name for e in plan.last] == ["own-last"]
    assert {w: [e.name for e in es] for w, es in plan.by_wave.items()} == {0: ["plain"]}


@pytest.mark.parametrize(
    ("obj", "dry_run", "expected"),
    [
        (None, False, (ResultCode.PRUNED, "already gone")),
        (live("a", owner="other/app"), False, (ResultCode.PRUNE_SKIPPED, "not owned by this app")),
        (live("a", **{PRUNE_ANNOTATION: "False"}), False, (ResultCode.PRUNE_SKIPPED, "false")),
        (live("a"), True, (ResultCode.PRUNED, "would be pruned (dry run)")),
    ],
    ids=["gone", "not-ours", "prune-false", "dry-run"],
)
def test_a_prune_candidate_that_is_not_deleted_says_why(
    obj: dict[str, Any] | None, dry_run: bool, expected: tuple[ResultCode, str]
) -> None:
    verdict = prune_verdict(
        application(prune=True), key("a"), obj, policy=Policy(), namespaced=True, dry_run=dry_run
    )
    assert verdict is not None
    assert verdict[0] == expected[0] and expected[1] in verdict[1]


def test_a_prune_the_destination_policy_refuses_is_skipped() -> None:
    outside = live("a")
    outside["metadata"]["namespace"] = "kube-system"  # the default policy: own namespace only
    verdict = prune_verdict(
        application(prune=True), key("a"), outside, policy=Policy(), namespaced=True, dry_run=False
    )
    assert verdict is not None
    assert verdict[0] == ResultCode.PRUNE_SKIPPED and "denied by destination policy" in verdict[1]


def test_an_owned_object_outside_git_is_deleted() -> None:
    verdict = prune_verdict(
        application(prune=True),
        key("a"),
        live("a"),
        policy=Policy(),
        namespaced=True,
        dry_run=False,
    )
    assert verdict is None


# -- what is applied ---------------------------------------------------------------------------


def test_an_object_that_could_not_be_compared_fails_without_an_apply() -> None:
    for failed in (item("a", None, "no kind Widget"), item("a", SyncStatus.UNKNOWN, "timeout")):
        result = apply_verdict(failed)
        assert result is not None and result.code == ResultCode.SYNC_FAILED


def test_a_synced_object_is_not_written() -> None:
    result = apply_verdict(item("a", SyncStatus.SYNCED))
    assert result == ResourceResult(key("a"), ResultCode.SYNCED, "unchanged", 0)


@pytest.mark.parametrize(
    "changed",
    [
        item("a", SyncStatus.OUT_OF_SYNC),
        item("a", SyncStatus.MISSING),
        # the dry run failed but the declared fields differ: the apply reports the real error
        item("a", SyncStatus.OUT_OF_SYNC, "dry-run apply failed: field is immutable"),
    ],
)
def test_an_object_that_differs_is_applied(changed: Item) -> None:
    assert apply_verdict(changed) is None


# -- after each wave ---------------------------------------------------------------------------


def failed(*codes: ResultCode) -> SyncResult:
    return SyncResult("c" * 40, [ResourceResult(key(str(i)), c) for i, c in enumerate(codes)])


def test_a_failed_wave_stops_the_later_ones() -> None:
    result = failed(ResultCode.SYNCED, ResultCode.SYNC_FAILED)
    assert after_wave(result, applied=True, is_last=False, dry_run=False) == WaveVerdict.ABORT
    assert after_wave(result, applied=False, is_last=False, dry_run=True) == WaveVerdict.ABORT


def test_the_next_wave_waits_for_this_one_to_be_healthy() -> None:
    result = failed(ResultCode.SYNCED, ResultCode.PRUNED, ResultCode.PRUNE_SKIPPED)
    verdict = after_wave(result, applied=True, is_last=False, dry_run=False)
    assert verdict == WaveVerdict.WAIT_HEALTHY


@pytest.mark.parametrize(
    ("applied", "is_last", "dry_run", "codes"),
    [
        (True, True, False, (ResultCode.SYNC_FAILED,)),  # the last wave: nothing after it
        (True, False, True, ()),  # a dry run creates nothing to wait for
        (False, False, False, ()),  # a wave that only pruned
    ],
)
def test_no_wait_when_there_is_nothing_to_wait_for(
    applied: bool, is_last: bool, dry_run: bool, codes: tuple[ResultCode, ...]
) -> None:
    verdict = after_wave(failed(*codes), applied=applied, is_last=is_last, dry_run=dry_run)
    assert verdict == WaveVerdict.NEXT


# -- what the inventory keeps ------------------------------------------------------------------


def test_the_inventory_keeps_what_was_not_pruned() -> None:
    comparison = Comparison(
        [item("rendered")],
        {key(n): entry(n) for n in ("pruned", "untried", "kept", "taken-over")},
        {},
    )
    outcomes = {
        key("pruned"): ResultCode.PRUNED,
        key("kept"): ResultCode.PRUNE_SKIPPED,
        key("taken-over"): ResultCode.PRUNE_SKIPPED,
    }
    keep = inventory_to_keep(comparison, outcomes, lambda e: e.name != "taken-over")
    assert [e.name for e in keep] == ["rendered", "untried", "kept"]


# -- the waits, on an injected clock -----------------------------------------------------------

HEALTHY = Health(HealthStatus.HEALTHY, "")
PROGRESSING = Health(HealthStatus.PROGRESSING, "1 of 3 replicas ready")
DEGRADED = Health(HealthStatus.DEGRADED, "CrashLoopBackOff")
DEPLOYMENT = ResourceKey("apps", "Deployment", APP_NS, "web")
ROLLOUT = ResourceKey("gitsync.dev", "Rollout", APP_NS, "web")


def test_wave_health_verdicts() -> None:
    assert judge_wave_health([(key("a"), HEALTHY)]) == (WaveHealth.HEALTHY, "")
    assert judge_wave_health([(ROLLOUT, PROGRESSING)])[0] == WaveHealth.HEALTHY  # a canary runs
    verdict, why = judge_wave_health([(DEPLOYMENT, PROGRESSING), (key("a"), DEGRADED)])
    assert verdict == WaveHealth.DEGRADED and "CrashLoopBackOff" in why
    verdict, why = judge_wave_health([(DEPLOYMENT, PROGRESSING)])
    assert verdict == WaveHealth.PENDING and "1 of 3" in why


def wait_30s(
    read: Callable[[], list[tuple[ResourceKey, Health]]], clock: Clock
) -> tuple[bool, str]:
    """Wait up to 30 s for the wave ``read`` reports, looking every 5 s."""
    return wait_until_healthy(read, timeout=30.0, poll_interval=5.0, clock=clock, sleep=clock.sleep)


def test_a_wave_that_stays_progressing_times_out_on_the_clock() -> None:
    clock = Clock()
    healthy, why = wait_30s(lambda: [(DEPLOYMENT, PROGRESSING)], clock)
    assert not healthy and why.startswith("timed out after 30s") and "1 of 3" in why
    assert clock.slept == [5.0] * 6


def test_a_wave_that_becomes_healthy_ends_the_wait_and_a_degraded_one_at_once() -> None:
    clock = Clock()
    answers = iter([[(DEPLOYMENT, PROGRESSING)], [(DEPLOYMENT, HEALTHY)]])
    assert wait_30s(lambda: next(answers), clock) == (True, "")
    assert clock.slept == [5.0]
    healthy, why = wait_30s(lambda: [(DEPLOYMENT, DEGRADED)], clock)
    assert not healthy and "Degraded" in why and clock.slept == [5.0]


def test_api_retries_back_off_exponentially_and_honour_retry_after() -> None:
    clock = Clock()
    errors = [
        ApiError(503, "ServiceUnavailable", "etcd"),
        ApiError(503, "ServiceUnavailable", "etcd"),
        ApiError(429, "TooManyRequests", "slow down", retry_after=6.0),
        ApiError(503, "ServiceUnavailable", "etcd"),
    ]

    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "applied"

    assert with_retries(call, attempts=5, base_delay=0.5, max_delay=8.0, sleep=clock.sleep) == (
        "applied"
    )
    assert clock.slept == [0.5, 1.0, 6.0, 4.0]


def test_api_retries_give_up_after_the_last_attempt() -> None:
    clock = Clock()

    def unavailable() -> None:
        raise ApiError(503, "ServiceUnavailable", "etcd")

    with pytest.raises(ApiError):
        with_retries(unavailable, attempts=3, sleep=clock.sleep)
    assert clock.slept == [0.5, 1.0]
