"""CronJob health: suspended, failing, or fine - Argo CD's rules (its ``batch/CronJob`` check).

A CronJob itself only schedules Jobs; the Jobs carry their own health. The CronJob is:

- Suspended when ``spec.suspend`` is true;
- Progressing while it has no ``status`` at all: the CronJob controller has not seen it yet;
- Degraded when a ``Failed`` condition is True (some controllers and admission layers add one), or
  when ``status.lastScheduleTime`` is later than ``status.lastSuccessfulTime`` and no Job is
  active: the most recent run ended without succeeding. Both times must be present: a CronJob
  that was scheduled but never succeeded may simply not have finished its first run (and
  clusters older than 1.21 never write ``lastSuccessfulTime``), so it is Healthy, as in Argo CD;
- Healthy otherwise, including while a Job is running (a running Job is normal operation, and
  waiting on it would hold every sync hostage to the schedule).

The ``Failed`` condition is gitsync's addition; Kubernetes itself writes no CronJob conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import MalformedObject, boolean, objects, string
from gitsync.model import HealthStatus


def _timestamp(obj: Mapping[str, Any], field: str) -> datetime | None:
    text = string(obj, "status", field)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise MalformedObject(f"status.{field} is not a timestamp: {text!r:.80}") from error
    if moment.tzinfo is None:
        raise MalformedObject(f"status.{field} has no time zone: {text!r:.80}")
    return moment


def check_cronjob(obj: Mapping[str, Any]) -> Health:
    """Health of a ``batch/v1`` CronJob."""
    if boolean(obj, "spec", "suspend"):
        return Health(HealthStatus.SUSPENDED, "CronJob is suspended")
    if obj.get("status") is None:
        return Health(HealthStatus.PROGRESSING, "Waiting for the CronJob controller")
    failed = find(status_conditions(obj), "Failed")
    if failed is not None and failed.is_true:
        return Health(HealthStatus.DEGRADED, f"CronJob failed: {failed.explanation()}")
    last_schedule = _timestamp(obj, "lastScheduleTime")
    last_success = _timestamp(obj, "lastSuccessfulTime")
    active = objects(obj, "status", "active")
    if active:
        return Health(HealthStatus.HEALTHY, f"{len(active)} job(s) running")
    if last_schedule is not None and last_success is not None and last_success < last_schedule:
        return Health(
            HealthStatus.DEGRADED,
            f"The job scheduled at {string(obj, 'status', 'lastScheduleTime')} did not succeed "
            f"(last success {string(obj, 'status', 'lastSuccessfulTime')})",
        )
    if last_schedule is None:
        return Health(HealthStatus.HEALTHY, "Not scheduled yet")
    scheduled = f"Last scheduled at {string(obj, 'status', 'lastScheduleTime')}"
    if last_success is None:
        return Health(HealthStatus.HEALTHY, f"{scheduled}; no run has succeeded yet")
    return Health(HealthStatus.HEALTHY, scheduled)
