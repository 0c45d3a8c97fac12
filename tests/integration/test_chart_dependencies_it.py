"""Charts kept in Git whose ``Chart.yaml`` depends on charts in remote repositories (issue 15).

A real ``gitsync serve`` on the test control plane syncs a chart from the real Git server that
depends on a chart in a real HTTPS chart repository (basic auth, test CA,
``tests.support.chartrepo``), one in a real OCI registry (``docker-registry``, htpasswd) and one
in a second chart repository that wants no credentials. Each repository gets the credentials of
the repository-credential entry whose URL prefix covers it, the third none. Then the dependency
is pointed at a repository that does not answer: the app fails naming the dependency and its
repository, and nothing of that commit is applied and nothing is pruned.

Before this, Helm rendered such a chart without its dependencies - for a wrapper chart, nothing
at all - and the sync reported success; a chart that renders nothing is now a render error
unless ``allowEmpty`` says so (the CLI engine, same pipeline).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.integration.test_chart_sources_it import credential_secret
from tests.support.apps import app_status, application, repository_secret
from tests.support.chartapps import assert_shown_nowhere, condition_naming
from tests.support.chartrepo import CHART_REPO_PASSWORD, CHART_REPO_USER, ChartRepoServer
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.ociregistry import OciRegistry
from tests.support.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.integration


def named_configmap(data: str = "{{ .Chart.Version | quote }}") -> dict[str, str]:
    """A template for a ConfigMap ``<release>-<chart>``: subcharts do not collide."""
    return {
        "configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: {{ .Release.Name }}-{{ .Chart.Name }}\n"
            f"data:\n  chartVersion: {data}\n"
        )
    }


def chart_yaml(dependencies: list[dict[str, str]]) -> str:
    chart = {"apiVersion": "v2", "name": "app", "version": "0.1.0", "dependencies": dependencies}
    return yaml.safe_dump(chart)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def open_repo(tmp_path: Path) -> Iterator[ChartRepoServer]:
    """A second chart repository, HTTPS with its own test CA and no authentication."""
    with ChartRepoServer(tmp_path / "open-repo") as repo:
        yield repo


def configmaps(kube: KubeClient, namespace: str) -> dict[str, str]:
    items = kube.list("v1", "ConfigMap", namespace)["items"]
    return {
        o["metadata"]["name"]: (o.get("data") or {}).get("chartVersion", "")
        for o in items
        if o["metadata"]["name"].startswith("app-")
    }


@pytest.mark.timeout(400)
def test_remote_dependencies_render_and_an_unreachable_one_fails_naming_it(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    chart_repo: ChartRepoServer,
    open_repo: ChartRepoServer,
    oci_registry: OciRegistry,
) -> None:
    for version in ("1.0.0", "1.2.0", "2.0.0"):
        chart_repo.publish("web", version, templates=named_configmap())
    open_repo.publish("extras", "0.4.0", templates=named_configmap())
    oci_registry.push(open_repo.publish("db", "3.1.0", templates=named_configmap()), path="deps-it")
    credential_secret(kube, namespace, chart_repo)
    kube.create(
        repository_secret(
            "oci",
            namespace,
            {
                "url": oci_registry.url("deps-it"),
                "username": oci_registry.username,
                "password": oci_registry.password,
                "caData": oci_registry.ca_pem,
                "namespaces": namespace,
            },
        )
    )
    # the open repository's entry trusts its CA and carries no credentials
    kube.create(
        repository_secret(
            "open",
            namespace,
            {"url": open_repo.url, "caData": open_repo.ca_pem, "namespaces": namespace},
        )
    )
    dependencies = [
        {"name": "web", "version": ">=1.0.0 <2.0.0", "repository": chart_repo.url},
        {"name": "db", "version": "~3", "repository": oci_registry.url("deps-it")},
        {"name": "extras", "version": "0.4.0", "repository": open_repo.url},
    ]
    repo = git_server.create_repo(
        f"deps-{namespace[-6:]}",
        {
            "app/Chart.yaml": chart_yaml(dependencies),
            "app/templates/parent.yaml": named_configmap('"parent"')["configmap.yaml"],
        },
    )
    ctl: ServeProcess = serve(f"--controller-namespace={namespace}")
    kube.create(application("deps", namespace, repo.http_url(), interval="3s"))

    expected = {
        "app-app": "parent",
        "app-web": "1.2.0",
        "app-db": "3.1.0",
        "app-extras": "0.4.0",
    }
    try:
        wait_for(
            lambda: configmaps(kube, namespace) == expected,
            timeout=150,
            what="the chart and its three dependencies deployed",
        )
    except WaitTimeout:
        status = app_status(kube, namespace, "deps")
        raise AssertionError(f"{configmaps(kube, namespace)} {status.get('conditions')}") from None
    wait_for(
        lambda: (app_status(kube, namespace, "deps").get("sync") or {}).get("status") == "Synced",
        timeout=60,
        what="deps Synced",
    )
    # each repository got its own entry's credentials; the open one none at all
    assert chart_repo.requests and all(r.user == CHART_REPO_USER for r in chart_repo.requests)
    assert open_repo.requests and not any(r.authorization_sent for r in open_repo.requests)

    # the dependency moves to a repository that does not answer, in a commit that also adds an
    # object: the app fails naming the dependency, nothing is applied, nothing is pruned
    unreachable = f"https://127.0.0.1:{closed_port()}/charts"
    dependencies[0]["repository"] = unreachable
    repo.commit(
        {
            "app/Chart.yaml": chart_yaml(dependencies),
            "app/templates/added.yaml": named_configmap('"added"')["configmap.yaml"].replace(
                "{{ .Chart.Name }}", "added"
            ),
        }
    )
    repo.push()
    message = condition_naming(kube, namespace, "deps", "chart dependency 'web'")
    assert unreachable in message, message
    assert configmaps(kube, namespace) == expected  # app-added absent, nothing pruned
    assert_shown_nowhere(kube, namespace, ctl, [CHART_REPO_PASSWORD])


def test_a_chart_that_renders_nothing_fails_unless_allow_empty(
    cluster: TestCluster, kube: KubeClient, namespace: str, git_server: GitServer, tmp_path: Path
) -> None:
    repo = git_server.create_repo(
        f"empty-chart-{namespace[-6:]}",
        {
            "app/Chart.yaml": yaml.safe_dump(
                {"apiVersion": "v2", "name": "app", "version": "1.0.0"}
            ),
            "app/templates/off.yaml": "{{- if .Values.enabled }}\nkind: ConfigMap\n{{- end }}\n",
        },
    )

    def sync(policy: dict[str, Any]) -> tuple[int, str]:
        app = application("empty", namespace, repo.http_url(), syncPolicy=policy)
        manifest = tmp_path / "app.yaml"
        manifest.write_text(yaml.safe_dump(app))
        run = run_gitsync(
            "sync",
            "-f",
            str(manifest),
            "--kubeconfig",
            str(cluster.kubeconfig_path),
            "--cache-dir",
            str(tmp_path / "cache"),
        )
        return run.code, run.stderr

    code, stderr = sync({"automated": {"prune": True}})
    assert code != 0 and "render failed" in stderr and "produced no objects" in stderr, stderr
    assert "allowEmpty" in stderr
    code, stderr = sync({"automated": {"prune": True, "allowEmpty": True}})
    assert code == 0, stderr


def test_the_cli_renders_a_chart_with_a_public_remote_dependency(
    open_repo: ChartRepoServer, tmp_path: Path
) -> None:
    """``gitsync render PATH`` fetches like the controller, without credentials: the system
    roots (here the test CA through ``SSL_CERT_FILE``) and nothing else."""
    open_repo.publish("web", "1.2.0", templates=named_configmap())
    (tmp_path / "ca.pem").write_text(open_repo.ca_pem)
    chart = tmp_path / "repo" / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        chart_yaml([{"name": "web", "version": "~1", "repository": open_repo.url}])
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "SSL_CERT_FILE": str(tmp_path / "ca.pem")}
    run = run_gitsync("render", str(chart), "--repo-root", str(tmp_path / "repo"), env=env)
    assert run.code == 0, run
    (doc,) = yaml.safe_load_all(run.stdout)
    assert (doc["metadata"]["name"], doc["data"]) == ("app-web", {"chartVersion": "1.2.0"})
    assert not any(r.authorization_sent for r in open_repo.requests)

    missing = f"https://127.0.0.1:{closed_port()}"
    (chart / "Chart.yaml").write_text(chart_yaml([{"name": "web", "repository": missing}]))
    run = run_gitsync("render", str(chart), "--repo-root", str(tmp_path / "repo"), env=env)
    assert run.code == 2 and f"chart dependency 'web' from {missing}" in run.stderr, run
