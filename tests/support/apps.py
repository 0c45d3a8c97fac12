"""Building blocks for controller tests: a small repository, an Application for it, and ways to
observe the result and to deliver a signed push webhook like a forge does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer

ROOT = Path(__file__).resolve().parents[2]  # the repository (editable install)
CRD = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
ROLLOUT_CRD = ROOT / "charts/gitsync/crds/rollouts.gitsync.dev.yaml"
APPSET_CRD = ROOT / "charts/gitsync/crds/applicationsets.gitsync.dev.yaml"
NOTIFICATION_CRDS = (
    ROOT / "charts/gitsync/crds/notificationproviders.gitsync.dev.yaml",
    ROOT / "charts/gitsync/crds/notificationrules.gitsync.dev.yaml",
)
WEBHOOK_SECRET = "webhook-" + secrets.token_hex(8)


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
        "apiVersion": kinds.API_VERSION,
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


def tenant_escapes(
    tenant: str, service_account: str, other: str, suffix: str
) -> list[dict[str, Any]]:
    """What a hostile tenant's repository adds to escape its namespace: a ClusterRole
    ``tenant-escape-<suffix>`` granting everything, a RoleBinding ``tenant-admin`` of its
    ServiceAccount to cluster-admin in its own namespace, the ConfigMap ``victim`` in namespace
    ``other`` and an Application ``hijack`` there."""
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"tenant-escape-{suffix}"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "tenant-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": tenant}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "victim", "namespace": other},
            "data": {"owner": "tenant"},
        },
        application("hijack", other, "https://git.example.com/other.git"),
    ]


def app_status(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(kinds.API_VERSION, kinds.APPLICATION, name, namespace) or {}
    return obj.get("status") or {}


def synced_at(kube: KubeClient, namespace: str, name: str, sha: str) -> dict[str, Any] | None:
    """The app's status once it is Synced at ``sha``, else None."""
    status = app_status(kube, namespace, name)
    sync = status.get("sync") or {}
    return status if sync.get("status") == "Synced" and sync.get("revision") == sha else None


def rollout_status(kube: KubeClient, namespace: str, name: str = "web") -> dict[str, Any]:
    obj = kube.get(kinds.API_VERSION, kinds.ROLLOUT, name, namespace) or {}
    return obj.get("status") or {}


def configmap_value(kube: KubeClient, namespace: str) -> str | None:
    cm = kube.get("v1", "ConfigMap", "config", namespace)
    value = (cm or {}).get("data", {}).get("value")
    return None if value is None else str(value)


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


def github_push(
    url: str,
    repo_url: str,
    after: str,
    *,
    ref: str = "refs/heads/main",
    changed: Sequence[str] = (),
    secret: str = WEBHOOK_SECRET,
) -> tuple[int, dict[str, Any]]:
    """Deliver a signed GitHub push webhook to the controller at ``url``, as GitHub would - with
    one commit listing ``changed`` as modified files when given; returns the HTTP status and
    the JSON answer (``{}`` when there is none)."""
    payload: dict[str, Any] = {
        "ref": ref,
        "after": after,
        "repository": {"clone_url": repo_url, "html_url": repo_url},
    }
    if changed:
        commit = {"id": after, "added": [], "modified": list(changed), "removed": []}
        payload.update(commits=[commit], head_commit=commit)
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"test webhooks go to the local controller only, not {url!r}")
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
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return int(err.code), {}


def github_webhook(
    url: str, repo_url: str, ref: str, after: str, secret: str = WEBHOOK_SECRET
) -> int:
    """``github_push`` for tests that only need the status."""
    return github_push(url, repo_url, after, ref=ref, secret=secret)[0]


def repository_secret(
    name: str, namespace: str, data: dict[str, str], *, secret_type: str = "repository"
) -> dict[str, Any]:
    """A repository-credential Secret (labelled ``gitsync.dev/secret-type: repository``, or
    ``secret_type``: ``notification`` for a NotificationProvider's) holding ``data``
    (key -> text)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"gitsync.dev/secret-type": secret_type},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
