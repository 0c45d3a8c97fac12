"""Argo CD Application files on the real control plane, through the real CLI (issue 17).

An Argo CD Application for a plain-YAML repository on the real Git server: ``gitsync sync -f``
takes it as written (translated, the report on stderr), the objects exist, and ``gitsync diff
-f`` exits 0 afterwards - both for the file itself and for what ``gitsync import argocd`` wrote
from it; ``render -f`` prints those objects. A field gitsync does not carry makes ``-f`` refuse,
naming it, with nothing applied, unless ``--allow-partial``. ``import argocd --kubeconfig`` maps
``destination.server`` to the cluster registered by a real cluster Secret, and never prints that
Secret's credentials.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import configmap_repo
from tests.support.cli import CliRun, run_gitsync
from tests.support.cluster import TestCluster

pytestmark = pytest.mark.integration

LOCAL = "https://kubernetes.default.svc"


def argo_application(repo: GitRepo, namespace: str, **spec: Any) -> dict[str, Any]:
    """Argo CD's spelling of an app: in ``namespace`` (gitsync's project for it: the built-in
    policy then lets it deploy there), ``project: default``, ``destination.server``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "plain",
            "namespace": namespace,
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.http_url(), "targetRevision": "HEAD", "path": "app"},
            "destination": {"server": LOCAL, "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["ApplyOutOfSyncOnly=true", "PruneLast=true"],
            },
            **spec,
        },
    }


@dataclass
class ArgoFile:
    path: Path
    kubeconfig: Path
    cache_dir: Path

    def cli(self, command: str, *extra: str, path: Path | None = None) -> CliRun:
        return run_gitsync(
            command,
            "-f",
            str(path or self.path),
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *extra,
        )


@pytest.fixture
def argo_file(
    git_server: GitServer, cluster: TestCluster, namespace: str, tmp_path: Path
) -> Iterator[Any]:
    repo = configmap_repo(git_server, value=f"v-{secrets.token_hex(3)}")

    def make(**spec: Any) -> ArgoFile:
        path = tmp_path / f"argo-{secrets.token_hex(3)}.yaml"
        path.write_text(yaml.safe_dump(argo_application(repo, namespace, **spec)))
        return ArgoFile(path, cluster.kubeconfig_path, tmp_path / "cache")

    yield make


def objects(kube: KubeClient, namespace: str) -> dict[str, Any]:
    return {
        "ConfigMap": kube.get("v1", "ConfigMap", "config", namespace),
        "Deployment": kube.get("apps/v1", "Deployment", "web", namespace),
    }


def test_sync_f_takes_an_argo_cd_application_and_diff_is_clean_after(
    argo_file: Any, kube: KubeClient, namespace: str
) -> None:
    app = argo_file()
    before = app.cli("diff")
    assert before.code == 1, before  # everything Missing
    assert "translated   spec.destination.server" in before.stderr  # the report, on stderr
    synced = app.cli("sync")
    assert synced.code == 0, synced
    assert "phase: Succeeded" in synced.stdout
    found = objects(kube, namespace)
    assert found["ConfigMap"] is not None and found["Deployment"] is not None
    assert found["ConfigMap"]["data"]["value"].startswith("v-")
    after = app.cli("diff")
    assert after.code == 0, after
    assert "0 of 2 objects differ" in after.stdout


def test_what_import_wrote_syncs_the_same_objects_as_the_argo_file(
    argo_file: Any, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    app = argo_file()
    imported = tmp_path / "imported.yaml"
    run = run_gitsync("import", "argocd", str(app.path), "--output", str(imported))
    assert run.code == 0, run
    synced = app.cli("sync", path=imported)
    assert synced.code == 0, synced
    assert objects(kube, namespace)["Deployment"] is not None
    # the Argo CD file, translated on the fly, is the same app: nothing to do
    same = app.cli("diff")
    assert same.code == 0, same


def test_render_f_prints_what_the_argo_cd_application_renders(
    argo_file: Any, kube: KubeClient, namespace: str
) -> None:
    app = argo_file()
    run = app.cli("render")
    assert run.code == 0, run
    rendered = {d["kind"]: d for d in yaml.safe_load_all(run.stdout)}
    assert sorted(rendered) == ["ConfigMap", "Deployment"]
    assert rendered["ConfigMap"]["data"]["value"].startswith("v-")
    assert objects(kube, namespace) == {"ConfigMap": None, "Deployment": None}  # nothing applied
    both = run_gitsync("render", "-f", str(app.path), "--namespace", "x")
    assert both.code == 2 and "drop --namespace" in both.stderr


def test_the_clusters_own_url_as_destination_server_is_this_cluster(
    argo_file: Any, kube: KubeClient, namespace: str
) -> None:
    app = argo_file(destination={"server": kube.host + "/", "namespace": namespace})
    synced = app.cli("sync")
    assert synced.code == 0, synced
    assert "the cluster this command talks to" in synced.stderr
    assert objects(kube, namespace)["ConfigMap"] is not None


def test_a_field_not_carried_refuses_the_sync_naming_it_unless_allowed(
    argo_file: Any, kube: KubeClient, namespace: str
) -> None:
    app = argo_file(
        info=[{"name": "runbook", "value": "https://wiki"}],
        syncPolicy={"syncOptions": ["Prune=confirm"]},
    )
    refused = app.cli("sync")
    assert refused.code == 2, refused
    assert "spec.info, spec.syncPolicy.syncOptions[0]" in refused.stderr
    assert "--allow-partial" in refused.stderr
    assert objects(kube, namespace) == {"ConfigMap": None, "Deployment": None}
    allowed = app.cli("sync", "--allow-partial")
    assert allowed.code == 0, allowed
    assert objects(kube, namespace)["ConfigMap"] is not None


def test_a_plugin_app_is_never_run(argo_file: Any, kube: KubeClient, namespace: str) -> None:
    app = argo_file()
    doc = yaml.safe_load(app.path.read_text())
    doc["spec"]["source"]["plugin"] = {"name": "envsubst"}
    app.path.write_text(yaml.safe_dump(doc))
    run = app.cli("sync", "--allow-partial")
    assert run.code == 2, run
    assert "cannot be run" in run.stderr and "spec.source.plugin" in run.stderr
    assert objects(kube, namespace)["ConfigMap"] is None


def test_import_reads_the_registered_clusters_from_the_cluster_secrets(
    kube: KubeClient, cluster: TestCluster, namespace: str, tmp_path: Path
) -> None:
    token = f"token-{secrets.token_hex(8)}"
    remote = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "p", "cluster": {"server": "https://10.20.30.40:6443"}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "p", "user": "u"}}],
        "current-context": "c",
    }
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "prod-cluster",
                "namespace": namespace,
                "labels": {"gitsync.dev/secret-type": "cluster"},
            },
            "data": {
                "name": base64.b64encode(b"prod").decode(),
                "kubeconfig": base64.b64encode(yaml.safe_dump(remote).encode()).decode(),
            },
        }
    )
    source = tmp_path / "app.yaml"
    doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "remote", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.com/a.git", "path": "a"},
            "destination": {"server": "https://10.20.30.40:6443", "namespace": "web"},
        },
    }
    source.write_text(yaml.safe_dump(doc))
    run = run_gitsync(
        "import", "argocd", str(source),
        "--kubeconfig", str(cluster.kubeconfig_path), "--controller-namespace", namespace,
    )  # fmt: skip
    assert run.code == 0, run
    (app,) = list(yaml.safe_load_all(run.stdout))
    assert app["spec"]["destination"] == {"name": "prod", "namespace": "web"}
    assert "the registered cluster 'prod'" in run.stderr
    assert token not in run.output
