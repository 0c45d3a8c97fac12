"""ReplicaSet health: all desired replicas available, no ReplicaFailure.

ReplicaSets are usually owned by a Deployment (whose own health already covers the rollout), but a
bare ReplicaSet is still a valid workload. ``ReplicaFailure=True`` means the controller could not
create pods (quota, admission webhook, bad spec), which will not fix itself: Degraded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import generation_lag, integer
from gitsync.model import HealthStatus


def check_replicaset(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apps/v1`` (or legacy ``extensions``) ReplicaSet."""
    lag = generation_lag(obj)
    if lag is not None:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to be observed: generation {lag[0]}, observed {lag[1]}",
        )
    failure = find(status_conditions(obj), "ReplicaFailure")
    if failure is not None and failure.is_true:
        return Health(HealthStatus.DEGRADED, failure.explanation())
    desired = integer(obj, "spec", "replicas", default=1)
    available = integer(obj, "status", "availableReplicas")
    if available < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {available} of {desired} replicas are available",
        )
    return Health(HealthStatus.HEALTHY, f"{available} of {desired} replicas are available")
