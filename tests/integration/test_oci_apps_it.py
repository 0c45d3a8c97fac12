"""Applications deployed from an OCI registry (issue 15), end to end.

A real ``gitsync serve`` on the test control plane deploys charts pushed with helm-python-sdk
into a real registry on loopback (Debian's ``docker-registry``: TLS from a test CA, htpasswd
auth, its access log on so the test sees every request), with the credentials from a
repository-credential Secret whose ``url`` is an ``oci://`` prefix and whose ``caData`` is the
test CA. Both spellings of an OCI source are deployed: ``repoURL: oci://host/charts`` with
``chart``, and ``repoURL: oci://host/charts/NAME`` without. A new tag in range is deployed by
the periodic refresh with no other action, an archive is downloaded once per version (not on
every refresh), and hostile registries (100,000 tags, a password the registry rejects) fail
their own app only while another app keeps syncing, with the passwords shown nowhere.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from gitsync.kube import KubeClient
from tests.support.apps import app_status, repository_secret
from tests.support.chartapps import (
    PEAK_RSS_GROWTH_BOUND,
    assert_shown_nowhere,
    chart_app,
    condition_naming,
    deployed_version,
    peak_rss,
    synced_healthy,
)
from tests.support.chartrepo import write_chart
from tests.support.cli import run_gitsync
from tests.support.controller import ServeProcess
from tests.support.ociregistry import OciRegistry
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-oci-password-77a2"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[OciRegistry]:
    """A registry of this test's own with its access log on; storage in memory (/dev/shm when
    there is one) because one test writes 100,000 tag directories."""
    shm = Path("/dev/shm")
    storage = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None, prefix="gitsync-oci-"))
    try:
        with OciRegistry(tmp_path / "registry", storage=storage, access_log=True) as started:
            yield started
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def push(registry: OciRegistry, work: Path, name: str, version: str, path: str = "charts") -> None:
    """``helm package`` + ``helm push`` of the ConfigMap chart ``name`` at ``version``."""
    chart = write_chart(work / "src", name, version)
    archive = Path(helm_python.package(chart, destination=work / "dist"))
    registry.push(archive, path)


def credential_secret(
    kube: KubeClient,
    namespace: str,
    registry: OciRegistry,
    *,
    name: str = "oci-registry",
    path: str = "charts",
    password: str | None = None,
) -> None:
    data = {
        "url": registry.url(path),
        "username": registry.username,
        "password": registry.password if password is None else password,
        "caData": registry.ca_pem,
        "namespaces": namespace,
    }
    kube.create(repository_secret(name, namespace, data))


def manifest_digest(registry: OciRegistry, repository: str, tag: str) -> str:
    link = registry.tag_directory(repository, tag) / "current" / "link"
    return link.read_text().strip()


@pytest.mark.timeout(300)
def test_apps_from_an_oci_registry_sync_and_follow_new_tags_in_range(
    serve: Any, kube: KubeClient, namespace: str, registry: OciRegistry, tmp_path: Path
) -> None:
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        push(registry, tmp_path, "web", version)
    credential_secret(kube, namespace, registry)
    ctl: ServeProcess = serve(f"--controller-namespace={namespace}")
    kube.create(chart_app("web", namespace, registry.url(), ">=1.0.0 <2.0.0"))
    # the other spelling: the chart's name ends the URL, and no chart field
    kube.create(chart_app("pinned", namespace, registry.url("charts/web"), "1.0.0", chart=None))

    wait_for(
        lambda: synced_healthy(kube, namespace, "web", "web@1.1.0"),
        timeout=120,
        what="web Synced/Healthy at web@1.1.0",
    )
    wait_for(
        lambda: synced_healthy(kube, namespace, "pinned", "web@1.0.0"),
        timeout=60,
        what="pinned Synced/Healthy at web@1.0.0",
    )
    assert deployed_version(kube, namespace, "web") == "1.1.0"
    assert deployed_version(kube, namespace, "pinned") == "1.0.0"
    for app, version in (("web", "1.1.0"), ("pinned", "1.0.0")):
        status = app_status(kube, namespace, app)
        assert status["sourceType"] == "OCI"
        # the revision is chart@version, its digest the MANIFEST's (what the registry's tag
        # points at), in status and in the one history entry
        digest = manifest_digest(registry, "charts/web", version)
        assert status["sourceRevision"]["sha"] == f"web@{version}"
        assert status["sourceRevision"]["digest"] == digest
        assert [(h["revision"], h["digest"]) for h in status["history"]] == [
            (f"web@{version}", digest)
        ]

    # no diff right after, and none 20 s later (several refreshes): nothing re-synced, the tags
    # were listed again, and no archive was downloaded again
    blobs = registry.requested("/v2/charts/web/blobs/")
    assert len(blobs) == 2, blobs  # the chart layer of 1.1.0 and of 1.0.0, once each
    listings = len(registry.requested("/v2/charts/web/tags/list"))
    time.sleep(20)
    for app in ("web", "pinned"):
        later = app_status(kube, namespace, app)
        assert later["sync"]["status"] == "Synced" and len(later["history"]) == 1, app
    assert len(registry.requested("/v2/charts/web/tags/list")) >= listings + 3
    assert registry.requested("/v2/charts/web/blobs/") == blobs

    # a new tag in range is deployed by the refresh, with no other action
    push(registry, tmp_path, "web", "1.2.0")
    wait_for(
        lambda: synced_healthy(kube, namespace, "web", "web@1.2.0"),
        timeout=90,
        what="web Synced/Healthy at web@1.2.0",
    )
    assert deployed_version(kube, namespace, "web") == "1.2.0"
    # a tag outside the range is not
    push(registry, tmp_path, "web", "2.1.0")
    seen = len(registry.requested("/v2/charts/web/tags/list"))
    wait_for(
        lambda: len(registry.requested("/v2/charts/web/tags/list")) >= seen + 3,
        timeout=60,
        what="three refreshes after 2.1.0 was pushed",
    )
    assert deployed_version(kube, namespace, "web") == "1.2.0"
    assert app_status(kube, namespace, "web")["sync"]["revision"] == "web@1.2.0"
    assert deployed_version(kube, namespace, "pinned") == "1.0.0"
    assert_shown_nowhere(kube, namespace, ctl, [registry.password])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_crowded_registry_and_rejected_credentials_fail_their_own_app_only(
    serve: Any, kube: KubeClient, namespace: str, registry: OciRegistry, tmp_path: Path
) -> None:
    push(registry, tmp_path, "web", "1.0.0")
    push(registry, tmp_path, "crowded", "1.0.0")
    for i in range(100_000):
        registry.tag_directory("charts/crowded", f"0.0.{i}").mkdir(parents=True)
    push(registry, tmp_path, "web", "1.0.0", path="guarded")
    credential_secret(kube, namespace, registry)
    # the longer prefix wins for oci://.../guarded: an entry whose password the registry rejects
    credential_secret(
        kube, namespace, registry, name="guarded", path="guarded", password=WRONG_PASSWORD
    )
    ctl: ServeProcess = serve(f"--controller-namespace={namespace}")
    assert ctl.proc is not None
    before = peak_rss(ctl.proc.pid)
    kube.create(chart_app("crowded", namespace, registry.url(), "1.x", chart="crowded"))
    kube.create(chart_app("wrongcreds", namespace, registry.url("guarded"), "1.x"))
    kube.create(chart_app("good", namespace, registry.url(), "1.x"))

    message = condition_naming(kube, namespace, "crowded", "more than 50000 tags")
    assert "crowded" in message
    message = condition_naming(kube, namespace, "wrongcreds", "rejected the credentials")
    assert "HTTP 401" in message and registry.host in message
    wait_for(
        lambda: synced_healthy(kube, namespace, "good", "web@1.0.0"),
        timeout=120,
        what="good Synced/Healthy",
    )
    # serve never held the 100,000-entry list (the stream is cut at the limit)
    growth = peak_rss(ctl.proc.pid) - before
    assert growth < PEAK_RSS_GROWTH_BOUND, growth
    for name in ("crowded", "wrongcreds"):
        assert deployed_version(kube, namespace, name) is None
    assert_shown_nowhere(kube, namespace, ctl, [registry.password, WRONG_PASSWORD])


def test_the_cli_renders_a_chart_from_an_oci_registry(
    registry: OciRegistry, tmp_path: Path
) -> None:
    for version in ("1.0.0", "1.4.0", "2.0.0"):
        push(registry, tmp_path, "web", version)
    (tmp_path / "password").write_text(registry.password)
    (tmp_path / "ca.pem").write_text(registry.ca_pem)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    auth = (
        f"--repo-username={registry.username}",
        f"--repo-password-file={tmp_path / 'password'}",
        f"--repo-ca-file={tmp_path / 'ca.pem'}",
    )
    run = run_gitsync(
        "render", f"--repo={registry.url()}", "--chart=web", *auth, "--version=^1.0.0",
        "--set=greeting=hi", env=env,
    )  # fmt: skip
    assert run.code == 0, run
    (doc,) = yaml.safe_load_all(run.stdout)
    assert doc["metadata"]["name"] == "web-cm"
    assert doc["data"] == {"chartVersion": "1.4.0", "greeting": "hi"}
    assert "web@1.4.0" in run.stderr and registry.password not in run.output
    # Helm's spelling: the URL ends with the chart's name
    run = run_gitsync(
        "render", f"--repo={registry.url('charts/web')}", *auth, "--version=1.0.0", env=env
    )
    assert run.code == 0, run
    assert yaml.safe_load(run.stdout)["data"]["chartVersion"] == "1.0.0"
    # a wrong password: a clear error naming the registry, the password not shown
    (tmp_path / "password").write_text(WRONG_PASSWORD)
    run = run_gitsync("render", f"--repo={registry.url()}", "--chart=web", *auth,
                      "--version=^1.0.0", env=env)  # fmt: skip
    assert run.code == 2 and "rejected the credentials" in run.stderr, run
    assert registry.host in run.stderr and WRONG_PASSWORD not in run.output
