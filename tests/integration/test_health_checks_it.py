"""Declared (CEL) health checks on the real control plane (issue 17).

A CRD made for the test (its own API group), an Application deploying an instance from the test
Git server, and a CEL check for the kind: through ``gitsync serve`` from a ConfigMap labelled
``gitsync.dev/health-checks: "true"`` in the controller's namespace, and through the CLI's
``gitsync health -f ... --health-checks FILE``. Patching the instance's status moves the app's
health as the check says; a bad entry added to the ConfigMap is a Warning Event on it and the good
check stands.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.controller import ensure_crd
from gitsync.controller.health_checks import EVENT_REASON, HEALTH_CHECKS_LABEL
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def widget_group(kube: KubeClient) -> Iterator[str]:
    """A namespaced kind ``Widget`` with a status subresource, in a group of its own."""
    group = f"cel-{secrets.token_hex(3)}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    ensure_crd(kube, crd)
    yield group
    kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")


def widget_checks(group: str) -> str:
    return yaml.safe_dump(
        [
            {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "inProgress": "has(status.phase) && status.phase == 'Provisioning'",
                "failed": "has(status.phase) && status.phase == 'Failed'",
                "current": "has(status.phase) && status.phase == 'Running'",
            }
        ]
    )


def widget_repo(git_server: GitServer, group: str) -> Any:
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "gear"},
        "spec": {"size": 3},
    }
    return git_server.create_repo(
        f"cel-{secrets.token_hex(3)}", files={"app/widget.yaml": yaml.safe_dump(widget)}
    )


def set_phase(kube: KubeClient, group: str, namespace: str, phase: str) -> None:
    kube.patch(
        f"{group}/v1",
        "Widget",
        "gear",
        {"status": {"phase": phase}},
        namespace=namespace,
        subresource="status",
    )


def widget_health(kube: KubeClient, namespace: str) -> dict[str, str]:
    for resource in app_status(kube, namespace, "widgets").get("resources") or []:
        if resource.get("kind") == "Widget":
            return dict(resource.get("health") or {})
    return {}


def health_is(kube: KubeClient, namespace: str, status: str, fragment: str) -> Any:
    health = widget_health(kube, namespace)
    app = app_status(kube, namespace, "widgets").get("health") or {}
    if health.get("status") == status and fragment in health.get("message", ""):
        return app.get("status") == status and health
    return None


@pytest.mark.timeout(300)
def test_serve_follows_a_config_map_check_as_the_instance_status_changes(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, widget_group: str
) -> None:
    repo = widget_repo(git_server, widget_group)
    source = f"ConfigMap {namespace}/widget-health key widgets.yaml entry 1"
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "widget-health",
            "namespace": namespace,
            "labels": {HEALTH_CHECKS_LABEL: "true"},
        },
        "data": {"widgets.yaml": widget_checks(widget_group)},
    }
    kube.create(config_map)
    # the test's namespace is the controller's: its ConfigMaps are the ones read
    serve(f"--controller-namespace={namespace}")
    kube.create(application("widgets", namespace, repo.file_url()))

    wait_for(
        lambda: health_is(kube, namespace, "Progressing", f"no expression is true ({source})"),
        timeout=120,
        what="the new Widget Progressing by the ConfigMap's check",
    )
    set_phase(kube, widget_group, namespace, "Running")
    wait_for(
        lambda: health_is(kube, namespace, "Healthy", f"current is true ({source})"),
        timeout=60,
        what="Healthy once status.phase is Running",
    )
    set_phase(kube, widget_group, namespace, "Failed")
    wait_for(
        lambda: health_is(kube, namespace, "Degraded", f"failed is true ({source})"),
        timeout=60,
        what="Degraded once status.phase is Failed",
    )

    # a bad entry in another key: an Event on the ConfigMap, and the Widget check still applies
    bad = "- {apiVersion: example.com/v1, kind: Gadget, current: 'status.phase =='}\n"
    kube.patch(
        "v1", "ConfigMap", "widget-health", {"data": {"z-bad.yaml": bad}}, namespace=namespace
    )

    def warning() -> dict[str, Any] | None:
        for event in kube.list("v1", "Event", namespace)["items"]:
            involved = event.get("involvedObject") or {}
            if involved.get("name") == "widget-health" and event.get("reason") == EVENT_REASON:
                return event
        return None

    event = wait_for(warning, timeout=60, what="an InvalidHealthCheck Event on the ConfigMap")
    assert event["type"] == "Warning"
    assert event["message"].startswith(
        f"ConfigMap {namespace}/widget-health key z-bad.yaml entry 1 (Gadget): current:"
    )
    set_phase(kube, widget_group, namespace, "Running")
    wait_for(
        lambda: health_is(kube, namespace, "Healthy", f"current is true ({source})"),
        timeout=60,
        what="the good check still in force after the bad entry",
    )

    # the check itself changes: the app is assessed again without the Widget changing
    changed = widget_checks(widget_group).replace("== 'Running'", "== 'Serving'")
    kube.patch(
        "v1", "ConfigMap", "widget-health", {"data": {"widgets.yaml": changed}}, namespace=namespace
    )
    wait_for(
        lambda: health_is(kube, namespace, "Progressing", f"no expression is true ({source})"),
        timeout=60,
        what="Progressing under the edited check",
    )


@pytest.mark.timeout(300)
def test_cli_health_uses_the_checks_file(
    kube: KubeClient,
    cluster: TestCluster,
    namespace: str,
    git_server: GitServer,
    widget_group: str,
    tmp_path: Path,
) -> None:
    repo = widget_repo(git_server, widget_group)
    app_file = tmp_path / "app.yaml"
    app_file.write_text(yaml.safe_dump(application("widgets", namespace, repo.file_url())))
    checks = tmp_path / "checks.yaml"
    checks.write_text(widget_checks(widget_group))
    common = [
        "-f",
        str(app_file),
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--allow-local-repos",
    ]
    synced = run_gitsync("sync", *common, "--health-checks", str(checks))
    assert synced.code == 0, synced

    set_phase(kube, widget_group, namespace, "Failed")
    degraded = run_gitsync("health", *common, "--health-checks", str(checks))
    assert degraded.code == 1, degraded
    assert f"Degraded     Widget.{widget_group}/{namespace}/gear" in degraded.stdout
    assert f"failed is true ({checks} entry 1)" in degraded.stdout

    set_phase(kube, widget_group, namespace, "Running")
    healthy = run_gitsync("health", *common, "--health-checks", str(checks))
    assert healthy.code == 0, healthy
    assert f"current is true ({checks} entry 1)" in healthy.stdout

    without = run_gitsync("health", *common)  # no checks: the generic rule, no conditions
    assert without.code == 0 and "entry 1" not in without.stdout, without
