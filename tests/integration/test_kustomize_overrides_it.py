"""Kustomize overrides on the Application, on the real control plane through ``gitsync serve``
(issue 17).

Argo CD users pin an image, prefix names or scale a workload in the Application rather than in
Git. Here an app with ``images`` + ``namePrefix`` + ``replicas`` syncs to the objects kustomize
makes of them; then only the Application's ``images`` changes - same commit - and the
Deployment rolls to the new image in place (same UID) and the app is Synced again with no diff.
That last step needs the overrides in the render cache key: the commit did not change.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application, synced_at
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FIXTURE = Path(__file__).parents[1] / "fixtures" / "render" / "kustomize-overrides"
IMAGE = "registry.example.com/team/web"  # the app's kustomization renames web to this


def _fixture_files() -> dict[str, str | bytes | None]:
    return {
        str(path.relative_to(FIXTURE)): path.read_text()
        for path in sorted(FIXTURE.rglob("*"))
        if path.is_file()
    }


def _images(kube: KubeClient, namespace: str) -> dict[str, str]:
    deployment = kube.get("apps/v1", "Deployment", "blue-web", namespace) or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return {c["name"]: c["image"] for c in containers or []}


def _settled(kube: KubeClient, namespace: str, sha: str, generation: int) -> dict[str, Any] | None:
    """Synced and Healthy at ``sha``, judged with the spec of ``generation``."""
    status = synced_at(kube, namespace, "web", sha)
    if not status or (status.get("health") or {}).get("status") != "Healthy":
        return None
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return status if ready.get("observedGeneration", 0) >= generation else None


@pytest.mark.timeout(300)
def test_overrides_sync_and_a_new_image_alone_rolls_the_deployment_with_no_diff(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = git_server.create_repo(f"kustomize-{secrets.token_hex(3)}", files=_fixture_files())
    app = application("web", namespace, repo.http_url())
    app["spec"]["source"]["kustomize"] = {
        "images": ["web:1.1"],
        "namePrefix": "blue-",
        # 0: the test control plane has no nodes; the base says 1, so 0 shows the override
        "replicas": [{"name": "web", "count": 0}],
    }
    serve()
    created = kube.create(app)
    sha = repo.head()
    status = wait_for(
        lambda: _settled(kube, namespace, sha, created["metadata"]["generation"]),
        timeout=180,
        what="Synced and Healthy",
    )
    assert sorted(r["kind"] + "/" + r["name"] for r in status["resources"]) == [
        "Deployment/blue-web",
        "Service/blue-web",
    ]
    deployment = kube.get("apps/v1", "Deployment", "blue-web", namespace)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 0
    assert _images(kube, namespace) == {"web": f"{IMAGE}:1.1", "sidecar": "busybox:1.36"}

    patched = kube.patch(
        kinds.API_VERSION,
        "Application",
        "web",
        {"spec": {"source": {"kustomize": {"images": ["web:1.2"]}}}},
        namespace=namespace,
    )
    assert repo.head() == sha  # the commit is the same: only the Application changed
    wait_for(
        lambda: _images(kube, namespace).get("web") == f"{IMAGE}:1.2",
        timeout=120,
        what="the Deployment on the new image",
    )
    status = wait_for(
        lambda: _settled(kube, namespace, sha, patched["metadata"]["generation"]),
        timeout=120,
        what="Synced again with the new spec",
    )
    rolled = kube.get("apps/v1", "Deployment", "blue-web", namespace)
    assert rolled is not None
    assert rolled["metadata"]["uid"] == deployment["metadata"]["uid"]  # in place
    assert rolled["spec"]["replicas"] == 0
    assert _images(kube, namespace) == {"web": f"{IMAGE}:1.2", "sidecar": "busybox:1.36"}
    assert kube.get("apps/v1", "Deployment", "web", namespace) is None
    assert app_status(kube, namespace, "web")["sync"]["status"] == "Synced"
