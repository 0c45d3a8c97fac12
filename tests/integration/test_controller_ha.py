"""Two `gitsync serve --leader-elect` replicas: only the leader writes, the follower takes over.

Who wrote what is read from the API server's audit log, where each replica's writes carry its own
user agent (``gitsync-controller/<identity>``): what landed, not what a client believes it sent.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import (
    WEBHOOK_SECRET,
    app_status,
    application,
    configmap_repo,
    configmap_value,
    github_webhook,
    push_value,
)
from tests.support.audit import AuditLog
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CONTROLLER_NAMESPACE = "gitsync"
LEASE = "gitsync-controller"
USER_AGENT_PREFIX = "gitsync-controller/"
TAKEOVER_LIMIT = 20.0


@pytest.fixture
def serve(cluster: TestCluster, tmp_path: Path, crd: None) -> Iterator[Any]:
    """Start replicas, each with its own work dir and Git cache, as separate pods would have."""
    started: list[ServeProcess] = []

    def start(*extra: str) -> ServeProcess:
        workdir = tmp_path / f"replica-{len(started)}"
        workdir.mkdir()
        proc = ServeProcess(
            cluster.kubeconfig_path,
            workdir,
            list(extra),
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def lease_holder(kube: KubeClient) -> str:
    lease = kube.get("coordination.k8s.io/v1", "Lease", LEASE, CONTROLLER_NAMESPACE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def writers(audit: AuditLog, since: int, namespace: str) -> dict[str, int]:
    """Controller identity -> persisted writes it made in ``namespace`` since the mark, apart
    from refresh requests (a follower handing a push to the leader)."""
    counts: dict[str, int] = {}
    for event in audit.writes(since):
        if event.refresh_request:
            continue
        if event.namespace == namespace and event.user_agent.startswith(USER_AGENT_PREFIX):
            identity = event.user_agent.removeprefix(USER_AGENT_PREFIX)
            counts[identity] = counts.get(identity, 0) + 1
    return counts


def readyz(proc: ServeProcess) -> int:
    try:
        with urllib.request.urlopen(proc.url + "/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def settled(kube: KubeClient, namespace: str, sha: str) -> bool:
    """Synced at ``sha`` and healthy: the leader has no requeue pending, so it is idle."""
    status = app_status(kube, namespace, "web")
    return (
        status.get("sync", {}).get("status") == "Synced"
        and status.get("sync", {}).get("revision") == sha
        and status.get("health", {}).get("status") == "Healthy"
    )


def test_only_the_leader_writes_and_the_follower_takes_over(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    audit: AuditLog,
    controller_namespace: str,
) -> None:
    repo = configmap_repo(git_server)
    since = audit.mark()
    replicas = {
        identity: serve("--leader-elect", f"--identity={identity}", "--lease-duration=6")
        for identity in ("a", "b")
    }
    leader_id = wait_for(lambda: lease_holder(kube), timeout=20, what="a Lease holder")
    assert leader_id in replicas
    follower_id = next(i for i in replicas if i != leader_id)
    leader, follower = replicas[leader_id], replicas[follower_id]

    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=30, what="first sync")
    # A Service in front of the replicas hands each webhook to either replica: v2's goes to
    # both, v3's to the follower alone, which hands it to the leader (the app polls every 3m).
    for value, receivers in (("v2", list(replicas.values())), ("v3", [follower])):
        sha = push_value(repo, value)
        for proc in receivers:
            assert github_webhook(proc.url, repo.file_url(), "refs/heads/main", sha) == 202
        wait_for(
            lambda v=value: configmap_value(kube, namespace) == v, timeout=15, what=f"{value} live"
        )
    handed_over = [e for e in audit.writes(since) if e.refresh_request and e.namespace == namespace]
    assert {e.user_agent for e in handed_over} == {USER_AGENT_PREFIX + follower_id}, handed_over
    wait_for(lambda: settled(kube, namespace, sha), timeout=30, what="v3 Synced and Healthy")

    assert readyz(leader) == 200
    assert readyz(follower) == 200, "a follower must stay ready (it serves webhooks and status)"
    assert lease_holder(kube) == leader_id
    before = writers(audit, since, namespace)
    assert set(before) == {leader_id}, f"writes in {namespace} by identity: {before}"

    since = audit.mark()
    killed = time.monotonic()
    leader.kill()
    sha = push_value(repo, "v4")
    with contextlib.suppress(OSError):  # the webhook only speeds up noticing the push
        github_webhook(follower.url, repo.file_url(), "refs/heads/main", sha)
    wait_for(
        lambda: configmap_value(kube, namespace) == "v4",
        timeout=max(0.0, TAKEOVER_LIMIT - (time.monotonic() - killed)),
        interval=0.1,
        what=f"v4 applied by {follower_id} after {leader_id} was killed\n{follower.log(40)}",
    )
    takeover = time.monotonic() - killed
    print(f"kill -9 of the leader to v4 live: {takeover:.2f}s")
    assert takeover <= TAKEOVER_LIMIT
    assert lease_holder(kube) == follower_id

    wait_for(lambda: settled(kube, namespace, sha), timeout=30, what="v4 Synced and Healthy")
    after = writers(audit, since, namespace)
    assert set(after) == {follower_id}, f"writes in {namespace} after the kill: {after}"
