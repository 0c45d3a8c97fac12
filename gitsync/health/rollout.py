"""Health of gitsync's Rollout objects (``gitsync.dev``): canary / blue-green progress.

The rollout controller summarises its state in ``status.phase``; that maps one to one onto
health, except ``Paused`` (waiting at a manual step or for promotion), which is Suspended. As for
the built-in workloads, a phase written for an older generation of the spec says nothing about
the current one, so a stale ``observedGeneration`` is Progressing. A Rollout without a phase has
not been picked up yet: Progressing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import generation_lag, string
from gitsync.model import HealthStatus

PHASES = {
    "Healthy": HealthStatus.HEALTHY,
    "Progressing": HealthStatus.PROGRESSING,
    "Paused": HealthStatus.SUSPENDED,
    "Degraded": HealthStatus.DEGRADED,
}


def check_rollout(obj: Mapping[str, Any]) -> Health:
    """Health of a ``gitsync.dev`` Rollout."""
    lag = generation_lag(obj)
    if lag is not None:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to be observed: generation {lag[0]}, observed {lag[1]}",
        )
    phase = string(obj, "status", "phase")
    message = string(obj, "status", "message")
    if not phase:
        return Health(HealthStatus.PROGRESSING, message or "Waiting for the rollout to start")
    status = PHASES.get(phase)
    if status is None:
        return Health(HealthStatus.UNKNOWN, f"Unrecognised rollout phase {phase!r}")
    return Health(status, message or f"Rollout is {phase}")
