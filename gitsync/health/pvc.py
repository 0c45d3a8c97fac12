"""PersistentVolumeClaim health, straight from its phase.

``Bound`` is done; ``Pending`` waits for a volume (provisioning, or ``WaitForFirstConsumer`` until a
pod uses the claim); ``Lost`` means the bound volume is gone, which needs a human.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import string
from gitsync.model import HealthStatus


def check_pvc(obj: Mapping[str, Any]) -> Health:
    """Health of a core/v1 PersistentVolumeClaim."""
    phase = string(obj, "status", "phase", default="Pending")
    if phase == "Bound":
        volume = string(obj, "spec", "volumeName")
        return Health(HealthStatus.HEALTHY, f"Bound to {volume}" if volume else "Bound")
    if phase == "Pending":
        return Health(HealthStatus.PROGRESSING, "Waiting for the claim to be bound to a volume")
    if phase == "Lost":
        return Health(HealthStatus.DEGRADED, "The claim lost its bound volume")
    return Health(HealthStatus.UNKNOWN, f"Unrecognised claim phase {phase}")
