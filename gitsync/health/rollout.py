"""Health of gitsync's Rollout objects (``gitsync.dev``): canary / blue-green progress.

The rollout controller summarises its state in ``status.phase``; that maps one to one onto
health, except ``Paused`` (waiting at a manual step or for promotion), which is Suspended. As for
the built-in workloads, a phase written for an older generation of the spec says nothing about
the current one, so a stale ``observedGeneration`` is Progressing. A Rollout without a phase has
not been picked up yet: Progressing.

A Healthy Rollout that finished rolling out a revision from Git (``status.gitRevision`` is the
revision whose sync started the canary or preview, and no canary is left) says so in its health
message: ``promoted revision <sha>: ...``. That message is what the Application's resource row
keeps, and the notification event ``rollout-promoted`` is derived from it
(``promoted_revision``). A Rollout that was only ever deployed directly (its first version) has no
``gitRevision`` and was never promoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import generation_lag, string
from gitsync.model import HealthStatus

PROMOTED_PREFIX = "promoted revision "

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
    message = message or f"Rollout is {phase}"
    promoted = string(obj, "status", "gitRevision")
    if status == HealthStatus.HEALTHY and promoted and not string(obj, "status", "canaryHash"):
        return Health(status, f"{PROMOTED_PREFIX}{promoted}: {message}")
    return Health(status, message)


def promoted_revision(health_message: str) -> str:
    """The revision a Healthy Rollout's health message (``check_rollout``) says was promoted,
    or "" when it names none."""
    if not health_message.startswith(PROMOTED_PREFIX):
        return ""
    revision, sep, _ = health_message[len(PROMOTED_PREFIX) :].partition(":")
    return revision if sep else ""
