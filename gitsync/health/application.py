"""Health of gitsync's own Application objects (``gitsync.dev``), e.g. in app-of-apps setups.

The gitsync controller already aggregates an Application's resources into
``status.health.{status,message}``, so that verdict is taken as is. An Application the
controller has not assessed yet (no ``status.health``) is Progressing, not Unknown: it is new
and will be assessed on the next reconcile, and a parent app should wait for it rather than be
flagged as broken. A status value that is not a ``HealthStatus`` is Unknown, with the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import mapping, string
from gitsync.model import HealthStatus


def check_application(obj: Mapping[str, Any]) -> Health:
    """Health of a ``gitsync.dev`` Application, as its controller reported it."""
    health = mapping(obj, "status", "health")
    value = string(health, "status")
    message = string(health, "message")
    if not value:
        return Health(
            HealthStatus.PROGRESSING, "Waiting for the application's health to be assessed"
        )
    try:
        status = HealthStatus(value)
    except ValueError:
        return Health(HealthStatus.UNKNOWN, f"Unrecognised application health {value!r}")
    return Health(status, message)
