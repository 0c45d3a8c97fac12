"""Health of Argo Rollouts' ``Rollout`` (``argoproj.io``), judged as Argo CD judges it.

Apps moved from Argo CD often carry Argo Rollouts objects; gitsync applies them like any custom
resource and reads their health with the rules of Argo CD's ``argoproj.io/Rollout`` check, in
this order:

1. The spec must be observed. ``status.observedGeneration`` is a string in Argo Rollouts: a
   decimal generation since v0.10, a pod-template hash before. A number behind
   ``metadata.generation`` is Progressing; a hash cannot be compared and counts as observed. With
   a ``workloadRef`` the referenced workload's generation (annotation
   ``rollout.argoproj.io/workload-generation``) must equal ``status.workloadObservedGeneration``.
2. ``status.phase`` (Argo Rollouts v1.0+) decides when present: ``Paused`` is Suspended,
   ``Healthy``/``Progressing``/``Degraded`` are themselves, with ``status.message``.
3. Older controllers, no phase: an ``InvalidSpec`` condition, or ``Progressing`` with reason
   ``RolloutAborted`` or ``ProgressDeadlineExceeded``, is Degraded; ``status.pauseConditions`` or
   ``spec.paused`` is Suspended; then the replica counts and, per strategy, whether the new pods
   serve traffic (blue-green: the active selector; canary: the stable ReplicaSet) - Progressing
   until they do, then Healthy.

gitsync's own ``gitsync.dev`` Rollout has its own check (``rollout``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import status_conditions
from gitsync.health.fields import (
    boolean,
    lenient_integer,
    mapping,
    objects,
    replica_counts,
    string,
)
from gitsync.model import HealthStatus

WORKLOAD_GENERATION_ANNOTATION = "rollout.argoproj.io/workload-generation"
PHASES = {
    "Healthy": HealthStatus.HEALTHY,
    "Progressing": HealthStatus.PROGRESSING,
    "Paused": HealthStatus.SUSPENDED,
    "Degraded": HealthStatus.DEGRADED,
}
ABORTED_REASONS = frozenset({"RolloutAborted", "ProgressDeadlineExceeded"})


def _unobserved(obj: Mapping[str, Any]) -> Health | None:
    waiting = Health(HealthStatus.PROGRESSING, "Waiting for rollout spec update to be observed")
    if obj.get("status") is None:
        return waiting
    generation = lenient_integer(obj, "metadata", "generation")
    observed = lenient_integer(obj, "status", "observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout spec update to be observed: generation {generation}, "
            f"observed {observed}",
        )
    if mapping(obj, "spec", "workloadRef"):
        annotations = mapping(obj, "metadata", "annotations")
        workload = lenient_integer(annotations, WORKLOAD_GENERATION_ANNOTATION)
        seen = lenient_integer(obj, "status", "workloadObservedGeneration")
        if workload != seen:
            return Health(
                HealthStatus.PROGRESSING,
                f"Waiting for the workload's generation {workload} to be observed "
                f"(observed {seen})",
            )
    return None


def _stable_replicaset(obj: Mapping[str, Any]) -> str:
    # Argo Rollouts v0.8 moved status.canary.stableRS to status.stableRS.
    return string(obj, "status", "stableRS") or string(obj, "status", "canary", "stableRS")


def _from_counts(obj: Mapping[str, Any]) -> Health:
    """Rules 3 after the conditions: pause, reconciliation, replicas, traffic."""
    if objects(obj, "status", "pauseConditions") or boolean(obj, "spec", "paused"):
        return Health(HealthStatus.SUSPENDED, "Rollout is paused")
    pod_hash = string(obj, "status", "currentPodHash")
    if not pod_hash:
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for rollout to finish: status has not been reconciled",
        )
    counts = replica_counts(obj)
    desired, replicas = counts.desired, counts.replicas
    updated, available = counts.updated, counts.available
    if updated < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {updated} of {desired} replicas updated",
        )
    if available < updated:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {available} of {updated} updated replicas available",
        )
    stable = _stable_replicaset(obj)
    if mapping(obj, "spec", "strategy", "blueGreen"):
        if string(obj, "status", "blueGreen", "activeSelector") != pod_hash:
            return Health(HealthStatus.PROGRESSING, "Active service cutover pending")
        if stable and stable != pod_hash:
            return Health(HealthStatus.PROGRESSING, "Waiting for analysis to complete")
    elif mapping(obj, "spec", "strategy", "canary"):
        if replicas > updated:
            return Health(
                HealthStatus.PROGRESSING,
                f"Waiting for rollout to finish: {replicas - updated} old replicas "
                "are pending termination",
            )
        if stable != pod_hash:
            return Health(HealthStatus.PROGRESSING, "Waiting for rollout to finish steps")
    return Health(HealthStatus.HEALTHY, f"{available} of {desired} replicas updated and available")


def check_argo_rollout(obj: Mapping[str, Any]) -> Health:
    """Health of an ``argoproj.io`` Rollout."""
    unobserved = _unobserved(obj)
    if unobserved is not None:
        return unobserved
    phase = string(obj, "status", "phase")
    message = string(obj, "status", "message")
    if phase:
        status = PHASES.get(phase)
        if status is None:
            return Health(HealthStatus.UNKNOWN, f"Unrecognised rollout phase {phase!r}")
        return Health(status, message or f"Rollout is {phase}")
    for condition in status_conditions(obj):
        if condition.type == "InvalidSpec" or (
            condition.type == "Progressing" and condition.reason in ABORTED_REASONS
        ):
            return Health(HealthStatus.DEGRADED, condition.explanation())
    return _from_counts(obj)
