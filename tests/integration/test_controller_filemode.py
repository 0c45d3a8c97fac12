"""`gitsync serve --config apps.yaml`: Applications from a file, status in a ConfigMap (no CRD)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import WEBHOOK_SECRET, application, configmap_repo, configmap_value
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def serve(cluster: TestCluster, tmp_path: Path) -> Iterator[Any]:
    """No `crd` fixture here: file mode is for clusters where the CRD cannot be installed."""
    started: list[ServeProcess] = []

    def start(*extra: str) -> ServeProcess:
        proc = ServeProcess(
            cluster.kubeconfig_path,
            tmp_path,
            list(extra),
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def file_status(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    cm = kube.get("v1", "ConfigMap", f"gitsync-status-{name}", namespace) or {}
    return dict(json.loads((cm.get("data") or {}).get("status") or "{}"))


def test_applications_from_a_file_sync_and_keep_status_in_a_configmap(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    apps = tmp_path / "apps.yaml"
    apps.write_text(yaml.safe_dump(application("web", namespace, repo.file_url())))
    serve("--config", str(apps))

    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=30, what="first sync")
    status = wait_for(
        lambda: (
            (s := file_status(kube, namespace, "web")).get("sync", {}).get("status") == "Synced"
            and s
        ),
        timeout=30,
        what="status Synced in ConfigMap gitsync-status-web",
    )
    assert status["sync"]["revision"] == repo.head()
    assert status["lastAppliedRevision"] == repo.head()
    assert [h["revision"] for h in status["history"]] == [repo.head()]
