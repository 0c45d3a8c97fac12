"""APIService health: the aggregator's ``Available`` condition.

An APIService registers an extension API server (metrics-server, for example). Until the
aggregator has probed it there is no ``Available`` condition (Progressing); ``False`` means
requests to that API group fail - usually the backing Service has no ready endpoints - which
breaks discovery for every client, so it is Degraded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.model import HealthStatus


def check_apiservice(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apiregistration.k8s.io`` APIService."""
    available = find(status_conditions(obj), "Available")
    if available is None:
        return Health(HealthStatus.PROGRESSING, "Waiting for the API service to be checked")
    if available.is_true:
        return Health(HealthStatus.HEALTHY, available.message or "API service is available")
    if available.is_false:
        return Health(HealthStatus.DEGRADED, f"API service unavailable: {available.explanation()}")
    return Health(
        HealthStatus.PROGRESSING, f"API service availability unknown: {available.explanation()}"
    )
