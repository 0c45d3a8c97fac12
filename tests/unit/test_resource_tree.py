"""The resource tree from fixture objects (``gitsync.controller.tree.build_tree``): linking by
owner UID and namespace, the rollout's roles, pod details, bounds, and orphans on request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitsync.controller import tree
from gitsync.controller.tree import ManagedObject, age, build_tree, pod_summary
from gitsync.model import ResourceKey

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
NS = "shop"
APP = f"{NS}/web"


def obj(
    api_version: str,
    kind: str,
    name: str,
    uid: str,
    *,
    owner: str = "",
    namespace: str = NS,
    labels: dict[str, str] | None = None,
    created: str = "2026-12-07T11:57:00Z",
    **fields: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "creationTimestamp": created,
        "labels": labels or {},
    }
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "X", "name": "x", "uid": owner, "controller": True}
        ]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def pod(name: str, uid: str, owner: str, **kw: Any) -> dict[str, Any]:
    status = kw.pop(
        "status",
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0}],
        },
    )
    spec = {"containers": [{"name": "app"}], "restartPolicy": "Always"}
    return obj("v1", "Pod", name, uid, owner=owner, spec=spec, status=status, **kw)


def managed(live: dict[str, Any] | None, key: ResourceKey, sync: str = "Synced") -> ManagedObject:
    return ManagedObject(key=key, sync=sync, health="Healthy", health_message="", live=live)


DEPLOYMENT = obj("apps/v1", "Deployment", "web", "d-1", spec={"replicas": 2}, status={})
RS = obj("apps/v1", "ReplicaSet", "web-7f9", "rs-1", owner="d-1")
PODS = [pod("web-7f9-a", "p-1", "rs-1"), pod("web-7f9-b", "p-2", "rs-1")]


def names(node: dict[str, Any]) -> list[str]:
    return [c["name"] for c in node["children"]]


def test_deployment_replicasets_pods_are_linked_by_owner_uid() -> None:
    doc = build_tree(
        [managed(DEPLOYMENT, ResourceKey("apps", "Deployment", NS, "web"))],
        [RS, *PODS],
        app=APP,
        now=NOW,
    )
    (deployment,) = doc["nodes"]
    assert deployment["managed"] is True and deployment["sync"] == "Synced"
    assert names(deployment) == ["web-7f9"]
    assert names(deployment["children"][0]) == ["web-7f9-a", "web-7f9-b"]
    first = deployment["children"][0]["children"][0]
    assert first["pod"] == {"phase": "Running", "ready": "1/1", "restarts": 0, "reason": ""}
    assert first["health"]["status"] == "Healthy"
    assert first["age"] == "3m"
    assert doc["orphans"] is None


def test_a_pod_whose_owner_uid_does_not_match_is_not_attached() -> None:
    """Same name as the ReplicaSet's pods, another owner UID (an earlier ReplicaSet of that
    name): it is not a child - and with ``orphans`` it shows as an orphan instead."""
    stray = pod("web-7f9-c", "p-3", "rs-old")
    other_namespace = pod("web-7f9-d", "p-4", "rs-1", namespace="elsewhere")
    args = ([managed(DEPLOYMENT, ResourceKey("apps", "Deployment", NS, "web"))], [RS, stray])
    doc = build_tree(*args, app=APP, now=NOW)
    assert names(doc["nodes"][0]["children"][0]) == []
    doc = build_tree(args[0], [RS, stray, other_namespace], app=APP, now=NOW, orphans=True)
    assert names(doc["nodes"][0]["children"][0]) == []
    assert [o["name"] for o in doc["orphans"]] == ["web-7f9-c", "web-7f9-d"]


def test_service_endpoint_slices_by_uid_and_endpoints_by_name() -> None:
    service = obj("v1", "Service", "web", "s-1")
    slice_ = obj("discovery.k8s.io/v1beta1", "EndpointSlice", "web-x1", "es-1", owner="s-1")
    endpoints = obj("v1", "Endpoints", "web", "ep-1")
    doc = build_tree(
        [managed(service, ResourceKey("", "Service", NS, "web"))],
        [slice_, endpoints],
        app=APP,
        now=NOW,
        orphans=True,
    )
    assert [(c["kind"], c["name"]) for c in doc["nodes"][0]["children"]] == [
        ("EndpointSlice", "web-x1"),
        ("Endpoints", "web"),
    ]
    assert doc["orphans"] == []  # the Service's Endpoints are not an orphan


def test_controller_revisions_are_not_shown() -> None:
    sts = obj("apps/v1", "StatefulSet", "db", "ss-1", spec={"replicas": 1}, status={})
    revision = obj("apps/v1", "ControllerRevision", "db-5d8", "cr-1", owner="ss-1")
    doc = build_tree(
        [managed(sts, ResourceKey("apps", "StatefulSet", NS, "db"))],
        [revision, pod("db-0", "p-9", "ss-1")],
        app=APP,
        now=NOW,
    )
    assert names(doc["nodes"][0]) == ["db-0"]


def test_cronjob_jobs_pods() -> None:
    cron = obj("batch/v1beta1", "CronJob", "report", "cj-1", spec={}, status={})
    job = obj("batch/v1", "Job", "report-1", "j-1", owner="cj-1", status={})
    done = {"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": False}]}
    doc = build_tree(
        [managed(cron, ResourceKey("batch", "CronJob", NS, "report"))],
        [job, pod("report-1-x", "p-5", "j-1", status=done)],
        app=APP,
        now=NOW,
    )
    (job_node,) = doc["nodes"][0]["children"]
    assert names(job_node) == ["report-1-x"]
    assert job_node["children"][0]["pod"]["reason"] == ""  # finished, not "not ready"


def test_rollout_roles_stable_and_canary() -> None:
    """The canary Deployment hangs under the Rollout by its UID; the stable Deployment's
    ReplicaSets and Pods are ``stable``, the canary's ``canary`` (from the role label)."""
    rollout = obj(
        "gitsync.dev/v1alpha1",
        "Rollout",
        "web",
        "ro-1",
        spec={"targetRef": {"kind": "Deployment", "name": "web"}, "strategy": {"canary": {}}},
        status={"phase": "Paused"},
    )
    role = {"rollouts.gitsync.dev/role": "canary", "rollouts.gitsync.dev/template-hash": "c4n"}
    canary = obj("apps/v1", "Deployment", "web-canary", "dc-1", owner="ro-1", labels=role)
    canary_rs = obj("apps/v1", "ReplicaSet", "web-canary-5b", "rsc-1", owner="dc-1", labels=role)
    canary_pod = pod("web-canary-5b-a", "pc-1", "rsc-1", labels={**role, "pod-template-hash": "5b"})
    doc = build_tree(
        [
            managed(DEPLOYMENT, ResourceKey("apps", "Deployment", NS, "web")),
            managed(rollout, ResourceKey("gitsync.dev", "Rollout", NS, "web")),
        ],
        [RS, *PODS, canary, canary_rs, canary_pod],
        app=APP,
        now=NOW,
    )
    stable, ro = doc["nodes"]
    assert stable["role"] == "stable"
    assert {p["role"] for p in stable["children"][0]["children"]} == {"stable"}
    assert names(ro) == ["web-canary"]
    canary_pod_node = ro["children"][0]["children"][0]["children"][0]
    assert canary_pod_node["role"] == "canary"
    assert canary_pod_node["labels"] == {**role, "pod-template-hash": "5b"}


def test_blue_green_stable_is_active() -> None:
    rollout = obj(
        "gitsync.dev/v1alpha1",
        "Rollout",
        "web",
        "ro-1",
        spec={"targetRef": {"name": "web"}, "strategy": {"blueGreen": {}}},
    )
    doc = build_tree(
        [
            managed(DEPLOYMENT, ResourceKey("apps", "Deployment", NS, "web")),
            managed(rollout, ResourceKey("gitsync.dev", "Rollout", NS, "web")),
        ],
        [RS, *PODS],
        app=APP,
        now=NOW,
    )
    assert doc["nodes"][0]["children"][0]["role"] == "active"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "X"}],
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 4,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    },
                    {"name": "side", "ready": True, "restartCount": 1},
                ],
            },
            {"phase": "Running", "ready": "1/2", "restarts": 5, "reason": "CrashLoopBackOff"},
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ],
            },
            {"phase": "Pending", "ready": "0/2", "restarts": 0, "reason": "ImagePullBackOff"},
        ),
        (
            {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ],
                "containerStatuses": [{"name": "app", "ready": False, "state": {"running": {}}}],
            },
            {"phase": "Running", "ready": "0/2", "restarts": 0, "reason": "ContainersNotReady"},
        ),
        ({}, {"phase": "Pending", "ready": "0/2", "restarts": 0, "reason": ""}),
    ],
)
def test_pod_summary(status: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = {"containers": [{"name": "app"}, {"name": "side"}]}
    assert pod_summary({"spec": spec, "status": status}) == expected


def test_children_are_bounded_and_the_rest_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "MAX_CHILDREN", 3)
    pods = [pod(f"web-7f9-{i:02}", f"p-{i}", "rs-1") for i in range(10)]
    doc = build_tree(
        [managed(DEPLOYMENT, ResourceKey("apps", "Deployment", NS, "web"))],
        [RS, *pods],
        app=APP,
        now=NOW,
    )
    rs = doc["nodes"][0]["children"][0]
    assert names(rs) == ["web-7f9-00", "web-7f9-01", "web-7f9-02"]
    assert rs["more"] == 7


def test_an_ownership_cycle_ends() -> None:
    a = obj("apps/v1", "ReplicaSet", "a", "u-a", owner="u-b")
    b = obj("apps/v1", "ReplicaSet", "b", "u-b", owner="u-a")
    doc = build_tree(
        [managed(a, ResourceKey("apps", "ReplicaSet", NS, "a"))], [a, b], app=APP, now=NOW
    )
    node = doc["nodes"][0]
    assert names(node) == ["b"] and names(node["children"][0]) == ["a"]
    assert node["children"][0]["children"][0]["children"] == []


def test_orphans_only_when_asked_tracked_or_parentless() -> None:
    tracked = obj("v1", "ConfigMap", "old", "cm-1")
    tracked["metadata"]["annotations"] = {"gitsync.dev/tracking": f"{APP}:/ConfigMap:{NS}/old"}
    someone_elses = obj("v1", "ConfigMap", "theirs", "cm-2", owner="d-1")
    loose = pod("debug", "p-7", "")
    untracked = obj("v1", "ConfigMap", "kube-root-ca.crt", "cm-3")  # not a workload: not an orphan
    other_apps = pod("other", "p-8", "")
    other_apps["metadata"]["annotations"] = {"gitsync.dev/tracking": f"{NS}/other:/Pod:{NS}/other"}
    args = ([managed(DEPLOYMENT, ResourceKey("apps", "Deployment", NS, "web"))],)
    live = [RS, *PODS, tracked, someone_elses, loose, untracked, other_apps]
    assert build_tree(*args, live, app=APP, now=NOW)["orphans"] is None
    doc = build_tree(*args, live, app=APP, now=NOW, orphans=True)
    assert [o["name"] for o in doc["orphans"]] == ["old", "debug"]
    assert all(o["managed"] is False for o in doc["orphans"])


def test_missing_managed_object_keeps_the_recorded_health() -> None:
    m = ManagedObject(
        ResourceKey("", "ConfigMap", NS, "c"), "OutOfSync", "Missing", "not there", None
    )
    (node,) = build_tree([m], [], app=APP, now=NOW)["nodes"]
    assert node["health"] == {"status": "Missing", "message": "not there"}
    assert node["sync"] == "OutOfSync" and node["children"] == []


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-12-07T11:59:15Z", "45s"),
        ("2026-12-07T11:58:01Z", "119s"),
        ("2026-12-07T11:48:00Z", "12m"),
        ("2026-12-07T09:00:00Z", "3h"),
        ("2026-12-02T12:00:00Z", "5d"),
        ("", ""),
    ],
)
def test_age(created: str, expected: str) -> None:
    assert age(created, NOW) == expected


def test_health_is_judged_once_per_resource_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """``LiveTree.judge`` keeps a judgement while the object is unchanged (the engine's shared
    ``HealthMemo``): the next tree does not assess a thousand unchanged Pods again; a new
    resourceVersion is judged afresh."""
    from gitsync.controller import live_tree
    from gitsync.engine import healthmemo

    calls: list[str] = []
    real = healthmemo.assess

    def counting(obj: Any, checks: Any = None) -> Any:
        calls.append(obj["metadata"]["name"])
        return real(obj, checks)

    monkeypatch.setattr(healthmemo, "assess", counting)
    reader = live_tree.LiveTree(kube=None, cache=None)  # type: ignore[arg-type]  # judge only
    first = pod("web-7f9-a", "p-judged-once", "rs-1")
    first["metadata"]["resourceVersion"] = "10"
    assert reader.judge(first).status == "Healthy"
    assert reader.judge(first).status == "Healthy"
    changed = pod("web-7f9-a", "p-judged-once", "rs-1", status={"phase": "Failed"})
    changed["metadata"]["resourceVersion"] = "11"
    assert reader.judge(changed).status == "Degraded"
    assert calls == ["web-7f9-a", "web-7f9-a"]
