"""APIService health: the aggregator's ``Available`` condition, as Argo CD reads it.

An APIService registers an API group version with the aggregator. A local one (no
``spec.service``: the group is served by kube-apiserver itself, such as ``v1.apps``) is
``Available=True`` with reason ``Local`` from the start. One backed by an extension API server
(metrics-server, for example) is ``Available=True`` once the aggregator has reached it.

``Available`` that is not True is Progressing, not Degraded - Argo CD's rule (gitops-engine
``health_apiservice.go``), and the right one for a sync: an APIService is usually applied in the
same wave as the Deployment that serves it, and is ``False`` (``MissingEndpoints``,
``FailedDiscoveryCheck``) until those pods are ready. The message carries the reason, and a
service that never comes up is caught by the wave's health timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.health.fields import mapping
from gitsync.model import HealthStatus


def check_apiservice(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apiregistration.k8s.io`` APIService (v1 or v1beta1)."""
    available = find(status_conditions(obj), "Available")
    local = not mapping(obj, "spec", "service")
    if available is None:
        return Health(HealthStatus.PROGRESSING, "Waiting for the API service to be checked")
    if available.is_true:
        default = "Served locally by kube-apiserver" if local else "API service is available"
        return Health(
            HealthStatus.HEALTHY, available.explanation() if available.reason else default
        )
    return Health(
        HealthStatus.PROGRESSING, f"Waiting for the API service: {available.explanation()}"
    )
