"""Applications with several sources (``spec.sources``, issue 15), end to end.

The common case of Argo CD's multiple sources: a chart from a real chart repository on loopback
(``tests.support.chartrepo``: HTTPS, basic auth) with its values file from the team's Git
repository (a real Git server) named as ``$values/env/values.yaml``, deployed by a real
``gitsync serve`` on the test control plane. The app's revision is the pair of revisions: a push
of the values file alone re-syncs it (the chart's render is not served from the cache), so does a
new chart version in range, and so does a webhook for the values repository; a values file gone
from Git is a clear error on the app and nothing is pruned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.integration.test_chart_sources_it import (
    condition_naming,
    credential_secret,
    deployed_version,
)
from tests.support.apps import app_status, github_webhook
from tests.support.chartrepo import ChartRepoServer
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VALUES_FILE = "env/values.yaml"


def values_repo(git_server: GitServer, greeting: str) -> GitRepo:
    return git_server.create_repo(
        f"values-{greeting}", files={VALUES_FILE: yaml.safe_dump({"greeting": greeting})}
    )


def sources_app(
    name: str, namespace: str, chart_url: str, values_url: str, *, interval: str = "3s"
) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "sources": [
                {
                    "repoURL": chart_url,
                    "chart": "web",
                    "targetRevision": ">=1.0.0 <2.0.0",
                    "helm": {"releaseName": name, "valueFiles": [f"$values/{VALUES_FILE}"]},
                },
                {"repoURL": values_url, "targetRevision": "main", "ref": "values"},
            ],
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "interval": interval,
        },
    }


def greeting(kube: KubeClient, namespace: str, release: str) -> str | None:
    cm = kube.get("v1", "ConfigMap", f"{release}-cm", namespace)
    return None if cm is None else str(cm["data"]["greeting"])


def synced_at(kube: KubeClient, namespace: str, name: str, revisions: list[str]) -> bool:
    status = app_status(kube, namespace, name)
    sync = status.get("sync") or {}
    return (
        sync.get("status") == "Synced"
        and sync.get("revisions") == revisions
        and sync.get("revision") == ",".join(revisions)
        and (status.get("health") or {}).get("status") == "Healthy"
    )


@pytest.fixture
def web_chart(kube: KubeClient, namespace: str, chart_repo: ChartRepoServer) -> ChartRepoServer:
    """The chart repository holding web 1.0.0, and the app namespace's credentials for it."""
    chart_repo.publish("web", "1.0.0")
    credential_secret(kube, namespace, chart_repo)
    return chart_repo


@pytest.mark.timeout(360)
def test_a_chart_with_values_from_git_follows_both_sources(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    web_chart: ChartRepoServer,
    git_server: GitServer,
) -> None:
    repo = values_repo(git_server, "one")
    first_commit = repo.head()
    serve(f"--controller-namespace={namespace}")
    kube.create(sources_app("web", namespace, web_chart.url, repo.file_url()))

    wait_for(
        lambda: synced_at(kube, namespace, "web", ["web@1.0.0", first_commit]),
        timeout=120,
        what="web Synced/Healthy at web@1.0.0 + the values commit",
    )
    assert greeting(kube, namespace, "web") == "one"  # from $values/env/values.yaml
    status = app_status(kube, namespace, "web")
    assert [h["revisions"] for h in status["history"]] == [["web@1.0.0", first_commit]]
    assert status["sourceType"] == "HelmRepository"

    # a change of the values file in Git alone (same chart archive) re-syncs, with no other action
    second_commit = repo.commit({VALUES_FILE: yaml.safe_dump({"greeting": "two"})}, "two")
    repo.push()
    wait_for(
        lambda: greeting(kube, namespace, "web") == "two", timeout=90, what="values change live"
    )
    wait_for(
        lambda: synced_at(kube, namespace, "web", ["web@1.0.0", second_commit]),
        timeout=60,
        what="status at the new values commit",
    )

    # only the chart version changes: re-synced too, the values still from Git
    web_chart.publish("web", "1.1.0")
    wait_for(
        lambda: deployed_version(kube, namespace, "web") == "1.1.0",
        timeout=90,
        what="web 1.1.0 deployed",
    )
    assert greeting(kube, namespace, "web") == "two"
    wait_for(
        lambda: synced_at(kube, namespace, "web", ["web@1.1.0", second_commit]),
        timeout=60,
        what="status at web@1.1.0",
    )
    history = app_status(kube, namespace, "web")["history"]
    assert [h["revisions"][0] for h in history] == ["web@1.0.0", "web@1.0.0", "web@1.1.0"]

    # the values file gone from Git: a clear error on the app, nothing applied or pruned
    repo.commit({VALUES_FILE: None}, "remove the values")
    repo.push()
    message = condition_naming(kube, namespace, "web", f"$values/{VALUES_FILE}")
    assert "does not exist" in message
    assert deployed_version(kube, namespace, "web") == "1.1.0"
    assert greeting(kube, namespace, "web") == "two"


@pytest.mark.timeout(240)
def test_a_push_webhook_for_the_values_repository_refreshes_the_app_and_rollback_works(
    serve: Any,
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    web_chart: ChartRepoServer,
    git_server: GitServer,
) -> None:
    repo = values_repo(git_server, "hook")
    hook_commit = repo.head()
    ctl: ServeProcess = serve(f"--controller-namespace={namespace}")
    # no periodic refresh in this test's time: only the webhook can bring the change
    kube.create(sources_app("hooked", namespace, web_chart.url, repo.file_url(), interval="1h"))
    wait_for(
        lambda: greeting(kube, namespace, "hooked") == "hook", timeout=120, what="hooked synced"
    )

    sha = repo.commit({VALUES_FILE: yaml.safe_dump({"greeting": "pushed"})}, "pushed")
    repo.push()
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(
        lambda: greeting(kube, namespace, "hooked") == "pushed",
        timeout=30,
        what="the pushed values live after the webhook",
    )

    # a rollback to the first deploy checks out both of its sources' revisions again
    first = app_status(kube, namespace, "hooked")["history"][0]
    assert first["revisions"] == ["web@1.0.0", hook_commit]
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig_path)]
    rollback = ["rollback", f"{namespace}/hooked", "--to", str(first["id"]), *kubeconfig]
    assert run_gitsync(*rollback).code == 0
    wait_for(lambda: greeting(kube, namespace, "hooked") == "hook", timeout=30, what="rolled back")


@pytest.mark.timeout(180)
def test_every_source_is_checked_against_source_repos_before_any_is_contacted(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    web_chart: ChartRepoServer,
    git_server: GitServer,
    tmp_path: Path,
) -> None:
    repo = values_repo(git_server, "policy")
    policy = tmp_path / "policy.yaml"
    glob = repo.http_url().rsplit("/", 1)[0] + "/*"  # the Git server only, not the chart repo
    policy.write_text(yaml.safe_dump({"projects": {namespace: {"sourceRepos": [glob]}}}))
    serve(f"--controller-namespace={namespace}", f"--policy={policy}")
    app = sources_app("fenced", namespace, web_chart.url, repo.http_url())
    app["spec"]["sources"].reverse()  # the allowed Git source first, the chart second
    kube.create(app)

    message = condition_naming(kube, namespace, "fenced", "denied by destination policy")
    assert message.startswith("spec.sources[1].repoURL: denied by destination policy: ")
    assert list(web_chart.requests) == []  # never contacted, so never sent the credentials
    assert kube.get("v1", "ConfigMap", "fenced-cm", namespace) is None


@pytest.mark.timeout(180)
def test_an_object_two_sources_render_is_an_error_naming_both(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    web_chart: ChartRepoServer,
    git_server: GitServer,
) -> None:
    clash = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice-cm"}}
    repo = git_server.create_repo(
        "clash",
        files={
            VALUES_FILE: yaml.safe_dump({"greeting": "x"}),
            "app/cm.yaml": yaml.safe_dump(clash),
        },
    )
    serve(f"--controller-namespace={namespace}")
    app = sources_app("twice", namespace, web_chart.url, repo.file_url())
    app["spec"]["sources"][1]["path"] = "app"  # the ref source renders too: the same ConfigMap
    kube.create(app)

    message = condition_naming(kube, namespace, "twice", "rendered by both")
    assert "twice-cm" in message and "spec.sources[0] and spec.sources[1]" in message
    assert kube.get("v1", "ConfigMap", "twice-cm", namespace) is None  # nothing applied
