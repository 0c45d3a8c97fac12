"""The ApplicationSet's status, as Argo CD spells it: conditions and the generated resources.

Conditions ``ErrorOccurred``, ``ParametersGenerated`` and ``ResourcesUpToDate`` (Argo CD's types
and reasons), ``resources[]`` - one entry per generated Application with its sync and health
status, the ``parameters`` it was rendered from, and a ``message`` when gitsync left it alone
(a policy, a conflict, an empty generation) - and ``applicationCount`` for ``kubectl get
applicationsets``. A generation that made no Application is an error (``ErrorOccurred``
True, reason ``EmptyGeneration``) unless the set allows it - "no empty result is a success".
A condition keeps its ``lastTransitionTime`` while its status does not
change, so a pass that changed nothing produces the same status, and the controller writes none.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitsync import kinds


class ConditionType(enum.StrEnum):
    ERROR_OCCURRED = "ErrorOccurred"
    PARAMETERS_GENERATED = "ParametersGenerated"
    RESOURCES_UP_TO_DATE = "ResourcesUpToDate"
    ROLLING_SYNC = "RollingSync"  # gitsync's: where a rolling sync stands, and what stops it


class Reason(enum.StrEnum):
    UP_TO_DATE = "ApplicationSetUpToDate"
    PARAMETERS_GENERATED = "ParametersGenerated"
    ERROR = "ErrorOccurred"
    GENERATION_ERROR = "ApplicationGenerationFromParamsError"
    INVALID_SPEC = "InvalidSpec"
    UPDATE_ERROR = "UpdateApplicationError"
    NOT_UP_TO_DATE = "ApplicationSetNotUpToDate"
    ROLLING_COMPLETE = "RollingSyncComplete"
    ROLLING_PROGRESSING = "RollingSyncProgressing"
    ROLLING_PAUSED = "RollingSyncPaused"
    ROLLING_STOPPED = "RollingSyncStopped"
    EMPTY_GENERATION = "EmptyGeneration"  # gitsync's: the generators gave no parameter set


class Stage(enum.StrEnum):
    """Where a pass stopped (or ``DONE``)."""

    SPEC = "spec"  # the set's spec is invalid
    PARAMETERS = "parameters"  # a generator failed (fetch, parse, limit)
    APPLICATIONS = "applications"  # the template failed for a parameter set
    EMPTY = "empty"  # the generators gave nothing and the set does not allow an empty generation
    DONE = "done"


@dataclass(frozen=True)
class Resource:
    """One generated (or formerly generated) Application as the status lists it."""

    name: str
    namespace: str
    sync: str = ""
    health: str = ""
    message: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)  # shown_parameters

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": kinds.GROUP,
            "version": kinds.VERSION,
            "kind": kinds.APPLICATION,
            "name": self.name,
            "namespace": self.namespace,
            "status": self.sync or "Unknown",
            "health": {"status": self.health or "Unknown"},
        }
        if self.message:
            out["message"] = self.message
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True)
class RollingReport:
    """A rolling sync's pass for the status: the ``RollingSync`` condition (``ok`` False when
    paused or stopped) and ``status.rollingSync`` (``body``)."""

    ok: bool
    reason: Reason
    message: str
    body: Mapping[str, Any]


def _condition(
    kind: ConditionType,
    ok: bool,
    *,
    reason: Reason,
    message: str,
    previous: Mapping[str, Any],
    now: str,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == kind.value), None
    )
    since = now
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    return {
        "type": kind.value,
        "status": status,
        "reason": reason.value,
        "message": message[:2048],
        "lastTransitionTime": since,
    }


_FAILED: dict[Stage, Reason] = {
    Stage.SPEC: Reason.INVALID_SPEC,
    Stage.PARAMETERS: Reason.ERROR,
    Stage.APPLICATIONS: Reason.GENERATION_ERROR,
    Stage.EMPTY: Reason.EMPTY_GENERATION,
}


def _held(error: str) -> str:
    """The conditions' message after a failed stage."""
    return f"{error}; nothing was created, updated or deleted"[:2048]


def reports_anew(
    stage: Stage, error: str, *, last: tuple[Stage, str] | None, previous: Mapping[str, Any]
) -> bool:
    """Whether a failed pass is news worth an Event: not when this process's last pass of the
    set failed the same way (``last``), nor when the set's status already says so (``previous``,
    read back - after a restart, or when the last pass is not this process's) - so a set that
    stays broken records its Event once, not once a pass."""
    if last == (stage, error):
        return False
    shown: Mapping[str, Any] = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == "ErrorOccurred"), {}
    )
    return not (
        shown.get("status") == "True"
        and shown.get("reason") == _FAILED[stage].value
        and shown.get("message") == _held(error)
    )


def set_status(
    *,
    stage: Stage,
    error: str,
    resources: list[Resource],
    previous: Mapping[str, Any],
    now: str,
    observed_generation: int,
    application_count: int,
    rolling: RollingReport | None = None,
    allowed_empty: str = "",
) -> dict[str, Any]:
    """The whole status for one pass. ``error``: what went wrong ("" for nothing); after a
    failed stage ``resources`` are the Applications the set owns, left as they were.
    ``allowed_empty``: a generation that made nothing, which the set's annotation allows - the
    ``ResourcesUpToDate`` message says so instead of "all generated"."""
    problems = [r for r in resources if r.message]
    generated = "Successfully generated parameters for all Applications"

    def condition(kind: ConditionType, ok: bool, reason: Reason, message: str) -> dict[str, Any]:
        return _condition(kind, ok, reason=reason, message=message, previous=previous, now=now)

    if stage is Stage.DONE:
        up_to_date = not error and not problems
        conditions = [
            condition(
                ConditionType.ERROR_OCCURRED,
                bool(error),
                Reason.UPDATE_ERROR if error else Reason.UP_TO_DATE,
                error or generated,
            ),
            condition(
                ConditionType.PARAMETERS_GENERATED, True, Reason.PARAMETERS_GENERATED, generated
            ),
            condition(
                ConditionType.RESOURCES_UP_TO_DATE,
                up_to_date,
                Reason.UP_TO_DATE if up_to_date else Reason.NOT_UP_TO_DATE,
                (allowed_empty or "All applications have been generated successfully")
                if up_to_date
                else error or f"{len(problems)} application(s) left as they are (see resources)",
            ),
        ]
    else:
        reason = _FAILED[stage]
        held = _held(error)
        params_ok = stage is Stage.APPLICATIONS
        conditions = [
            condition(ConditionType.ERROR_OCCURRED, True, reason, held),
            condition(
                ConditionType.PARAMETERS_GENERATED,
                params_ok,
                Reason.PARAMETERS_GENERATED if params_ok else reason,
                generated if params_ok else held,
            ),
            condition(ConditionType.RESOURCES_UP_TO_DATE, False, reason, held),
        ]
    out: dict[str, Any] = {
        "observedGeneration": observed_generation,
        "conditions": conditions,
        "resources": [r.to_dict() for r in sorted(resources, key=lambda r: r.name)],
        "applicationCount": application_count,
    }
    if rolling is not None:
        conditions.append(
            condition(ConditionType.ROLLING_SYNC, rolling.ok, rolling.reason, rolling.message)
        )
        out["rollingSync"] = dict(rolling.body)
    elif previous.get("rollingSync") is not None:  # a failed pass: the rollout stands as it was
        out["rollingSync"] = previous["rollingSync"]
        kept = ConditionType.ROLLING_SYNC.value
        conditions.extend(c for c in previous.get("conditions") or [] if c.get("type") == kept)
    return out
