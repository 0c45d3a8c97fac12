"""The canary state machine without a traffic router: a pure decision core.

``start`` (a sync rendered a Deployment a Rollout governs) and ``step`` (one tick of a rollout in
progress) take the Rollout's spec, its persisted status and an ``Observation`` of the cluster
(the live stable and canary Deployments, their pods' readiness, the request annotations, the
time) and return a ``Decision``: the new status and the ``Action``s that get the cluster there.
They read no clock and do no I/O - ``gitsync.rollout.executor`` observes, executes the actions
through the Kubernetes adapter and writes the status - so every rule below is table-tested, and
the same inputs always give the same phase (no flapping during a long pause).

The canary is a second Deployment, ``<name>-canary``, running the new template; its pods carry
the labels the stable Service selects, so the Service sends each ready pod its share of traffic.
Per step:

* ``setWeight: w`` - the canary is scaled to ``math.canary_replicas(N, w)`` and the stable
  Deployment to the rest, one surge pod at a time (``math.next_replicas``: never more than N+1
  pods, never fewer than N ready). The step is done only when the canary's pods are **ready** and
  the stable side is down to its share; the reported weight is measured from ready pods.
* ``pause: {duration}`` - the deadline is stored in ``status.pauseUntil`` on entry, so a restarted
  controller neither restarts nor skips it. ``pause: {}`` waits for a promote request.
* ``analysis: {metrics}`` - the metrics are measured while the weight reached so far holds
  (``gitsync.rollout.analysis`` has the rules): the decision names the metrics due now
  (``Decision.measure``), the executor reads them and decides again with the readings
  (``Observation.readings``), and ``requeue_after`` says when the next one is due. A successful
  analysis goes on, a failed one aborts (below), an inconclusive one (no data, a metric source
  that keeps failing) pauses with the reason until promoted - never a silent pass. Time spent
  analysing does not count against the progress deadline (``count`` x ``interval`` bounds it).
* after the last step (or a full promote) the stable Deployment gets the new template (a normal
  rolling update, to N replicas); once it is rolled out the canary is deleted: Healthy.

**With a traffic router** (``trafficRouting``; see ``gitsync.rollout.routers``) the stable
Deployment stays at N and the canary runs ``routers.routed_canary_replicas(N, w)`` pods. Before
the canary gets pods, the stable Service is pinned to the stable pods and the canary Service to
the canary pods (selector key ``template-hash``), so each selects one side only. A step raises
the router's weight only once that many canary pods are ready in the canary Service's Endpoints
(lowering it never waits), and is done when the router carries the weight. Promotion: the canary
scales to N, the stable Service switches to the canary pods and the router goes back to 100/0 in
one tick, then the stable Deployment gets the new template (its pods carry the same hash, so the
stable Service keeps selecting new pods only) and the canary goes. Abort: weight 0 first.

Abort (a request, or ``progressDeadlineSeconds`` without progress while not paused): stable back
to N and canary to 0 in the same tick, so traffic is back on stable as soon as the canary pods go;
phase Degraded with the reason. The aborted template is not tried again until Git renders a
different one or a retry request comes. Progress is a step advancing, a replica count changing or
one more canary pod turning ready; time spent paused never counts against the deadline, and
neither does the final rolling update of the stable Deployment (its own progress deadline and
health cover it). Status keeps whole seconds, rounded up: a pause never ends early and the
deadline never fires early (each at most a second late). A request to promote while no pause is
current is kept for the next pause; requests made while nothing could act on them (no rollout
running, or before one starts) are marked handled and do nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from gitsync.rollout.analysis import AnalysisRun, Reading, RunPhase, analyse_step, skip_step
from gitsync.rollout.math import HASH_LABEL, actual_weight, canary_replicas, next_replicas
from gitsync.rollout.routers import (
    PinSelector,
    RouterState,
    ServiceState,
    SetRouterWeight,
    routed_canary_replicas,
)
from gitsync.rollout.spec import Analysis, CanaryStep, Pause, RolloutSpec, SetWeight
from gitsync.rollout.status import (
    ABORT_ANNOTATION,
    FULL_PROMOTE_SUFFIX,
    PROMOTE_ANNOTATION,
    RETRY_ANNOTATION,
    Phase,
    RolloutStatus,
    format_time,
    parse_time,
)

PROGRESS_REQUEUE_SECONDS = 2.0
"""How soon to look again while pods are being scaled or rolled."""


@dataclass(frozen=True)
class WorkloadState:
    """What the core needs to know about one live Deployment and its pods."""

    replicas: int
    """``spec.replicas``: what was asked for."""
    pods: int = 0
    """Pods that are not terminating."""
    ready: int = 0
    """Pods that are not terminating and Ready."""
    template_hash: str = ""
    """Stable: its ``stable-hash`` annotation. Canary: its ``template-hash`` label."""
    rolled_out: bool = False
    """Healthy by ``gitsync.health``: the spec observed, all replicas updated and available."""
    health_message: str = ""
    labeled_ready: int = 0
    """Ready pods that carry ``template-hash: <template_hash>``: what a Service pinned to this
    template selects (``routers``). All of a canary's or preview's ready pods do."""


@dataclass(frozen=True)
class Requests:
    """The request annotations on the Rollout (nonces; "" when absent)."""

    promote: str = ""
    abort: str = ""
    retry: str = ""

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> Requests:
        return cls(
            promote=str(annotations.get(PROMOTE_ANNOTATION, "")),
            abort=str(annotations.get(ABORT_ANNOTATION, "")),
            retry=str(annotations.get(RETRY_ANNOTATION, "")),
        )


@dataclass(frozen=True)
class Observation:
    """The cluster as the executor saw it for this decision."""

    now: datetime
    stable: WorkloadState | None
    canary: WorkloadState | None
    requests: Requests = Requests()
    generation: int = 0
    readings: Mapping[str, Reading] = field(default_factory=dict)
    """Metric readings the executor took at ``now`` because a decision asked (``measure``)."""
    services: Mapping[str, ServiceState] = field(default_factory=dict)
    """The Services the rollout pins, by role: ``stable``/``canary`` with a router,
    ``active``/``preview`` for blue-green; empty for a canary without a router."""
    router: RouterState | None = None
    """The traffic router of a canary with ``trafficRouting``; None without one."""


class Role(enum.StrEnum):
    STABLE = "stable"
    CANARY = "canary"


@dataclass(frozen=True)
class Scale:
    """Set ``spec.replicas`` of the stable or canary Deployment."""

    role: Role
    replicas: int


@dataclass(frozen=True)
class CreateCanary:
    """Create the canary Deployment (0 replicas) from the rendered Deployment with this hash."""

    template_hash: str


@dataclass(frozen=True)
class DeleteCanary:
    """Delete the canary Deployment (and, by garbage collection, its pods)."""


@dataclass(frozen=True)
class PromoteStable:
    """Give the stable Deployment the canary's template, ``replicas`` and stable-hash."""

    template_hash: str
    replicas: int


Action = Scale | CreateCanary | DeleteCanary | PromoteStable | PinSelector | SetRouterWeight

STABLE_SERVICE = "stable"
CANARY_SERVICE = "canary"


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None
    """Seconds until the next tick is useful; None: only when something changes."""
    measure: tuple[str, ...] = ()
    """Metrics due now without a reading: read them, then decide again with ``readings``."""


def unsupported(spec: RolloutSpec) -> str:
    """Why this version cannot run ``spec`` ("" when it can): every strategy ``spec`` parses
    runs (blue-green in ``gitsync.rollout.bluegreen``, routers here)."""
    del spec
    return ""


def _steps(spec: RolloutSpec) -> tuple[CanaryStep, ...]:
    return spec.canary.steps if spec.canary is not None else ()


def _weight(obs: Observation) -> int:
    if obs.router is not None:
        return obs.router.weight  # the router, not the pod count, decides the traffic share
    canary = obs.canary.ready if obs.canary else 0
    stable = obs.stable.ready if obs.stable else 0
    return actual_weight(canary, stable)


def _observed(status: RolloutStatus, obs: Observation) -> RolloutStatus:
    return replace(
        status,
        observed_generation=obs.generation,
        ready_canary=obs.canary.ready if obs.canary else 0,
        ready_stable=obs.stable.ready if obs.stable else 0,
    )


def _consume_requests(status: RolloutStatus, requests: Requests) -> RolloutStatus:
    """Mark every pending request handled: one made while nothing could act on it must not act
    on a later rollout by surprise."""
    return replace(
        status,
        handled_promote=requests.promote,
        handled_abort=requests.abort,
        handled_retry=requests.retry,
    )


def _ceil_second(moment: datetime) -> datetime:
    """Status keeps whole seconds; rounding up means a pause never ends early and the progress
    deadline never fires early (both at most a second late)."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _stamp(now: datetime) -> str:
    """``now`` as a progress timestamp (rounded up, see ``_ceil_second``)."""
    return format_time(_ceil_second(now))


def _pause_deadline(now: datetime, seconds: float) -> datetime:
    return _ceil_second(now + timedelta(seconds=seconds))


def _held_weight(steps: tuple[CanaryStep, ...], index: int) -> int:
    """The weight in force at step ``index``: that of the last setWeight before it."""
    for s in reversed(steps[:index]):
        if isinstance(s, SetWeight):
            return s.weight
    return 0


def _scale_towards(
    total: int, weight: int, stable: WorkloadState, canary: WorkloadState
) -> tuple[list[Action], tuple[int, int]]:
    target = canary_replicas(total, weight)
    nxt_canary, nxt_stable = next_replicas(
        total, target, (canary.replicas, stable.replicas), canary.ready
    )
    actions: list[Action] = []
    if nxt_stable != stable.replicas:
        actions.append(Scale(Role.STABLE, nxt_stable))
    if nxt_canary != canary.replicas:
        actions.append(Scale(Role.CANARY, nxt_canary))
    return actions, target


def _traffic_back(status: RolloutStatus, obs: Observation) -> list[Action]:
    """With a router: all traffic back to stable at once - the router to 100/0, and the stable
    Service back on the stable pods if a promotion had switched it (only while the stable
    Deployment still runs them). Without a router: nothing (pods carry the traffic)."""
    actions: list[Action] = []
    if obs.router is not None and obs.router.weight != 0:
        actions.append(SetRouterWeight(0))
    svc = obs.services.get(STABLE_SERVICE)
    if (
        svc is not None
        and svc.exists
        and status.stable_hash
        and svc.selector_hash not in ("", status.stable_hash)
        and obs.stable is not None
        and obs.stable.template_hash == status.stable_hash
    ):
        actions.append(PinSelector(svc.name, status.stable_hash))
    return actions


def abort(status: RolloutStatus, obs: Observation, reason: str) -> Decision:
    """Traffic back to stable at once: stable to N, canary to 0; Degraded with ``reason``."""
    actions: list[Action] = _traffic_back(status, obs)
    if obs.stable is not None and obs.stable.replicas != status.replicas:
        actions.append(Scale(Role.STABLE, status.replicas))
    if obs.canary is not None and obs.canary.replicas != 0:
        actions.append(Scale(Role.CANARY, 0))
    new = replace(
        _observed(status, obs),
        phase=Phase.DEGRADED,
        message=f"aborted canary {status.canary_hash}: {reason}; traffic is back on stable "
        f"{status.stable_hash or '(unknown)'}",
        aborted_hash=status.canary_hash,
        pause_until="",
        current_weight=_weight(obs),
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS if actions else None)


def _degraded(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    requests = obs.requests
    if (
        requests.retry
        and requests.retry != status.handled_retry
        and status.aborted_hash == status.canary_hash
    ):
        restarted = replace(
            _consume_requests(status, requests),
            phase=Phase.PROGRESSING,
            message=f"retrying canary {status.canary_hash} ({RETRY_ANNOTATION}: {requests.retry})",
            current_step_index=0,
            aborted_hash="",
            pause_until="",
            last_progress_time=_stamp(obs.now),
            analysis_runs=(),
        )
        return step(spec, restarted, obs)
    # Keep the aborted shape (someone may have scaled by hand, or a sync raced the abort).
    actions: list[Action] = []
    if status.aborted_hash:
        actions.extend(_traffic_back(status, obs))
        if obs.stable is not None and obs.stable.replicas != status.replicas:
            actions.append(Scale(Role.STABLE, status.replicas))
        if obs.canary is not None and obs.canary.replicas != 0:
            actions.append(Scale(Role.CANARY, 0))
    new = replace(
        _consume_requests(_observed(status, obs), obs.requests), current_weight=_weight(obs)
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS if actions else None)


def start(
    spec: RolloutSpec,
    status: RolloutStatus,
    obs: Observation,
    *,
    desired_hash: str,
    held: bool,
    replicas: int,
    revision: str,
) -> Decision:
    """A sync rendered the target Deployment with template ``desired_hash``.

    ``held``: the sync kept the live template because ``desired_hash`` differs from the stable
    one - a rollout of ``desired_hash`` starts (or goes on). Otherwise the template was applied
    directly (it is the stable one, or the Deployment is new or adopted): no rollout; a canary of
    another template still running is removed (Git went back to stable).
    """
    status = replace(status, observed_generation=obs.generation)
    why = unsupported(spec)
    if not held:
        return _steady(spec, status, obs, desired_hash=desired_hash, replicas=replicas)
    if why and status.in_progress:
        return abort(status, obs, why)  # a running canary goes; the new template is held
    if why:
        return Decision(
            replace(
                _observed(status, obs),
                phase=Phase.DEGRADED,
                message=f"{why}; the pod template change to {desired_hash} is held back",
            )
        )
    if status.canary_hash == desired_hash:
        # Already rolling out (or aborted) this template: go on from the stored status.
        status = replace(status, replicas=replicas)
        if obs.canary is None and status.in_progress:
            return Decision(
                replace(status, message=f"recreating the canary Deployment for {desired_hash}"),
                (CreateCanary(desired_hash),),
                PROGRESS_REQUEUE_SECONDS,
            )
        return step(spec, status, obs)
    actions: list[Action] = []
    if obs.canary is not None and obs.canary.template_hash != desired_hash:
        actions.extend(_traffic_back(status, obs))  # no weight on a canary that goes
        actions.append(DeleteCanary())
    if obs.stable is not None and obs.stable.replicas != replicas:
        actions.append(Scale(Role.STABLE, replicas))
    if obs.canary is None or obs.canary.template_hash != desired_hash:
        actions.append(CreateCanary(desired_hash))
    new = starting_status(
        status, obs, what="canary", desired_hash=desired_hash, revision=revision, replicas=replicas
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS)


def starting_status(
    status: RolloutStatus,
    obs: Observation,
    *,
    what: str,
    desired_hash: str,
    revision: str,
    replicas: int,
    first_step: int = 0,
) -> RolloutStatus:
    """The status of a rollout of ``desired_hash`` that starts now (canary or blue-green):
    step ``first_step``, no traffic yet, every deadline and the abort mark cleared."""
    stable_hash = (obs.stable.template_hash if obs.stable else "") or status.stable_hash
    return replace(
        _consume_requests(_observed(status, obs), obs.requests),
        phase=Phase.PROGRESSING,
        message=f"starting {what} {desired_hash} beside stable {stable_hash or '(unknown)'}",
        current_step_index=first_step,
        current_weight=0,
        stable_hash=stable_hash,
        canary_hash=desired_hash,
        git_revision=revision,
        pause_until="",
        scale_down_at="",
        aborted_hash="",
        replicas=replicas,
        last_progress_time=_stamp(obs.now),
        analysis_runs=(),
    )


def _steady(
    spec: RolloutSpec,
    status: RolloutStatus,
    obs: Observation,
    *,
    desired_hash: str,
    replicas: int,
) -> Decision:
    if status.canary_hash and status.canary_hash == desired_hash:
        # The stable Deployment already has the canary's template: a promotion is finishing.
        return step(spec, replace(status, replicas=replicas), obs)
    actions: list[Action] = []
    message = f"stable at template {desired_hash}; no rollout in progress"
    if obs.canary is not None:
        actions.extend(_traffic_back(replace(status, stable_hash=desired_hash), obs))
        actions.append(DeleteCanary())
    if status.in_progress:
        message = (
            f"Git went back to the stable template {desired_hash}: canary "
            f"{status.canary_hash} removed"
        )
        if obs.stable is not None and obs.stable.replicas < status.replicas:
            actions.append(Scale(Role.STABLE, status.replicas))
    new = replace(
        _consume_requests(_observed(status, obs), obs.requests),
        phase=Phase.HEALTHY,
        message=message,
        current_step_index=len(_steps(spec)),
        current_weight=100,
        stable_hash=desired_hash,
        canary_hash="",
        pause_until="",
        aborted_hash="",
        replicas=replicas,
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS if actions else None)


@dataclass
class _Tick:
    """The status fields one tick moves, while it walks the steps."""

    index: int
    pause_until: str
    progress_at: str
    handled_promote: str
    promote: str
    phase: Phase = Phase.PROGRESSING
    message: str = ""
    requeue: float | None = PROGRESS_REQUEUE_SECONDS
    actions: tuple[Action, ...] = ()
    analysis_runs: tuple[AnalysisRun, ...] = ()
    measure: tuple[str, ...] = ()
    abort_reason: str = ""
    deadline_applies: bool = True

    def advance(self, now: datetime) -> None:
        self.index, self.pause_until, self.progress_at = self.index + 1, "", _stamp(now)


def _route_towards(
    total: int,
    weight: int,
    *,
    stable: WorkloadState,
    canary: WorkloadState,
    router: RouterState,
    canary_endpoints: int,
) -> tuple[list[Action], bool, str]:
    """With a router: the actions towards ``weight``, whether it is reached, and where it is.

    The stable side stays at N. A lower weight is set first (before the canary shrinks); a
    higher one only once the canary has that many ready pods in its Service's Endpoints, so the
    router never sends a share to pods that cannot take it.
    """
    want = routed_canary_replicas(total, weight)
    actions: list[Action] = []
    if router.weight > weight:
        actions.append(SetRouterWeight(weight))
    if stable.replicas != total:
        actions.append(Scale(Role.STABLE, total))
    if canary.replicas != want:
        actions.append(Scale(Role.CANARY, want))
    serving = min(canary.ready, canary_endpoints)
    if router.weight < weight and serving >= want:
        actions.append(SetRouterWeight(weight))
    done = not actions and router.weight == weight and canary.pods <= want
    detail = (
        f"canary {serving}/{want} pods ready in the canary Service, router at {router.weight} "
        f"(target {weight})"
    )
    return actions, done, detail


def _route_prerequisites(status: RolloutStatus, obs: Observation) -> tuple[list[Action], str]:
    """With a router, before the canary gets pods: the stable Service pinned to the stable pods
    and the canary Service to the canary pods, and a router that can be driven. Returns the pin
    actions, or what is being waited for ("" and no actions: all in place)."""
    stable_svc = obs.services.get(STABLE_SERVICE)
    canary_svc = obs.services.get(CANARY_SERVICE)
    for role, svc in ((STABLE_SERVICE, stable_svc), (CANARY_SERVICE, canary_svc)):
        if svc is None or not svc.exists:
            name = svc.name if svc is not None else "(not named)"
            return [], f"waiting for the {role} Service {name} to exist"
    if obs.router is not None and obs.router.problem:
        return [], f"router: {obs.router.problem}"
    assert stable_svc is not None and canary_svc is not None and obs.stable is not None
    actions: list[Action] = []
    if stable_svc.selector_hash != status.stable_hash:
        if obs.stable.labeled_ready < obs.stable.replicas:
            return [], (
                f"waiting for the stable pods to carry {HASH_LABEL}={status.stable_hash} "
                f"({obs.stable.labeled_ready}/{obs.stable.replicas} ready) before Service "
                f"{stable_svc.name} is pinned to them"
            )
        actions.append(PinSelector(stable_svc.name, status.stable_hash))
    if canary_svc.selector_hash != status.canary_hash:
        actions.append(PinSelector(canary_svc.name, status.canary_hash))
    if actions:
        return actions, (
            f"pinning Service {stable_svc.name} to the stable pods and {canary_svc.name} to the "
            "canary pods"
        )
    return [], ""


def _route_handover(
    status: RolloutStatus, obs: Observation, total: int
) -> tuple[tuple[Action, ...], str, bool] | None:
    """With a router, promotion before the stable Deployment gets the new template: the canary
    to N, then the stable Service onto the canary pods and the router to 100/0 in one tick.
    Returns (actions, message, before the switch), or None when the stable Deployment is next."""
    canary, svc, router = obs.canary, obs.services.get(STABLE_SERVICE), obs.router
    assert canary is not None and router is not None
    if svc is None or not svc.exists:
        return (), "promoting: waiting for the stable Service to exist", True
    if svc.selector_hash != status.canary_hash:
        if canary.replicas < total:
            return (
                (Scale(Role.CANARY, total),),
                f"promoting: the canary scales to {total} pods before Service {svc.name} "
                "switches to it",
                True,
            )
        if canary.ready < total:
            return (
                (),
                f"promoting: canary {canary.ready}/{total} pods ready before Service {svc.name} "
                "switches to it",
                True,
            )
        actions: list[Action] = [PinSelector(svc.name, status.canary_hash)]
        if router.weight != 0:
            actions.append(SetRouterWeight(0))
        return (
            tuple(actions),
            f"promoting: Service {svc.name} now selects the canary pods; router back to 100/0",
            False,
        )
    if router.weight != 0:
        return (SetRouterWeight(0),), "promoting: router back to 100/0", False
    return None


@dataclass(frozen=True)
class _Sides:
    """The live stable and canary Deployments, both present, and with a router the router and
    the ready endpoints of the canary Service: what moving the weight looks at."""

    stable: WorkloadState
    canary: WorkloadState
    router: RouterState | None
    canary_endpoints: int

    @classmethod
    def observed(cls, obs: Observation) -> _Sides | None:
        """None until both Deployments exist: no step can move before that."""
        if obs.stable is None or obs.canary is None:
            return None
        canary_svc = obs.services.get(CANARY_SERVICE)
        return cls(
            stable=obs.stable,
            canary=obs.canary,
            router=obs.router,
            canary_endpoints=canary_svc.ready_endpoints if canary_svc else 0,
        )


def _towards(total: int, weight: int, sides: _Sides) -> tuple[list[Action], bool, str]:
    """The actions towards ``weight``, whether it is reached, and where it is: through the
    router when there is one, otherwise by the share of ready pods."""
    stable, canary = sides.stable, sides.canary
    if sides.router is not None:
        return _route_towards(
            total,
            weight,
            stable=stable,
            canary=canary,
            router=sides.router,
            canary_endpoints=sides.canary_endpoints,
        )
    actions, (want_canary, want_stable) = _scale_towards(total, weight, stable, canary)
    reached = (
        not actions
        and canary.ready >= want_canary
        and canary.pods <= want_canary
        and stable.pods <= want_stable
    )
    detail = (
        f"canary {canary.ready}/{want_canary} pods ready, stable {stable.pods} pods "
        f"(target {want_stable})"
    )
    return actions, reached, detail


def _walk_steps(
    spec: RolloutSpec,
    status: RolloutStatus,
    tick: _Tick,
    now: datetime,
    *,
    sides: _Sides,
    readings: Mapping[str, Reading],
) -> None:
    """Advance ``tick`` through every step whose condition already holds; stop at the first
    that has to wait, with the actions that move it on."""
    steps = _steps(spec)
    while tick.index < len(steps):
        current = steps[tick.index]
        where = f"step {tick.index + 1}/{len(steps)}"
        if isinstance(current, SetWeight):
            moved_on = _set_weight(tick, current, where, now, total=status.replicas, sides=sides)
        else:
            # A pause or an analysis holds the weight reached so far while it waits.
            held = _held_weight(steps, tick.index)
            actions, _, _ = _towards(status.replicas, held, sides)
            tick.actions = tuple(actions)
            moved_on = _hold(spec, tick, current, where, now, readings=readings)
        if not moved_on:
            return
    tick.phase, tick.actions, tick.requeue = Phase.PROGRESSING, (), PROGRESS_REQUEUE_SECONDS


def _set_weight(
    tick: _Tick, current: SetWeight, where: str, now: datetime, *, total: int, sides: _Sides
) -> bool:
    """One tick of a ``setWeight`` step; True when the weight is reached and ``tick`` advanced."""
    actions, reached, detail = _towards(total, current.weight, sides)
    tick.actions = tuple(actions)
    if reached:
        tick.advance(now)
        return True
    tick.message = f"{where}: setWeight {current.weight}: {detail}"
    return False


def _hold(
    spec: RolloutSpec,
    tick: _Tick,
    current: CanaryStep,
    where: str,
    now: datetime,
    *,
    readings: Mapping[str, Reading],
) -> bool:
    """One tick of a pause or analysis step while ``tick.actions`` hold the weight; True when
    it ended (promoted, its time is up, its analysis passed) and ``tick`` advanced."""
    if tick.promote:
        why = f"not finished: promoted ({PROMOTE_ANNOTATION}: {tick.promote})"
        tick.analysis_runs = skip_step(tick.index, tick.analysis_runs, why)
        tick.handled_promote, tick.promote = tick.promote, ""
        tick.advance(now)
        return True
    tick.phase = Phase.PAUSED
    tick.requeue = PROGRESS_REQUEUE_SECONDS if tick.actions else None
    if isinstance(current, Pause) and current.duration is not None:
        return _timed_pause(tick, current.duration, where, now)
    if isinstance(current, Analysis):
        return _analyse(
            spec, tick, current, where, now=now, readings=readings, scaling=bool(tick.actions)
        )
    tick.message = f"{where}: paused until promoted ({PROMOTE_ANNOTATION})"
    return False


def _timed_pause(tick: _Tick, duration: float, where: str, now: datetime) -> bool:
    """One tick of ``pause: {duration}``; True when it is over and ``tick`` advanced. The
    deadline is stored on entry, so a restarted controller neither restarts nor skips it."""
    until = parse_time(tick.pause_until)
    if until is None:
        until = _pause_deadline(now, duration)
        tick.pause_until = format_time(until)
    if now >= until:
        tick.phase = Phase.PROGRESSING
        tick.advance(now)
        return True
    tick.message = f"{where}: paused until {tick.pause_until}"
    tick.requeue = max((until - now).total_seconds(), 0.5)
    return False


def _analyse(
    spec: RolloutSpec,
    tick: _Tick,
    current: Analysis,
    where: str,
    *,
    now: datetime,
    readings: Mapping[str, Reading],
    scaling: bool,
) -> bool:
    """One tick of analysis step ``current``; True when it passed and ``tick`` advanced."""
    metrics = {m.name: m for m in spec.metrics}
    result = analyse_step(
        tick.index, current, metrics, tick.analysis_runs, readings=readings, now=now
    )
    tick.analysis_runs = result.runs
    tick.message = f"{where}: {result.message}"
    if result.phase == RunPhase.SUCCESSFUL:
        tick.phase = Phase.PROGRESSING
        tick.advance(now)
        return True
    if result.phase == RunPhase.FAILED:
        tick.abort_reason = tick.message
    elif result.phase == RunPhase.RUNNING:
        tick.phase, tick.deadline_applies, tick.measure = Phase.PROGRESSING, False, result.due
        wait = 0.0 if result.due else (result.next_in or PROGRESS_REQUEUE_SECONDS)
        tick.requeue = min(wait, PROGRESS_REQUEUE_SECONDS) if scaling else wait
    else:
        tick.message += f"; paused until promoted ({PROMOTE_ANNOTATION})"
    return False


def step(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    """One tick of the rollout ``status`` describes (see the module docstring)."""
    status = replace(status, observed_generation=obs.generation)
    settled = _outside_steps(spec, status, obs)
    if settled is not None:
        return settled
    steps = _steps(spec)
    tick = _open_tick(status, obs, len(steps))
    sides = _Sides.observed(obs)
    if sides is not None:
        _move_traffic(spec, status, tick, obs, sides)
    if obs.stable is None:
        tick.message = "waiting for the stable Deployment to exist"
    elif tick.index >= len(steps):
        return _complete(spec, status, obs, tick, obs.stable)
    elif obs.canary is None:
        tick.message = "waiting for the canary Deployment to exist"
    return _conclude(spec, status, obs, tick, weight=_weight(obs), deadline_guards=True)


def _outside_steps(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision | None:
    """The ticks that walk no step: nothing to roll out (a canary left behind by a crash
    between steps goes), aborted, finished, an abort request, a spec this version cannot run.
    None: the steps go on."""
    requests = obs.requests
    if not status.canary_hash:
        leftover: tuple[Action, ...] = (DeleteCanary(),) if obs.canary is not None else ()
        return Decision(_consume_requests(_observed(status, obs), requests), leftover)
    if status.phase == Phase.DEGRADED:
        return _degraded(spec, status, obs)
    if not status.in_progress:
        return Decision(_observed(status, obs))
    if requests.abort and requests.abort != status.handled_abort:
        return abort(
            replace(status, handled_abort=requests.abort),
            obs,
            f"abort requested ({ABORT_ANNOTATION}: {requests.abort})",
        )
    why = unsupported(spec)
    if why:
        return abort(status, obs, why)
    return None


def _open_tick(status: RolloutStatus, obs: Observation, step_count: int) -> _Tick:
    """The tick's working copy of the status, with a new promote request taken up; a full
    promote skips every remaining step at once."""
    promote = obs.requests.promote
    tick = _Tick(
        index=status.current_step_index,
        pause_until=status.pause_until,
        progress_at=status.last_progress_time,
        handled_promote=status.handled_promote,
        promote=promote if promote != status.handled_promote else "",
        analysis_runs=status.analysis_runs,
    )
    if tick.promote.endswith(FULL_PROMOTE_SUFFIX):
        why = f"not finished: promoted in full ({PROMOTE_ANNOTATION}: {tick.promote})"
        tick.analysis_runs = skip_step(tick.index, tick.analysis_runs, why)
        tick.handled_promote, tick.promote = tick.promote, ""
        tick.index, tick.pause_until, tick.progress_at = step_count, "", _stamp(obs.now)
    return tick


def _move_traffic(
    spec: RolloutSpec, status: RolloutStatus, tick: _Tick, obs: Observation, sides: _Sides
) -> None:
    """Walk the steps, once a router's Services are pinned (each selects one side only)."""
    if obs.router is not None and tick.index < len(_steps(spec)):
        pins, waiting = _route_prerequisites(status, obs)
        if pins or waiting:
            tick.actions, tick.message = tuple(pins), waiting
            return
    _walk_steps(spec, status, tick, obs.now, sides=sides, readings=obs.readings)


def _complete(
    spec: RolloutSpec, status: RolloutStatus, obs: Observation, tick: _Tick, stable: WorkloadState
) -> Decision:
    """Every step done (or a full promote): the stable Deployment gets the canary's template
    (with a router, after the traffic is handed over), rolls out, and the canary goes."""
    total = status.replicas
    handing_over = False
    if stable.template_hash != status.canary_hash:
        handover = None
        if obs.canary is not None and obs.router is not None:
            handover = _route_handover(status, obs, total)
        if obs.canary is None:
            tick.message = "promoting: waiting for the canary Deployment to exist"
        elif handover is not None:
            tick.actions, tick.message, handing_over = handover
        else:
            tick.actions = (PromoteStable(status.canary_hash, total),)
            tick.message = f"promoting: the stable Deployment gets template {status.canary_hash}"
    elif stable.rolled_out and stable.replicas == total:
        return _healthy(spec, status, obs)
    else:
        if stable.replicas != total:
            tick.actions = (Scale(Role.STABLE, total),)
        tick.message = f"promoting: {stable.health_message or 'stable Deployment rolling out'}"
    # The deadline guards until the promotion switches traffic; the stable Deployment's
    # rolling update has its own progress deadline and health.
    return _conclude(spec, status, obs, tick, weight=100, deadline_guards=handing_over)


def _healthy(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    """The stable Deployment runs the canary's template at N replicas: the rollout is done."""
    done = replace(
        _consume_requests(_observed(status, obs), obs.requests),
        phase=Phase.HEALTHY,
        message=f"rollout of template {status.canary_hash} complete",
        current_step_index=len(_steps(spec)),
        current_weight=100,
        stable_hash=status.canary_hash,
        canary_hash="",
        pause_until="",
        last_progress_time=_stamp(obs.now),
    )
    return Decision(done, (DeleteCanary(),) if obs.canary is not None else ())


def _conclude(
    spec: RolloutSpec,
    status: RolloutStatus,
    obs: Observation,
    tick: _Tick,
    *,
    weight: int,
    deadline_guards: bool,
) -> Decision:
    """The status ``tick`` arrived at, unless the tick found a reason to abort or made no
    progress for longer than ``progressDeadlineSeconds``."""
    now = obs.now
    if tick.actions or (obs.canary is not None and obs.canary.ready > status.ready_canary):
        tick.progress_at = _stamp(now)
    new = replace(
        _observed(status, obs),
        phase=tick.phase,
        message=tick.message,
        current_step_index=tick.index,
        current_weight=weight,
        pause_until=tick.pause_until,
        last_progress_time=tick.progress_at,
        handled_promote=tick.handled_promote,
        analysis_runs=tick.analysis_runs,
    )
    if tick.abort_reason:
        return abort(new, obs, tick.abort_reason)
    if tick.phase == Phase.PROGRESSING and deadline_guards and tick.deadline_applies:
        since = parse_time(tick.progress_at) or now
        stalled = (now - since).total_seconds()
        if stalled > spec.progress_deadline_seconds:
            return abort(
                new,
                obs,
                f"progress deadline exceeded: no progress for {stalled:.0f}s "
                f"(progressDeadlineSeconds {spec.progress_deadline_seconds}) at {tick.message}",
            )
    return Decision(new, tick.actions, tick.requeue, tick.measure)
