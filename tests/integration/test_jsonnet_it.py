"""Jsonnet apps on the real control plane through ``gitsync serve`` (issue 17).

Before, a directory of ``*.jsonnet`` files rendered nothing and the app reported success. Now an
Argo CD style Jsonnet guestbook (``directory.jsonnet`` with tlas, extVars and libs) syncs to the
objects Argo CD would produce and turns Synced/Healthy, and an app whose directory holds only
``.libsonnet`` files fails its render naming what it found, with nothing applied.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application, synced_at
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FIXTURE = Path(__file__).parents[1] / "fixtures" / "render" / "jsonnet"
NAME = "jsonnet-guestbook-ui"


def _fixture_files() -> dict[str, str | bytes | None]:
    """The guestbook at ``app/``, its shared library at ``vendor/``."""
    return {
        **{f"app/{p.name}": p.read_text() for p in (FIXTURE / "guestbook").iterdir()},
        "vendor/k/labels.libsonnet": (FIXTURE / "vendor/k/labels.libsonnet").read_text(),
    }


def _healthy(kube: KubeClient, namespace: str, sha: str) -> dict[str, Any] | None:
    status = synced_at(kube, namespace, "guestbook", sha)
    return status if status and (status.get("health") or {}).get("status") == "Healthy" else None


@pytest.mark.timeout(300)
def test_a_jsonnet_guestbook_syncs_synced_healthy_with_argo_cds_objects(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = git_server.create_repo(f"jsonnet-{secrets.token_hex(3)}", files=_fixture_files())
    app = application("guestbook", namespace, repo.http_url())
    app["spec"]["source"]["directory"] = {
        "jsonnet": {
            # replicas 0: the test control plane has no nodes, and Argo's example is this shape
            "tlas": [
                {"name": "replicas", "value": "0", "code": True},
                {"name": "env", "value": "prod"},
            ],
            "extVars": [{"name": "team", "value": "web"}],
            "libs": ["vendor"],
        }
    }
    serve()
    kube.create(app)
    status = wait_for(
        lambda: _healthy(kube, namespace, repo.head()), timeout=180, what="Synced and Healthy"
    )
    assert sorted(r["kind"] + "/" + r["name"] for r in status["resources"]) == [
        "ConfigMap/guestbook-settings",
        f"Deployment/{NAME}",
        f"Service/{NAME}",
    ]
    service = kube.get("v1", "Service", NAME, namespace)
    deployment = kube.get("apps/v1", "Deployment", NAME, namespace)
    settings = kube.get("v1", "ConfigMap", "guestbook-settings", namespace)
    assert service is not None and deployment is not None and settings is not None
    assert service["spec"]["ports"][0]["port"] == 80 and service["spec"]["type"] == "ClusterIP"
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gitsync"  # libs
    assert deployment["spec"]["replicas"] == 0  # a code TLA: the number 0
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "gcr.io/heptio-images/ks-guestbook-demo:0.2"
    assert container["env"] == [{"name": "ENV", "value": "prod"}, {"name": "TEAM", "value": "web"}]
    assert settings["data"] == {"team": "web"}


@pytest.mark.timeout(300)
def test_an_app_of_only_libsonnet_files_fails_naming_what_it_found(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = git_server.create_repo(
        f"libsonnet-{secrets.token_hex(3)}",
        files={"app/params.libsonnet": "{replicas: 1}", "app/labels.libsonnet": "{}"},
    )
    serve()
    kube.create(application("libs-only", namespace, repo.http_url()))

    def render_failed() -> dict[str, Any] | None:
        conditions = app_status(kube, namespace, "libs-only").get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        return ready if ready.get("reason") == "RenderFailed" else None

    ready = wait_for(render_failed, timeout=120, what="Ready=False RenderFailed")
    message = ready["message"]
    assert "produced no objects" in message and "app holds 2 .libsonnet files" in message, ready
    assert ".libsonnet files are only imported" in message and "allowEmpty" in message, ready
    status = app_status(kube, namespace, "libs-only")
    assert (status.get("sync") or {}).get("status") != "Synced", status
    assert not status.get("resources"), status
