"""Health of Argo Workflows' ``Workflow`` (``argoproj.io``), as Argo CD's built-in check reads it.

A Workflow deployed from Git is a run-to-completion object, judged by ``status.phase``: no phase
yet, ``Pending`` or ``Running`` is Progressing; ``Succeeded`` is Healthy; ``Failed`` and ``Error``
are Degraded; each with ``status.message``. A phase Argo Workflows does not define is Unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import string
from gitsync.model import HealthStatus

PHASES = {
    "": HealthStatus.PROGRESSING,
    "Pending": HealthStatus.PROGRESSING,
    "Running": HealthStatus.PROGRESSING,
    "Succeeded": HealthStatus.HEALTHY,
    "Failed": HealthStatus.DEGRADED,
    "Error": HealthStatus.DEGRADED,
}


def check_argo_workflow(obj: Mapping[str, Any]) -> Health:
    """Health of an ``argoproj.io`` Workflow."""
    phase = string(obj, "status", "phase")
    message = string(obj, "status", "message")
    status = PHASES.get(phase)
    if status is None:
        return Health(HealthStatus.UNKNOWN, f"Unrecognised workflow phase {phase!r}")
    return Health(
        status, message or (f"Workflow is {phase}" if phase else "Workflow has not started")
    )
