"""Health of Application objects - gitsync's (``gitsync.dev``) and Argo CD's (``argoproj.io``).

Both appear as children in app-of-apps setups, and both carry the health their controller
aggregated in ``status.health.{status,message}`` with the same six values.

The gitsync controller already aggregates an Application's resources into
``status.health.{status,message}``, so that verdict is taken as is. An Application the
controller has not assessed yet (no ``status.health``) is Progressing, not Unknown: it is new
and will be assessed on the next reconcile, and a parent app should wait for it rather than be
flagged as broken. A status value that is not a ``HealthStatus`` is Unknown, with the value.

Argo CD itself stopped assessing child Applications in v1.8 and asks for this very rule as a
``resource.customizations`` entry; gitsync applies it by default, so app-of-apps waves wait for
their children without configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import mapping, string
from gitsync.model import HealthStatus


def check_application(obj: Mapping[str, Any]) -> Health:
    """Health of a ``gitsync.dev`` or ``argoproj.io`` Application, as its controller reported."""
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
