"""Job health: terminal conditions first, then suspension, otherwise still running.

A Job that has failed or completed stays so, whatever ``spec.suspend`` says afterwards, so the
``Failed`` and ``Complete`` conditions are checked before suspension. A suspended Job - the
``Suspended`` condition True, or ``spec.suspend`` set and not yet acted on - is Suspended. A Job
that is none of these is Progressing: it is running, or waiting for its pods to be scheduled.

Argo CD (gitops-engine ``health_job.go``) agrees on every state a Job controller writes. It
differs on two that gitsync reads more carefully: Argo CD counts a ``Complete``/``Failed``/
``Suspended`` condition whatever its status, so a resumed Job (``Suspended=False``) reads Healthy
there while it runs; gitsync requires ``True`` and says Progressing. And Argo CD ignores
``spec.suspend`` until the controller has written the condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import boolean, integer
from gitsync.model import HealthStatus


def check_job(obj: Mapping[str, Any]) -> Health:
    """Health of a ``batch/v1`` Job."""
    conditions = status_conditions(obj)
    failed = find(conditions, "Failed")
    if failed is not None and failed.is_true:
        return Health(HealthStatus.DEGRADED, f"Job failed: {failed.explanation()}")
    complete = find(conditions, "Complete")
    if complete is not None and complete.is_true:
        return Health(HealthStatus.HEALTHY, complete.message or "Job completed")
    suspended = find(conditions, "Suspended")
    if suspended is not None and suspended.is_true:
        detail = f": {suspended.message}" if suspended.message else ""
        return Health(HealthStatus.SUSPENDED, f"Job is suspended{detail}")
    if boolean(obj, "spec", "suspend"):
        return Health(HealthStatus.SUSPENDED, "Job is suspended")
    active = integer(obj, "status", "active")
    succeeded = integer(obj, "status", "succeeded")
    failures = integer(obj, "status", "failed")
    return Health(
        HealthStatus.PROGRESSING,
        f"Job is running: {active} active, {succeeded} succeeded, {failures} failed",
    )
