"""Progressive (rolling) sync of an ApplicationSet: which generated app may get which revision.

The guarantee (issue 18): a new revision reaches a later step (``env: prod``) only after every
app of the earlier steps (``env: staging``) is Synced and Healthy *at that revision*. The set
controller keeps the guarantee by pinning each generated app's ``spec.source.targetRevision`` to
a commit SHA; this module decides the pins and is pure - a function from the strategy, the apps'
labels, pins and statuses, the new SHA and the approvals to the pins and a per-step report - so
every branch has a fast test (``tests/unit/test_appset_rolling.py``).

The rules, each a branch in ``decide``:

* an app belongs to the first step whose ``matchExpressions`` all match its labels (Argo CD's
  RollingSync spelling); an app no step matches is never moved by the rollout: it keeps its pin
  and is reported (Argo CD also leaves such apps out of a rolling sync);
* the steps are walked in order; a step is *done* when each of its apps is pinned to the SHA,
  reports ``status.sync.revision`` equal to it, is Synced and Healthy;
* the first step that is not done is the *current* one: its apps are re-pinned to the SHA, at
  most ``maxUpdate`` of them in flight (pinned to the SHA but not yet done) at a time; later steps
  keep their pins, so they stay at the last revision proven before;
* a step with ``pause`` starts only once it is approved for that very SHA
  (``gitsync appset promote``): an approval of an older revision does not carry over;
* an app of the current or an earlier step that is Degraded at the SHA stops the rollout: nothing
  more is re-pinned, and the report names the app. A new push (a new SHA) starts again at step 1,
  so a fix can reach staging while prod stays where it was;
* an app that has no pin yet (just generated) in a step not reached gets the set's last proven
  revision when there is one, else it is held (not created) until its step is reached.

The strategy is parsed with the rest of the spec (``gitsync.appset.spec.parse_strategy``):
``maxUpdate`` is Argo CD's field, a whole number or a percentage of the step's apps.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gitsync.appset.spec import RollingStep, RollingSync
from gitsync.appset.status import Reason, RollingReport

PROMOTE_ANNOTATION: Final = "gitsync.dev/promote"
"""Written by ``gitsync appset promote``: ``<step>@<sha>`` approves a paused step for one SHA."""


def parse_promotion(value: str | None) -> tuple[int, str] | None:
    """The ``PROMOTE_ANNOTATION`` value ``<step>@<sha>`` as (step, sha); None when absent or
    malformed (a malformed approval approves nothing)."""
    if not value or value.count("@") != 1:
        return None
    step, sha = value.split("@")
    if not step.isdigit() or not sha:
        return None
    return int(step), sha


def promotion_for(rolling_status: object, step: int | None = None) -> str:
    """The ``PROMOTE_ANNOTATION`` value approving a paused step of the rollout a set's
    ``status.rollingSync`` shows, for the revision it is rolling out: ``step`` when given (it
    must be a step of the rollout), else the one step that is Paused. Raises ``ValueError``
    saying why nothing can be approved (no rollout, no paused step, an unknown step)."""
    body = rolling_status if isinstance(rolling_status, dict) else {}
    revision = body.get("revision")
    steps = [s for s in body.get("steps") or [] if isinstance(s, dict)]
    if not isinstance(revision, str) or not revision or not steps:
        raise ValueError("the set shows no rolling sync in progress (status.rollingSync)")
    numbers = [s.get("step") for s in steps]
    if step is None:
        paused = [s.get("step") for s in steps if s.get("phase") == StepPhase.PAUSED.value]
        if not paused:
            raise ValueError(f"no step is paused at {revision[:12]}; name one with --step")
        chosen = paused[0]
    else:
        if step not in numbers:
            raise ValueError(f"the rollout has no step {step} (steps: {numbers})")
        chosen = step
    return f"{chosen}@{revision}"


# -- deciding --------------------------------------------------------------------------------


class StepPhase(enum.StrEnum):
    DONE = "Healthy"  # every app Synced and Healthy at the SHA
    PROGRESSING = "Progressing"  # the current step: apps being re-pinned or syncing
    PAUSED = "Paused"  # the current step waits for gitsync appset promote
    STOPPED = "Stopped"  # a Degraded app stopped the rollout
    WAITING = "Waiting"  # an earlier step is not done


@dataclass(frozen=True)
class AppState:
    """What the rollout needs to know of one generated app."""

    name: str
    labels: Mapping[str, str]
    pinned: str  # spec.source.targetRevision as the set last wrote it; "" when not yet created
    revision: str = ""  # status.sync.revision
    sync: str = ""  # status.sync.status
    health: str = ""  # status.health.status

    def at(self, sha: str) -> bool:
        return (
            self.pinned == sha
            and self.revision == sha
            and self.sync == "Synced"
            and self.health == "Healthy"
        )

    def degraded_at(self, sha: str) -> bool:
        return self.pinned == sha and self.revision == sha and self.health == "Degraded"


@dataclass(frozen=True)
class StepReport:
    number: int  # 1-based, as the user counts steps
    phase: StepPhase
    applications: tuple[str, ...]
    message: str = ""


@dataclass
class Rollout:
    """The decision for one pass: the pin of every app the set may write, and why others wait."""

    pins: dict[str, str] = field(default_factory=dict)  # name -> SHA for spec.source.targetRevision
    held: dict[str, str] = field(default_factory=dict)  # name -> why it is not created yet
    steps: list[StepReport] = field(default_factory=list)
    unmatched: tuple[str, ...] = ()
    stopped_by: tuple[str, ...] = ()  # the Degraded apps that stopped the rollout
    proven: str = ""  # the last revision every app of the steps was Healthy at

    @property
    def complete(self) -> bool:
        return bool(self.steps) and all(s.phase is StepPhase.DONE for s in self.steps)


def decide(
    strategy: RollingSync,
    apps: list[AppState],
    sha: str,
    *,
    proven: str,
    approved: tuple[int, str] | None = None,
) -> Rollout:
    """The pins for rolling ``sha`` out over ``apps``. ``proven``: the last SHA the whole set
    reached ("" when none); ``approved``: ``parse_promotion`` of the set's annotation."""
    members: list[list[AppState]] = [[] for _ in strategy.steps]
    unmatched: list[AppState] = []
    for app in sorted(apps, key=lambda a: a.name):
        index = next((i for i, s in enumerate(strategy.steps) if s.matches(app.labels)), None)
        (unmatched if index is None else members[index]).append(app)
    proven = _settled([a for group in members for a in group]) or proven
    result = Rollout(unmatched=tuple(a.name for a in unmatched), proven=proven)
    for app in unmatched:
        _keep(result, app, proven, "matches no step of the rolling sync")

    stopped_by: list[str] = []
    reached = True  # every earlier step is done
    for index, (step, group) in enumerate(zip(strategy.steps, members, strict=True)):
        number = index + 1
        names = tuple(a.name for a in group)
        stopped_by.extend(a.name for a in group if a.degraded_at(sha))
        if reached and all(a.at(sha) for a in group):
            result.steps.append(StepReport(number, StepPhase.DONE, names))
            for app in group:
                result.pins[app.name] = sha
            continue
        if not reached or stopped_by:
            phase = StepPhase.STOPPED if stopped_by else StepPhase.WAITING
            why = (
                f"stopped: {', '.join(stopped_by)} Degraded at {sha}"
                if stopped_by
                else f"waits for step {_first_open(result)}"
            )
            result.steps.append(StepReport(number, phase, names, why))
            for app in group:
                if app.pinned == sha:
                    result.pins[app.name] = sha  # never pulled back: only not moved forward
                else:
                    _keep(result, app, proven, f"step {number} {why}")
            reached = False
            continue
        reached = False
        if step.pause and approved != (number, sha):
            result.steps.append(
                StepReport(
                    number,
                    StepPhase.PAUSED,
                    names,
                    f"paused before {sha}: run gitsync appset promote --step {number}",
                )
            )
            for app in group:
                _keep(result, app, proven, f"step {number} is paused")
            continue
        _roll(result, step, group, sha)
        result.steps.append(StepReport(number, StepPhase.PROGRESSING, names))
    result.stopped_by = tuple(stopped_by)
    return result


def _settled(apps: list[AppState]) -> str:
    """The revision every one of ``apps`` is pinned to and Healthy at, if there is one: proven
    even when no pass saw the rollout complete (a push came first)."""
    pins = {a.pinned for a in apps}
    if len(pins) == 1 and (sha := pins.pop()) and all(a.at(sha) for a in apps):
        return sha
    return ""


def _first_open(result: Rollout) -> int:
    return next(s.number for s in result.steps if s.phase is not StepPhase.DONE)


def _keep(result: Rollout, app: AppState, proven: str, why: str) -> None:
    """``app`` stays where it is; one not yet created gets ``proven`` or waits."""
    if app.pinned:
        result.pins[app.name] = app.pinned
    elif proven:
        result.pins[app.name] = proven
    else:
        result.held[app.name] = f"{why}; created once its step is reached"


def _roll(result: Rollout, step: RollingStep, group: list[AppState], sha: str) -> None:
    """The current step: re-pin its apps to ``sha``, at most ``maxUpdate`` in flight."""
    in_flight = sum(1 for a in group if a.pinned == sha and not a.at(sha))
    room = step.limit(len(group)) - in_flight
    for app in group:
        if app.pinned == sha:
            result.pins[app.name] = sha
        elif room > 0:
            result.pins[app.name] = sha
            room -= 1
        elif app.pinned:
            result.pins[app.name] = app.pinned
        else:
            result.held[app.name] = f"maxUpdate: waits for a free slot to get {sha}"


def report(rollout: Rollout, sha: str) -> RollingReport:
    """``rollout`` for the set's status: ``status.rollingSync`` and the ``RollingSync``
    condition, whose message names what holds the rollout (a Degraded app, a pause)."""
    steps = [
        {
            "step": s.number,
            "phase": s.phase.value,
            "applications": list(s.applications),
            **({"message": s.message} if s.message else {}),
        }
        for s in rollout.steps
    ]
    body: dict[str, object] = {"revision": sha, "steps": steps}
    proven = sha if rollout.complete else rollout.proven
    if proven:  # an empty string would be a null in the status patch
        body["provenRevision"] = proven
    if rollout.unmatched:
        body["unmatched"] = list(rollout.unmatched)
    if rollout.stopped_by:
        body["stoppedBy"] = list(rollout.stopped_by)
    current = next((s for s in rollout.steps if s.phase is not StepPhase.DONE), None)
    if current is None:
        return RollingReport(True, Reason.ROLLING_COMPLETE, f"every step is Healthy at {sha}", body)
    where = f"step {current.number} ({', '.join(current.applications) or 'no apps'})"
    if current.phase is StepPhase.STOPPED:
        message = f"{where} {current.message}; later steps stay at {proven or 'their revision'}"
        return RollingReport(False, Reason.ROLLING_STOPPED, message, body)
    if current.phase is StepPhase.PAUSED:
        return RollingReport(False, Reason.ROLLING_PAUSED, f"{where} {current.message}", body)
    return RollingReport(True, Reason.ROLLING_PROGRESSING, f"{where} is rolling to {sha}", body)
