"""The Helm HTTP repository adapter against a real chart repository on loopback (issue 15).

The repository is ``tests.support.chartrepo``: HTTPS with a test CA, basic auth, charts
packaged and indexed by Helm itself. No control plane is needed: these tests drive
``HttpChartRepository`` and ``ChartStore`` directly; the Application-level tests are in
``test_chart_sources_it.py``.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gitsync.engine.chart_sources import ChartStore, open_chart_repository
from gitsync.source.charts import (
    ChartCredential,
    ChartLimits,
    ChartSourceTerminalError,
    ChartVersion,
)
from gitsync.source.helmrepo import HttpChartRepository
from tests.support.chartrepo import CHART_REPO_PASSWORD, CHART_REPO_USER, ChartRepoServer
from tests.support.cli import run_gitsync

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def good_credential(repo: ChartRepoServer) -> ChartCredential:
    return ChartCredential(CHART_REPO_USER, CHART_REPO_PASSWORD, repo.ca_pem)


def open_repo(
    repo: ChartRepoServer, credential: ChartCredential, **limits: int
) -> HttpChartRepository:
    opened = open_chart_repository(repo.url, credential, ChartLimits(**limits))
    assert isinstance(opened, HttpChartRepository)
    return opened


class Listener:
    """Another origin on loopback that records the Authorization headers it receives and
    serves one archive (to see whether an index pointing there gets credentials)."""

    def __init__(self, archive: bytes) -> None:
        self.authorizations: list[str | None] = []
        seen = self.authorizations

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Length", str(len(archive)))
                self.end_headers()
                self.wfile.write(archive)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener(chart_repo: ChartRepoServer) -> Iterator[Listener]:
    archive = chart_repo.publish("elsewhere", "1.0.0").read_bytes()
    server = Listener(archive)
    yield server
    server.close()


def test_versions_come_from_the_index_and_an_unchanged_index_costs_a_304(
    chart_repo: ChartRepoServer,
) -> None:
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        chart_repo.publish("web", version)
    repo = open_repo(chart_repo, good_credential(chart_repo))
    versions = repo.versions("web")
    assert sorted(v.version for v in versions) == ["1.0.0", "1.1.0", "2.0.0"]
    first = next(v for v in versions if v.version == "1.1.0")
    assert first.url == f"{chart_repo.url}/web-1.1.0.tgz"  # relative in the index
    assert first.digest.startswith("sha256:") and len(first.digest) == 71
    archive = repo.fetch(first)
    assert "sha256:" + hashlib.sha256(archive).hexdigest() == first.digest
    # a second listing (a fresh adapter, as each reconcile opens one) is conditional: 304
    again = open_repo(chart_repo, good_credential(chart_repo)).versions("web")
    assert again == versions
    assert [r.status for r in chart_repo.requested("/index.yaml")] == [200, 304]
    # a new version changes the index: fetched in full and seen
    chart_repo.publish("web", "2.1.0")
    latest = open_repo(chart_repo, good_credential(chart_repo)).versions("web")
    assert "2.1.0" in {v.version for v in latest}


def test_wrong_credentials_and_an_unknown_ca_are_terminal_and_name_no_secret(
    chart_repo: ChartRepoServer,
) -> None:
    chart_repo.publish("web", "1.0.0")
    wrong = ChartCredential(CHART_REPO_USER, "wrong-password-31d7", chart_repo.ca_pem)
    with pytest.raises(ChartSourceTerminalError, match="refused the credentials") as caught:
        open_repo(chart_repo, wrong).versions("web")
    assert "wrong-password-31d7" not in str(caught.value)
    no_ca = ChartCredential(CHART_REPO_USER, CHART_REPO_PASSWORD)
    with pytest.raises(ChartSourceTerminalError, match="TLS verification") as caught:
        open_repo(chart_repo, no_ca).versions("web")
    assert CHART_REPO_PASSWORD not in str(caught.value)
    # Argo CD's insecure: the certificate is not checked
    insecure = ChartCredential(CHART_REPO_USER, CHART_REPO_PASSWORD, insecure=True)
    assert open_repo(chart_repo, insecure).versions("web")


def test_plain_http_only_when_the_entry_allows_it(tmp_path: Path) -> None:
    with ChartRepoServer(tmp_path / "plain", tls=False) as plain:
        plain.publish("web", "1.0.0")
        with pytest.raises(ChartSourceTerminalError, match="insecureAllowHttp"):
            open_repo(plain, ChartCredential())
        allowed = ChartCredential(allow_plain_http=True)
        assert [v.version for v in open_repo(plain, allowed).versions("web")] == ["1.0.0"]


def test_credentials_go_only_to_the_repository_s_own_origin(
    chart_repo: ChartRepoServer, listener: Listener
) -> None:
    """An index that points an archive at another host (same host name, another port)
    gets that archive fetched without the repository's credentials."""
    chart_repo.publish("web", "1.0.0")
    index = chart_repo.index()
    entries = index["entries"]
    assert isinstance(entries, dict)
    entries["web"][0]["urls"] = [f"{listener.url}/web-1.0.0.tgz"]
    entries["web"][0]["digest"] = ""
    chart_repo.write_index(index)
    credential = ChartCredential(
        CHART_REPO_USER, CHART_REPO_PASSWORD, chart_repo.ca_pem, allow_plain_http=True
    )
    repo = open_repo(chart_repo, credential)
    (version,) = repo.versions("web")
    assert repo.fetch(version)
    assert listener.authorizations == [None]
    assert all(r.user == CHART_REPO_USER for r in chart_repo.requested("/index.yaml"))


def test_an_index_over_the_size_limit_stops_in_bounded_memory(
    chart_repo: ChartRepoServer,
) -> None:
    """A 60 MiB index (streamed by the server, no Content-Length) is refused at the cap
    (here 4 MiB), and reading it never holds much more than the cap."""
    chart_repo.put_generated("index.yaml", 60 * MIB, b"entries: {}\n# padding padding\n")
    tracemalloc.start()
    try:
        with pytest.raises(ChartSourceTerminalError, match="larger than 4194304 bytes"):
            open_repo(chart_repo, good_credential(chart_repo), max_index_bytes=4 * MIB).versions(
                "web"
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * MIB, peak


def test_a_digest_mismatch_and_a_missing_chart_are_terminal(chart_repo: ChartRepoServer) -> None:
    chart_repo.publish("web", "1.0.0")
    repo = open_repo(chart_repo, good_credential(chart_repo))
    (version,) = repo.versions("web")
    forged = ChartVersion(version.name, version.version, "sha256:" + "0" * 64, version.url)
    with pytest.raises(ChartSourceTerminalError, match="does not match the index"):
        repo.fetch(forged)
    with pytest.raises(ChartSourceTerminalError, match="'nope' is not in the index"):
        repo.versions("nope")


def test_the_store_keeps_archives_per_repository_and_credential(
    chart_repo: ChartRepoServer, tmp_path: Path
) -> None:
    """Finding: a digest is public (status shows it). A second repository whose index claims
    the same digest must not be handed the first repository's cached chart: the store
    downloads from that repository, and the bytes there do not match."""
    chart_repo.publish("web", "1.0.0")
    store = ChartStore(tmp_path / "store")
    credential = good_credential(chart_repo)
    version = store.resolve(chart_repo.url, "web", "1.x", credential)
    first = store.checkout(chart_repo.url, version, credential)
    assert (first.root / first.path / "Chart.yaml").is_file()
    fetched = len(chart_repo.requested("/web-1.0.0.tgz"))
    again = store.checkout(chart_repo.url, version, credential)
    assert again == first and len(chart_repo.requested("/web-1.0.0.tgz")) == fetched
    with ChartRepoServer(tmp_path / "tenant", tls=False) as tenant:
        tenant.put_file("web-1.0.0.tgz", b"not the victim's chart")
        claimed = ChartVersion("web", "1.0.0", version.digest, f"{tenant.url}/web-1.0.0.tgz")
        with pytest.raises(ChartSourceTerminalError, match="does not match"):
            store.checkout(tenant.url, claimed, ChartCredential(allow_plain_http=True))
        assert tenant.requested("/web-1.0.0.tgz")


def test_the_cli_renders_a_chart_from_a_repository(
    chart_repo: ChartRepoServer, tmp_path: Path
) -> None:
    for version in ("1.0.0", "1.4.0", "2.0.0"):
        chart_repo.publish("web", version)
    (tmp_path / "password").write_text(CHART_REPO_PASSWORD)
    (tmp_path / "ca.pem").write_text(chart_repo.ca_pem)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    flags = (
        f"--repo={chart_repo.url}",
        "--chart=web",
        f"--repo-username={CHART_REPO_USER}",
        f"--repo-password-file={tmp_path / 'password'}",
        f"--repo-ca-file={tmp_path / 'ca.pem'}",
    )
    run = run_gitsync("render", *flags, "--version=^1.0.0", "--set=greeting=hi", env=env)
    assert run.code == 0, run
    (doc,) = yaml.safe_load_all(run.stdout)
    assert doc["metadata"]["name"] == "web-cm"
    assert doc["data"] == {"chartVersion": "1.4.0", "greeting": "hi"}
    assert "web@1.4.0" in run.stderr and CHART_REPO_PASSWORD not in run.output
    # no match names the range and what is published; flags that cannot apply are refused
    run = run_gitsync("render", *flags, "--version=>=3.0.0", env=env)
    assert run.code == 2 and "no version of chart 'web' matches '>=3.0.0'" in run.stderr, run
    assert "newest published: 2.0.0, 1.4.0, 1.0.0" in run.stderr
    run = run_gitsync("render", *flags, "--version=1.x", "--helm-values=v.yaml", env=env)
    assert run.code == 2 and "--helm-values is not supported with --repo" in run.stderr, run
    run = run_gitsync("render", "--chart=web", "--version=1.x", env=env)
    assert run.code == 2 and "--chart and --version need --repo URL" in run.stderr, run


def test_an_index_parse_that_outlasts_the_time_limit_is_abandoned(
    chart_repo: ChartRepoServer,
) -> None:
    """The parse runs in a bounded worker pool; the caller waits no longer than the
    operation's time limit (here a parser that takes 5 s against a 1 s limit)."""
    chart_repo.publish("web", "1.0.0")
    release = threading.Event()

    def slow(text: bytes, source: str) -> object:
        release.wait(5)
        return {}

    repo = HttpChartRepository(
        chart_repo.url,
        good_credential(chart_repo),
        ChartLimits(timeout_seconds=1.0),
        parse_index=slow,
    )
    started = time.monotonic()
    with pytest.raises(ChartSourceTerminalError, match="parsing took longer than 1s"):
        repo.versions("web")
    assert time.monotonic() - started < 3.0
    release.set()


def test_apps_refreshing_together_share_one_listing_within_max_age(
    chart_repo: ChartRepoServer, tmp_path: Path
) -> None:
    chart_repo.publish("web", "1.0.0")
    store = ChartStore(tmp_path / "store")
    credential = good_credential(chart_repo)
    for _ in range(5):
        assert (
            store.resolve(chart_repo.url, "web", "1.x", credential, max_age=60).version == "1.0.0"
        )
    assert len(chart_repo.requested("/index.yaml")) == 1
    chart_repo.publish("web", "1.1.0")
    assert store.resolve(chart_repo.url, "web", "1.x", credential).version == "1.1.0"
    assert len(chart_repo.requested("/index.yaml")) == 2
