"""Pod health from its phase, its Ready condition and why its containers are waiting.

The phase alone is not enough: a pod whose container is in ``CrashLoopBackOff`` or cannot pull its
image stays ``Running`` or ``Pending`` forever, so waiting reasons that do not resolve on their own
make the pod Degraded before the phase is considered. They are the reasons in
``FAILING_WAIT_REASONS``, plus - because kubelet and runtimes add new ones - any reason that
starts with ``Err`` or ends with ``Error`` or ``BackOff``. Init containers count too.

Order of the rules:

1. ``metadata.deletionTimestamp`` set -> Progressing: the pod is going away.
2. ``Succeeded`` -> Healthy; ``Failed`` -> Degraded with the pod's reason and message.
3. A failing waiting reason -> Degraded with that reason.
4. ``Pending`` -> Progressing.
5. ``Running`` with ``Ready=True`` -> Healthy; not ready -> Progressing (for ``restartPolicy:
   Always`` it is waiting for readiness; otherwise it is a run-to-completion pod still running).
6. Any other phase (``Unknown``, usually a lost node) -> Unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import objects, string
from gitsync.model import HealthStatus

FAILING_WAIT_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "InvalidImageName",
        "CreateContainerError",
    }
)


def is_failing_wait_reason(reason: str) -> bool:
    """Whether a container waiting for this reason needs someone to fix something."""
    return (
        reason in FAILING_WAIT_REASONS
        or reason.startswith("Err")
        or reason.endswith(("Error", "BackOff"))
    )


def _failing_container(obj: Mapping[str, Any]) -> Health | None:
    for field in ("initContainerStatuses", "containerStatuses"):
        for container in objects(obj, "status", field):
            reason = string(container, "state", "waiting", "reason")
            if reason and is_failing_wait_reason(reason):
                name = string(container, "name", default="?")
                message = string(container, "state", "waiting", "message")
                detail = f": {message}" if message else ""
                return Health(HealthStatus.DEGRADED, f"{reason}: container {name}{detail}")
    return None


def check_pod(obj: Mapping[str, Any]) -> Health:
    """Health of a core/v1 Pod."""
    if string(obj, "metadata", "deletionTimestamp"):
        return Health(HealthStatus.PROGRESSING, "Pod is terminating")
    phase = string(obj, "status", "phase", default="Pending")
    reason = string(obj, "status", "reason")
    message = string(obj, "status", "message")
    if phase == "Succeeded":
        return Health(HealthStatus.HEALTHY, message or "Pod completed successfully")
    if phase == "Failed":
        explanation = ": ".join(part for part in (reason, message) if part)
        return Health(HealthStatus.DEGRADED, f"Pod failed: {explanation or 'no reason given'}")
    failing = _failing_container(obj)
    if failing is not None:
        return failing
    if phase == "Pending":
        return Health(HealthStatus.PROGRESSING, message or "Pod is pending")
    if phase == "Running":
        ready = find(status_conditions(obj), "Ready")
        if ready is not None and ready.is_true:
            return Health(HealthStatus.HEALTHY, "Pod is running and ready")
        if string(obj, "spec", "restartPolicy", default="Always") == "Always":
            detail = f": {ready.explanation()}" if ready is not None and ready.reason else ""
            return Health(HealthStatus.PROGRESSING, f"Waiting for pod to become ready{detail}")
        return Health(HealthStatus.PROGRESSING, "Pod is running to completion")
    return Health(HealthStatus.UNKNOWN, f"Pod phase is {phase}{f': {message}' if message else ''}")
