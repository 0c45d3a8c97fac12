"""The OCI chart source against a real registry (Debian's docker-registry) with TLS from a test
CA and htpasswd auth, charts pushed with helm-python-sdk as ``helm push`` would.

Attacks are made with the registry's own features where it has them (token auth whose realm is
another host, the ``redirect`` storage middleware sending blob reads elsewhere) or by editing its
storage on disk (100,000 tags, a corrupted or grown blob); the "other host" is a recording HTTPS
listener on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
import tracemalloc
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitsync.localenv.pki import ControlPlanePKI
from gitsync.localenv.processes import free_port
from gitsync.source.charts import (
    ChartCredential,
    ChartLimits,
    ChartSourceTerminalError,
    ChartSourceTransientError,
    ChartVersion,
)
from gitsync.source.oci import OciChartRepository
from tests.support.ociregistry import OciRegistry, package_chart, registry_token

pytestmark = pytest.mark.integration


def _credential(registry: OciRegistry, **overrides: object) -> ChartCredential:
    fields: dict[str, object] = {
        "username": registry.username,
        "password": registry.password,
        "ca_data": registry.ca_pem,
    }
    fields.update(overrides)
    return ChartCredential(**fields)  # type: ignore[arg-type]


def _repository(registry: OciRegistry, **overrides: object) -> OciChartRepository:
    limits = overrides.pop("limits", ChartLimits())
    assert isinstance(limits, ChartLimits)
    return OciChartRepository(registry.url(), _credential(registry, **overrides), limits)


def _push(registry: OciRegistry, tmp_path: Path, name: str, *versions: str) -> dict[str, Path]:
    archives = {v: package_chart(tmp_path / name, name, v) for v in versions}
    for archive in archives.values():
        registry.push(archive)
    return archives


def _tag_link(registry: OciRegistry, name: str, tag: str) -> str:
    """The manifest digest the registry's storage holds for a tag."""
    link = registry.tag_directory(f"charts/{name}", tag) / "current" / "link"
    return link.read_text().strip()


def _pushed_layer(registry: OciRegistry, tmp_path: Path, name: str) -> tuple[str, Path]:
    """Push ``name`` 1.0.0; the digest of its chart layer and the file the registry serves it
    from."""
    _push(registry, tmp_path, name, "1.0.0")
    manifest_blob = registry.blob_path(_tag_link(registry, name, "1.0.0"))
    layer = str(json.loads(manifest_blob.read_bytes())["layers"][0]["digest"])
    return layer, registry.blob_path(layer)


def _resolved(repository: OciChartRepository, chart: str) -> ChartVersion:
    return repository.resolve(repository.versions(chart)[0])


# --- listing, resolving, fetching --------------------------------------------------------------


def test_versions_are_the_semver_tags_with_helms_underscore_mapped_back(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "listed", "1.0.0", "1.2.3+build.1", "2.0.0-rc.1")
    latest = oci_registry.tag_directory("charts/listed", "latest")
    shutil.copytree(oci_registry.tag_directory("charts/listed", "1.0.0"), latest)

    versions = _repository(oci_registry).versions("listed")

    assert sorted(v.version for v in versions) == ["1.0.0", "1.2.3+build.1", "2.0.0-rc.1"]
    by_version = {v.version: v for v in versions}
    assert by_version["1.2.3+build.1"].url.endswith("/charts/listed:1.2.3_build.1")
    assert all(v.name == "listed" and v.digest == "" for v in versions)


def test_resolve_records_the_manifest_digest_and_fetch_returns_the_pushed_archive(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    archives = _push(oci_registry, tmp_path, "fetched", "1.0.0", "1.2.3+build.1")
    repository = _repository(oci_registry)
    chosen = next(v for v in repository.versions("fetched") if v.version == "1.2.3+build.1")

    resolved = repository.resolve(chosen)

    assert resolved.digest == _tag_link(oci_registry, "fetched", "1.2.3_build.1")
    assert resolved.revision == "fetched@1.2.3+build.1"
    assert repository.fetch(resolved) == archives["1.2.3+build.1"].read_bytes()


def test_fetch_reads_the_manifest_the_resolved_digest_names_even_after_the_tag_moved(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    first = _push(oci_registry, tmp_path / "a", "pinned", "1.0.0")["1.0.0"]
    repository = _repository(oci_registry)
    resolved = repository.resolve(repository.versions("pinned")[0])
    moved = package_chart(tmp_path / "b", "pinned", "1.0.0", padding_bytes=1000)
    oci_registry.push(moved)
    assert _tag_link(oci_registry, "pinned", "1.0.0") != resolved.digest

    assert repository.fetch(resolved) == first.read_bytes()


# --- credentials --------------------------------------------------------------------------------


def test_a_wrong_password_is_a_terminal_error_naming_registry_and_chart_not_the_password(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "guarded", "1.0.0")
    wrong = "wrong-password-5d1e"

    with pytest.raises(ChartSourceTerminalError) as caught:
        _repository(oci_registry, password=wrong).versions("guarded")

    message = str(caught.value)
    assert oci_registry.url() in message
    assert "'guarded'" in message
    assert "rejected the credentials" in message
    assert wrong not in message and oci_registry.password not in message


def test_no_credentials_for_a_registry_that_wants_them_is_a_terminal_error(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "private", "1.0.0")

    with pytest.raises(ChartSourceTerminalError, match="requires credentials") as caught:
        _repository(oci_registry, username="", password="").versions("private")
    assert "'private'" in str(caught.value)


@dataclass
class _Recorder:
    """An HTTPS listener on 127.0.0.1 (the test CA's certificate) standing for "another host":
    it records every request's path and headers; paths under ``serve_root`` are answered with
    that file (blob storage), ``/token`` with 401 or a token (``pki``)."""

    serve_root: Path | None = None
    pki: ControlPlanePKI | None = None
    """When set, ``/token`` issues a token the test registries accept (an anonymous one: the
    listener checks no credentials), as a public registry's token service does."""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def recorder(oci_registry: OciRegistry) -> Iterator[_Recorder]:
    record = _Recorder(serve_root=oci_registry.storage)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.requests.append((self.path, dict(self.headers.items())))
            assert record.serve_root is not None
            path, _, query = self.path.partition("?")
            target = (record.serve_root / path.lstrip("/")).resolve()
            body = b""
            if path == "/token" and record.pki is not None:
                scope = urllib.parse.parse_qs(query)["scope"][0]
                body = json.dumps({"token": registry_token(record.pki, scope)}).encode()
            elif target.is_relative_to(record.serve_root.resolve()) and target.is_file():
                body = target.read_bytes()
            if body:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    record.port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", record.port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(oci_registry.pki.serving_cert, oci_registry.pki.serving_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()


def test_a_bearer_realm_on_another_host_gets_no_credentials(
    oci_registry: OciRegistry, recorder: _Recorder, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "tokened", "1.0.0")
    realm = f"{recorder.base}/token"
    with OciRegistry(
        tmp_path / "token-registry",
        storage=oci_registry.storage,
        pki_directory=oci_registry.pki_directory,
        auth="token",
        token_realm=realm,
    ) as token_registry:
        repository = OciChartRepository(
            token_registry.url(), _credential(oci_registry), ChartLimits()
        )
        with pytest.raises(ChartSourceTerminalError) as caught:
            repository.versions("tokened")

    assert [path.split("?")[0] for path, _ in recorder.requests] == ["/token"]
    path, headers = recorder.requests[0]
    assert "scope=repository%3Acharts%2Ftokened%3Apull" in path
    assert "authorization" not in {key.lower() for key in headers}
    assert "refused an anonymous token" in str(caught.value)
    assert oci_registry.password not in str(caught.value)


def test_an_anonymous_token_from_a_realm_on_another_host_reads_a_public_chart(
    oci_registry: OciRegistry, recorder: _Recorder, tmp_path: Path
) -> None:
    """Docker Hub's shape: the registry delegates to a token service on another host. Its
    anonymous token is enough for a public chart; the credentials stay home."""
    archive = _push(oci_registry, tmp_path, "public", "1.0.0")["1.0.0"]
    recorder.pki = oci_registry.pki
    with OciRegistry(
        tmp_path / "token-registry",
        storage=oci_registry.storage,
        pki_directory=oci_registry.pki_directory,
        auth="token",
        token_realm=f"{recorder.base}/token",
    ) as token_registry:
        repository = OciChartRepository(
            token_registry.url(), _credential(oci_registry), ChartLimits()
        )
        resolved = repository.resolve(repository.versions("public")[0])
        assert repository.fetch(resolved) == archive.read_bytes()

    token_requests = [h for path, h in recorder.requests if path.startswith("/token?")]
    assert token_requests, "the registry never sent the client to its token service"
    assert all("authorization" not in {key.lower() for key in h} for h in token_requests)


def test_a_blob_redirected_to_another_host_is_fetched_without_the_authorization_header(
    oci_registry: OciRegistry, recorder: _Recorder, tmp_path: Path
) -> None:
    archive = _push(oci_registry, tmp_path, "redirected", "1.0.0")["1.0.0"]
    with OciRegistry(
        tmp_path / "redirecting-registry",
        storage=oci_registry.storage,
        pki_directory=oci_registry.pki_directory,
        redirect_to=f"{recorder.base}/",
    ) as redirecting:
        repository = OciChartRepository(redirecting.url(), _credential(oci_registry), ChartLimits())
        resolved = repository.resolve(repository.versions("redirected")[0])
        assert repository.fetch(resolved) == archive.read_bytes()

    blob_reads = [headers for path, headers in recorder.requests if path.endswith("/data")]
    assert blob_reads, "the registry did not redirect the blob read"
    assert all("authorization" not in {key.lower() for key in h} for h in blob_reads)


# --- transport ----------------------------------------------------------------------------------


def test_plain_http_is_refused_unless_the_credential_entry_allows_it(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "plain", "1.0.0")
    with OciRegistry(
        tmp_path / "plain-registry", storage=oci_registry.storage, tls=False
    ) as plain_registry:
        credential = _credential(plain_registry)
        with pytest.raises(ChartSourceTerminalError, match="plain HTTP allowed"):
            OciChartRepository(plain_registry.url(), credential, ChartLimits()).versions("plain")

        allowed = ChartCredential(
            plain_registry.username, plain_registry.password, allow_plain_http=True
        )
        versions = OciChartRepository(plain_registry.url(), allowed, ChartLimits()).versions(
            "plain"
        )
    assert [v.version for v in versions] == ["1.0.0"]


def test_tls_is_verified_against_the_system_roots_without_ca_data(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "untrusted", "1.0.0")

    with pytest.raises(ChartSourceTerminalError, match="certificate is not trusted"):
        _repository(oci_registry, ca_data="").versions("untrusted")


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_insecure_skips_the_certificate_check_and_only_that(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "unchecked", "1.0.0")

    versions = _repository(oci_registry, ca_data="", insecure=True).versions("unchecked")

    assert [v.version for v in versions] == ["1.0.0"]
    with pytest.raises(ChartSourceTerminalError, match="rejected the credentials"):
        _repository(oci_registry, ca_data="", insecure=True, password="x").versions("unchecked")


# --- limits -------------------------------------------------------------------------------------


@pytest.fixture
def shm_registry(tmp_path: Path) -> Iterator[OciRegistry]:
    """A registry whose storage is in memory (/dev/shm when there is one): creating and removing
    100,000 tag directories on a slow disk takes minutes, in tmpfs seconds."""
    shm = Path("/dev/shm")
    storage = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None, prefix="gitsync-oci-"))
    try:
        with OciRegistry(tmp_path / "shm-registry", storage=storage) as registry:
            yield registry
    finally:
        shutil.rmtree(storage, ignore_errors=True)


@pytest.mark.slow
def test_a_tag_list_of_100000_entries_is_refused_with_bounded_memory(
    shm_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(shm_registry, tmp_path, "crowded", "1.0.0")
    for i in range(100_000):
        shm_registry.tag_directory("charts/crowded", f"0.0.{i}").mkdir(parents=True)
    repository = _repository(shm_registry)

    tracemalloc.start()
    try:
        with pytest.raises(ChartSourceTerminalError, match="more than 50000 tags") as caught:
            repository.versions("crowded")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "max_index_entries" in str(caught.value)
    # The whole list is 1.3 MB of JSON and 100,000 strings (~7 MB parsed); the stream is cut
    # at the 50,001st entry, before anything is parsed.
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes while listing"


def test_an_archive_over_max_archive_bytes_is_refused(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    big = package_chart(tmp_path, "bulky", "1.0.0", padding_bytes=300_000)
    oci_registry.push(big)
    repository = _repository(oci_registry, limits=ChartLimits(max_archive_bytes=200_000))
    resolved = _resolved(repository, "bulky")

    with pytest.raises(ChartSourceTerminalError, match=r"over limits.max_archive_bytes"):
        repository.fetch(resolved)


def test_a_blob_grown_on_disk_past_the_limit_is_cut_off_while_streaming(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    """The manifest declares a small layer; the blob the registry serves is larger than the
    limit: the declared size passes, the download does not."""
    _, blob = _pushed_layer(oci_registry, tmp_path, "grown")
    blob.write_bytes(blob.read_bytes() + b"\0" * 300_000)
    repository = _repository(oci_registry, limits=ChartLimits(max_archive_bytes=200_000))
    resolved = _resolved(repository, "grown")

    with pytest.raises(ChartSourceTerminalError, match=r"over 200000 bytes"):
        repository.fetch(resolved)


def test_a_blob_that_does_not_match_its_digest_is_refused(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    layer, blob = _pushed_layer(oci_registry, tmp_path, "corrupt")
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    assert "sha256:" + hashlib.sha256(data).hexdigest() != layer
    repository = _repository(oci_registry)
    resolved = _resolved(repository, "corrupt")

    with pytest.raises(ChartSourceTerminalError, match="digest is sha256:") as caught:
        repository.fetch(resolved)
    assert f"the manifest says {layer}" in str(caught.value)


def test_an_unknown_chart_is_a_terminal_error_naming_it(oci_registry: OciRegistry) -> None:
    with pytest.raises(ChartSourceTerminalError, match=r"'absent'.*HTTP 404"):
        _repository(oci_registry).versions("absent")


def test_a_version_without_a_tag_is_a_terminal_error(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    _push(oci_registry, tmp_path, "sparse", "1.0.0")
    missing = ChartVersion("sparse", "9.9.9", "", f"{oci_registry.url()}/sparse:9.9.9")

    with pytest.raises(ChartSourceTerminalError, match=r"version 9\.9\.9.*HTTP 404"):
        _repository(oci_registry).resolve(missing)


@pytest.fixture(params=["headers", "body"])
def trickling_registry(request: pytest.FixtureRequest) -> Iterator[str]:
    """A plain-HTTP listener on 127.0.0.1 that answers every request with a 200 whose headers
    (or body) arrive a byte every 0.1 s, for at most 20 s: a registry holding a worker by
    trickling, each byte well within any per-receive timeout."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    stop = threading.Event()
    if request.param == "headers":
        head, drip = b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"
    else:
        head, drip = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{", b" "

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(head)
            for _ in range(200):
                if stop.wait(0.1):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(drip)

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"oci://127.0.0.1:{listener.getsockname()[1]}/charts"
    stop.set()
    listener.close()


def test_a_registry_trickling_its_answer_is_cut_off_at_the_deadline(
    trickling_registry: str,
) -> None:
    repository = OciChartRepository(
        trickling_registry,
        ChartCredential(allow_plain_http=True),
        ChartLimits(timeout_seconds=2),
    )
    started = time.monotonic()

    with pytest.raises(ChartSourceTransientError, match=r"took longer than 2s"):
        repository.versions("slow")
    assert time.monotonic() - started < 6


def test_a_tag_list_over_max_index_bytes_is_cut_off_while_streaming(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    """distribution sends the tag list chunked, without a Content-Length: only the count of
    bytes received can stop it."""
    _push(oci_registry, tmp_path, "wordy", "1.0.0")
    for i in range(300):
        oci_registry.tag_directory("charts/wordy", f"1.0.{i + 1}").mkdir(parents=True)
    repository = _repository(oci_registry, limits=ChartLimits(max_index_bytes=2000))

    with pytest.raises(ChartSourceTerminalError, match=r"over 2000 bytes \(limits.max_index"):
        repository.versions("wordy")
