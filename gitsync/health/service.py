"""Service health: only a LoadBalancer Service has anything to wait for.

ClusterIP, NodePort, headless and ExternalName Services are complete once they exist. A
LoadBalancer Service is Progressing until the cloud controller has written an address to
``status.loadBalancer.ingress``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import objects, string
from gitsync.model import HealthStatus


def load_balancer_addresses(obj: Mapping[str, Any]) -> list[str]:
    """The IPs / hostnames in ``status.loadBalancer.ingress`` (shared with Ingress)."""
    addresses: list[str] = []
    for entry in objects(obj, "status", "loadBalancer", "ingress"):
        address = string(entry, "ip") or string(entry, "hostname")
        addresses.append(address or "(address pending)")
    return addresses


def check_service(obj: Mapping[str, Any]) -> Health:
    """Health of a core/v1 Service."""
    kind = string(obj, "spec", "type", default="ClusterIP")
    if kind != "LoadBalancer":
        return Health(HealthStatus.HEALTHY, "")
    addresses = load_balancer_addresses(obj)
    if not addresses:
        return Health(HealthStatus.PROGRESSING, "Waiting for the load balancer to get an address")
    return Health(HealthStatus.HEALTHY, f"Load balancer at {', '.join(addresses)}")
