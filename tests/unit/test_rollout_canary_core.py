"""The canary decision core: steps advance only on ready canary pods, pauses survive restarts,
promote / abort / retry are handled once, the progress deadline aborts, and a long pause does not
flap.

The core is pure, so these tests feed it observations and apply its actions to a few integers
(``Pods``: replica counts whose pods are instantly there, ready or not) - the stand-in for what
the executor observes, not a model of the Kubernetes API (that is what the integration test is
for).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gitsync.rollout import canary as core
from gitsync.rollout.canary import (
    CreateCanary,
    Decision,
    DeleteCanary,
    Observation,
    PromoteStable,
    Requests,
    Role,
    Scale,
    WorkloadState,
)
from gitsync.rollout.spec import RolloutSpec, parse_rollout_spec
from gitsync.rollout.status import Phase, RolloutStatus, format_time

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
N = 10


def spec(steps: list[dict[str, Any]], deadline: int = 30, **strategy: Any) -> RolloutSpec:
    return parse_rollout_spec(
        {
            "targetRef": {"name": "web"},
            "progressDeadlineSeconds": deadline,
            "strategy": {"canary": {"steps": steps, **strategy}},
            "metrics": [
                {
                    "name": "ok",
                    "successCondition": "result > 0",
                    "provider": {"web": {"url": "http://x/"}},
                }
            ],
        }
    )


STEPS = spec([{"setWeight": 20}, {"pause": {"duration": "60s"}}, {"setWeight": 50}, {"pause": {}}])


@dataclass
class Pods:
    """Replica counts; pods appear (and, unless ``canary_ready`` is off, turn ready) at once."""

    stable_replicas: int = N
    canary_replicas: int | None = None
    canary_ready: bool = True
    stable_hash: str = "old"
    canary_hash: str = ""
    requests: Requests = field(default_factory=Requests)

    def observe(self, now: datetime) -> Observation:
        stable = WorkloadState(
            replicas=self.stable_replicas,
            pods=self.stable_replicas,
            ready=self.stable_replicas,
            template_hash=self.stable_hash,
            rolled_out=True,
        )
        canary = None
        if self.canary_replicas is not None:
            canary = WorkloadState(
                replicas=self.canary_replicas,
                pods=self.canary_replicas,
                ready=self.canary_replicas if self.canary_ready else 0,
                template_hash=self.canary_hash,
            )
        return Observation(now, stable, canary, self.requests, generation=1)

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, Scale) and action.role == Role.STABLE:
                self.stable_replicas = action.replicas
            elif isinstance(action, Scale):
                self.canary_replicas = action.replicas
            elif isinstance(action, CreateCanary):
                self.canary_replicas, self.canary_hash = 0, action.template_hash
            elif isinstance(action, DeleteCanary):
                self.canary_replicas, self.canary_hash = None, ""
            elif isinstance(action, PromoteStable):
                self.stable_hash, self.stable_replicas = action.template_hash, action.replicas


def started(pods: Pods, now: datetime = T0, the_spec: RolloutSpec = STEPS) -> RolloutStatus:
    decision = core.start(
        the_spec,
        RolloutStatus(phase=Phase.HEALTHY, stable_hash="old"),
        pods.observe(now),
        desired_hash="new",
        held=True,
        replicas=N,
        revision="abc123",
    )
    pods.apply(decision)
    return decision.status


def run(
    pods: Pods,
    status: RolloutStatus,
    now: datetime,
    *,
    the_spec: RolloutSpec = STEPS,
    until: Any = None,
    ticks: int = 50,
    every: float = 1.0,
) -> tuple[RolloutStatus, datetime]:
    """Tick (and apply) until ``until(status)`` or ``ticks`` ticks; returns status and time."""
    for _ in range(ticks):
        decision = core.step(the_spec, status, pods.observe(now))
        pods.apply(decision)
        status = decision.status
        steps_done = status.current_step_index >= len(the_spec.canary.steps)  # type: ignore[union-attr]
        assert (pods.canary_replicas or 0) + pods.stable_replicas <= N + 1 or steps_done, (
            "never more than N+1 pods while steps run"
        )
        if until is not None and until(status):
            break
        now += timedelta(seconds=every)
    return status, now


ONE_STEP = spec([{"setWeight": 50}])
ONE_STEP_DONE = RolloutStatus(
    phase=Phase.PROGRESSING,
    current_step_index=1,
    canary_hash="new",
    stable_hash="old",
    replicas=N,
    last_progress_time=format_time(T0),
)
"""``ONE_STEP`` walked: what is left is the promotion (as stored, e.g. across a crash)."""


def at_step(index: int, phase: Phase) -> Any:
    return lambda s: s.current_step_index == index and s.phase == phase


# -- start ------------------------------------------------------------------------------------


def test_start_creates_the_canary_and_records_the_revision() -> None:
    pods = Pods()
    decision = core.start(
        STEPS,
        RolloutStatus(phase=Phase.HEALTHY, stable_hash="old", aborted_hash="older"),
        pods.observe(T0),
        desired_hash="new",
        held=True,
        replicas=N,
        revision="abc123",
    )
    assert decision.actions == (CreateCanary("new"),)
    s = decision.status
    assert (s.phase, s.current_step_index, s.canary_hash, s.stable_hash) == (
        Phase.PROGRESSING,
        0,
        "new",
        "old",
    )
    assert (s.git_revision, s.replicas, s.aborted_hash) == ("abc123", N, "")
    assert s.last_progress_time == format_time(T0)


def test_a_template_applied_directly_is_healthy_without_a_canary() -> None:
    decision = core.start(
        STEPS,
        RolloutStatus(),
        Pods(stable_hash="new").observe(T0),
        desired_hash="new",
        held=False,
        replicas=N,
        revision="abc",
    )
    assert decision.actions == ()
    s = decision.status
    assert (s.phase, s.stable_hash, s.canary_hash, s.current_weight) == (
        Phase.HEALTHY,
        "new",
        "",
        100,
    )


def test_a_new_template_during_a_rollout_replaces_the_canary() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    decision = core.start(
        STEPS, status, pods.observe(now), desired_hash="newer", held=True, replicas=N, revision="d"
    )
    assert decision.actions == (DeleteCanary(), Scale(Role.STABLE, N), CreateCanary("newer"))
    assert decision.status.canary_hash == "newer" and decision.status.current_step_index == 0
    assert decision.status.pause_until == ""


def test_git_going_back_to_stable_removes_the_canary() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    decision = core.start(
        STEPS, status, pods.observe(now), desired_hash="old", held=False, replicas=N, revision="e"
    )
    assert decision.actions == (DeleteCanary(), Scale(Role.STABLE, N))
    assert decision.status.phase == Phase.HEALTHY and decision.status.canary_hash == ""
    assert "went back to the stable template" in decision.status.message


# -- steps ------------------------------------------------------------------------------------


def test_a_step_does_not_advance_until_the_canary_pods_are_ready() -> None:
    pods = Pods(canary_ready=False)
    status, now = run(pods, started(pods), T0, ticks=10)
    assert status.current_step_index == 0 and status.phase == Phase.PROGRESSING
    assert (pods.canary_replicas, pods.stable_replicas) == (1, 10)  # no stable pod given up
    assert status.current_weight == 0
    pods.canary_ready = True
    status, now = run(pods, status, now, until=at_step(1, Phase.PAUSED))
    assert (pods.canary_replicas, pods.stable_replicas) == (2, 8)
    assert status.current_weight == 20 and status.ready_canary == 2


def test_the_weights_follow_the_documented_rounding_through_all_steps() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    assert (pods.canary_replicas, pods.stable_replicas, status.current_weight) == (2, 8, 20)
    status, now = run(pods, status, now, until=at_step(3, Phase.PAUSED), every=30)
    assert (pods.canary_replicas, pods.stable_replicas, status.current_weight) == (5, 5, 50)
    assert "paused until promoted" in status.message


def test_timed_pause_stores_its_deadline_and_survives_a_restart() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    deadline = now + timedelta(seconds=60)
    assert status.pause_until == format_time(deadline)
    # "restart": a fresh tick from the stored status, half-way: same deadline, still paused
    later = core.step(
        STEPS, RolloutStatus.from_dict(status.to_dict()), pods.observe(now + timedelta(seconds=30))
    )
    assert later.status.phase == Phase.PAUSED and later.status.pause_until == status.pause_until
    assert later.actions == () and 29 <= (later.requeue_after or 0) <= 30
    # one second early: still paused; on time: the next step starts
    early = core.step(STEPS, status, pods.observe(deadline - timedelta(seconds=1)))
    assert early.status.current_step_index == 1 and early.status.phase == Phase.PAUSED
    on_time = core.step(STEPS, status, pods.observe(deadline))
    assert on_time.status.current_step_index == 2 and on_time.status.pause_until == ""
    assert on_time.actions  # already scaling towards setWeight 50


def test_pause_deadline_rounds_up_to_whole_seconds() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    odd = now + timedelta(milliseconds=400)
    entered = core.step(STEPS, replace(status, pause_until=""), pods.observe(odd))
    assert entered.status.pause_until == format_time(now + timedelta(seconds=61))


def test_promote_ends_an_indefinite_pause_once() -> None:
    pods = Pods()
    steps = spec([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])
    status, now = run(
        pods, started(pods, the_spec=steps), T0, the_spec=steps, until=at_step(1, Phase.PAUSED)
    )
    pods.requests = Requests(promote="p1")
    status, now = run(pods, status, now, the_spec=steps, until=at_step(3, Phase.PAUSED))
    assert status.handled_promote == "p1"
    # the same nonce does not promote the next pause
    status, now = run(pods, status, now, the_spec=steps, ticks=5)
    assert status.current_step_index == 3 and status.phase == Phase.PAUSED
    pods.requests = Requests(promote="p2")
    status, now = run(pods, status, now, the_spec=steps, until=lambda s: s.phase == Phase.HEALTHY)
    assert status.phase == Phase.HEALTHY and status.handled_promote == "p2"


def test_a_promote_made_while_scaling_ends_the_next_pause() -> None:
    pods = Pods(canary_ready=False)
    status = started(pods)
    pods.requests = Requests(promote="early")
    status, now = run(pods, status, T0, ticks=3)
    assert status.current_step_index == 0 and status.handled_promote == ""
    pods.canary_ready = True
    status, now = run(pods, status, now, until=at_step(2, Phase.PROGRESSING), ticks=10)
    assert status.current_step_index == 2 and status.handled_promote == "early"


def test_a_request_made_before_the_rollout_started_is_not_applied_to_it() -> None:
    pods = Pods(requests=Requests(promote="stale", abort="stale"))
    status = started(pods)
    assert (status.handled_promote, status.handled_abort) == ("stale", "stale")
    status, _ = run(pods, status, T0, until=at_step(1, Phase.PAUSED))
    assert status.phase == Phase.PAUSED


def test_full_promote_skips_the_remaining_steps_and_completes() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    pods.requests = Requests(promote="go;full")
    promoting = core.step(STEPS, status, pods.observe(now))
    assert promoting.actions == (PromoteStable("new", N),)
    assert promoting.status.current_step_index == 4 and promoting.status.current_weight == 100
    pods.apply(promoting)
    done = core.step(STEPS, promoting.status, pods.observe(now))
    assert done.actions == (DeleteCanary(),)
    s = done.status
    assert (s.phase, s.stable_hash, s.canary_hash, s.current_weight) == (
        Phase.HEALTHY,
        "new",
        "",
        100,
    )


def test_completion_waits_for_the_stable_rolling_update() -> None:
    pods = Pods()
    steps = spec([{"setWeight": 50}])
    status, now = run(
        pods,
        started(pods, the_spec=steps),
        T0,
        the_spec=steps,
        until=lambda s: s.current_step_index == 1,
    )
    assert pods.stable_hash == "new"  # the last step's tick promoted the template
    assert status.phase == Phase.PROGRESSING and status.current_weight == 100
    rolling = replace(
        pods.observe(now),
        stable=WorkloadState(N, N + 2, 8, "new", False, "2 old replicas are pending termination"),
    )
    waiting = core.step(steps, status, rolling)
    assert waiting.actions == () and waiting.status.phase == Phase.PROGRESSING
    assert "pending termination" in waiting.status.message
    # the final rolling update is not held to the progress deadline (the Deployment's own is)
    much_later = replace(rolling, now=now + timedelta(hours=1))
    assert core.step(steps, status, much_later).status.phase == Phase.PROGRESSING
    done = core.step(steps, status, pods.observe(now))
    assert done.status.phase == Phase.HEALTHY and done.actions == (DeleteCanary(),)


def test_a_crash_after_deleting_the_canary_still_completes() -> None:
    steps, status = ONE_STEP, ONE_STEP_DONE
    pods = Pods(stable_hash="new", canary_replicas=None)
    decision = core.step(steps, status, pods.observe(T0))
    assert decision.status.phase == Phase.HEALTHY and decision.actions == ()


def test_an_analysis_step_asks_for_measurements_and_never_passes_without_them() -> None:
    # (measurements and their verdicts: tests/unit/test_rollout_analysis.py)
    pods = Pods()
    steps = spec([{"setWeight": 20}, {"analysis": {"metrics": ["ok"]}}, {"setWeight": 40}])
    status, now = run(
        pods,
        started(pods, the_spec=steps),
        T0,
        the_spec=steps,
        until=at_step(1, Phase.PROGRESSING),
    )
    decision = core.step(steps, status, pods.observe(now + timedelta(hours=2)))
    assert decision.measure == ("ok",) and decision.requeue_after == 0
    assert decision.status.current_step_index == 1, "never a silent pass"
    assert decision.status.phase == Phase.PROGRESSING, "analysing is not a stalled rollout"


# -- abort, deadline, retry -------------------------------------------------------------------


def test_progress_deadline_aborts_and_returns_traffic_to_stable() -> None:
    pods = Pods(canary_ready=False)
    status = started(pods)
    status, now = run(pods, status, T0, until=lambda s: s.phase == Phase.DEGRADED, ticks=60)
    assert status.phase == Phase.DEGRADED
    assert 30 < (now - T0).total_seconds() <= 33
    assert "progress deadline exceeded" in status.message and "canary 0/2" in status.message
    assert (pods.canary_replicas, pods.stable_replicas) == (0, N)
    assert status.aborted_hash == "new" and status.current_step_index == 0


def test_the_deadline_never_fires_early_with_a_sub_second_clock() -> None:
    pods = Pods(canary_ready=False)
    begun = T0 + timedelta(milliseconds=700)
    status = started(pods, now=begun)
    status, now = run(
        pods, status, begun, until=lambda s: s.phase == Phase.DEGRADED, ticks=200, every=0.25
    )
    # the last progress was the canary's first pod, at the first tick (``begun``)
    assert status.phase == Phase.DEGRADED
    assert 30 < (now - begun).total_seconds() <= 31.25


def test_paused_time_does_not_count_against_the_deadline() -> None:
    pods = Pods()
    steps = spec([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}], deadline=30)
    status, now = run(
        pods, started(pods, the_spec=steps), T0, the_spec=steps, until=at_step(1, Phase.PAUSED)
    )
    now += timedelta(hours=3)
    pods.requests = Requests(promote="after-lunch")
    status, now = run(pods, status, now, the_spec=steps, until=lambda s: s.current_step_index == 3)
    assert status.phase != Phase.DEGRADED


def test_no_flapping_during_a_long_pause() -> None:
    pods = Pods()
    steps = spec([{"setWeight": 20}, {"pause": {}}], deadline=30)
    status, now = run(
        pods, started(pods, the_spec=steps), T0, the_spec=steps, until=at_step(1, Phase.PAUSED)
    )
    decisions = [
        core.step(steps, status, pods.observe(now + timedelta(minutes=m))) for m in range(0, 600, 7)
    ]
    assert {d.status for d in decisions} == {status}
    assert all(d.actions == () and d.requeue_after is None for d in decisions)
    # and with a timed pause: the same phase and deadline on every tick until it ends
    pods2 = Pods()
    status2, now2 = run(pods2, started(pods2), T0, until=at_step(1, Phase.PAUSED))
    ticks = [
        core.step(STEPS, status2, pods2.observe(now2 + timedelta(seconds=s))) for s in range(59)
    ]
    assert {(d.status.phase, d.status.pause_until, d.status.message) for d in ticks} == {
        (Phase.PAUSED, status2.pause_until, status2.message)
    }


def test_abort_request_then_no_retry_of_the_same_template() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    pods.requests = Requests(abort="stop")
    aborted = core.step(STEPS, status, pods.observe(now))
    assert aborted.actions == (Scale(Role.STABLE, N), Scale(Role.CANARY, 0))
    assert aborted.status.phase == Phase.DEGRADED and "abort requested" in aborted.status.message
    pods.apply(aborted)
    # the same revision comes again from the next sync: still Degraded, nothing started
    again = core.start(
        STEPS,
        aborted.status,
        pods.observe(now),
        desired_hash="new",
        held=True,
        replicas=N,
        revision="x",
    )
    assert again.actions == () and again.status.phase == Phase.DEGRADED
    assert again.status.aborted_hash == "new"
    # a new template does start
    newer = core.start(
        STEPS,
        again.status,
        pods.observe(now),
        desired_hash="newer",
        held=True,
        replicas=N,
        revision="y",
    )
    assert newer.status.phase == Phase.PROGRESSING and newer.status.aborted_hash == ""


def test_degraded_keeps_traffic_on_stable_if_someone_scales_the_canary() -> None:
    pods = Pods(canary_ready=False)
    status, now = run(pods, started(pods), T0, until=lambda s: s.phase == Phase.DEGRADED, ticks=60)
    pods.canary_replicas, pods.stable_replicas = 3, 7
    decision = core.step(STEPS, status, pods.observe(now))
    assert decision.actions == (Scale(Role.STABLE, N), Scale(Role.CANARY, 0))
    assert decision.status.phase == Phase.DEGRADED


def test_retry_starts_the_aborted_template_again() -> None:
    pods = Pods(canary_ready=False)
    status, now = run(pods, started(pods), T0, until=lambda s: s.phase == Phase.DEGRADED, ticks=60)
    pods.canary_ready = True
    pods.requests = Requests(retry="r1")
    retried = core.step(STEPS, status, pods.observe(now))
    s = retried.status
    assert (s.phase, s.current_step_index, s.aborted_hash, s.handled_retry) == (
        Phase.PROGRESSING,
        0,
        "",
        "r1",
    )
    assert retried.actions == (Scale(Role.CANARY, 1),)
    status, now = run(pods, s, now, until=at_step(1, Phase.PAUSED))
    assert status.current_weight == 20


def test_status_round_trips_through_the_custom_resource() -> None:
    pods = Pods()
    status, _ = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    doc = status.to_dict()
    assert doc["phase"] == "Paused" and doc["currentWeight"] == 20 and doc["pauseUntil"]
    assert RolloutStatus.from_dict(doc) == status
    assert RolloutStatus.from_dict({"currentStepIndex": "two", "phase": 3}) == RolloutStatus()


# -- the branches of one tick: a Deployment missing, nothing to do, completion, holding --------


def test_without_the_stable_deployment_nothing_moves_and_the_deadline_still_runs() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    gone = replace(pods.observe(now + timedelta(seconds=5)), stable=None)
    waiting = core.step(STEPS, status, gone)
    assert waiting.actions == () and waiting.status.current_step_index == 1
    assert waiting.status.message == "waiting for the stable Deployment to exist"
    assert waiting.status.phase == Phase.PROGRESSING
    assert waiting.status.pause_until == status.pause_until
    later = replace(gone, now=now + timedelta(seconds=31))
    aborted = core.step(STEPS, waiting.status, later)
    assert aborted.status.phase == Phase.DEGRADED
    assert "progress deadline exceeded" in aborted.status.message
    assert "waiting for the stable Deployment" in aborted.status.message


def test_a_missing_canary_during_the_steps_waits_without_touching_the_stable() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    gone = replace(pods.observe(now + timedelta(seconds=5)), canary=None)
    decision = core.step(STEPS, status, gone)
    assert decision.actions == ()
    assert decision.status.message == "waiting for the canary Deployment to exist"
    assert decision.status.current_step_index == 1  # the pause is not passed without a canary


def test_promotion_does_not_give_the_stable_the_template_while_the_canary_is_missing() -> None:
    steps, status = ONE_STEP, ONE_STEP_DONE
    decision = core.step(steps, status, Pods(canary_replicas=None).observe(T0))
    assert decision.actions == ()
    assert decision.status.message == "promoting: waiting for the canary Deployment to exist"
    assert decision.status.current_weight == 100 and decision.status.phase == Phase.PROGRESSING


def test_the_final_rolling_update_gives_the_stable_back_its_replicas() -> None:
    steps, status = ONE_STEP, ONE_STEP_DONE
    pods = Pods(stable_hash="new", stable_replicas=5, canary_replicas=5, canary_hash="new")
    decision = core.step(steps, status, pods.observe(T0))
    assert decision.actions == (Scale(Role.STABLE, N),)
    assert decision.status.phase == Phase.PROGRESSING
    assert decision.status.message == "promoting: stable Deployment rolling out"


def test_nothing_to_roll_out_removes_a_leftover_canary_and_consumes_the_requests() -> None:
    status = RolloutStatus(phase=Phase.HEALTHY, stable_hash="old", replicas=N)
    pods = Pods(canary_replicas=2, canary_hash="new", requests=Requests(promote="p", abort="a"))
    decision = core.step(STEPS, status, pods.observe(T0))
    assert decision.actions == (DeleteCanary(),)
    assert (decision.status.handled_promote, decision.status.handled_abort) == ("p", "a")
    assert decision.status.phase == Phase.HEALTHY
    clean = core.step(STEPS, status, Pods().observe(T0))
    assert clean.actions == ()


def test_a_rollout_that_is_not_running_is_only_observed() -> None:
    # e.g. a status written by another version: a canary hash but no running phase
    status = RolloutStatus(phase=Phase.HEALTHY, canary_hash="new", stable_hash="old", replicas=N)
    pods = Pods(canary_replicas=2, canary_hash="new", requests=Requests(abort="a"))
    decision = core.step(STEPS, status, pods.observe(T0))
    assert decision.actions == () and decision.requeue_after is None
    assert decision.status == replace(status, observed_generation=1, ready_canary=2, ready_stable=N)


def test_a_pause_holds_the_weight_reached_so_far_when_someone_scales() -> None:
    pods = Pods()
    steps = spec([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}])
    status, now = run(
        pods, started(pods, the_spec=steps), T0, the_spec=steps, until=at_step(1, Phase.PAUSED)
    )
    pods.canary_replicas, pods.stable_replicas = 4, 6  # scaled by hand during the pause
    decision = core.step(steps, status, pods.observe(now))
    assert decision.actions == (Scale(Role.STABLE, 8), Scale(Role.CANARY, 2))
    assert decision.status.phase == Phase.PAUSED and decision.status.current_step_index == 1
    assert decision.requeue_after == core.PROGRESS_REQUEUE_SECONDS  # until it is back
    status, now = run(pods, decision.status, now, the_spec=steps, ticks=5)
    assert (pods.canary_replicas, pods.stable_replicas) == (2, 8)
    assert status.phase == Phase.PAUSED and status.current_step_index == 1


def test_a_timed_pause_holds_the_weight_too() -> None:
    pods = Pods()
    status, now = run(pods, started(pods), T0, until=at_step(1, Phase.PAUSED))
    pods.canary_replicas, pods.stable_replicas = 0, N
    decision = core.step(STEPS, status, pods.observe(now + timedelta(seconds=10)))
    assert decision.actions == (Scale(Role.CANARY, 1),)
    assert decision.status.phase == Phase.PAUSED
    assert decision.status.pause_until == status.pause_until  # the deadline does not move
