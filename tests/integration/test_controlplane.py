"""The test control plane behaves like a cluster: real Deployment and Endpoints controllers, with
the simulator standing in for kubelets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from gitsync.kube import KubeClient
from tests.support.audit import AuditEvent
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def deployment(
    name: str, namespace: str, replicas: int, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 10,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


def test_server_side_apply_deployment_becomes_ready(kube: KubeClient, namespace: str) -> None:
    applied = kube.apply(deployment("web", namespace, 3), field_manager="gitsync-tests")
    assert applied["metadata"]["managedFields"][0]["manager"] == "gitsync-tests"
    assert applied["metadata"]["managedFields"][0]["operation"] == "Apply"

    def ready() -> dict[str, Any] | None:
        live = kube.get("apps/v1", "Deployment", "web", namespace)
        status = (live or {}).get("status", {})
        return (
            live
            if status.get("readyReplicas") == 3 and status.get("availableReplicas") == 3
            else None
        )

    live = wait_for(ready, timeout=60, what="3 ready replicas")
    assert live["status"]["updatedReplicas"] == 3
    pods = kube.list("v1", "Pod", namespace, label_selector="app=web")["items"]
    assert len(pods) == 3
    assert all(p["spec"]["nodeName"] for p in pods)
    assert len({p["status"]["podIP"] for p in pods}) == 3


def test_service_endpoints_list_ready_pod_ips(kube: KubeClient, namespace: str) -> None:
    kube.apply(deployment("api", namespace, 2), field_manager="gitsync-tests")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": namespace},
            "spec": {
                "selector": {"app": "api"},
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
        field_manager="gitsync-tests",
    )

    def endpoint_ips() -> set[str] | None:
        pods = kube.list("v1", "Pod", namespace, label_selector="app=api")["items"]
        pod_ips = {p.get("status", {}).get("podIP") for p in pods}
        ep = kube.get("v1", "Endpoints", "api", namespace) or {}
        ips = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
        return ips if len(ips) == 2 and ips == pod_ips else None

    ips = wait_for(endpoint_ips, timeout=60, what="Endpoints listing both pod IPs")
    assert all(ip.startswith("10.244.") for ip in ips)


@pytest.mark.usefixtures("simulator")
@pytest.mark.parametrize("behavior", ["never-ready", "crashloop"])
def test_failing_pod_template_leaves_deployment_unavailable(
    kube: KubeClient, namespace: str, behavior: str
) -> None:
    kube.apply(
        deployment("bad", namespace, 2, {"sim.gitsync.dev/behavior": behavior}),
        field_manager="gitsync-tests",
    )

    def deadline_exceeded() -> dict[str, Any] | None:
        live = kube.get("apps/v1", "Deployment", "bad", namespace) or {}
        conds = {c["type"]: c for c in live.get("status", {}).get("conditions", [])}
        progressing = conds.get("Progressing", {})
        return live if progressing.get("reason") == "ProgressDeadlineExceeded" else None

    live = wait_for(deadline_exceeded, timeout=60, what="ProgressDeadlineExceeded")
    conds = {c["type"]: c for c in live["status"]["conditions"]}
    assert conds["Available"]["status"] == "False"
    assert not live["status"].get("readyReplicas")
    pods = kube.list("v1", "Pod", namespace, label_selector="app=bad")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    if behavior == "crashloop":
        reasons = {
            cs["state"]["waiting"]["reason"]
            for p in pods
            for cs in p["status"]["containerStatuses"]
        }
        assert reasons == {"CrashLoopBackOff"}


@pytest.mark.usefixtures("simulator")
def test_a_never_ready_pod_says_why_and_its_kubelet_warning_repeats_at_most_every_10s(
    kube: KubeClient, namespace: str
) -> None:
    kube.apply(
        deployment("stuck", namespace, 1, {"sim.gitsync.dev/behavior": "never-ready"}),
        field_manager="gitsync-tests",
    )

    def repeated() -> dict[str, Any] | None:
        events = kube.list("v1", "Event", namespace)["items"]
        unhealthy = [e for e in events if e.get("reason") == "Unhealthy"]
        return unhealthy[0] if len(unhealthy) == 1 and unhealthy[0]["count"] >= 2 else None

    event = wait_for(repeated, timeout=60, what="the Unhealthy Warning counted twice")
    assert event["type"] == "Warning" and event["source"]["component"] == "kubelet"
    assert event["message"].startswith("Readiness probe failed: ")
    first = datetime.fromisoformat(event["firstTimestamp"])
    last = datetime.fromisoformat(event["lastTimestamp"])
    # the bound: one repeat per pod per 10 s, so n repeats take at least 10 s * (n - 1)
    assert (last - first).total_seconds() >= 10 * (event["count"] - 1) - 1
    (pod,) = kube.list("v1", "Pod", namespace, label_selector="app=stuck")["items"]
    assert event["involvedObject"]["uid"] == pod["metadata"]["uid"]
    conds = {c["type"]: c for c in pod["status"]["conditions"]}
    for kind in ("Ready", "ContainersReady"):
        assert conds[kind]["status"] == "False"
        assert conds[kind]["reason"] == "ContainersNotReady"
        assert conds[kind]["message"] == "containers with unready status: [main]"


@pytest.mark.usefixtures("simulator")
def test_a_pod_that_turns_ready_keeps_no_not_ready_reason(kube: KubeClient, namespace: str) -> None:
    kube.apply(
        deployment("slow", namespace, 1, {"sim.gitsync.dev/ready-after": "3"}),
        field_manager="gitsync-tests",
    )

    def ready_condition() -> dict[str, Any] | None:
        pods = kube.list("v1", "Pod", namespace, label_selector="app=slow")["items"]
        conds = [c for p in pods for c in p.get("status", {}).get("conditions") or []]
        return next((c for c in conds if c["type"] == "Ready" and c["status"] == "True"), None)

    ready = wait_for(ready_condition, timeout=60, what="the pod Ready")
    assert "reason" not in ready and "message" not in ready, ready
    assert not [e for e in kube.list("v1", "Event", namespace)["items"] if e["type"] == "Warning"]


@pytest.mark.usefixtures("simulator")
def test_nodes_heartbeat_their_leases(kube: KubeClient) -> None:
    leases = kube.list("coordination.k8s.io/v1", "Lease", "kube-node-lease")["items"]
    before = {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}
    assert {"sim-node-0", "sim-node-1", "sim-node-2"} <= set(before)

    def renewed() -> bool:
        now = kube.list("coordination.k8s.io/v1", "Lease", "kube-node-lease")["items"]
        return all(
            lease["spec"]["renewTime"] > before[lease["metadata"]["name"]]
            for lease in now
            if lease["metadata"]["name"] in before
        )

    assert wait_for(renewed, timeout=25, what="every node lease renewed")
    nodes = kube.request("GET", "/api/v1/nodes")["items"]
    assert all(not n["spec"].get("taints") for n in nodes), (
        "node-lifecycle controller tainted a simulated node"
    )


def test_control_plane_startup_time_is_reported(cluster: TestCluster) -> None:
    if cluster.control_plane is None:
        pytest.skip("external cluster: nothing was started")
    seconds = cluster.control_plane.startup_seconds
    print(f"control plane startup: {seconds:.1f}s")
    assert seconds > 0


def test_audit_log_counts_persisted_writes_not_dry_runs(
    cluster: TestCluster, namespace: str
) -> None:
    if cluster.audit is None:
        pytest.skip("external cluster: no access to the API server's audit log")
    client = cluster.client(user_agent="audit-probe")
    mark = cluster.audit.mark()
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": namespace},
    }
    client.apply(cm, field_manager="probe", dry_run=True)
    client.apply(cm, field_manager="probe")

    def both_seen() -> list[AuditEvent] | None:
        assert cluster.audit is not None
        events = cluster.audit.writes(mark, user_agent="audit-probe", include_dry_run=True)
        return events if len(events) == 2 else None

    events = wait_for(both_seen, timeout=10, what="two audit events")
    assert [e.dry_run for e in events] == [True, False]
    assert len(cluster.audit.writes(mark, user_agent="audit-probe")) == 1
