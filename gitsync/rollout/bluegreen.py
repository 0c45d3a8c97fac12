"""The blue-green state machine: a pure decision core, the counterpart of ``canary`` for
``strategy.blueGreen``.

Same shape as ``canary``: ``start`` (a sync rendered the target Deployment) and ``step`` (one
tick) take the spec, the persisted status and an ``Observation`` (here with the active and
preview Services under ``services["active"]`` / ``services["preview"]``, and the preview
Deployment in ``Observation.canary``) and return a ``Decision``; ``executor`` does the I/O.

The new template runs at full size (or ``previewReplicaCount``) as a second Deployment,
``<name>-preview``, beside the stable Deployment from Git, which keeps running the old one. Both
Services are pinned to one side (``routers``: the selector key ``template-hash``), the active one
to the old pods and the preview one to the new. ``status.currentStepIndex`` says where a rollout
is (the printer column "Step"):

0. **preview** - pin the Services (the active one only once every stable pod carries the hash
   label, so pinning never drops capacity; the preview gets pods only after the active Service is
   observed pinned, so it never serves them), bring the preview up, run
   ``prePromotionAnalysis`` once it is ready, then wait for promotion: a promote request,
   ``autoPromotionSeconds`` after the preview is ready (the deadline is ``status.pauseUntil``),
   at once with ``autoPromotionEnabled`` (the default) and no seconds, never without a promote
   with ``autoPromotionEnabled: false``. To promote, the preview scales to N and the active
   Service switches to the new pods in **one** selector update - only when all N are ready
   (and, with a preview Service, in its Endpoints). ``status.scaleDownAt`` is stored then.
1. **promoted** - ``postPromotionAnalysis`` runs against the new pods now taking the traffic.
   Failed: abort, i.e. the active Service goes back to the old pods, which are still there.
2. **draining** - the old pods stay until ``scaleDownAt`` (and until the analysis passed), so a
   switch back stays instant and in-flight requests finish.
3. **finishing** - the stable Deployment scales to 0 (the old pods go), then gets the new
   template (its pods carry the new hash, so they join the active Service), and once it is
   rolled out the preview Deployment is deleted.
4. complete: Healthy.

Analyses use ``gitsync.rollout.analysis`` with the step index as the run's ``step`` (0: pre, 1:
post); metrics due are named in ``Decision.measure``, as for a canary. An inconclusive analysis
pauses until promoted; a promote goes past it. ``<nonce>;full`` promotes at once and skips both
analyses (never the scale-down delay, which is about connections, not confidence).

Abort (a request, a failed analysis, ``progressDeadlineSeconds`` without progress while the
preview comes up): the stable Deployment back to N, the active Service back to the old pods as
soon as they are all ready (at once unless they were scaled down), the preview to 0 once the
active Service no longer selects it; Degraded. An abort after the stable Deployment took the new
template is refused (there is nothing old to go back to; revert in Git). Git going back to the
stable template mid-rollout does the same, ending Healthy. A new template from Git while a
promoted one is draining or finishing waits until that one completes (users already run it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from gitsync.rollout.analysis import AnalysisRun, RunPhase, analyse_step, format_moment, skip_step
from gitsync.rollout.canary import (
    PROGRESS_REQUEUE_SECONDS,
    Action,
    CreateCanary,
    Decision,
    DeleteCanary,
    Observation,
    PromoteStable,
    Role,
    Scale,
    WorkloadState,
    _consume_requests,
    _observed,
    _pause_deadline,
    _stamp,
    starting_status,
)
from gitsync.rollout.math import HASH_LABEL
from gitsync.rollout.routers import PinSelector
from gitsync.rollout.spec import Analysis, BlueGreenStrategy, RolloutSpec
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

PREVIEW, PROMOTED, DRAINING, FINISHING, COMPLETE = range(5)
ACTIVE_SERVICE = "active"
PREVIEW_SERVICE = "preview"


def _strategy(spec: RolloutSpec) -> BlueGreenStrategy:
    if spec.blue_green is None:
        raise ValueError("not a blue-green Rollout")
    return spec.blue_green


def preview_size(strategy: BlueGreenStrategy, total: int) -> int:
    """Preview pods before promotion: ``previewReplicaCount`` (at most N), else N."""
    count = strategy.preview_replica_count
    return total if count is None else min(count, total)


def _active_hash(obs: Observation) -> str:
    svc = obs.services.get(ACTIVE_SERVICE)
    return svc.selector_hash if svc is not None and svc.exists else ""


def _weight(status: RolloutStatus, obs: Observation) -> int:
    """Share of the active Service's traffic on the new template: 0 or 100."""
    return 100 if status.canary_hash and _active_hash(obs) == status.canary_hash else 0


def _stable_serves(stable: WorkloadState | None, total: int) -> bool:
    """Every stable pod is ready and carries the stable hash (a pin to them loses nothing)."""
    return stable is not None and stable.labeled_ready >= max(stable.replicas, total)


def _switch_back(
    status: RolloutStatus, obs: Observation, *, restore_stable: bool
) -> tuple[list[Action], bool]:
    """Actions that put the active Service back on the old pods, and whether it is (or is being
    put) back: the stable Deployment to N first (always with ``restore_stable``), the switch
    once its pods are all ready. An active Service that pins nothing is not on the preview."""
    actions: list[Action] = []
    stable, total = obs.stable, status.replicas
    if not status.stable_hash:
        return actions, True  # nothing known to go back to (no rollout ever ran): leave it be
    active = obs.services.get(ACTIVE_SERVICE)
    back = active is None or not active.exists or active.selector_hash in ("", status.stable_hash)
    if stable is not None and stable.replicas != total and (restore_stable or not back):
        actions.append(Scale(Role.STABLE, total))
    if not back and active is not None and _stable_serves(stable, total):
        actions.append(PinSelector(active.name, status.stable_hash))
        back = True
    return actions, back


def _traffic_back(status: RolloutStatus, obs: Observation) -> tuple[list[Action], str]:
    """``_switch_back``, then the preview to 0 once nothing routes to it; and what is waited for."""
    actions, back = _switch_back(status, obs, restore_stable=True)
    if not back:
        ready = obs.stable.labeled_ready if obs.stable else 0
        return actions, (
            f"waiting for {status.replicas} stable pods ({ready} ready) before the active Service "
            "goes back to them"
        )
    if obs.canary is not None and obs.canary.replicas != 0:
        actions.append(Scale(Role.CANARY, 0))
    return actions, ""


def _promoted_into_stable(status: RolloutStatus, obs: Observation) -> bool:
    """The stable Deployment already runs the new template: there is no old side left."""
    return obs.stable is not None and obs.stable.template_hash == status.canary_hash


def abort(status: RolloutStatus, obs: Observation, reason: str) -> Decision:
    """Traffic back to the old pods (see the module docstring); Degraded with ``reason``."""
    actions, waiting = _traffic_back(status, obs)
    message = f"aborted blue-green rollout of {status.canary_hash}: {reason}; " + (
        waiting or f"the active Service is back on {status.stable_hash or '(unknown)'}"
    )
    new = replace(
        _observed(status, obs),
        phase=Phase.DEGRADED,
        message=message,
        aborted_hash=status.canary_hash,
        current_step_index=PREVIEW,
        pause_until="",
        scale_down_at="",
        current_weight=_weight(status, obs),
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS if actions or waiting else None)


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
            message=f"retrying blue-green rollout of {status.canary_hash} "
            f"({RETRY_ANNOTATION}: {requests.retry})",
            current_step_index=PREVIEW,
            aborted_hash="",
            pause_until="",
            scale_down_at="",
            last_progress_time=_stamp(obs.now),
            analysis_runs=(),
        )
        return step(spec, restarted, obs)
    actions: list[Action] = []
    waiting = ""
    if status.aborted_hash:  # keep the aborted shape
        actions, waiting = _traffic_back(status, obs)
    new = replace(
        _consume_requests(_observed(status, obs), requests), current_weight=_weight(status, obs)
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS if actions or waiting else None)


def _settle(status: RolloutStatus, obs: Observation) -> Decision:
    """No rollout: the active Service on the stable pods and no preview Deployment (deleted only
    once the active Service is off it). A phase of Progressing (Git went back mid-rollout)
    turns Healthy once that holds."""
    actions, back = _switch_back(status, obs, restore_stable=False)
    if back and obs.canary is not None:
        actions.append(DeleteCanary())
    new = _consume_requests(_observed(status, obs), obs.requests)
    if not back:
        new = replace(
            new,
            message=f"switching the active Service back to {status.stable_hash}: waiting for "
            f"{status.replicas} ready stable pods",
        )
    elif new.phase == Phase.PROGRESSING and not actions:
        new = replace(new, phase=Phase.HEALTHY, message=f"stable at template {status.stable_hash}")
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS if actions or not back else None)


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
    """A sync rendered the target Deployment with template ``desired_hash`` (see
    ``canary.start``: ``held`` means a rollout of ``desired_hash`` is to run)."""
    status = replace(status, observed_generation=obs.generation)
    if not held:
        if status.canary_hash and status.canary_hash == desired_hash:
            return step(spec, replace(status, replicas=replicas), obs)  # a promotion finishing
        went_back = status.in_progress
        settled = replace(
            status,
            phase=Phase.PROGRESSING if went_back else Phase.HEALTHY,
            message=(
                f"Git went back to the stable template {desired_hash}: preview "
                f"{status.canary_hash} goes"
                if went_back
                else f"stable at template {desired_hash}; no rollout in progress"
            ),
            current_step_index=COMPLETE,
            current_weight=100,
            stable_hash=desired_hash,
            canary_hash="",
            pause_until="",
            scale_down_at="",
            aborted_hash="",
            replicas=replicas,
        )
        return _settle(settled, obs)
    if status.canary_hash == desired_hash:
        status = replace(status, replicas=replicas)
        if obs.canary is None and status.in_progress and status.current_step_index == PREVIEW:
            return Decision(
                replace(status, message=f"recreating the preview Deployment for {desired_hash}"),
                (CreateCanary(desired_hash),),
                PROGRESS_REQUEUE_SECONDS,
            )
        return step(spec, status, obs)
    if status.in_progress and status.current_step_index >= PROMOTED:
        decision = step(spec, status, obs)
        note = f" (Git renders {desired_hash} next: it starts once this promotion completes)"
        return replace(
            decision, status=replace(decision.status, message=decision.status.message + note)
        )
    actions: list[Action] = []
    if obs.canary is not None and obs.canary.template_hash != desired_hash:
        actions.append(DeleteCanary())  # an unpromoted preview: the active Service is not on it
    if obs.stable is not None and obs.stable.replicas != replicas:
        actions.append(Scale(Role.STABLE, replicas))
    if obs.canary is None or obs.canary.template_hash != desired_hash:
        actions.append(CreateCanary(desired_hash))
    new = starting_status(
        status,
        obs,
        what="preview",
        desired_hash=desired_hash,
        revision=revision,
        replicas=replicas,
        first_step=PREVIEW,
    )
    return Decision(new, tuple(actions), PROGRESS_REQUEUE_SECONDS)


# -- one tick of a rollout in progress ------------------------------------------------------------


def _outcome(
    spec: RolloutSpec,
    status: RolloutStatus,
    obs: Observation,
    *,
    actions: list[Action],
    message: str,
    phase: Phase = Phase.PROGRESSING,
    requeue: float | None = PROGRESS_REQUEUE_SECONDS,
    deadline_applies: bool = False,
    measure: tuple[str, ...] = (),
    **changes: object,
) -> Decision:
    """The decision for a tick that stays in progress; aborts past the progress deadline."""
    preview_ready = obs.canary.ready if obs.canary else 0
    progress_at = status.last_progress_time
    if actions or preview_ready > status.ready_canary or not deadline_applies:
        progress_at = _stamp(obs.now)  # waiting that is not stalling never counts
    new = replace(
        _observed(status, obs),
        phase=phase,
        message=message,
        last_progress_time=progress_at,
        **changes,  # type: ignore[arg-type]
    )
    new = replace(new, current_weight=_weight(new, obs))
    if phase == Phase.PROGRESSING and deadline_applies:
        since = parse_time(progress_at) or obs.now
        stalled = (obs.now - since).total_seconds()
        if stalled > spec.progress_deadline_seconds:
            return abort(
                new,
                obs,
                f"progress deadline exceeded: no progress for {stalled:.0f}s "
                f"(progressDeadlineSeconds {spec.progress_deadline_seconds}) at {message}",
            )
    return Decision(new, tuple(actions), requeue, measure)


def _analysis(
    spec: RolloutSpec,
    index: int,
    analysis: Analysis,
    status: RolloutStatus,
    obs: Observation,
) -> tuple[RunPhase, tuple[AnalysisRun, ...], str, tuple[str, ...], float]:
    """One tick of the pre- (index 0) or post-promotion (index 1) analysis."""
    metrics = {m.name: m for m in spec.metrics}
    result = analyse_step(
        index, analysis, metrics, status.analysis_runs, readings=obs.readings, now=obs.now
    )
    which = "pre-promotion" if index == PREVIEW else "post-promotion"
    wait = 0.0 if result.due else (result.next_in or PROGRESS_REQUEUE_SECONDS)
    return result.phase, result.runs, f"{which} {result.message}", result.due, wait


def _waiting(spec: RolloutSpec, status: RolloutStatus, obs: Observation, message: str) -> Decision:
    """A tick that waits for something outside the rollout (a Service, pods, a label) with no
    action of its own: the progress deadline still runs."""
    return _outcome(spec, status, obs, actions=[], message=message, deadline_applies=True)


def _preview(spec: RolloutSpec, status: RolloutStatus, obs: Observation, promote: str) -> Decision:
    """Before the switch: the Services pinned, the preview scaled and ready, the promotion
    gate (analysis, a request, the auto-promotion timer) passed; then the switch itself."""
    strategy = _strategy(spec)
    total, stable, preview = status.replicas, obs.stable, obs.canary
    assert stable is not None
    pinning = _pin_services(spec, strategy, status, obs, stable)
    if pinning is not None:
        return pinning
    if preview is None:
        return _waiting(spec, status, obs, "waiting for the preview Deployment to exist")
    actions: list[Action] = []
    if stable.replicas != total:
        actions.append(Scale(Role.STABLE, total))
    runs = status.analysis_runs
    pause_until = status.pause_until
    if promote:
        why = f"not finished: promoted ({PROMOTE_ANNOTATION}: {promote})"
        runs = skip_step(PREVIEW, runs, why)
    else:
        held = _hold_preview(spec, strategy, status, obs, preview=preview, actions=actions)
        if isinstance(held, Decision):
            return held
        pause_until = held
    return _switch_to_preview(
        spec, status, obs, preview, actions, promote=promote, runs=runs, pause_until=pause_until
    )


def _pin_services(
    spec: RolloutSpec,
    strategy: BlueGreenStrategy,
    status: RolloutStatus,
    obs: Observation,
    stable: WorkloadState,
) -> Decision | None:
    """The active Service pinned to the old pods (and the preview Service to the new ones)
    before the preview gets any pod; None once both are."""
    total = status.replicas
    active = obs.services.get(ACTIVE_SERVICE)
    preview_svc = obs.services.get(PREVIEW_SERVICE)
    if active is None or not active.exists:
        name = strategy.active_service
        return _waiting(spec, status, obs, f"waiting for the active Service {name} to exist")
    if preview_svc is not None and not preview_svc.exists:
        return _waiting(
            spec, status, obs, f"waiting for the preview Service {preview_svc.name} to exist"
        )
    actions: list[Action] = []
    if active.selector_hash != status.stable_hash:
        if not _stable_serves(stable, total):
            return _waiting(
                spec,
                status,
                obs,
                f"waiting for the stable pods to carry {HASH_LABEL}={status.stable_hash} "
                f"({stable.labeled_ready}/{max(stable.replicas, total)} ready) before the active "
                f"Service {active.name} is pinned to them",
            )
        actions.append(PinSelector(active.name, status.stable_hash))
    if preview_svc is not None and preview_svc.selector_hash != status.canary_hash:
        actions.append(PinSelector(preview_svc.name, status.canary_hash))
    if not actions:
        return None
    # The preview gets pods only once the active Service is seen pinned.
    return _outcome(
        spec,
        status,
        obs,
        actions=actions,
        deadline_applies=True,
        message=f"pinning the active Service {active.name} to the old pods"
        + (f" and {preview_svc.name} to the new ones" if preview_svc else ""),
    )


def _hold_preview(
    spec: RolloutSpec,
    strategy: BlueGreenStrategy,
    status: RolloutStatus,
    obs: Observation,
    *,
    preview: WorkloadState,
    actions: list[Action],
) -> Decision | str:
    """Without a promote request: the preview at its size and ready, the promotion gate and
    the auto-promotion timer. A Decision while one of them holds promotion back; otherwise the
    ``pauseUntil`` to keep (the timer's deadline is stored once, so a restart keeps it)."""
    total = status.replicas
    # Never below ``size``; above it only because a promotion already scales it to N.
    size = preview_size(strategy, total)
    if preview.replicas < size:
        actions.append(Scale(Role.CANARY, size))
    if preview.ready < size:
        return _outcome(
            spec,
            status,
            obs,
            actions=actions,
            deadline_applies=True,
            message=f"preview: {preview.ready}/{size} pods ready",
        )
    gate = _promotion_gate(spec, strategy, status, obs)
    if gate is not None:
        return gate
    pause_until = status.pause_until
    if not strategy.auto_promotion_seconds:
        return pause_until
    until = parse_time(pause_until)
    if until is None:
        until = _pause_deadline(obs.now, strategy.auto_promotion_seconds)
        pause_until = format_time(until)
    if obs.now >= until:
        return pause_until
    return _outcome(
        spec,
        status,
        obs,
        actions=actions,
        phase=Phase.PAUSED,
        message=f"preview ready ({preview.ready}/{size}): auto-promotion at {pause_until}",
        requeue=max((until - obs.now).total_seconds(), 0.5),
        pause_until=pause_until,
        analysis_runs=status.analysis_runs,
    )


def _switch_to_preview(
    spec: RolloutSpec,
    status: RolloutStatus,
    obs: Observation,
    preview: WorkloadState,
    actions: list[Action],
    *,
    promote: str,
    runs: tuple[AnalysisRun, ...],
    pause_until: str,
) -> Decision:
    """Promotion: every new pod ready (at full size), then the active Service in one update
    and the old pods' scale-down deadline stored."""
    strategy = _strategy(spec)
    total = status.replicas
    active = obs.services[ACTIVE_SERVICE]
    preview_svc = obs.services.get(PREVIEW_SERVICE)
    if preview.replicas != total:
        actions.append(Scale(Role.CANARY, total))
    serving = preview.ready
    if preview_svc is not None:
        serving = min(serving, preview_svc.ready_endpoints)
    if preview.replicas != total or serving < total or preview.pods > total:
        return _outcome(
            spec,
            status,
            obs,
            actions=actions,
            deadline_applies=True,
            message=f"promoting: preview {serving}/{total} pods ready before the active Service "
            f"{active.name} switches to them",
            pause_until=pause_until,
            analysis_runs=runs,
        )
    actions.append(PinSelector(active.name, status.canary_hash))
    scale_down_at = format_time(_pause_deadline(obs.now, strategy.scale_down_delay_seconds))
    full = promote.endswith(FULL_PROMOTE_SUFFIX)
    index = DRAINING if full or strategy.post_promotion_analysis is None else PROMOTED
    if full and strategy.post_promotion_analysis is not None:
        why = f"not run: promoted in full ({PROMOTE_ANNOTATION}: {promote})"
        runs = (*runs, *_skipped(PROMOTED, strategy.post_promotion_analysis, obs.now, why))
    return _outcome(
        spec,
        status,
        obs,
        actions=actions,
        message=f"promoted: the active Service {active.name} now selects template "
        f"{status.canary_hash}; the old pods scale down at {scale_down_at}",
        current_step_index=index,
        pause_until="",
        scale_down_at=scale_down_at,
        handled_promote=promote or status.handled_promote,
        analysis_runs=runs,
    )


def _skipped(index: int, analysis: Analysis, now: datetime, why: str) -> tuple[AnalysisRun, ...]:
    """Runs recording that ``analysis`` was skipped (so status says it, rather than nothing)."""
    started = format_moment(now)
    return tuple(
        AnalysisRun(index, m, RunPhase.INCONCLUSIVE, why, started)
        for m in dict.fromkeys(analysis.metrics)
    )


def _promotion_gate(
    spec: RolloutSpec, strategy: BlueGreenStrategy, status: RolloutStatus, obs: Observation
) -> Decision | None:
    """The preview is ready: what holds promotion back (None: nothing but the timer)."""
    pre = strategy.pre_promotion_analysis
    if pre is not None:
        phase, runs, message, due, wait = _analysis(spec, PREVIEW, pre, status, obs)
        if phase == RunPhase.FAILED:
            return abort(replace(status, analysis_runs=runs), obs, message)
        if phase == RunPhase.RUNNING:
            return _outcome(
                spec,
                status,
                obs,
                actions=[],
                message=message,
                requeue=wait,
                measure=due,
                analysis_runs=runs,
            )
        if phase != RunPhase.SUCCESSFUL:
            return _outcome(
                spec,
                status,
                obs,
                actions=[],
                phase=Phase.PAUSED,
                requeue=None,
                message=f"{message}; paused until promoted ({PROMOTE_ANNOTATION})",
                analysis_runs=runs,
            )
        status = replace(status, analysis_runs=runs)
    if not strategy.auto_promotion_enabled:
        return _outcome(
            spec,
            status,
            obs,
            actions=[],
            phase=Phase.PAUSED,
            requeue=None,
            message=f"preview ready: paused until promoted ({PROMOTE_ANNOTATION})",
            analysis_runs=status.analysis_runs,
        )
    return None


def _promoted(
    spec: RolloutSpec, status: RolloutStatus, obs: Observation, promote: str
) -> Decision | RolloutStatus:
    """Post-promotion analysis; a status at DRAINING when it is done (or there is none)."""
    post = _strategy(spec).post_promotion_analysis
    if promote:
        why = f"not finished: promoted ({PROMOTE_ANNOTATION}: {promote})"
        runs = skip_step(PROMOTED, status.analysis_runs, why)
        return replace(
            status, current_step_index=DRAINING, handled_promote=promote, analysis_runs=runs
        )
    if post is None:
        return replace(status, current_step_index=DRAINING)
    phase, runs, message, due, wait = _analysis(spec, PROMOTED, post, status, obs)
    status = replace(status, analysis_runs=runs)
    if phase == RunPhase.FAILED:
        return abort(status, obs, message)
    if phase == RunPhase.RUNNING:
        return _outcome(
            spec,
            status,
            obs,
            actions=_keep_active(status, obs),
            message=message,
            requeue=wait,
            measure=due,
        )
    if phase != RunPhase.SUCCESSFUL:
        return _outcome(
            spec,
            status,
            obs,
            actions=_keep_active(status, obs),
            phase=Phase.PAUSED,
            requeue=None,
            message=f"{message}; paused until promoted ({PROMOTE_ANNOTATION})",
        )
    return replace(status, current_step_index=DRAINING)


def _keep_active(status: RolloutStatus, obs: Observation) -> list[Action]:
    """After the switch: the active Service stays on the new pods (re-pinned if it drifted)."""
    active = obs.services.get(ACTIVE_SERVICE)
    if active is not None and active.exists and active.selector_hash != status.canary_hash:
        return [PinSelector(active.name, status.canary_hash)]
    return []


def _draining(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    actions = _keep_active(status, obs)
    until = parse_time(status.scale_down_at)
    if until is None:  # a status from before the switch stored it: start the delay now
        delay = _strategy(spec).scale_down_delay_seconds
        until = _pause_deadline(obs.now, delay)
        status = replace(status, scale_down_at=format_time(until))
    if obs.now < until:
        return _outcome(
            spec,
            status,
            obs,
            actions=actions,
            message=f"promoted: the active Service selects template {status.canary_hash}; the "
            f"old pods scale down at {status.scale_down_at}",
            requeue=max((until - obs.now).total_seconds(), 0.5),
        )
    actions.append(Scale(Role.STABLE, 0))
    return _outcome(
        spec,
        status,
        obs,
        actions=actions,
        current_step_index=FINISHING,
        message=f"the old pods ({status.stable_hash}) scale down",
    )


def _finishing(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    stable, preview, total = obs.stable, obs.canary, status.replicas
    assert stable is not None
    actions = _keep_active(status, obs)
    if stable.template_hash != status.canary_hash:
        if preview is None:
            return _outcome(
                spec,
                status,
                obs,
                actions=actions,
                message="promoting: waiting for the preview Deployment to exist",
            )
        actions.append(PromoteStable(status.canary_hash, total))
        return _outcome(
            spec,
            status,
            obs,
            actions=actions,
            message=f"promoting: the stable Deployment gets template {status.canary_hash}",
        )
    if stable.rolled_out and stable.replicas == total and not actions:
        done = replace(
            _consume_requests(_observed(status, obs), obs.requests),
            phase=Phase.HEALTHY,
            message=f"blue-green rollout of template {status.canary_hash} complete",
            current_step_index=COMPLETE,
            current_weight=100,
            stable_hash=status.canary_hash,
            canary_hash="",
            pause_until="",
            scale_down_at="",
            last_progress_time=_stamp(obs.now),
        )
        return Decision(done, (DeleteCanary(),) if preview is not None else ())
    if stable.replicas != total:
        actions.append(Scale(Role.STABLE, total))
    return _outcome(
        spec,
        status,
        obs,
        actions=actions,
        message=f"promoting: {stable.health_message or 'stable Deployment rolling out'}",
    )


def step(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    """One tick of the blue-green rollout ``status`` describes (see the module docstring)."""
    requests = obs.requests
    status = replace(status, observed_generation=obs.generation)
    if not status.canary_hash:
        return _settle(status, obs)
    if status.phase == Phase.DEGRADED:
        return _degraded(spec, status, obs)
    if not status.in_progress:
        return Decision(_observed(status, obs))
    note = ""
    if requests.abort and requests.abort != status.handled_abort:
        status = replace(status, handled_abort=requests.abort)
        reason = f"abort requested ({ABORT_ANNOTATION}: {requests.abort})"
        if not _promoted_into_stable(status, obs):
            return abort(status, obs, reason)
        note = (
            f"{reason} ignored: the stable Deployment already runs {status.canary_hash} (revert "
            "in Git to roll back); "
        )
    decision = _tick(spec, status, obs)
    if note:
        noted = replace(decision.status, message=note + decision.status.message)
        decision = replace(decision, status=noted)
    return decision


def _tick(spec: RolloutSpec, status: RolloutStatus, obs: Observation) -> Decision:
    requests = obs.requests
    promote = requests.promote if requests.promote != status.handled_promote else ""
    if obs.stable is None:
        return _outcome(
            spec, status, obs, actions=[], message="waiting for the stable Deployment to exist"
        )
    if status.current_step_index <= PREVIEW:
        return _preview(spec, status, obs, promote)
    if status.current_step_index == PROMOTED:
        moved = _promoted(spec, status, obs, promote)
        if isinstance(moved, Decision):
            return moved
        status = moved
    if status.current_step_index == DRAINING:
        return _draining(spec, status, obs)
    return _finishing(spec, status, obs)


__all__ = [
    "ACTIVE_SERVICE",
    "COMPLETE",
    "DRAINING",
    "FINISHING",
    "PREVIEW",
    "PREVIEW_SERVICE",
    "PROMOTED",
    "abort",
    "preview_size",
    "start",
    "step",
]
