"""Sync windows and Application deletion, with `gitsync serve` on the real control plane and a
real Git server: a deny window holds an automated sync of a new commit (status says until when)
and lets it through when it closes; a project's deny window with ``manualSync`` lets a manual
sync through while automated syncs wait; deleting an app with the resources finalizer deletes
its objects, never one another app tracks, and releases the app; without the finalizer the
objects stay."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.controller.interface import SYNC_REQUEST
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.sync.tracking import TRACKING_ANNOTATION
from tests.support.apps import (
    app_status,
    application,
    configmap_repo,
    configmap_value,
    push_value,
    synced_at,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def window_from_now(min_left: float = 25.0) -> tuple[dict[str, Any], dt.datetime]:
    """A deny window of one minute opening at the current minute, with at least ``min_left``
    seconds of it left (waits for the next minute otherwise), and when it closes."""
    now = dt.datetime.now(dt.UTC)
    if 60 - now.second < min_left:
        time.sleep(60 - now.second + 0.5)
        now = dt.datetime.now(dt.UTC)
    opens = now.replace(second=0, microsecond=0)
    schedule = f"{opens.minute} {opens.hour} * * *"
    window = {"kind": "deny", "schedule": schedule, "duration": "1m"}
    return window, opens + dt.timedelta(minutes=1)


def test_a_deny_window_holds_a_new_commit_until_it_closes(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    serve()
    kube.create(application("web", namespace, repo.file_url(), interval="5s"))
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="first sync")

    window, closes = window_from_now()
    spec_patch = {"spec": {"syncWindows": [window]}}
    kube.patch(kinds.API_VERSION, "Application", "web", spec_patch, namespace=namespace)
    push_value(repo, "v2")
    until = closes.strftime("%Y-%m-%dT%H:%M:%SZ")
    status = wait_for(
        lambda: (s := app_status(kube, namespace, "web")).get("syncWindow") and s,
        timeout=20,
        what="status.syncWindow",
    )
    assert status["syncWindow"]["until"] == until
    assert "deny window" in status["syncWindow"]["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "SyncWindowBlocked" and until in ready["message"]
    assert configmap_value(kube, namespace) == "v1"  # held

    wait_for(
        lambda: configmap_value(kube, namespace) == "v2",
        timeout=(closes - dt.datetime.now(dt.UTC)).total_seconds() + 20,
        what="v2 after the window",
    )
    assert dt.datetime.now(dt.UTC) >= closes
    wait_for(
        lambda: "syncWindow" not in app_status(kube, namespace, "web"),
        timeout=20,
        what="syncWindow cleared",
    )


def test_a_project_deny_window_with_manual_sync_lets_only_manual_syncs_through(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    always = {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "manualSync": True}
    policy.write_text(
        yaml.safe_dump(
            {"projects": {namespace: {"syncWindows": [{**always, "applications": ["web"]}]}}}
        )
    )
    repo = configmap_repo(git_server)
    serve(f"--policy={policy}")
    kube.create(application("web", namespace, repo.file_url(), interval="5s"))
    status = wait_for(
        lambda: (s := app_status(kube, namespace, "web")).get("syncWindow") and s,
        timeout=60,
        what="automated sync held",
    )
    assert "deny window '* * * * *'" in status["syncWindow"]["message"]
    assert configmap_value(kube, namespace) is None  # never applied

    request = secrets.token_hex(4)
    annotations = {"metadata": {"annotations": {SYNC_REQUEST: request}}}
    kube.patch(kinds.API_VERSION, "Application", "web", annotations, namespace=namespace)
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=60, what="manual sync")
    status = app_status(kube, namespace, "web")
    assert status["lastHandledSyncRequest"] == request
    assert status["operationState"]["initiatedBy"] == "manual"


def other_app_repo(git_server: GitServer) -> Any:
    """A repository with only the ConfigMap ``config``: the app on it takes that object over."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}
    return git_server.create_repo(
        f"other-{secrets.token_hex(3)}",
        files={"app/cm.yaml": yaml.safe_dump({**cm, "data": {"value": "other"}})},
    )


def app_gone(kube: KubeClient, namespace: str, name: str) -> bool:
    return kube.get(kinds.API_VERSION, "Application", name, namespace) is None


@pytest.mark.parametrize(
    "finalizer",
    ["gitsync.dev/resources-finalizer", "resources-finalizer.argocd.argoproj.io/background"],
)
def test_deleting_an_app_with_the_finalizer_deletes_its_objects_but_not_another_apps(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, finalizer: str
) -> None:
    repo = configmap_repo(git_server)
    # the second app takes the ConfigMap over, which the operator must allow (off by default)
    serve("--allow-shared-resource-takeover")
    no_heal = {"automated": {"prune": True}}  # web does not take the ConfigMap back
    web = application("web", namespace, repo.file_url(), syncPolicy=no_heal)
    web["metadata"]["finalizers"] = [finalizer]
    kube.create(web)
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="web synced")
    other = other_app_repo(git_server)
    kube.create(application("other", namespace, other.file_url(), syncPolicy=no_heal))
    wait_for(lambda: configmap_value(kube, namespace) == "other", timeout=60, what="taken over")

    kube.delete(kinds.API_VERSION, "Application", "web", namespace)
    wait_for(lambda: app_gone(kube, namespace, "web"), timeout=60, what="web released")
    assert kube.get("apps/v1", "Deployment", "web", namespace) is None
    cm = kube.get("v1", "ConfigMap", "config", namespace)
    assert cm is not None, "the ConfigMap another app tracks was deleted"
    assert cm["metadata"]["annotations"][TRACKING_ANNOTATION].startswith(f"{namespace}/other:")
    assert kube.get("v1", "ConfigMap", "gitsync-inventory-web", namespace) is None


def test_deleting_an_app_without_the_finalizer_leaves_its_objects(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=60, what="web synced")
    kube.delete(kinds.API_VERSION, "Application", "web", namespace)
    wait_for(lambda: app_gone(kube, namespace, "web"), timeout=30, what="web gone")
    time.sleep(3)  # a controller that wrongly deleted would have done it by now
    assert kube.get("apps/v1", "Deployment", "web", namespace) is not None
    assert configmap_value(kube, namespace) == "v1"
