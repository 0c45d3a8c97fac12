"""A real Helm chart repository on loopback, for tests and the demo.

An ``http.server`` in a thread serves a directory of chart archives and the ``index.yaml``
``helm repo index`` writes for them (``helm_python.repo_index_generate``, relative archive URLs,
``digest`` per version), over HTTPS with a certificate from a throw-away test CA
(``gitsync.localenv.pki``) and, when a username is given, HTTP basic auth. Charts are packaged by
Helm itself (``helm_python.package``) from a small chart written per version, so a test can
publish a new version while a controller is watching and see it deployed.

It answers ``If-None-Match`` with ``304`` (the ETag is the file's sha256) and records every
request (path, the user it authenticated as or None, whether an ``Authorization`` header came at
all), so tests can count conditional requests and see where credentials went. Hostile content
is published as raw files (``put_file``) or as a generated stream of any size that is never held
in memory (``put_generated``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import shutil
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import helm_python
import yaml

from gitsync.localenv.pki import make_pki

_CHUNK = 64 * 1024
CHART_REPO_USER = "chart-reader"
CHART_REPO_PASSWORD = "chart-secret-4e1b9c"


@dataclass(frozen=True)
class ChartRequest:
    path: str
    user: str | None
    """The user that authenticated, or None (no or wrong credentials)."""
    authorization_sent: bool
    status: int


def configmap_chart_templates(name: str) -> dict[str, str]:
    """A chart whose one object is a ConfigMap ``<release>-cm`` carrying the chart version."""
    return {
        "configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: {{ .Release.Name }}-cm\n"
            "data:\n  chartVersion: {{ .Chart.Version | quote }}\n"
            "  greeting: {{ .Values.greeting | quote }}\n"
        )
    }


class ChartRepoServer:
    """Serves ``root/charts`` at ``url``; ``tls`` with the CA in ``ca_pem``."""

    def __init__(
        self,
        root: Path,
        *,
        username: str = "",
        password: str = "",
        tls: bool = True,
    ) -> None:
        self.root = root
        self.charts_dir = root / "charts"
        self.charts_dir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password
        self.requests: list[ChartRequest] = []
        self._generated: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self.ca_pem = ""
        handler = self._handler()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if tls:
            pki = make_pki(root / "pki")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(pki.serving_cert, pki.serving_key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_pem = pki.ca_cert.read_text()
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ChartRepoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- content -------------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        version: str,
        *,
        templates: dict[str, str] | None = None,
        values: dict[str, object] | None = None,
    ) -> Path:
        """Package chart ``name`` at ``version`` with Helm and re-index the repository."""
        work = self.root / "work" / f"{name}-{version}"
        if work.exists():
            shutil.rmtree(work)
        (work / name / "templates").mkdir(parents=True)
        chart = {"apiVersion": "v2", "name": name, "version": version, "type": "application"}
        (work / name / "Chart.yaml").write_text(yaml.safe_dump(chart))
        (work / name / "values.yaml").write_text(
            yaml.safe_dump(values if values is not None else {"greeting": "hello"})
        )
        for file, text in (templates or configmap_chart_templates(name)).items():
            (work / name / "templates" / file).write_text(text)
        archive = Path(helm_python.package(work / name, destination=self.charts_dir))
        self.reindex()
        return archive

    def reindex(self) -> None:
        helm_python.repo_index_generate(self.charts_dir)

    def put_file(self, relative: str, data: bytes) -> None:
        """Serve ``data`` at ``/relative`` (replacing what was there)."""
        path = self.charts_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def put_generated(self, relative: str, size: int, pattern: bytes) -> None:
        """Serve ``size`` bytes of ``pattern`` repeated at ``/relative``, streamed."""
        with self._lock:
            self._generated["/" + relative] = (size, pattern)

    def index(self) -> dict[str, object]:
        loaded = yaml.safe_load((self.charts_dir / "index.yaml").read_text())
        assert isinstance(loaded, dict)
        return loaded

    def write_index(self, document: dict[str, object]) -> None:
        self.put_file("index.yaml", yaml.safe_dump(document).encode())

    def requested(self, path: str) -> list[ChartRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- HTTP ----------------------------------------------------------------------------------

    def _authenticate(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        ok = hmac.compare_digest(user, self.username) and hmac.compare_digest(
            password, self.password
        )
        return user if ok else None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        repo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _done(self, status: int, user: str | None) -> None:
                sent = self.headers.get("Authorization") is not None
                with repo._lock:
                    repo.requests.append(ChartRequest(self.path, user, sent, status))

            def _empty(self, status: int, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                user = repo._authenticate(self.headers.get("Authorization"))
                if repo.username and user is None:
                    self._done(401, None)
                    self._empty(401, {"WWW-Authenticate": 'Basic realm="charts"'})
                    return
                with repo._lock:
                    generated = repo._generated.get(self.path)
                if generated is not None:
                    self._done(200, user)
                    self._stream(*generated)
                    return
                relative = self.path.lstrip("/").split("?", 1)[0]
                path = (repo.charts_dir / relative).resolve()
                if repo.charts_dir.resolve() not in path.parents or not path.is_file():
                    self._done(404, user)
                    self._empty(404)
                    return
                data = path.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._done(304, user)
                    self._empty(304, {"ETag": etag})
                    return
                self._done(200, user)
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, size: int, pattern: bytes) -> None:
                # no Content-Length: the client must stop reading on its own
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                chunk = (pattern * (_CHUNK // len(pattern) + 1))[:_CHUNK]
                sent = 0
                try:
                    while sent < size:
                        piece = chunk[: min(_CHUNK, size - sent)]
                        self.wfile.write(piece)
                        sent += len(piece)
                except OSError:
                    pass  # the client hung up, as it should
                self.close_connection = True

        return Handler
