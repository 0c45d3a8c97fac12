"""Two `gitsync serve --shards 4` replicas share the Applications, one shard Lease at a time.

What a user relies on: every app syncs whichever replica receives the webhook; a replica killed
with -9 has its apps synced by the other within the lease duration (plus a margin for this busy
machine); a replica coming back takes its share again; and through all of it no app is written
by two replicas at once.

"At once" is read from the API server's audit log, which records, in the order they completed,
both the writes to each app's objects and the writes to the shard Leases, each with the
replica's user agent (``gitsync-controller/<identity>``). A write to an app by replica R is
legitimate only if the last write to the app's shard Lease before it was R's own (acquiring or
renewing): had another replica taken the shard in between, its acquisition would sit between.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.shardmath import assign, shard_of
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import WEBHOOK_SECRET, application, github_webhook
from tests.support.audit import MUTATING_VERBS, AuditEvent, AuditLog
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SHARDS = 4
LEASE_DURATION = 4.0
APPS = [f"app-{i:02d}" for i in range(12)]
USER_AGENT_PREFIX = "gitsync-controller/"
CONFIGMAPS = {f"config-{app}": app for app in APPS}
TAKEOVER_MARGIN = 20.0  # this machine is slow and shared: generous, but far below the 3m interval


def files(value: str) -> dict[str, str | bytes | None]:
    """One ConfigMap per app, each app in its own directory of one repository."""
    return {
        f"apps/{app}/cm.yaml": yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"config-{app}"},
                "data": {"value": value},
            }
        )
        for app in APPS
    }


@pytest.fixture
def lease_namespace(kube: KubeClient) -> Iterator[str]:
    """A namespace of this test's own for the Leases, so no other test's Leases are counted."""
    with temporary_namespace(kube, "shards") as ns:
        yield ns


@pytest.fixture
def replicas(
    cluster: TestCluster, tmp_path: Path, crd: None, lease_namespace: str
) -> Iterator[Any]:
    """Start (or restart) replica ``identity``, each with its own work dir as a pod would."""
    started: list[ServeProcess] = []

    def start(identity: str, shards: int = SHARDS) -> ServeProcess:
        workdir = tmp_path / f"replica-{identity}-{len(started)}"
        workdir.mkdir()
        proc = ServeProcess(
            cluster.kubeconfig_path,
            workdir,
            [
                f"--shards={shards}",
                f"--identity={identity}",
                f"--lease-duration={LEASE_DURATION}",
                f"--controller-namespace={lease_namespace}",
            ],
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def values(kube: KubeClient, namespace: str) -> dict[str, str | None]:
    live = {
        cm["metadata"]["name"].removeprefix("config-"): (cm.get("data") or {}).get("value")
        for cm in kube.list("v1", "ConfigMap", namespace)["items"]
    }
    return {app: live.get(app) for app in APPS}


def all_at(kube: KubeClient, namespace: str, value: str) -> bool:
    return all(v == value for v in values(kube, namespace).values())


def lease_holder(kube: KubeClient, lease_namespace: str, name: str) -> str:
    lease = kube.get("coordination.k8s.io/v1", "Lease", name, lease_namespace) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def shard_holders(kube: KubeClient, namespace: str, shards: int = SHARDS) -> dict[int, str]:
    return {s: lease_holder(kube, namespace, f"gitsync-shard-{s}") for s in range(shards)}


def balanced(kube: KubeClient, lease_namespace: str, identities: set[str]) -> bool:
    per_replica = Counter(shard_holders(kube, lease_namespace).values())
    return set(per_replica) == identities and set(per_replica.values()) == {
        SHARDS // len(identities)
    }


def metrics(proc: ServeProcess) -> str:
    with urllib.request.urlopen(proc.url + "/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def push(repo: GitRepo, value: str) -> str:
    sha = repo.commit(files(value), f"set every app to {value}")
    repo.push()
    return sha


def landed_writes(audit: AuditLog, since: int) -> list[AuditEvent]:
    """Persisted writes by the replicas, in the order the API server completed them."""
    return [
        e
        for e in audit.events(since)
        if e.verb in MUTATING_VERBS
        and not e.dry_run
        and 200 <= e.code < 300
        and e.user_agent.startswith(USER_AGENT_PREFIX)
    ]


def overlapping_writes(
    events: list[AuditEvent],
    namespace: str,
    lease_namespace: str,
    shards: dict[str, int],
    configmaps: dict[str, str],
) -> tuple[list[str], dict[str, set[str]]]:
    """Writes to an app by a replica that did not hold the app's shard, and who wrote each app.

    An app's writes are its ConfigMap and its status; a refresh request a replica forwards to the
    holder (the Application's annotations) is not a reconcile and is not counted.
    """
    last_lease_writer: dict[int, str] = {}
    bad: list[str] = []
    writers: dict[str, set[str]] = {app: set() for app in shards}
    for e in events:
        who = e.user_agent.removeprefix(USER_AGENT_PREFIX)
        if e.resource == "leases" and e.namespace == lease_namespace:
            if e.name.startswith("gitsync-shard-"):
                last_lease_writer[int(e.name.removeprefix("gitsync-shard-"))] = who
            continue
        if e.namespace != namespace:
            continue
        if e.resource == "configmaps" and e.name in configmaps:
            app = configmaps[e.name]
        elif e.resource == "applications" and e.subresource == "status" and e.name in shards:
            app = e.name
        else:
            continue
        writers[app].add(who)
        holder = last_lease_writer.get(shards[app], "")
        if holder != who:
            bad.append(f"{e.verb} {e.resource}/{e.name} by {who} while {holder!r} held the shard")
    return bad, writers


def test_shards_spread_apps_and_survive_a_kill_without_two_writers(
    replicas: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    audit: AuditLog,
    lease_namespace: str,
) -> None:
    repo = git_server.create_repo("shards", files=files("v1"))
    since = audit.mark()
    a, b = replicas("a"), replicas("b")
    uids = {}
    for app in APPS:
        source = {"repoURL": repo.file_url(), "targetRevision": "main", "path": f"apps/{app}"}
        created = kube.create(application(app, namespace, repo.file_url(), source=source))
        uids[app] = created["metadata"]["uid"]
    shards = {app: shard_of(uid, SHARDS) for app, uid in uids.items()}
    wait_for(lambda: all_at(kube, namespace, "v1"), timeout=60, what="every app synced v1")
    wait_for(
        lambda: balanced(kube, lease_namespace, {"a", "b"}),
        timeout=30,
        what="two shards each",
    )
    wait_for(  # what each replica holds is on its /metrics
        lambda: all("gitsync_shards_held 2.0" in metrics(p) for p in (a, b)),
        timeout=30,
        what="gitsync_shards_held 2 on both replicas' /metrics",
    )

    # A push announced to one replica only (a Service picks one): the other's apps follow too,
    # long before their 3-minute poll.
    sha = push(repo, "v2")
    assert github_webhook(a.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(
        lambda: all_at(kube, namespace, "v2"),
        timeout=30,
        what="every app at v2 after a webhook to a only",
    )

    bad, writers = overlapping_writes(
        landed_writes(audit, since), namespace, lease_namespace, shards, CONFIGMAPS
    )
    assert not bad, "\n".join(bad[:20])
    assert set().union(*writers.values()) == {"a", "b"}, f"both replicas did work: {writers}"

    # kill -9 of b: a takes b's shards over when their Leases expire, and syncs b's apps.
    holders = shard_holders(kube, lease_namespace)
    b_apps = [app for app in APPS if holders[shards[app]] == "b"]
    assert b_apps, f"b holds no app's shard: {holders} {shards}"
    killed = time.monotonic()
    b.kill()
    sha = push(repo, "v3")
    with contextlib.suppress(OSError):
        github_webhook(a.url, repo.file_url(), "refs/heads/main", sha)
    limit = LEASE_DURATION + TAKEOVER_MARGIN
    wait_for(
        lambda: all_at(kube, namespace, "v3"),
        timeout=limit,
        interval=0.2,
        what="every app at v3 after b was killed",
    )
    takeover = time.monotonic() - killed
    print(f"kill -9 of b to its {len(b_apps)} apps at v3: {takeover:.2f}s")
    assert set(shard_holders(kube, lease_namespace).values()) == {"a"}

    # b comes back: a drains and hands over two shards, and b syncs its apps again.
    b = replicas("b")
    wait_for(
        lambda: balanced(kube, lease_namespace, {"a", "b"}),
        timeout=30,
        what="rebalanced, two shards each",
    )
    sha = push(repo, "v4")
    assert github_webhook(b.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(
        lambda: all_at(kube, namespace, "v4"),
        timeout=30,
        what="every app at v4 after the rebalance",
    )

    bad, writers = overlapping_writes(
        landed_writes(audit, since), namespace, lease_namespace, shards, CONFIGMAPS
    )
    assert not bad, "\n".join(bad[:20])
    for app in b_apps:
        assert writers[app] >= {"a", "b"}, f"{app} was b's and then a's: {writers[app]}"


def test_sharded_replica_releases_its_shards_on_shutdown(
    replicas: Any, kube: KubeClient, lease_namespace: str
) -> None:
    a = replicas("a")
    wait_for(
        lambda: set(shard_holders(kube, lease_namespace).values()) == {"a"},
        timeout=30,
        what="a holds every shard",
    )
    a.stop()
    assert set(shard_holders(kube, lease_namespace).values()) == {""}
    leases = kube.list("coordination.k8s.io/v1", "Lease", lease_namespace)["items"]
    assert not [x for x in leases if x["metadata"]["name"].startswith("gitsync-replica-")]


def test_a_shard_is_handed_over_only_after_its_running_reconcile_returned(
    replicas: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    audit: AuditLog,
    lease_namespace: str,
) -> None:
    """Rebalancing while a reconcile hangs on a Git server that never answers (git gives up
    after 60 s): the old holder keeps the shard until that reconcile has written its outcome,
    and only then the newcomer takes it over."""
    repo = git_server.create_repo("shard-drain", files=files("v1"))
    replicas("a", shards=2)
    wait_for(
        lambda: set(shard_holders(kube, lease_namespace, 2).values()) == {"a"},
        timeout=30,
        what="a holds both shards",
    )
    moving = {s for s, r in assign(2, ["a", "b"], {0: "a", 1: "a"}).items() if r == "b"}
    app = ""
    for name in APPS:  # one app in the shard that b will take (half of them are)
        source = {"repoURL": repo.http_url(), "targetRevision": "main", "path": f"apps/{name}"}
        created = kube.create(application(name, namespace, "", source=source))
        if shard_of(created["metadata"]["uid"], 2) in moving:
            app = name
            break
        kube.delete("gitsync.dev/v1alpha1", "Application", name, namespace)
    assert app, "no app landed in the shard b takes"
    wait_for(lambda: values(kube, namespace)[app] == "v1", timeout=60, what="app synced")

    git_server.fault = "hang"
    try:
        kube.patch(
            "gitsync.dev/v1alpha1",
            "Application",
            app,
            {"metadata": {"annotations": {"gitsync.dev/refresh": "hang"}}},
            namespace=namespace,
        )
        wait_for(
            lambda: any(
                r.status == 0 and repo.name in r.path for r in list(git_server.request_log)
            ),
            timeout=30,
            what="a's reconcile hanging in ls-remote",
        )
        since = audit.mark()
        replicas("b", shards=2)
        wait_for(
            lambda: lease_holder(kube, lease_namespace, "gitsync-replica-b") == "b",
            timeout=30,
            what="b's heartbeat",
        )
    finally:
        git_server.fault = None  # a's request keeps hanging; b's will be answered
    (shard,) = moving

    def a_wrote_the_outcome() -> list[AuditEvent]:
        return [
            e
            for e in landed_writes(audit, since)
            if e.name == app and e.subresource == "status" and e.user_agent.endswith("/a")
        ]

    wait_for(
        a_wrote_the_outcome,
        timeout=120,
        interval=0.5,
        what="a's hung reconcile writing its outcome (git gives up after 60 s)",
    )
    wait_for(
        lambda: shard_holders(kube, lease_namespace, 2)[shard] == "b",
        timeout=60,
        interval=0.5,
        what=f"b holding shard {shard}",
    )
    events = landed_writes(audit, since)
    bad, _ = overlapping_writes(
        events, namespace, lease_namespace, {app: shard}, {f"config-{app}": app}
    )
    assert not bad, "\n".join(bad)
