"""The controller (`gitsync serve`) on the real control plane and Git server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import (
    app_status,
    application,
    configmap_repo,
    configmap_value,
    github_webhook,
    push_value,
    synced_at,
)
from tests.support.cluster import TestCluster
from tests.support.manifests import two_wave_manifests
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_push_and_webhook_deploy_within_seconds(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    ctl = serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=60, what="first sync")
    status = wait_for(
        lambda: (
            (s := app_status(kube, namespace, "web")).get("sync", {}).get("status") == "Synced"
            and s
        ),
        timeout=60,
        what="status Synced",
    )
    assert status["sync"]["revision"] == repo.head()
    assert status["history"][0]["revision"] == repo.head()
    assert status["sourceType"] == "Directory"  # detected: no Chart.yaml, no kustomization
    sha = push_value(repo, "v2")
    pushed = time.monotonic()
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(
        lambda: configmap_value(kube, namespace) == "v2", timeout=10, interval=0.05, what="v2 live"
    )
    print(f"push-to-live: {time.monotonic() - pushed:.2f}s")


def deployment_image(kube: KubeClient, namespace: str) -> str | None:
    dep = kube.get("apps/v1", "Deployment", "web", namespace)
    return dep["spec"]["template"]["spec"]["containers"][0]["image"] if dep else None


def test_polling_without_webhook_picks_up_a_push(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    serve()
    kube.create(application("web", namespace, repo.file_url(), interval="5s"))
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="first sync")
    push_value(repo, "polled")
    pushed = time.monotonic()
    wait_for(
        lambda: configmap_value(kube, namespace) == "polled", timeout=15, interval=0.1, what="poll"
    )
    elapsed = time.monotonic() - pushed
    print(f"poll-to-live with interval 5s: {elapsed:.2f}s")
    assert elapsed < 5 + 0.5 + 5  # interval + jitter (10%) + sync time


def test_self_heal_reverts_drift(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="first sync")
    kube.patch(
        "apps/v1",
        "Deployment",
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "evil:1"}]}}}},
        namespace=namespace,
        patch_type="strategic",
        field_manager="intruder",
    )
    drifted = time.monotonic()
    wait_for(
        lambda: deployment_image(kube, namespace) == "nginx:1.25",
        timeout=10,
        interval=0.1,
        what="heal",
    )
    print(f"self-heal: {time.monotonic() - drifted:.2f}s")


def test_drift_again_inside_the_self_heal_backoff_is_reverted_when_it_ends(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    """A heal starts a 2 s backoff. A hand edit right after it is reverted when the backoff
    ends, though no further watch event comes (a ConfigMap has no controller updating it) and
    the periodic full compare is minutes away."""
    repo = configmap_repo(git_server)
    serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="first sync")

    def hand_edit() -> None:
        patch = {"data": {"value": "hand-edit"}}
        kube.patch(
            "v1", "ConfigMap", "config", patch, namespace=namespace, field_manager="intruder"
        )

    for what in ("heal", "heal after the backoff"):
        hand_edit()
        edited = time.monotonic()
        wait_for(
            lambda: configmap_value(kube, namespace) == "v1", timeout=15, interval=0.05, what=what
        )
        print(f"{what}: {time.monotonic() - edited:.2f}s")


def test_drift_without_self_heal_shows_out_of_sync(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    serve()
    kube.create(
        application("web", namespace, repo.file_url(), syncPolicy={"automated": {"prune": True}})
    )
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="first sync")
    kube.patch(
        "v1",
        "ConfigMap",
        "config",
        {"data": {"value": "hand-edit"}},
        namespace=namespace,
        field_manager="intruder",
    )

    def out_of_sync() -> dict[str, Any] | None:
        status = app_status(kube, namespace, "web")
        return status if status.get("sync", {}).get("status") == "OutOfSync" else None

    status = wait_for(out_of_sync, timeout=15, what="OutOfSync")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "OutOfSync"
    drifted = [r for r in status["resources"] if r["status"] == "OutOfSync"]
    assert [(r["kind"], r["name"]) for r in drifted] == [("ConfigMap", "config")]
    time.sleep(3)
    assert configmap_value(kube, namespace) == "hand-edit"  # not reverted without selfHeal


def test_manual_mode_waits_for_gitsync_sync(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, cluster: TestCluster
) -> None:
    from tests.support.cli import run_gitsync

    repo = configmap_repo(git_server)
    serve()
    kube.create(application("web", namespace, repo.file_url(), syncPolicy={}))

    def out_of_sync() -> dict[str, Any] | None:
        status = app_status(kube, namespace, "web")
        return status if status.get("sync", {}).get("status") == "OutOfSync" else None

    status = wait_for(out_of_sync, timeout=30, what="OutOfSync")
    assert (
        "automated sync is off"
        in next(c for c in status["conditions"] if c["type"] == "Ready")["message"]
    )
    assert configmap_value(kube, namespace) is None
    run = run_gitsync("sync", f"{namespace}/web", "--kubeconfig", str(cluster.kubeconfig_path))
    assert run.code == 0, run
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=30, what="manual sync")
    assert configmap_value(kube, namespace) == "v1"


def test_rollback_pins_a_history_entry_until_resume(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, cluster: TestCluster
) -> None:
    from tests.support.cli import run_gitsync

    repo = configmap_repo(git_server)
    first = repo.head()
    ctl = serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: synced_at(kube, namespace, "web", first), timeout=60, what="v1")
    second = push_value(repo, "v2")
    github_webhook(ctl.url, repo.file_url(), "refs/heads/main", second)
    wait_for(lambda: synced_at(kube, namespace, "web", second), timeout=30, what="v2")
    history = app_status(kube, namespace, "web")["history"]
    entry = next(h for h in history if h["revision"] == first)
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig_path)]
    assert (
        run_gitsync("rollback", f"{namespace}/web", "--to", str(entry["id"]), *kubeconfig).code == 0
    )
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=30, what="rolled back")
    wait_for(
        lambda: app_status(kube, namespace, "web").get("automationPaused") is True,
        timeout=15,
        what="paused",
    )
    third = push_value(repo, "v3")
    github_webhook(ctl.url, repo.file_url(), "refs/heads/main", third)
    time.sleep(4)
    assert configmap_value(kube, namespace) == "v1"  # Git and cluster are not fighting
    assert run_gitsync("resume", f"{namespace}/web", *kubeconfig).code == 0
    wait_for(lambda: configmap_value(kube, namespace) == "v3", timeout=30, what="resumed to v3")


def test_git_server_down_stalls_without_pruning_and_recovers(
    serve: Any, kube: KubeClient, namespace: str
) -> None:
    with GitServer(ssh=False) as server:
        repo = configmap_repo(server)
        url = repo.http_url()
        serve()
        kube.create(application("web", namespace, url, interval="2s"))
        wait_for(
            lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="first sync"
        )
        before = kube.get("v1", "ConfigMap", "config", namespace)
        assert before is not None
        server.stop()

        def failing() -> dict[str, Any] | None:
            conds = {c["type"]: c for c in app_status(kube, namespace, "web").get("conditions", [])}
            for ctype in ("Stalled", "Reconciling"):
                if (
                    conds.get(ctype, {}).get("status") == "True"
                    and "fetch failed" in conds[ctype]["message"]
                ):
                    return conds[ctype]
            return None

        cond = wait_for(failing, timeout=30, what="fetch failure on the conditions")
        assert (
            "did not answer" in cond["message"]
            or "unreachable" in cond["message"].lower()
            or "connect" in cond["message"].lower()
        ), cond
        after = kube.get("v1", "ConfigMap", "config", namespace)
        assert (
            after is not None
            and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        )
        assert kube.get("apps/v1", "Deployment", "web", namespace) is not None
        server.start()

        def recovered() -> dict[str, Any] | None:
            status = app_status(kube, namespace, "web")
            conds = {c["type"]: c for c in status.get("conditions", [])}
            return (
                status
                if "Stalled" not in conds
                and "Reconciling" not in conds
                and status["sync"]["status"] == "Synced"
                else None
            )

        wait_for(recovered, timeout=60, what="recovery without intervention")


def test_kill_during_multi_wave_sync_resumes_with_one_history_entry(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, cluster: TestCluster
) -> None:
    repo = configmap_repo(git_server)
    repo.commit({"app/waves.yaml": two_wave_manifests(ready_after=8)}, "two waves")
    repo.push()
    mark = cluster.audit.mark() if cluster.audit else 0
    first = serve()
    kube.create(application("web", namespace, repo.file_url()))

    def mid_sync() -> bool:
        op = app_status(kube, namespace, "web").get("operationState") or {}
        return (
            op.get("phase") == "Running"
            and kube.get("apps/v1", "Deployment", "db", namespace) is not None
        )

    wait_for(mid_sync, timeout=60, interval=0.1, what="wave 0 applied, operation Running")
    assert kube.get("v1", "ConfigMap", "after-db", namespace) is None
    first.kill()
    serve()
    wait_for(
        lambda: kube.get("v1", "ConfigMap", "after-db", namespace),
        timeout=60,
        what="wave 1 after restart",
    )
    status = wait_for(
        lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="Synced"
    )
    assert len(status["history"]) == 1, status["history"]
    assert status["operationState"]["phase"] == "Succeeded"
    if cluster.audit is not None:
        applies = [
            w
            for w in cluster.audit.writes(mark)
            if w.user_agent.startswith("gitsync-controller/")
            and w.namespace == namespace
            and w.resource == "deployments"
            and w.name == "db"
            and not w.subresource
        ]
        assert len(applies) == 1, [(w.verb, w.uri) for w in applies]  # applied once, not twice
