"""Hardening case 22: the leader is killed mid-canary; the new leader continues the same step.

Two ``gitsync serve --leader-elect`` replicas, a canary held in a timed pause at step 1. kill -9
of the leader gives no lease release: the follower must wait out the lease, take it, and then
carry on with the rollout as the Rollout's status records it - same step, same pause deadline,
same canary Deployment and ReplicaSet (not recreated, not restarted from step 0) - and a promote
finishes it. The API server's audit log shows the hand-over: after the kill no write of the old
leader lands, and the new leader's first write in the app's namespace comes after its write of
the Lease.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import (
    WEBHOOK_SECRET,
    app_status,
    application,
    github_webhook,
    rollout_status,
)
from tests.support.audit import MUTATING_VERBS, AuditLog, is_refresh_request
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTROLLER_NAMESPACE = "gitsync"
LEASE = "gitsync-controller"
LEASE_SECONDS = 4
AGENT = "gitsync-controller/"
REPLICAS = 4
PAUSE = 25
ROLLOUT = canary_rollout(
    [{"setWeight": 25}, {"pause": {"duration": f"{PAUSE}s"}}, {"setWeight": 50}, {"pause": {}}]
)
SERVICE = web_service()


def deployment(image: str) -> dict[str, Any]:
    return web_deployment(image, REPLICAS)


@pytest.fixture
def replicas(cluster: TestCluster, tmp_path: Path, crd: None) -> Iterator[dict[str, ServeProcess]]:
    """Replicas "a" and "b", each with its own work dir and Git cache, as two pods would have."""
    procs = {}
    for identity in ("a", "b"):
        workdir = tmp_path / f"replica-{identity}"
        workdir.mkdir()
        args = ["--leader-elect", f"--identity={identity}", f"--lease-duration={LEASE_SECONDS}"]
        procs[identity] = ServeProcess(
            cluster.kubeconfig_path, workdir, args, {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET}
        )
    try:
        yield {identity: proc.start() for identity, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop()


def lease_holder(kube: KubeClient) -> str:
    lease = kube.get("coordination.k8s.io/v1", "Lease", LEASE, CONTROLLER_NAMESPACE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def canary_objects(kube: KubeClient, namespace: str) -> tuple[str, frozenset[str]]:
    """The canary Deployment's UID and the UIDs of the ReplicaSets it owns."""
    canary = kube.get("apps/v1", "Deployment", "web-canary", namespace) or {}
    uid = str((canary.get("metadata") or {}).get("uid", ""))
    owned = frozenset(
        rs["metadata"]["uid"]
        for rs in kube.list("apps/v1", "ReplicaSet", namespace)["items"]
        if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])
    )
    return uid, owned


def app_ready(kube: KubeClient, namespace: str, sha: str) -> bool:
    status = app_status(kube, namespace, "web")
    return (
        status.get("sync", {}).get("status") == "Synced"
        and status.get("sync", {}).get("revision") == sha
        and status.get("health", {}).get("status") == "Healthy"
    )


@dataclass(frozen=True)
class TimedWrite:
    agent: str
    resource: str
    namespace: str
    name: str
    received: datetime
    completed: datetime


def timed_writes(audit: AuditLog, since: int) -> list[TimedWrite]:
    """Persisted writes since the mark, with the API server's own times for each; refresh
    requests left out."""
    out = []
    with open(audit.path, "rb") as fh:
        fh.seek(since)
        lines = fh.read().splitlines()
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if doc.get("stage") != "ResponseComplete" or doc.get("verb") not in MUTATING_VERBS:
            continue
        if "dryRun=" in str(doc.get("requestURI", "")):
            continue
        ref = doc.get("objectRef") or {}
        resource, subresource = str(ref.get("resource", "")), str(ref.get("subresource", ""))
        if is_refresh_request(str(doc.get("verb")), resource, subresource):
            continue  # a follower handing the webhook's push to the leader: not a reconcile
        out.append(
            TimedWrite(
                str(doc.get("userAgent", "")),
                str(ref.get("resource", "")),
                str(ref.get("namespace", "")),
                str(ref.get("name", "")),
                datetime.fromisoformat(doc["requestReceivedTimestamp"]),
                datetime.fromisoformat(doc["stageTimestamp"]),
            )
        )
    return out


def test_new_leader_continues_the_same_canary_step_after_the_leader_is_killed(
    replicas: dict[str, ServeProcess],
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    audit: AuditLog,
    controller_namespace: str,
    rollout_crd: None,
    sim: None,
) -> None:
    repo = git_server.create_repo(
        f"leader-canary-{namespace[-6:]}",
        files={
            "app/deployment.yaml": yaml.safe_dump(deployment("nginx:1.25")),
            "app/service.yaml": yaml.safe_dump(SERVICE),
            "app/rollout.yaml": yaml.safe_dump(ROLLOUT),
        },
    )
    since = audit.mark()
    leader_id = wait_for(lambda: lease_holder(kube), timeout=30, what="a Lease holder")
    follower_id = next(i for i in replicas if i != leader_id)
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: app_ready(kube, namespace, repo.head()), timeout=120, what="first sync")

    sha = repo.commit({"app/deployment.yaml": yaml.safe_dump(deployment("nginx:1.26"))}, "v2")
    repo.push()
    for proc in replicas.values():  # a Service in front of both would hand it to either
        assert github_webhook(proc.url, repo.file_url(), "refs/heads/main", sha) == 202
    before = wait_for(
        lambda: (
            (s := rollout_status(kube, namespace)).get("pauseUntil")
            and s.get("currentStepIndex") == 1
            and s
        ),
        timeout=90,
        what="the canary in its timed pause at step 1",
    )
    canary_uid, canary_sets = canary_objects(kube, namespace)
    assert canary_uid and canary_sets
    assert lease_holder(kube) == leader_id
    wrote = [
        e
        for e in audit.writes(since)
        if e.user_agent == AGENT + follower_id and not e.refresh_request
    ]
    assert not wrote, f"the follower {follower_id} wrote while {leader_id} led: {wrote}"

    marked = audit.mark()
    replicas[leader_id].kill()  # kill -9: no lease release, no last words
    killed_at = datetime.now(UTC)
    wait_for(
        lambda: lease_holder(kube) == follower_id,
        timeout=LEASE_SECONDS * 3 + 20,
        interval=0.1,
        what=f"{follower_id} took the Lease\n{replicas[follower_id].log(40)}",
    )
    took_over = (datetime.now(UTC) - killed_at).total_seconds()
    deadline = datetime.fromisoformat(before["pauseUntil"])
    assert datetime.now(UTC) < deadline, "took over only after the pause; nothing to continue"

    # Until the pause ends, the new leader keeps the rollout where it was.
    seen: list[dict[str, Any]] = []

    def at_step_3() -> bool:
        status = rollout_status(kube, namespace)
        seen.append(status)
        return status.get("currentStepIndex") == 3 and status.get("phase") == "Paused"

    wait_for(
        at_step_3,
        timeout=PAUSE + 90,
        what=f"{follower_id} went on past the pause to the promote step\n"
        f"{replicas[follower_id].log(40)}",
    )
    steps = [s.get("currentStepIndex") for s in seen]
    assert min(steps) >= 1 and steps == sorted(steps), f"step went back: {steps}"
    assert all(s.get("canaryHash") == before["canaryHash"] for s in seen), "another canary"
    assert all(
        s.get("pauseUntil") == before["pauseUntil"] for s in seen if s.get("currentStepIndex") == 1
    ), "the pause deadline moved"
    uid, sets = canary_objects(kube, namespace)
    assert uid == canary_uid, "the canary Deployment was recreated"
    assert sets == canary_sets, "the canary got another ReplicaSet"

    kube.patch(
        "gitsync.dev/v1alpha1",
        "Rollout",
        "web",
        {"metadata": {"annotations": {"rollouts.gitsync.dev/promote": "now"}}},
        namespace=namespace,
    )
    wait_for(
        lambda: (
            rollout_status(kube, namespace).get("phase") == "Healthy"
            and kube.get("apps/v1", "Deployment", "web-canary", namespace) is None
        ),
        timeout=120,
        what="promoted and Healthy",
    )
    live = kube.get("apps/v1", "Deployment", "web", namespace)
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    wait_for(lambda: app_ready(kube, namespace, sha), timeout=60, what="the app Synced, Healthy")

    # The hand-over in the audit log: when each write arrived and when it completed.
    writes = timed_writes(audit, marked)
    late = [w for w in writes if w.agent == AGENT + leader_id and w.received > killed_at]
    assert not late, f"the killed leader {leader_id} still wrote: {late}"
    lease_at = min(
        w.completed
        for w in writes
        if w.agent == AGENT + follower_id and w.resource == "leases" and w.name == LEASE
    )
    ours = [w for w in writes if w.agent == AGENT + follower_id and w.namespace == namespace]
    assert ours, f"{follower_id} never wrote in {namespace}"
    assert min(w.received for w in ours) > lease_at, "the new leader wrote before the Lease"
    print(f"kill -9 of leader {leader_id} to {follower_id} holding the Lease: {took_over:.1f}s")
