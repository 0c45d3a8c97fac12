"""Remote destination clusters registered by Secret, with a second real control plane as remote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.controlplane import ControlPlane
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import (
    WEBHOOK_SECRET,
    app_status,
    application,
    configmap_repo,
    configmap_value,
)
from tests.support.audit import AuditLog
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.integration

CONTROLLER_NAMESPACE = "gitsync"


@pytest.fixture
def serve(cluster: TestCluster, tmp_path: Path, crd: None) -> Iterator[Any]:
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


def exec_kubeconfig(remote: ControlPlane, marker: Path) -> str:
    """The remote cluster again, but its credentials come from a program (which leaves a mark)."""
    doc = yaml.safe_load(remote.kubeconfig_path.read_text())
    credential = (
        '{"apiVersion": "client.authentication.k8s.io/v1beta1", '
        f'"kind": "ExecCredential", "status": {{"token": "{remote.admin_token}"}}}}'
    )
    doc["users"] = [
        {
            "name": "via-exec",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "/bin/sh",
                    "args": ["-c", f"touch {marker}; echo '{credential}'"],
                }
            },
        }
    ]
    for context in doc["contexts"]:
        context["context"]["user"] = "via-exec"
    return yaml.safe_dump(doc)


def condition(kube: KubeClient, namespace: str, name: str, kind: str) -> dict[str, Any]:
    conditions = app_status(kube, namespace, name).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def test_application_syncs_to_a_registered_remote_cluster_only(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    remote: ControlPlane,
    register: Any,
) -> None:
    remote_kube = remote.client()
    remote_kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    register("remote", remote.kubeconfig_path.read_text())
    since = AuditLog(remote.audit_log_path).mark()
    serve("--identity=clusters-test")
    repo = configmap_repo(git_server)
    kube.create(
        application(
            "web",
            namespace,
            repo.file_url(),
            destination={"name": "remote", "namespace": namespace},
        )
    )

    wait_for(
        lambda: configmap_value(remote_kube, namespace) == "v1",
        timeout=30,
        what="the ConfigMap on the remote cluster",
    )
    wait_for(
        lambda: app_status(kube, namespace, "web").get("sync", {}).get("status") == "Synced",
        timeout=30,
        what="status Synced",
    )
    assert remote_kube.get("apps/v1", "Deployment", "web", namespace) is not None
    assert kube.get("v1", "ConfigMap", "config", namespace) is None
    assert kube.get("apps/v1", "Deployment", "web", namespace) is None
    # On the remote too, what gitsync applies carries the replica's user agent.
    writers = {
        e.user_agent
        for e in AuditLog(remote.audit_log_path).writes(since)
        if (e.namespace, e.resource, e.name) == (namespace, "configmaps", "config")
    }
    assert writers == {"gitsync-controller/clusters-test"}


def test_exec_credential_plugin_is_refused_and_nothing_is_applied(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    remote: ControlPlane,
    register: Any,
    tmp_path: Path,
) -> None:
    remote_kube = remote.client()
    remote_kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    marker = tmp_path / "exec-plugin-ran"
    register("with-exec", exec_kubeconfig(remote, marker))
    ctl = serve()
    repo = configmap_repo(git_server)
    kube.create(
        application(
            "web",
            namespace,
            repo.file_url(),
            destination={"name": "with-exec", "namespace": namespace},
        )
    )

    try:
        stalled = wait_for(
            lambda: (
                (c := condition(kube, namespace, "web", "Stalled")).get("status") == "True" and c
            ),
            timeout=15,
            what="a Stalled condition",
        )
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}\ncontroller log:\n{ctl.log(10)}") from None
    assert "exec" in stalled["message"]
    ready = condition(kube, namespace, "web", "Ready")
    assert ready.get("status") == "False"
    assert "exec" in ready.get("message", "")
    assert not marker.exists(), "the exec plugin ran"
    for client in (kube, remote_kube):
        assert client.get("v1", "ConfigMap", "config", namespace) is None
        assert client.get("apps/v1", "Deployment", "web", namespace) is None
