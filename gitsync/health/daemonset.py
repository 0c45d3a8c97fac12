"""DaemonSet health: the rules ``kubectl rollout status daemonset`` waits on.

The desired count is not in the spec but in ``status.desiredNumberScheduled`` (one pod per
eligible node). Once the controller has observed the spec, the rollout is done when every
scheduled pod is updated and available. With the ``OnDelete`` strategy pods are only replaced when
someone deletes them, so "updated" never catches up by itself; only availability is checked.

Argo CD (gitops-engine ``health_daemonset.go``) calls an observed ``OnDelete`` DaemonSet Healthy
whatever its pods do. gitsync is stricter on purpose: pods that are not available are not
healthy under any update strategy, and a DaemonSet whose pods crash should not pass a sync wave.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import generation_lag, integer, string
from gitsync.model import HealthStatus


def check_daemonset(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apps/v1`` (or legacy ``extensions``) DaemonSet."""
    lag = generation_lag(obj)
    if lag is not None:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to be observed: generation {lag[0]}, observed {lag[1]}",
        )
    desired = integer(obj, "status", "desiredNumberScheduled")
    updated = integer(obj, "status", "updatedNumberScheduled")
    available = integer(obj, "status", "numberAvailable")
    on_delete = string(obj, "spec", "updateStrategy", "type") == "OnDelete"
    if not on_delete and updated < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {updated} out of {desired} new pods have been updated",
        )
    if available < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {available} of {desired} pods are available",
        )
    if on_delete:
        return Health(
            HealthStatus.HEALTHY,
            f"{available} of {desired} pods are available (OnDelete: pods update when deleted)",
        )
    return Health(HealthStatus.HEALTHY, f"{available} of {desired} pods are updated and available")
