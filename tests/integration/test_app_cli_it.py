"""``gitsync app ...`` against a real ``gitsync serve`` (issue 20: the CLI for CI jobs).

The controller runs as a process against the test control plane, Applications point at the test
Git server, and the CLI runs as a separate process the way a CI job runs it, with the token in
``$GITSYNC_TOKEN``. Acceptance: ``app wait`` exits 0 once a pushed commit is Synced/Healthy, 1
with the reason on a Degraded rollout, 3 on a timeout; ``app get -o json`` is the API's document.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.web.view import detail
from tests.support.apps import (
    application,
    configmap_repo,
    github_webhook,
    push_value,
    synced_at,
)
from tests.support.cli import CliRun, run_gitsync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ADMIN = "admin-" + secrets.token_hex(12)
VIEWER = "viewer-" + secrets.token_hex(12)


def start(serve: Any, tmp_path: Path) -> Any:
    (tmp_path / "admin-tokens").write_text(ADMIN + "\n")
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    return serve(
        f"--api-token-file={tmp_path / 'admin-tokens'}",
        f"--read-only-token-file={tmp_path / 'viewer-tokens'}",
    )


def app_cli(ctl: Any, *args: str, token: str = VIEWER, timeout: float = 180) -> CliRun:
    run = run_gitsync(
        "app",
        *args,
        env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": token},
        timeout=timeout,
    )
    assert ADMIN not in run.output and VIEWER not in run.output, run
    return run


def api_get(ctl: Any, path: str, token: str = VIEWER) -> Any:
    request = urllib.request.Request(
        ctl.url + "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def ageless(value: Any) -> Any:
    """A tree document without its nodes' ``age`` (a second may pass between two reads)."""
    if isinstance(value, dict):
        return {k: ageless(v) for k, v in value.items() if k != "age"}
    if isinstance(value, list):
        return [ageless(v) for v in value]
    return value


def deployment_repo(git_server: GitServer, name: str, behavior: str, deadline: int) -> Any:
    """A Deployment ``name`` whose pods the simulator runs with ``behavior`` (``never-ready``:
    running, never Ready), so its rollout ends Degraded after ``deadline`` seconds."""
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"sim.gitsync.dev/behavior": behavior},
                },
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    return git_server.create_repo(
        f"appcli-{secrets.token_hex(3)}", files={"app/deploy.yaml": yaml.safe_dump(deploy)}
    )


def test_list_get_and_wait_for_a_pushed_commit(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    kube.create(application("web", namespace, repo.file_url()))
    ctl = start(serve, tmp_path)
    first = wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=120)
    assert first

    listed = app_cli(ctl, "list", "-n", namespace, "-o", "json")
    assert listed.code == 0, listed
    items = json.loads(listed.stdout)["items"]
    assert [(i["namespace"], i["name"]) for i in items] == [(namespace, "web")]

    table = app_cli(ctl, "list", "-n", namespace)
    assert table.code == 0, table
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["NAMESPACE", "NAME", "SYNC", "HEALTH"]
    assert row.split()[:3] == [namespace, "web", "Synced"]

    # -o json is the API's document: the same JSON, with every field of the typed view, and
    # the live tree under "tree" as GET .../tree answers it
    got = app_cli(ctl, "get", f"{namespace}/web", "-o", "json")
    assert got.code == 0, got
    doc = json.loads(got.stdout)
    tree = doc.pop("tree")
    assert set(doc) == set(detail({"metadata": {}}))
    api_doc = api_get(ctl, f"/applications/{namespace}/web")
    assert {k: v for k, v in doc.items() if k != "lastSyncedAt"} == {
        k: v for k, v in api_doc.items() if k != "lastSyncedAt"
    }
    assert ageless(tree) == ageless(api_get(ctl, f"/applications/{namespace}/web/tree"))
    assert [n["kind"] for n in tree["nodes"]] == ["ConfigMap", "Deployment"]

    shown = app_cli(ctl, "get", f"{namespace}/web")
    assert shown.code == 0, shown
    assert "ConfigMap" in shown.stdout and "Deployment" in shown.stdout

    sha = push_value(repo, "v2")
    github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha)
    waited = app_cli(
        ctl, "wait", f"{namespace}/web", "--revision", sha, "--timeout", "2m", timeout=200
    )
    assert waited.code == 0, waited
    assert "Synced and Healthy" in waited.stdout
    status = synced_at(kube, namespace, "web", sha)
    assert status is not None and status["health"]["status"] == "Healthy"

    history = app_cli(ctl, "history", f"{namespace}/web")
    assert history.code == 0, history
    assert sha[:7] in history.stdout

    missing = app_cli(ctl, "get", f"{namespace}/nope")
    assert missing.code == 2
    assert f"{ctl.url}/api/v1/applications/{namespace}/nope: 404" in missing.stderr


def test_wait_fails_with_the_reason_on_a_degraded_rollout_and_times_out_on_a_progressing_one(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path, sim: None
) -> None:
    degraded = deployment_repo(git_server, "broken", "never-ready", deadline=10)
    slow = deployment_repo(git_server, "slow", "never-ready", deadline=600)
    kube.create(application("broken", namespace, degraded.file_url()))
    kube.create(application("slow", namespace, slow.file_url()))
    ctl = start(serve, tmp_path)

    timed_out = app_cli(ctl, "wait", f"{namespace}/slow", "--timeout", "3s")
    assert timed_out.code == 3, timed_out
    assert "timed out after 3s waiting" in timed_out.stderr

    failed = app_cli(ctl, "wait", f"{namespace}/broken", "--health", "--timeout", "2m")
    assert failed.code == 1, failed
    assert "health Degraded" in failed.stderr
    assert "ProgressDeadlineExceeded" in failed.stderr or "deadline" in failed.stderr


def test_diff_sync_refresh_and_rollback_with_the_admin_token(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    kube.create(application("manual", namespace, repo.file_url(), syncPolicy={}))
    ctl = start(serve, tmp_path)
    wait_for(
        lambda: (
            (api_get(ctl, f"/applications/{namespace}/manual")["sync"]["status"] == "OutOfSync")
            or None
        ),
        timeout=60,
    )

    differs = app_cli(ctl, "diff", f"{namespace}/manual")
    assert differs.code == 1, differs
    assert f"===== /ConfigMap/{namespace}/config (Missing)" in differs.stdout

    refused = app_cli(ctl, "sync", f"{namespace}/manual")
    assert refused.code == 2, refused
    assert "403" in refused.stderr and "admin token" in refused.stderr

    asked = app_cli(ctl, "sync", f"{namespace}/manual", token=ADMIN)
    assert asked.code == 0, asked
    assert "sync requested" in asked.stdout
    waited = app_cli(ctl, "wait", f"{namespace}/manual", "--sync", "--timeout", "2m", timeout=200)
    assert waited.code == 0, waited
    assert synced_at(kube, namespace, "manual", repo.head()) is not None
    # The diff is a fresh compare against the controller's watch cache, whose events can trail
    # the sync's writes by a moment on a loaded machine (seen once in CI: both objects shown
    # Missing right after "Synced"): in sync within seconds, not necessarily at once.
    same = wait_for(
        lambda: (run := app_cli(ctl, "diff", f"{namespace}/manual")).code == 0 and run,
        timeout=20,
        what="app diff in sync after the sync",
    )
    assert f"{namespace}/manual: in sync" in same.stdout

    refreshed = app_cli(ctl, "refresh", f"{namespace}/manual", "-o", "json", token=ADMIN)
    assert refreshed.code == 0, refreshed
    assert json.loads(refreshed.stdout)["action"] == "refresh"
    unknown = app_cli(ctl, "rollback", f"{namespace}/manual", "99", token=ADMIN)
    assert unknown.code == 2, unknown
    assert "404 no history entry 99" in unknown.stderr
    rolled = app_cli(ctl, "rollback", f"{namespace}/manual", "1", token=ADMIN)
    assert rolled.code == 0, rolled
    assert "rollback to history entry 1 requested" in rolled.stdout
