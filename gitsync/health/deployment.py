"""Deployment health: the rules ``kubectl rollout status deployment`` waits on.

A rollout is judged only once the Deployment controller has observed the current spec
(``status.observedGeneration >= metadata.generation``); before that the replica counts describe the
previous spec. The checks then run in the order kubectl uses, so the message names the step the
rollout is at: progress deadline exceeded (Degraded), new replicas not all created, old replicas
not yet terminated, new replicas not yet available. A paused Deployment is Suspended whatever its
counts, because it will not progress until someone resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import boolean, generation_lag, replica_counts
from gitsync.model import HealthStatus


def check_deployment(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apps/v1`` (or legacy ``extensions``) Deployment."""
    if boolean(obj, "spec", "paused"):
        return Health(HealthStatus.SUSPENDED, "Deployment is paused")
    lag = generation_lag(obj)
    if lag is not None:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to be observed: generation {lag[0]}, observed {lag[1]}",
        )
    progressing = find(status_conditions(obj), "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        detail = f": {progressing.message}" if progressing.message else ""
        return Health(HealthStatus.DEGRADED, f"Deployment exceeded its progress deadline{detail}")
    counts = replica_counts(obj)
    desired, replicas = counts.desired, counts.replicas
    updated, available = counts.updated, counts.available
    if updated < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {updated} out of {desired} new replicas "
            "have been updated",
        )
    if replicas > updated:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {replicas - updated} old replicas "
            "are pending termination",
        )
    if available < updated:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {available} of {updated} updated replicas "
            "are available",
        )
    if desired == 0:
        return Health(HealthStatus.HEALTHY, "Deployment is scaled to zero")
    return Health(
        HealthStatus.HEALTHY, f"{available} of {desired} replicas are updated and available"
    )
