"""The blue-green decision core: the active Service stays on the old pods until a promotion,
which switches it in one update only when every new pod is ready; the old pods stay until the
stored scale-down deadline; a failed post-promotion analysis or an abort switches back.

Like the canary core's tests, these feed the pure core observations and apply its actions to a
``World`` of a few integers and two Service selectors (pods appear, and unless told otherwise
turn ready, at once; a Service's Endpoints are the ready pods its selector matches). That is the
stand-in for what the executor observes, not a model of the Kubernetes API - the integration
test runs the same flows on the real control plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitsync.rollout import bluegreen
from gitsync.rollout.analysis import Reading, RunPhase
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
from gitsync.rollout.routers import PinSelector, ServiceState
from gitsync.rollout.spec import RolloutSpec, parse_rollout_spec
from gitsync.rollout.status import Phase, RolloutStatus, format_time, parse_time

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
N = 4
METRIC = {
    "name": "ok",
    "successCondition": "result >= 0.95",
    "provider": {"web": {"url": "http://metrics/", "jsonPath": "$.ratio"}},
}


def spec(deadline: int = 60, **blue_green: Any) -> RolloutSpec:
    strategy = {"activeService": "web", "previewService": "web-preview", **blue_green}
    return parse_rollout_spec(
        {
            "targetRef": {"name": "web"},
            "progressDeadlineSeconds": deadline,
            "strategy": {"blueGreen": strategy},
            "metrics": [METRIC],
        }
    )


MANUAL = spec(autoPromotionEnabled=False, scaleDownDelaySeconds=30)


@dataclass
class World:
    """Two Deployments and two Services, as replica counts and selector hashes."""

    stable_replicas: int = N
    stable_hash: str = "old"
    stable_labeled: bool = True
    preview_replicas: int | None = None
    preview_hash: str = ""
    preview_ready: bool = True
    active_pin: str = ""
    preview_pin: str = ""
    requests: Requests = field(default_factory=Requests)
    ratio: float | None = 1.0
    """What the analysis metric reads (None: no data)."""

    def _ready(self, pin: str) -> int:
        stable = self.stable_replicas if self.stable_labeled or not pin else 0
        preview = (self.preview_replicas or 0) if self.preview_ready else 0
        if pin == "":
            return stable + preview
        return (stable if pin == self.stable_hash else 0) + (
            preview if pin == self.preview_hash else 0
        )

    def observe(self, now: datetime, readings: dict[str, Reading] | None = None) -> Observation:
        stable = WorkloadState(
            replicas=self.stable_replicas,
            pods=self.stable_replicas,
            ready=self.stable_replicas,
            template_hash=self.stable_hash,
            rolled_out=True,
            labeled_ready=self.stable_replicas if self.stable_labeled else 0,
        )
        preview = None
        if self.preview_replicas is not None:
            ready = self.preview_replicas if self.preview_ready else 0
            preview = WorkloadState(
                replicas=self.preview_replicas,
                pods=self.preview_replicas,
                ready=ready,
                template_hash=self.preview_hash,
                labeled_ready=ready,
            )
        services = {
            "active": ServiceState("web", True, self.active_pin, self._ready(self.active_pin)),
            "preview": ServiceState(
                "web-preview", True, self.preview_pin, self._ready(self.preview_pin)
            ),
        }
        return Observation(
            now, stable, preview, self.requests, 1, readings=readings or {}, services=services
        )

    def decide(self, the_spec: RolloutSpec, status: RolloutStatus, now: datetime) -> Decision:
        """One tick as the executor runs it: read the metrics a decision asks for, decide again."""
        decision = bluegreen.step(the_spec, status, self.observe(now))
        if decision.measure:
            readings = {name: Reading(self.ratio) for name in decision.measure}
            decision = bluegreen.step(the_spec, status, self.observe(now, readings))
        return decision

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, Scale) and action.role == Role.STABLE:
                self.stable_replicas = action.replicas
            elif isinstance(action, Scale):
                self.preview_replicas = action.replicas
            elif isinstance(action, CreateCanary):
                self.preview_replicas, self.preview_hash = 0, action.template_hash
            elif isinstance(action, DeleteCanary):
                self.preview_replicas, self.preview_hash = None, ""
            elif isinstance(action, PromoteStable):
                self.stable_hash, self.stable_replicas = action.template_hash, action.replicas
            elif isinstance(action, PinSelector) and action.service == "web":
                self.active_pin = action.template_hash
            elif isinstance(action, PinSelector):
                self.preview_pin = action.template_hash

    def active_serves(self) -> str:
        """Which template the active Service sends traffic to: old, new, mixed or none."""
        stable = self.stable_replicas if self.active_pin in ("", self.stable_hash) else 0
        preview = 0
        if self.active_pin in ("", self.preview_hash) and self.preview_ready:
            preview = self.preview_replicas or 0
        if stable and preview:
            return "mixed"
        return self.stable_hash if stable else (self.preview_hash if preview else "none")


def started(world: World, the_spec: RolloutSpec = MANUAL, now: datetime = T0) -> RolloutStatus:
    decision = bluegreen.start(
        the_spec,
        RolloutStatus(phase=Phase.HEALTHY, stable_hash="old", replicas=N),
        world.observe(now),
        desired_hash="new",
        held=True,
        replicas=N,
        revision="abc123",
    )
    world.apply(decision)
    return decision.status


def run(
    world: World,
    status: RolloutStatus,
    now: datetime,
    *,
    the_spec: RolloutSpec = MANUAL,
    until: Any = None,
    ticks: int = 40,
    every: float = 1.0,
    watch: Any = None,
) -> tuple[RolloutStatus, datetime, list[Decision]]:
    """Tick until ``until(status)``; returns status, time and every decision taken."""
    decisions = []
    for _ in range(ticks):
        decision = world.decide(the_spec, status, now)
        world.apply(decision)
        decisions.append(decision)
        status = decision.status
        if watch is not None:
            watch(status)
        if until is not None and until(status):
            break
        now += timedelta(seconds=every)
    return status, now, decisions


def at(index: int, phase: Phase) -> Any:
    return lambda s: s.current_step_index == index and s.phase == phase


def restarted(status: RolloutStatus) -> RolloutStatus:
    """The status as a restarted controller reads it back from the Rollout."""
    return RolloutStatus.from_dict(status.to_dict())


# -- start and the preview -------------------------------------------------------------------------


def test_start_creates_the_preview_and_leaves_the_stable_alone() -> None:
    world = World()
    status = started(world)
    assert (world.preview_replicas, world.preview_hash) == (0, "new")
    assert (status.phase, status.current_step_index, status.canary_hash) == (
        Phase.PROGRESSING,
        bluegreen.PREVIEW,
        "new",
    )
    assert (status.stable_hash, status.git_revision, status.replicas) == ("old", "abc123", N)
    assert world.stable_replicas == N


def test_the_active_service_is_pinned_to_the_old_pods_before_the_preview_gets_any() -> None:
    world = World()
    status = started(world)
    first = world.decide(MANUAL, status, T0)
    assert first.actions == (PinSelector("web", "old"), PinSelector("web-preview", "new"))
    world.apply(first)
    second = world.decide(MANUAL, first.status, T0 + timedelta(seconds=1))
    assert second.actions == (Scale(Role.CANARY, N),)


def test_stable_pods_without_the_hash_label_are_never_pinned_to() -> None:
    world = World(stable_labeled=False)
    status, _, decisions = run(world, started(world), T0, ticks=5)
    assert all(not d.actions for d in decisions), "no pin, and so no preview pods"
    assert world.active_pin == "" and world.preview_replicas == 0
    assert "carry rollouts.gitsync.dev/template-hash=old" in status.message
    world.stable_labeled = True
    status, _, _ = run(world, status, T0 + timedelta(seconds=5), until=at(0, Phase.PAUSED))
    assert world.active_pin == "old"


def test_the_active_service_keeps_the_old_pods_until_promoted() -> None:
    world = World()
    served: set[str] = set()
    status, now, _ = run(
        world,
        started(world),
        T0,
        until=at(bluegreen.PREVIEW, Phase.PAUSED),
        watch=lambda s: served.add(world.active_serves()),
    )
    assert served == {"old"}
    assert world.preview_replicas == N and world.preview_pin == "new"
    assert "paused until promoted" in status.message
    assert status.current_weight == 0
    # a long pause stays put (no flapping), with nothing to do
    later, _, decisions = run(world, status, now + timedelta(hours=1), ticks=5)
    assert later.phase == Phase.PAUSED and all(not d.actions for d in decisions)


def test_promotion_switches_the_active_service_in_one_update() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    world.requests = Requests(promote="p1")
    decision = world.decide(MANUAL, status, now)
    pins = [a for a in decision.actions if isinstance(a, PinSelector) and a.service == "web"]
    assert pins == [PinSelector("web", "new")]
    world.apply(decision)
    assert world.active_serves() == "new"
    s = decision.status
    assert (s.current_step_index, s.handled_promote) == (bluegreen.DRAINING, "p1")
    assert s.scale_down_at == format_time(now + timedelta(seconds=30))
    # the weight is measured from the Service, so it shows on the next tick
    assert (s.current_weight, world.decide(MANUAL, s, now).status.current_weight) == (0, 100)


def test_promotion_waits_until_every_new_pod_is_ready() -> None:
    world = World(preview_ready=False)
    the_spec = spec()  # auto-promotion at once
    status, now, decisions = run(world, started(world, the_spec), T0, the_spec=the_spec, ticks=8)
    assert world.active_pin == "old" and status.current_step_index == bluegreen.PREVIEW
    assert not any(PinSelector("web", "new") in d.actions for d in decisions)
    world.preview_ready = True
    status, _, _ = run(world, status, now, the_spec=the_spec, ticks=2)
    assert world.active_pin == "new"


def test_promotion_waits_for_the_preview_service_endpoints() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    world.requests = Requests(promote="p1")
    obs = world.observe(now)
    lagging = replace(obs.services["preview"], ready_endpoints=N - 1)
    decision = bluegreen.step(
        MANUAL, status, replace(obs, services={**obs.services, "preview": lagging})
    )
    assert PinSelector("web", "new") not in decision.actions
    assert "3/4 pods ready" in decision.status.message


def test_auto_promotion_after_seconds_survives_a_restart() -> None:
    the_spec = spec(autoPromotionSeconds=30)
    world = World()
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    deadline = parse_time(status.pause_until)
    assert deadline is not None and "auto-promotion at" in status.message
    status, now, _ = run(
        world,
        restarted(status),
        now + timedelta(seconds=10),
        the_spec=the_spec,
        until=lambda s: s.current_step_index != 0,
    )
    assert status.current_step_index == bluegreen.DRAINING
    assert deadline <= now < deadline + timedelta(seconds=2), "promoted at the stored deadline"


def test_a_smaller_preview_scales_to_full_size_before_the_switch() -> None:
    the_spec = spec(autoPromotionEnabled=False, previewReplicaCount=1)
    world = World()
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    assert world.preview_replicas == 1
    world.requests = Requests(promote="p1")
    world.preview_ready = False
    status, now, _ = run(world, status, now, the_spec=the_spec, ticks=4)
    assert world.preview_replicas == N and world.active_pin == "old"
    world.preview_ready = True
    status, _, _ = run(world, status, now, the_spec=the_spec, ticks=1)
    assert world.active_pin == "new" and status.handled_promote == "p1"


def test_auto_promotion_with_a_smaller_preview_does_not_scale_it_back() -> None:
    the_spec = spec(previewReplicaCount=2)
    world = World()
    sizes: list[int] = []
    run(
        world,
        started(world, the_spec),
        T0,
        the_spec=the_spec,
        until=lambda s: s.current_step_index == bluegreen.DRAINING,
        watch=lambda s: sizes.append(world.preview_replicas or 0),
    )
    assert sizes == sorted(sizes), f"the preview only grows: {sizes}"
    assert world.active_pin == "new"


# -- after the switch ------------------------------------------------------------------------------


def test_the_old_pods_stay_until_the_stored_scale_down_deadline() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    world.requests = Requests(promote="p1")
    status, now, _ = run(world, status, now, until=lambda s: s.current_step_index > 0)
    scale_down = parse_time(status.scale_down_at)
    assert scale_down is not None
    status, now, _ = run(
        world,
        restarted(status),
        now,
        until=lambda s: world.stable_replicas == 0 or s.phase != Phase.PROGRESSING,
    )
    assert scale_down <= now < scale_down + timedelta(seconds=2)
    assert world.active_pin == "new"
    done, _, decisions = run(world, status, now, until=lambda s: s.phase == Phase.HEALTHY)
    assert any(PromoteStable("new", N) in d.actions for d in decisions)
    assert (done.stable_hash, done.canary_hash, done.current_step_index) == (
        "new",
        "",
        bluegreen.COMPLETE,
    )
    assert world.preview_replicas is None, "the preview Deployment is deleted"
    assert (world.stable_hash, world.stable_replicas, world.active_pin) == ("new", N, "new")
    assert world.active_serves() == "new"


def test_post_promotion_analysis_failure_switches_back_to_the_old_pods() -> None:
    the_spec = spec(autoPromotionEnabled=False, postPromotionAnalysis={"metrics": ["ok"]})
    world = World(ratio=0.5)
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    world.requests = Requests(promote="p1")
    status, _, decisions = run(
        world, status, now, the_spec=the_spec, until=lambda s: s.phase == Phase.DEGRADED
    )
    failing = decisions[-1]
    assert failing.actions[:2] == (PinSelector("web", "old"), Scale(Role.CANARY, 0)), (
        "the active Service goes back first, then the preview scales to zero"
    )
    assert world.active_serves() == "old" and world.stable_replicas == N
    assert status.aborted_hash == "new" and "post-promotion analysis failed" in status.message
    [run_] = [r for r in status.analysis_runs if r.step == bluegreen.PROMOTED]
    assert run_.phase == RunPhase.FAILED and run_.measurements[0].value == "0.5"


def test_post_promotion_analysis_success_lets_the_old_pods_go() -> None:
    the_spec = spec(autoPromotionEnabled=False, postPromotionAnalysis={"metrics": ["ok"]})
    world = World(ratio=0.99)
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    world.requests = Requests(promote="p1")
    status, _, _ = run(
        world, status, now, the_spec=the_spec, until=lambda s: s.phase == Phase.HEALTHY
    )
    assert world.stable_hash == "new"
    assert [r.phase for r in status.analysis_runs] == [RunPhase.SUCCESSFUL]


def test_no_data_from_post_promotion_analysis_pauses_with_the_old_pods_kept() -> None:
    the_spec = spec(autoPromotionEnabled=False, postPromotionAnalysis={"metrics": ["ok"]})
    world = World(ratio=None)
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    world.requests = Requests(promote="p1")
    status, now, _ = run(
        world, status, now, the_spec=the_spec, until=at(bluegreen.PROMOTED, Phase.PAUSED)
    )
    assert "inconclusive" in status.message and "paused until promoted" in status.message
    status, now, _ = run(world, status, now + timedelta(minutes=5), the_spec=the_spec, ticks=3)
    assert world.stable_replicas == N, "no scale-down while the analysis has not passed"
    world.requests = Requests(promote="p2")
    status, _, _ = run(
        world, status, now, the_spec=the_spec, until=lambda s: s.phase == Phase.HEALTHY
    )
    assert status.handled_promote == "p2"


def test_pre_promotion_analysis_failure_aborts_before_any_switch() -> None:
    the_spec = spec(prePromotionAnalysis={"metrics": ["ok"]})
    world = World(ratio=0.1)
    status, _, _ = run(
        world,
        started(world, the_spec),
        T0,
        the_spec=the_spec,
        until=lambda s: s.phase == Phase.DEGRADED,
    )
    assert world.active_pin == "old" and world.preview_replicas == 0
    assert "pre-promotion analysis failed" in status.message


def test_a_full_promote_skips_analysis_but_not_the_scale_down_delay() -> None:
    the_spec = spec(
        autoPromotionEnabled=False,
        scaleDownDelaySeconds=20,
        prePromotionAnalysis={"metrics": ["ok"]},
        postPromotionAnalysis={"metrics": ["ok"]},
    )
    world = World(ratio=None)
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    world.requests = Requests(promote="p;full")
    decision = world.decide(the_spec, status, now)
    world.apply(decision)
    assert decision.status.current_step_index == bluegreen.DRAINING
    assert world.active_pin == "new" and world.stable_replicas == N
    assert decision.status.scale_down_at == format_time(now + timedelta(seconds=20))
    assert all(r.phase == RunPhase.INCONCLUSIVE for r in decision.status.analysis_runs)


# -- abort -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("promoted", [False, True])
def test_abort_puts_the_active_service_back_and_the_preview_to_zero(promoted: bool) -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    if promoted:
        world.requests = Requests(promote="p1")
        status, now, _ = run(world, status, now, ticks=1)
        assert world.active_pin == "new"
    world.requests = replace(world.requests, abort="a1")
    decision = world.decide(MANUAL, status, now)
    world.apply(decision)
    expected = (PinSelector("web", "old"),) if promoted else ()
    assert decision.actions == (*expected, Scale(Role.CANARY, 0))
    assert world.active_serves() == "old"
    s = decision.status
    assert (s.phase, s.aborted_hash, s.handled_abort) == (Phase.DEGRADED, "new", "a1")
    assert world.decide(MANUAL, s, now).status.current_weight == 0
    # the same template synced again is not retried; the aborted shape is kept
    again = bluegreen.start(
        MANUAL, s, world.observe(now), desired_hash="new", held=True, replicas=N, revision="x"
    )
    assert again.status.phase == Phase.DEGRADED and again.actions == ()


def test_abort_after_the_old_pods_scaled_down_switches_back_once_they_are_ready() -> None:
    the_spec = spec(autoPromotionEnabled=False, scaleDownDelaySeconds=0)
    world = World()
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    world.requests = Requests(promote="p1")
    status, now, _ = run(
        world, status, now, the_spec=the_spec, until=lambda s: s.current_step_index == 3
    )
    assert world.stable_replicas == 0 and world.stable_hash == "old"
    world.requests = replace(world.requests, abort="a1")
    world.stable_labeled = False  # the old pods are not back yet
    decision = world.decide(the_spec, status, now)
    world.apply(decision)
    assert decision.actions == (Scale(Role.STABLE, N),)
    assert world.active_pin == "new" and world.preview_replicas == N, "the preview keeps serving"
    world.stable_labeled = True
    status, _, _ = run(world, decision.status, now, the_spec=the_spec, ticks=2)
    assert world.active_serves() == "old" and world.preview_replicas == 0


def test_abort_after_the_stable_took_the_new_template_is_refused() -> None:
    the_spec = spec(autoPromotionEnabled=False, scaleDownDelaySeconds=0)
    world = World()
    status, now, _ = run(
        world, started(world, the_spec), T0, the_spec=the_spec, until=at(0, Phase.PAUSED)
    )
    world.requests = Requests(promote="p1")
    status, now, _ = run(
        world, status, now, the_spec=the_spec, until=lambda s: world.stable_hash == "new"
    )
    assert status.phase == Phase.PROGRESSING
    world.requests = replace(world.requests, abort="a1")
    decision = world.decide(the_spec, status, now)
    assert "ignored" in decision.status.message and decision.status.handled_abort == "a1"
    assert decision.status.phase != Phase.DEGRADED and world.active_pin == "new"


def test_the_progress_deadline_aborts_a_preview_that_never_gets_ready() -> None:
    the_spec = spec(deadline=10)
    world = World(preview_ready=False)
    status, now, _ = run(
        world,
        started(world, the_spec),
        T0,
        the_spec=the_spec,
        until=lambda s: s.phase == Phase.DEGRADED,
    )
    assert "progress deadline exceeded" in status.message
    assert now - T0 >= timedelta(seconds=10)
    assert world.active_pin == "old" and world.preview_replicas == 0


def test_retry_starts_an_aborted_template_again() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    world.requests = Requests(abort="a1")
    status, now, _ = run(world, status, now, ticks=1)
    assert status.phase == Phase.DEGRADED
    world.requests = Requests(abort="a1", retry="r1")
    status, _, _ = run(world, status, now, until=at(0, Phase.PAUSED))
    assert world.preview_replicas == N and status.aborted_hash == ""


# -- Git changes mid-rollout -----------------------------------------------------------------------


def test_git_going_back_after_the_switch_switches_back_then_removes_the_preview() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    world.requests = Requests(promote="p1")
    status, now, _ = run(world, status, now, ticks=1)
    assert world.active_pin == "new"
    decision = bluegreen.start(
        MANUAL, status, world.observe(now), desired_hash="old", held=False, replicas=N, revision="r"
    )
    assert decision.actions == (PinSelector("web", "old"), DeleteCanary())
    world.apply(decision)
    status, _, _ = run(world, decision.status, now, until=lambda s: s.phase == Phase.HEALTHY)
    assert world.active_serves() == "old" and status.canary_hash == ""


def test_a_new_template_while_draining_finishes_the_promoted_one_first() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    world.requests = Requests(promote="p1")
    status, now, _ = run(world, status, now, ticks=1)
    decision = bluegreen.start(
        MANUAL,
        status,
        world.observe(now),
        desired_hash="newer",
        held=True,
        replicas=N,
        revision="r",
    )
    assert decision.status.canary_hash == "new" and DeleteCanary() not in decision.actions
    assert "Git renders newer next" in decision.status.message
    assert world.active_pin == "new"


def test_a_new_template_before_the_switch_replaces_the_preview() -> None:
    world = World()
    status, now, _ = run(world, started(world), T0, until=at(0, Phase.PAUSED))
    decision = bluegreen.start(
        MANUAL,
        status,
        world.observe(now),
        desired_hash="newer",
        held=True,
        replicas=N,
        revision="r",
    )
    assert decision.actions == (DeleteCanary(), CreateCanary("newer"))
    assert decision.status.canary_hash == "newer" and world.active_pin == "old"


def test_a_first_deploy_is_healthy_without_a_preview() -> None:
    decision = bluegreen.start(
        MANUAL,
        RolloutStatus(),
        World(stable_hash="new").observe(T0),
        desired_hash="new",
        held=False,
        replicas=N,
        revision="r",
    )
    assert decision.actions == ()
    assert (decision.status.phase, decision.status.stable_hash) == (Phase.HEALTHY, "new")


def test_a_tick_without_a_rollout_never_scales_the_stable_deployment() -> None:
    world = World(active_pin="old")
    decision = bluegreen.step(MANUAL, RolloutStatus(), world.observe(T0))
    assert decision.actions == ()


# -- before the preview gets pods: what is waited for ---------------------------------------------


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("active", "waiting for the active Service web to exist"),
        ("preview", "waiting for the preview Service web-preview to exist"),
    ],
)
def test_a_missing_service_holds_the_preview_back_until_the_deadline(
    role: str, message: str
) -> None:
    world = World()
    status = started(world)
    observed = world.observe(T0)
    services = dict(observed.services)
    services[role] = replace(services[role], exists=False)
    missing = replace(observed, services=services)
    waiting = bluegreen.step(MANUAL, status, missing)
    assert waiting.actions == (), "no pin and no preview pod without both Services"
    assert waiting.status.message == message
    assert waiting.status.phase == Phase.PROGRESSING
    late = bluegreen.step(MANUAL, waiting.status, replace(missing, now=T0 + timedelta(seconds=61)))
    assert late.status.phase == Phase.DEGRADED
    assert "progress deadline exceeded" in late.status.message and message in late.status.message


def test_a_missing_preview_deployment_is_waited_for_once_the_services_are_pinned() -> None:
    world = World()
    status = started(world)
    pinned = world.decide(MANUAL, status, T0)
    world.apply(pinned)
    world.preview_replicas = None  # deleted by hand between two ticks
    waiting = world.decide(MANUAL, pinned.status, T0 + timedelta(seconds=1))
    assert waiting.actions == ()
    assert waiting.status.message == "waiting for the preview Deployment to exist"
    assert world.active_pin == "old" and world.stable_replicas == N
