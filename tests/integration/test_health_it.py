"""Health of objects the real control plane wrote, read through every apiVersion it serves.

The fixture tables (tests/unit/test_health.py) hold objects written by hand. These tests show the
same verdicts for objects whose status the real kube-apiserver and controller-manager wrote, and
that one object read through each of its kind's served apiVersions - the API server converts
between them, e.g. the autoscaler's conditions into the ``autoscaling/v1`` annotation - gets the
same verdict from each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gitsync.health import Health, assess
from gitsync.kube import ApiError, KubeClient
from gitsync.model import HealthStatus
from tests.support.crds import gadget_crd
from tests.support.manifests import web_deployment
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MANAGER = "gitsync-tests"
HOLD_FINALIZER = "gitsync.dev/test-hold"


def served_versions(kube: KubeClient, group: str) -> list[str]:
    """The group's apiVersions this API server serves (``[]`` when it serves none)."""
    try:
        document = kube.request("GET", f"/apis/{group}")
    except ApiError as exc:
        if exc.status == 404:
            return []
        raise
    return [version["groupVersion"] for version in document.get("versions", [])]


def verdicts(
    kube: KubeClient, api_versions: list[str], kind: str, name: str, namespace: str = ""
) -> dict[str, Health]:
    """``assess`` of the object read through each of ``api_versions``."""
    found = {}
    for api_version in api_versions:
        live = kube.get(api_version, kind, name, namespace)
        assert live is not None, f"{api_version} {kind} {name} not found"
        found[api_version] = assess(live)
    return found


def deployment(namespace: str, replicas: int) -> dict[str, Any]:
    obj = web_deployment("registry.k8s.io/pause:3.9", replicas)
    obj["metadata"]["namespace"] = namespace
    return obj


def test_hpa_reads_the_same_through_the_v1_annotation_and_the_v2_conditions(
    kube: KubeClient, namespace: str
) -> None:
    kube.apply(deployment(namespace, 1), field_manager=MANAGER)
    kube.apply(
        {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 50,
            },
        },
        field_manager=MANAGER,
    )
    versions = served_versions(kube, "autoscaling")
    assert "autoscaling/v1" in versions and len(versions) >= 2, versions
    condition_versions = [v for v in versions if v != "autoscaling/v1"]

    def evaluated() -> list[dict[str, Any]] | None:
        # The autoscaler writes its conditions on its first pass (every 15 s by default).
        live = kube.get(condition_versions[0], "HorizontalPodAutoscaler", "web", namespace) or {}
        conditions = (live.get("status") or {}).get("conditions") or []
        types = {c.get("type") for c in conditions}
        return conditions if {"AbleToScale", "ScalingActive"} <= types else None

    conditions = wait_for(evaluated, timeout=90, interval=1, what="the autoscaler's conditions")
    v1 = kube.get("autoscaling/v1", "HorizontalPodAutoscaler", "web", namespace) or {}
    assert "autoscaling.alpha.kubernetes.io/conditions" in v1["metadata"]["annotations"]

    healths = verdicts(kube, versions, "HorizontalPodAutoscaler", "web", namespace)
    assert {h.status for h in healths.values()} == {HealthStatus.HEALTHY}, healths
    scaling_active = next(c for c in conditions if c["type"] == "ScalingActive")
    if scaling_active["status"] == "False":  # no metrics API on the test control plane
        for health in healths.values():
            assert f"autoscaling is not active: {scaling_active['reason']}" in health.message


def test_ingress_reads_the_same_through_every_served_version(
    kube: KubeClient, namespace: str
) -> None:
    kube.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        },
        field_manager=MANAGER,
    )
    versions = [
        v
        for v in served_versions(kube, "networking.k8s.io") + served_versions(kube, "extensions")
        if kube_serves(kube, v, "ingresses")
    ]
    assert "networking.k8s.io/v1" in versions, versions

    pending = verdicts(kube, versions, "Ingress", "web", namespace)
    assert {h.status for h in pending.values()} == {HealthStatus.PROGRESSING}, pending

    # What an ingress controller does once it serves the Ingress.
    kube.patch(
        "networking.k8s.io/v1",
        "Ingress",
        "web",
        {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}},
        namespace=namespace,
        subresource="status",
    )
    published = verdicts(kube, versions, "Ingress", "web", namespace)
    assert all(
        h == Health(HealthStatus.HEALTHY, "Ingress at 203.0.113.9") for h in published.values()
    ), published


def kube_serves(kube: KubeClient, api_version: str, resource: str) -> bool:
    """Whether ``api_version`` lists ``resource`` (a group version can drop a kind)."""
    document = kube.request("GET", f"/apis/{api_version}")
    return any(r.get("name") == resource for r in document.get("resources", []))


def test_local_apiservice_is_healthy_through_every_served_version(kube: KubeClient) -> None:
    versions = served_versions(kube, "apiregistration.k8s.io")
    healths = verdicts(kube, versions, "APIService", "v1.apps")
    assert all(h.status is HealthStatus.HEALTHY and "Local" in h.message for h in healths.values())


@pytest.fixture
def gadget_crd_name(kube: KubeClient, namespace: str) -> Iterator[str]:
    crd = gadget_crd(f"{namespace}.example.com")
    kube.apply(crd, field_manager=MANAGER)
    try:
        yield crd["metadata"]["name"]
    finally:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])


def test_crd_is_healthy_once_established_through_every_served_version(
    kube: KubeClient, gadget_crd_name: str
) -> None:
    versions = served_versions(kube, "apiextensions.k8s.io")

    def established() -> dict[str, Health] | None:
        healths = verdicts(kube, versions, "CustomResourceDefinition", gadget_crd_name)
        done = all(h.status is HealthStatus.HEALTHY for h in healths.values())
        return healths if done else None

    healths = wait_for(established, timeout=30, what="the CRD to be established")
    assert all(h.message == "CRD is established" for h in healths.values())


def test_an_object_being_deleted_is_pending_deletion_whatever_its_kind(
    kube: KubeClient, namespace: str
) -> None:
    held = deployment(namespace, 0)
    held["metadata"]["finalizers"] = [HOLD_FINALIZER]
    kube.apply(held, field_manager=MANAGER)

    def observed() -> Health | None:
        health = assess(kube.get("apps/v1", "Deployment", "web", namespace))
        return health if health.status is HealthStatus.HEALTHY else None

    try:
        rolled_out = wait_for(observed, timeout=30, what="the Deployment to be observed")
        assert rolled_out.message == "Deployment is scaled to zero"
        kube.delete("apps/v1", "Deployment", "web", namespace)
        live = kube.get("apps/v1", "Deployment", "web", namespace)
        assert live is not None and live["metadata"].get("deletionTimestamp")
        assert assess(live) == Health(
            HealthStatus.PROGRESSING, f"Pending deletion; blocked by finalizers: {HOLD_FINALIZER}"
        )
    finally:
        if kube.get("apps/v1", "Deployment", "web", namespace) is not None:
            release = {"metadata": {"finalizers": None}}
            kube.patch("apps/v1", "Deployment", "web", release, namespace=namespace)
