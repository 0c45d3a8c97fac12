"""StatefulSet health: the rules ``kubectl rollout status statefulset`` waits on.

Order matters and follows kubectl: the spec must be observed (an ``observedGeneration`` of 0 means
the controller has not acted at all), then every desired pod must be ready. After that the update
strategy decides what "done" means:

- ``OnDelete``: the controller never replaces pods by itself, so there is no rollout to wait for;
  ready pods are Healthy.
- ``RollingUpdate`` with a ``partition``: only ordinals >= partition are updated, so the rollout is
  done when ``replicas - partition`` pods run the new revision (a staged canary is Healthy).
- ``RollingUpdate`` otherwise: done when ``currentRevision`` has caught up with ``updateRevision``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import integer, optional_integer, string
from gitsync.model import HealthStatus


def check_statefulset(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apps/v1`` StatefulSet."""
    generation = integer(obj, "metadata", "generation")
    observed = integer(obj, "status", "observedGeneration")
    if observed == 0 or generation > observed:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to be observed: generation {generation}, observed {observed}",
        )
    desired = integer(obj, "spec", "replicas", default=1)
    ready = integer(obj, "status", "readyReplicas")
    if ready < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {ready} of {desired} pods are ready",
        )
    strategy = string(obj, "spec", "updateStrategy", "type", default="RollingUpdate")
    if strategy == "OnDelete":
        return Health(
            HealthStatus.HEALTHY,
            f"{ready} of {desired} pods are ready (OnDelete: pods update when deleted)",
        )
    updated = integer(obj, "status", "updatedReplicas")
    partition = optional_integer(obj, "spec", "updateStrategy", "rollingUpdate", "partition")
    if partition is not None:
        target = max(desired - partition, 0)
        if updated < target:
            return Health(
                HealthStatus.PROGRESSING,
                f"Waiting for partitioned rollout to finish: {updated} out of {target} "
                "new pods have been updated",
            )
        return Health(
            HealthStatus.HEALTHY,
            f"Partitioned rollout complete: {updated} new pods have been updated",
        )
    current_revision = string(obj, "status", "currentRevision")
    update_revision = string(obj, "status", "updateRevision")
    if update_revision != current_revision:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rolling update to complete: {updated} of {desired} pods "
            f"at revision {update_revision}",
        )
    revision = f" at revision {current_revision}" if current_revision else ""
    return Health(HealthStatus.HEALTHY, f"{ready} of {desired} pods are ready{revision}")
