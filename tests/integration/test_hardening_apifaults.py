"""Hardening case 20: the API server goes away mid-sync, or answers writes with 409/429/500.

The controller runs as a real ``gitsync serve`` process whose kubeconfig points at
``tests.support.faultproxy.FaultProxy``, a loopback HTTPS proxy in front of the session's real
API server; the test itself reads the cluster directly. What a user relies on: the sync retries
(with backoff, by itself - no new push, no manual request), converges to what Git declares, and
the history shows one entry per deployed revision, not one per attempt.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
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
    configmap_repo,
    configmap_value,
    github_webhook,
    push_value,
)
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.faultproxy import FaultProxy, ProxiedRequest
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 30.0


@pytest.fixture
def proxy(cluster: TestCluster, crd: None) -> Iterator[FaultProxy]:
    cp = cluster.control_plane
    if cp is None:
        pytest.skip("puts a proxy in front of the test control plane's own API server")
    pki = cp.pki
    with FaultProxy(cp.host, pki.serving_cert, pki.serving_key, pki.ca_cert) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def proxied_serve(
    proxy: FaultProxy, cluster: TestCluster, tmp_path: Path
) -> Iterator[ServeProcess]:
    """``gitsync serve`` talking to the API server only through the proxy."""
    kubeconfig = proxy.write_kubeconfig(cluster.kubeconfig_path, tmp_path / "proxied.kubeconfig")
    ctl = ServeProcess(kubeconfig, tmp_path, [], {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET})
    try:
        yield ctl.start(timeout=120)
    finally:
        ctl.stop()


def synced_at(kube: KubeClient, namespace: str, sha: str) -> dict[str, Any] | None:
    status = app_status(kube, namespace, "web")
    sync = status.get("sync") or {}
    op = status.get("operationState") or {}
    done = op.get("phase") == "Succeeded" and op.get("revision") == sha
    return (
        status if done and sync.get("status") == "Synced" and sync.get("revision") == sha else None
    )


def assert_one_entry_per_revision(status: dict[str, Any], revisions: list[str]) -> None:
    history = status.get("history") or []
    per_revision = Counter(h["revision"] for h in history)
    assert {r: per_revision[r] for r in revisions} == dict.fromkeys(revisions, 1), history
    assert all(h["result"] == "Succeeded" for h in history if h["revision"] in revisions), history
    operations = [h["operation"] for h in history]
    assert len(operations) == len(set(operations)), history


def test_api_server_gone_for_30s_mid_sync_then_the_sync_finishes_once(
    proxy: FaultProxy,
    proxied_serve: ServeProcess,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
) -> None:
    repo = configmap_repo(git_server)
    first = repo.head()
    # a long interval: only the controller's own retry can finish the interrupted sync in time
    kube.create(application("web", namespace, repo.file_url(), interval="30m"))
    wait_for(lambda: synced_at(kube, namespace, first), timeout=120, what="first sync")

    def real_apply_of_config(req: ProxiedRequest) -> bool:
        return (
            req.method == "PATCH"
            and not req.dry_run
            and req.path.startswith(f"/api/v1/namespaces/{namespace}/configmaps/config?")
        )

    proxy.outage_on(real_apply_of_config, OUTAGE_SECONDS)
    sha = push_value(repo, "v2")
    assert github_webhook(proxied_serve.url, repo.file_url(), "refs/heads/main", sha) == 202
    assert proxy.outage_started.wait(120), "the sync never reached the apply"
    # mid-sync: the operation was recorded as Running before anything was applied
    op = app_status(kube, namespace, "web").get("operationState") or {}
    assert (op.get("phase"), op.get("revision")) == ("Running", sha)
    assert configmap_value(kube, namespace) == "v1"
    assert proxy.outage_ended.wait(OUTAGE_SECONDS + 30)

    status = wait_for(
        lambda: synced_at(kube, namespace, sha), timeout=180, what="sync finished after outage"
    )
    assert configmap_value(kube, namespace) == "v2"
    assert_one_entry_per_revision(status, [first, sha])
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    # an outage is expected weather, not a bug: retried with backoff, never a "crash"
    log = proxied_serve.log(100_000)
    assert "reconcile failed; retrying" in log
    assert "reconcile crashed" not in log


def test_writes_answered_409_429_500_still_converge_with_one_history_entry_each(
    proxy: FaultProxy,
    proxied_serve: ServeProcess,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
) -> None:
    repo = configmap_repo(git_server)
    repo.commit({"app/extra.yaml": yaml.safe_dump(_configmap("extra", "x"))}, "add extra")
    repo.push()
    # 30 % of the controller's writes fail: 409, 429 with Retry-After, or 500 sent after the
    # write went through (the answer was lost, the change was not)
    proxy.inject(0.3, seed=20, lost_answers=True)
    kube.create(application("web", namespace, repo.file_url(), interval="30m"))
    revisions = [repo.head()]
    wait_for(lambda: synced_at(kube, namespace, revisions[-1]), timeout=300, what="first sync")

    steps: list[tuple[str, dict[str, str | None]]] = [
        ("v2", {}),
        ("v3", {"app/extra.yaml": None}),  # a prune under faults too
        ("v4", {"app/more.yaml": yaml.safe_dump(_configmap("more", secrets.token_hex(4)))}),
    ]
    for value, files in steps:
        if files:
            repo.commit(files, f"files for {value}")
        sha = push_value(repo, value)
        revisions.append(sha)
        github_webhook(proxied_serve.url, repo.file_url(), "refs/heads/main", sha)
        status = wait_for(
            lambda sha=sha: synced_at(kube, namespace, sha), timeout=300, what=f"{value} synced"
        )
        assert configmap_value(kube, namespace) == value
    assert kube.get("v1", "ConfigMap", "extra", namespace) is None
    assert kube.get("v1", "ConfigMap", "more", namespace) is not None
    assert_one_entry_per_revision(status, revisions)
    injected = {k: n for k, n in proxy.counts.items() if k.startswith(("injected", "lost"))}
    print(f"faults injected: {injected}")
    assert {"injected-409", "injected-429", "lost-500"} <= set(injected)
    assert_retry_after_honoured(proxy)


def assert_retry_after_honoured(proxy: FaultProxy) -> None:
    """Every 429 said ``Retry-After: 1``; the same request must not come back sooner.

    Not checked where the next request to a path is not a retry: Event POSTs (best effort,
    never retried: the next POST is another event) and the inventory ConfigMap (written twice
    per sync by design - a one-shot write-ahead before the applies, then the retried final
    write)."""
    log = list(proxy.requests)
    checked = 0
    for i, (at, method, path, outcome) in enumerate(log):
        if outcome != "injected-429" or "/events" in path or "/gitsync-inventory-" in path:
            continue
        retry = next(((t, o) for t, m, p, o in log[i + 1 :] if (m, p) == (method, path)), None)
        if retry is None:
            continue  # e.g. the last attempt of a sync that was then redone from the start
        assert retry[0] - at >= 0.95, f"{method} {path} retried {retry[0] - at:.2f}s after a 429"
        checked += 1
    assert checked, "no 429 was retried"


def test_throttled_inventory_writes_are_retried_and_each_revision_recorded_once(
    proxy: FaultProxy,
    proxied_serve: ServeProcess,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
) -> None:
    """The inventory write (the last write of a sync, after every object is applied) answered
    429. Twice: the sync retries the write itself and succeeds at once. Every time, for a while:
    each attempt fails at the very end, with the objects already matching Git - the sync must
    still be retried until it lands (only a finished sync records the inventory a later prune
    relies on), and the attempts must not pile up in the history."""
    repo = configmap_repo(git_server)
    first = repo.head()
    kube.create(application("web", namespace, repo.file_url(), interval="30m"))
    wait_for(lambda: synced_at(kube, namespace, first), timeout=120, what="first sync")

    def inventory_write(req: ProxiedRequest) -> bool:
        return (
            req.method == "PATCH"
            and not req.dry_run
            and req.path.startswith(f"/api/v1/namespaces/{namespace}/configmaps/gitsync-inventory-")
        )

    proxy.inject(1.0, statuses=(429,), match=inventory_write, times=2)
    repo.commit({"app/more.yaml": yaml.safe_dump(_configmap("more", "m"))}, "add more")
    brief = push_value(repo, "v2")
    github_webhook(proxied_serve.url, repo.file_url(), "refs/heads/main", brief)
    wait_for(lambda: synced_at(kube, namespace, brief), timeout=120, what="synced despite 429s")
    assert proxy.counts["injected-429"] == 2
    events = kube.list("v1", "Event", namespace)["items"]
    assert not [e for e in events if e.get("reason") == "SyncFailed"], "a 429 failed the sync"

    proxy.inject(1.0, statuses=(429,), match=inventory_write)
    # the inventory is written only when the set of objects changes: add one
    repo.commit({"app/third.yaml": yaml.safe_dump(_configmap("third", "t"))}, "add third")
    sha = push_value(repo, "v3")
    github_webhook(proxied_serve.url, repo.file_url(), "refs/heads/main", sha)

    failed_operations: set[str] = set()

    def failed_twice() -> dict[str, Any] | None:
        status = app_status(kube, namespace, "web")
        op = status.get("operationState") or {}
        if op.get("phase") == "Failed" and op.get("revision") == sha:
            failed_operations.add(op["id"])
        return status if len(failed_operations) >= 2 else None

    status = wait_for(failed_twice, timeout=180, what="two failed attempts")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "SyncFailed" and "429" in ready["message"], ready
    assert configmap_value(kube, namespace) == "v3"  # applied; only the record is missing
    proxy.clear_faults()

    status = wait_for(lambda: synced_at(kube, namespace, sha), timeout=180, what="retried")
    assert_one_entry_per_revision(status, [first, brief, sha])
    inventory = kube.get("v1", "ConfigMap", "gitsync-inventory-web", namespace) or {}
    assert inventory.get("data", {}).get("revision") == sha


def _configmap(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": value},
    }
