"""A Helm chart repository on loopback: what ``gitsync demo`` serves its chart from, and what the
tests' chart repository (``tests.support.chartrepo``) is built on.

An ``http.server`` in a thread serves a directory of chart archives and the ``index.yaml`` that
``helm repo index`` writes for them. Charts are packaged and indexed by Helm itself
(``helm_python.package``, ``helm_python.repo_index_generate``: relative archive URLs, a
``digest`` per version), so what gitsync reads is exactly what a real repository holds; that is
why this module is the one place outside the renderer allowed to import the Helm SDK.

TLS (a certificate from a throw-away CA, ``gitsync.localenv.pki``) and HTTP basic auth are
optional: the demo serves plain HTTP without auth on 127.0.0.1 (its repository-credential entry
allows plain HTTP for that URL only), the tests turn both on. ``If-None-Match`` is answered with
``304`` (the ETag is the file's sha256), as the conditional index refresh expects, and every
request is recorded (path, the user it authenticated as, whether credentials came at all) so
tests can count requests and see where credentials went.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import helm_python

from gitsync.localenv.pki import make_pki

MAX_RECORDED_REQUESTS = 100_000


@dataclass(frozen=True)
class ChartRequest:
    path: str
    user: str | None
    """The user that authenticated, or None (no or wrong credentials)."""
    authorization_sent: bool
    status: int


@dataclass(frozen=True)
class GeneratedBody:
    """A body of ``size`` bytes of ``pattern`` repeated, streamed without a Content-Length."""

    size: int
    pattern: bytes


class ChartRepositoryServer:
    """Serves ``root/charts`` at ``url`` (``https`` with the CA in ``ca_pem`` when ``tls``)."""

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
        # the newest requests (a long-running demo must not grow without bound)
        self.requests: deque[ChartRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._lock = threading.Lock()
        self.ca_pem = ""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
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

    def __enter__(self) -> ChartRepositoryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- content -------------------------------------------------------------------------------

    def publish_chart(self, chart_dir: Path) -> Path:
        """Package the chart in ``chart_dir`` with Helm (``helm package``) and re-index the
        repository (``helm repo index``); the archive's path."""
        archive = Path(helm_python.package(chart_dir, destination=self.charts_dir))
        self.reindex()
        return archive

    def reindex(self) -> None:
        helm_python.repo_index_generate(self.charts_dir)

    def requested(self, path: str) -> list[ChartRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def generated(self, path: str) -> GeneratedBody | None:
        """A streamed body to serve at ``path`` instead of a file; none here (the tests' hostile
        repository overrides it)."""
        return None

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

    def _record(self, request: ChartRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        repo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _done(self, status: int, user: str | None) -> None:
                sent = self.headers.get("Authorization") is not None
                repo._record(ChartRequest(self.path, user, sent, status))

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
                generated = repo.generated(self.path)
                if generated is not None:
                    self._done(200, user)
                    self._stream(generated)
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

            def _stream(self, body: GeneratedBody) -> None:
                # no Content-Length: the client must stop reading on its own
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                chunk_size = 64 * 1024
                chunk = (body.pattern * (chunk_size // len(body.pattern) + 1))[:chunk_size]
                sent = 0
                try:
                    while sent < body.size:
                        piece = chunk[: min(chunk_size, body.size - sent)]
                        self.wfile.write(piece)
                        sent += len(piece)
                except OSError:
                    pass  # the client hung up, as it should
                self.close_connection = True

        return Handler
