"""Pod health from its phase, its restart policy, its Ready condition and its containers' states.

The rules are Argo CD's (gitops-engine ``health_pod.go``), so an app moved from Argo CD judges its
pods - and its Pod hooks - the same way. A pod being deleted never gets here (``deletion``).

1. ``restartPolicy: Always`` (the default) and a container waiting for a reason that does not
   resolve on its own -> Degraded. Those are the reasons that start with ``Err`` or end with
   ``Error`` or ``BackOff`` (``CrashLoopBackOff``, ``ImagePullBackOff``, ``ErrImagePull``,
   ``CreateContainerConfigError``...), and ``InvalidImageName``. Pods that run to completion
   (``OnFailure``/``Never``) are exempt: they are typically sync hooks, and failing a hook for an
   image pull that later succeeds would leave a hook running after its sync has given up on it.
   A hook whose image never comes is caught by the hook timeout instead.
2. ``Pending`` -> Progressing; ``Succeeded`` -> Healthy; ``Failed`` -> Degraded, with the pod's
   message or else the first terminated container's (its message, ``OOMKilled``, or exit code).
3. ``Running``:
   - ``Always``: Ready -> Healthy; not Ready and a container has terminated before
     (``lastState.terminated``: it crashed or was killed since it started) -> Degraded; otherwise
     Progressing, waiting for readiness.
   - ``OnFailure``/``Never``: Progressing until the pod finishes.
4. Any other phase (``Unknown``, usually a lost node) -> Unknown.

Where gitsync is stricter than Argo CD: init containers count in rule 1 (Argo CD looks at the app
containers only, so a pod stuck in ``Init:CrashLoopBackOff`` stays Progressing there forever), and
so does ``InvalidImageName``, which no retry can fix.
A pod without a phase reads as ``Pending`` (the API server sets it on create).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import integer, mapping, objects, string
from gitsync.model import HealthStatus

CONTAINER_STATUS_FIELDS = ("initContainerStatuses", "containerStatuses")
NON_RESOLVING_WAIT_REASONS = frozenset({"InvalidImageName"})


def is_failing_wait_reason(reason: str) -> bool:
    """Whether a container waiting for this reason needs someone to fix something."""
    return (
        reason in NON_RESOLVING_WAIT_REASONS
        or reason.startswith("Err")
        or reason.endswith(("Error", "BackOff"))
    )


def _failing_container(obj: Mapping[str, Any]) -> Health | None:
    for field in CONTAINER_STATUS_FIELDS:
        for container in objects(obj, "status", field):
            reason = string(container, "state", "waiting", "reason")
            if reason and is_failing_wait_reason(reason):
                name = string(container, "name", default="?")
                message = string(container, "state", "waiting", "message")
                detail = f": {message}" if message else ""
                return Health(HealthStatus.DEGRADED, f"{reason}: container {name}{detail}")
    return None


def _termination(container: Mapping[str, Any], field: str) -> str:
    """Why the container's ``field`` (``state`` or ``lastState``) says it ended badly, or ""."""
    message = string(container, field, "terminated", "message")
    reason = string(container, field, "terminated", "reason")
    exit_code = integer(container, field, "terminated", "exitCode")
    name = string(container, "name", default="?")
    if message:
        return message
    if reason == "OOMKilled":
        return f"container {name} was OOMKilled"
    if exit_code != 0:
        return f"container {name} failed with exit code {exit_code}"
    return ""


def _failure_message(obj: Mapping[str, Any]) -> str:
    reason = string(obj, "status", "reason")
    message = string(obj, "status", "message")
    if message:
        return ": ".join(part for part in (reason, message) if part)
    for field in CONTAINER_STATUS_FIELDS:
        for container in objects(obj, "status", field):
            why = _termination(container, "state")
            if why:
                return why
    return reason or "no reason given"


def _restarted_container(obj: Mapping[str, Any]) -> str | None:
    """The first app container that has terminated since it started, described, or None."""
    for container in objects(obj, "status", "containerStatuses"):
        if mapping(container, "lastState", "terminated"):
            why = _termination(container, "lastState")
            name = string(container, "name", default="?")
            return f"container {name} restarted" + (f" ({why})" if why else "")
    return None


def check_pod(obj: Mapping[str, Any]) -> Health:
    """Health of a core/v1 Pod."""
    phase = string(obj, "status", "phase", default="Pending")
    message = string(obj, "status", "message")
    restarts_forever = string(obj, "spec", "restartPolicy", default="Always") == "Always"
    failing = _failing_container(obj)
    if failing is not None and restarts_forever:
        return failing
    # A run-to-completion pod waits rather than fails (rule 1), but the user still sees why.
    waiting = f" ({failing.message})" if failing is not None else ""
    if phase == "Pending":
        return Health(HealthStatus.PROGRESSING, (message or "Pod is pending") + waiting)
    if phase == "Succeeded":
        return Health(HealthStatus.HEALTHY, message or "Pod completed successfully")
    if phase == "Failed":
        return Health(HealthStatus.DEGRADED, f"Pod failed: {_failure_message(obj)}")
    if phase == "Running":
        if not restarts_forever:
            return Health(
                HealthStatus.PROGRESSING, (message or "Pod is running to completion") + waiting
            )
        ready = find(status_conditions(obj), "Ready")
        if ready is not None and ready.is_true:
            return Health(HealthStatus.HEALTHY, message or "Pod is running and ready")
        restarted = _restarted_container(obj)
        if restarted is not None:
            return Health(HealthStatus.DEGRADED, f"Pod is not ready and {restarted}")
        detail = f": {ready.explanation()}" if ready is not None and ready.reason else ""
        return Health(HealthStatus.PROGRESSING, f"Waiting for pod to become ready{detail}")
    return Health(HealthStatus.UNKNOWN, f"Pod phase is {phase}{f': {message}' if message else ''}")
