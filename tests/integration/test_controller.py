"""The controller (`gitsync serve`) on the real control plane and Git server."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.controller import ensure_crd
from gitsync.kube import KubeClient
from gitsync.testing.cluster import TestCluster
from gitsync.testing.controller import ServeProcess
from gitsync.testing.gitserver import GitRepo, GitServer
from gitsync.testing.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
WEBHOOK_SECRET = "webhook-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def crd(kube: KubeClient) -> None:
    ensure_crd(kube, yaml.safe_load(CRD.read_text()))


@pytest.fixture
def serve(cluster: TestCluster, tmp_path: Path, crd: None) -> Iterator[Any]:
    started: list[ServeProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> ServeProcess:
        proc = ServeProcess(
            cluster.kubeconfig_path,
            tmp_path,
            list(extra),
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET, **(env or {})},
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def configmap_repo(git_server: GitServer, value: str = "v1") -> GitRepo:
    return git_server.create_repo(
        f"ctl-{secrets.token_hex(3)}",
        files={
            "app/cm.yaml": yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "config"},
                    "data": {"value": value},
                }
            ),
            "app/deploy.yaml": yaml.safe_dump(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "web"},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                        },
                    },
                }
            ),
        },
    )


def application(name: str, namespace: str, repo_url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"repoURL": repo_url, "targetRevision": "main", "path": "app"},
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "interval": "3m",
            **spec,
        },
    }


def app_status(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get("gitsync.dev/v1alpha1", "Application", name, namespace) or {}
    return obj.get("status") or {}


def configmap_value(kube: KubeClient, namespace: str) -> str | None:
    cm = kube.get("v1", "ConfigMap", "config", namespace)
    return (cm or {}).get("data", {}).get("value")


def push_value(repo: GitRepo, value: str) -> str:
    sha = repo.commit(
        {
            "app/cm.yaml": yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "config"},
                    "data": {"value": value},
                }
            )
        },
        f"set value {value}",
    )
    repo.push()
    return sha


def github_webhook(
    url: str, repo_url: str, ref: str, after: str, secret: str = WEBHOOK_SECRET
) -> int:
    body = json.dumps(
        {"ref": ref, "after": after, "repository": {"clone_url": repo_url, "html_url": repo_url}}
    ).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        url + "/api/webhook",
        data=body,
        headers={
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sig,
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


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
    sha = push_value(repo, "v2")
    pushed = time.monotonic()
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(
        lambda: configmap_value(kube, namespace) == "v2", timeout=10, interval=0.05, what="v2 live"
    )
    print(f"push-to-live: {time.monotonic() - pushed:.2f}s")
