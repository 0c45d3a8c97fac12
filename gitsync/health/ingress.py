"""Ingress health: Progressing until the ingress controller publishes an address.

Controllers write the address they serve the Ingress on to ``status.loadBalancer.ingress``. Some
controllers never do (a known Argo CD caveat); such Ingresses stay Progressing, which is the
honest answer - gitsync cannot tell that the controller has picked the Ingress up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.service import load_balancer_addresses
from gitsync.model import HealthStatus


def check_ingress(obj: Mapping[str, Any]) -> Health:
    """Health of a ``networking.k8s.io`` (or legacy ``extensions``) Ingress."""
    addresses = load_balancer_addresses(obj)
    if not addresses:
        return Health(
            HealthStatus.PROGRESSING, "Waiting for the ingress controller to publish an address"
        )
    return Health(HealthStatus.HEALTHY, f"Ingress at {', '.join(addresses)}")
