"""Applications deployed from a Helm HTTP repository (issue 15), end to end.

A real ``gitsync serve`` on the test control plane reads its credentials from a
repository-credential Secret (url prefix, basic auth, the test CA as ``caData``) and deploys
charts from a real chart repository on loopback (``tests.support.chartrepo``: HTTPS, basic
auth, charts packaged and indexed by Helm). A new version in range is deployed by the periodic
refresh with no other action; hostile repositories (wrong credentials, a 60 MiB index, a
truncated archive, a gzip bomb) fail their own app only, with a clear message, while another app
keeps syncing, and the repository's password appears nowhere a user or an operator can read.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from tests.support.apps import app_status, application, repository_secret
from tests.support.chartapps import (
    MIB,
    PEAK_RSS_GROWTH_BOUND,
    ChildWatch,
    assert_shown_nowhere,
    chart_app,
    condition_naming,
    deployed_version,
    peak_rss,
    synced_healthy,
)
from tests.support.chartrepo import CHART_REPO_PASSWORD, CHART_REPO_USER, ChartRepoServer
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def credential_secret(
    kube: KubeClient,
    namespace: str,
    repo: ChartRepoServer,
    *,
    name: str = "chart-repo",
    password: str = CHART_REPO_PASSWORD,
) -> None:
    data = {
        "url": repo.url,
        "username": CHART_REPO_USER,
        "password": password,
        "caData": repo.ca_pem,
        "namespaces": namespace,
    }
    kube.create(repository_secret(name, namespace, data))


@pytest.mark.timeout(300)
def test_an_app_from_a_helm_repository_syncs_and_follows_new_versions_in_range(
    serve: Any, kube: KubeClient, namespace: str, chart_repo: ChartRepoServer
) -> None:
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        chart_repo.publish("web", version)
    credential_secret(kube, namespace, chart_repo)
    ctl: ServeProcess = serve(f"--controller-namespace={namespace}")
    app = chart_app("web", namespace, chart_repo.url, ">=1.0.0 <2.0.0", values={"greeting": "hi"})
    kube.create(app)

    wait_for(
        lambda: synced_healthy(kube, namespace, "web", "web@1.1.0"),
        timeout=120,
        what="web Synced/Healthy at web@1.1.0",
    )
    assert deployed_version(kube, namespace, "web") == "1.1.0"
    configmap = kube.get("v1", "ConfigMap", "web-cm", namespace)
    assert configmap is not None and configmap["data"]["greeting"] == "hi"  # helm.values
    status = app_status(kube, namespace, "web")
    assert status["sourceType"] == "HelmRepository"
    digest = status["sourceRevision"]["digest"]
    assert digest.startswith("sha256:") and status["sourceRevision"]["sha"] == "web@1.1.0"
    history = status["history"]
    assert [(h["revision"], h["digest"]) for h in history] == [("web@1.1.0", digest)]

    # no diff right after, and none 20 s later (several refreshes): nothing re-synced
    time.sleep(20)
    later = app_status(kube, namespace, "web")
    assert later["sync"]["status"] == "Synced" and len(later["history"]) == 1
    # the index was asked conditionally and answered 304 while nothing changed
    assert any(r.status == 304 for r in chart_repo.requested("/index.yaml"))

    # a new version in range is deployed by the refresh, with no other action
    chart_repo.publish("web", "1.2.0")
    wait_for(
        lambda: deployed_version(kube, namespace, "web") == "1.2.0",
        timeout=90,
        what="web 1.2.0 deployed",
    )
    wait_for(
        lambda: synced_healthy(kube, namespace, "web", "web@1.2.0"),
        timeout=60,
        what="status at web@1.2.0",
    )
    # a version outside the range is not
    chart_repo.publish("web", "2.1.0")
    seen = len(chart_repo.requested("/index.yaml"))
    wait_for(
        lambda: len(chart_repo.requested("/index.yaml")) >= seen + 3,
        timeout=60,
        what="three refreshes after 2.1.0 was published",
    )
    assert deployed_version(kube, namespace, "web") == "1.2.0"
    assert app_status(kube, namespace, "web")["sync"]["revision"] == "web@1.2.0"
    # a new version whose archive fails its digest: the app fails, nothing is applied or pruned
    chart_repo.publish("web", "1.3.0")
    chart_repo.put_file("web-1.3.0.tgz", b"not the archive the index describes")
    message = condition_naming(kube, namespace, "web", "does not match the index")
    assert "web@1.3.0" in message
    assert deployed_version(kube, namespace, "web") == "1.2.0"
    # the credentials were sent, to the repository only, and shown nowhere
    assert all(r.user == CHART_REPO_USER for r in chart_repo.requests if r.status != 401)
    assert_shown_nowhere(kube, namespace, ctl, [CHART_REPO_PASSWORD])


def gzip_bomb() -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
        chart = tarfile.TarInfo("web/Chart.yaml")
        body = b"apiVersion: v2\nname: web\nversion: 1.0.0\n"
        chart.size = len(body)
        gz.write(chart.tobuf(format=tarfile.GNU_FORMAT) + body + b"\0" * (512 - len(body)))
        zeros = tarfile.TarInfo("web/templates/zeros.yaml")
        zeros.size = 300 * MIB
        gz.write(zeros.tobuf(format=tarfile.GNU_FORMAT))
        block = b"\0" * MIB
        for _ in range(300):
            gz.write(block)
    return raw.getvalue()


def hostile_repository(repo: ChartRepoServer, directory: str, archive: bytes) -> str:
    """A sub-repository ``/<directory>`` whose index lists web 1.0.0 (no digest, so the
    archive reaches the unpacker) with ``archive`` as its contents."""
    repo.put_file(f"{directory}/web-1.0.0.tgz", archive)
    index = {
        "apiVersion": "v1",
        "entries": {"web": [{"name": "web", "version": "1.0.0", "urls": ["web-1.0.0.tgz"]}]},
    }
    repo.put_file(f"{directory}/index.yaml", json.dumps(index).encode())
    return f"{repo.url}/{directory}"


@pytest.mark.timeout(300)
def test_hostile_repositories_fail_their_own_app_only_in_bounded_memory(
    serve: Any, kube: KubeClient, namespace: str, chart_repo: ChartRepoServer, tmp_path: Path
) -> None:
    good = chart_repo.publish("web", "1.0.0")
    credential_secret(kube, namespace, chart_repo)
    whole = good.read_bytes()
    truncated_url = hostile_repository(chart_repo, "truncated", whole[: len(whole) // 2])
    bomb_url = hostile_repository(chart_repo, "bomb", gzip_bomb())
    chart_repo.put_generated("big/index.yaml", 60 * MIB, b"entries: {}\n# padding padding\n")
    with ChartRepoServer(tmp_path / "other", username=CHART_REPO_USER, password="a-3f9b") as other:
        other.publish("web", "1.0.0")
        # an entry for the other repository with the wrong password (ours)
        credential_secret(kube, namespace, other, name="other-repo")
        ctl: ServeProcess = serve(f"--controller-namespace={namespace}")
        assert ctl.proc is not None
        before = peak_rss(ctl.proc.pid)
        watch = ChildWatch(ctl.proc.pid).__enter__()  # argv and environment of every child
        for name, url in (
            ("truncated", truncated_url),
            ("bomb", bomb_url),
            ("big", f"{chart_repo.url}/big"),
            ("wrongcreds", other.url),
        ):
            kube.create(chart_app(name, namespace, url, "1.x"))
        kube.create(chart_app("good", namespace, chart_repo.url, "1.x"))
        # Argo CD's insecure (skip TLS verification) is for chart repositories: a Git
        # repository under such an entry is refused, not fetched with the flag ignored
        git_prefix = "https://127.0.0.1:9/git"
        insecure = {"url": git_prefix, "insecure": "true", "namespaces": namespace}
        kube.create(repository_secret("insecure-git", namespace, insecure))
        kube.create(application("gitapp", namespace, f"{git_prefix}/repo.git"))

        message = condition_naming(kube, namespace, "truncated", "truncated")
        assert "web@1.0.0" in message and "not a gzipped tar" in message
        message = condition_naming(kube, namespace, "bomb", "decompresses to more than")
        assert "web@1.0.0" in message
        message = condition_naming(kube, namespace, "big", "larger than")
        assert "index of" in message and "20971520 bytes" in message
        message = condition_naming(kube, namespace, "wrongcreds", "refused the credentials")
        assert "HTTP 401" in message and other.url in message
        # the controller kept serving the good app, and never held the bomb or the index
        wait_for(
            lambda: synced_healthy(kube, namespace, "good", "web@1.0.0"),
            timeout=120,
            what="good Synced/Healthy",
        )
        message = condition_naming(kube, namespace, "gitapp", "honoured for chart repositories")
        assert "insecure-git" in message
        growth = peak_rss(ctl.proc.pid) - before
        assert growth < PEAK_RSS_GROWTH_BOUND, growth
        # nothing of the failed apps was applied
        for name in ("truncated", "bomb", "big", "wrongcreds"):
            assert deployed_version(kube, namespace, name) is None
        watch.__exit__()
        # the good app's render ran Helm in a child: the watch saw it, so its check is real
        assert "helm_worker" in watch.seen(), list(watch.children)
        assert_shown_nowhere(kube, namespace, ctl, [CHART_REPO_PASSWORD], watch)
