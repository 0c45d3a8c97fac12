"""A real Prometheus on loopback, scraping a tiny exporter whose success ratio the test sets.

For the analysis tests (and people trying analysis by hand): Debian's ``prometheus`` package
(2.42) is started as ``prometheus --config.file=F --web.listen-address=127.0.0.1:PORT
--storage.tsdb.path=DIR``, scraping every ``scrape_interval`` (1 s by default) one target, an
``Exporter`` - a stdlib ``http.server`` thread serving ``/metrics`` in the text exposition format:

* ``requests_total{code="200"}`` and ``requests_total{code="500"}``: counters that grow at
  ``requests_per_second`` split by the current ratio, integrated over wall time (so ``rate()``
  over a window gives the ratio, however often anyone scrapes);
* ``success_ratio``: a gauge of the current ratio, for tests that want no ``rate()`` window lag.

``Exporter.set_ratio`` changes the ratio; ``Prometheus.wait_for_value`` waits until a query
reflects it. Everything listens on 127.0.0.1 only, and Prometheus is stopped by its pid
(``processes.ManagedProcess``), its data in a temporary directory that goes with it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from gitsync.localenv.processes import ManagedProcess, free_port

PROMETHEUS_BINARY = "prometheus"


class Exporter:
    """Serves ``/metrics`` on 127.0.0.1 from a daemon thread; see the module doc."""

    def __init__(self, ratio: float = 1.0, *, requests_per_second: float = 100.0):
        self._lock = threading.Lock()
        self._ratio = ratio
        self._rps = requests_per_second
        self._ok = 0.0
        self._failed = 0.0
        self._since = time.monotonic()
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="test-exporter", daemon=True
        )

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the scrape target."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> Exporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _advance(self) -> None:
        now = time.monotonic()
        served = (now - self._since) * self._rps
        self._ok += served * self._ratio
        self._failed += served * (1.0 - self._ratio)
        self._since = now

    def set_ratio(self, ratio: float) -> None:
        """From now on ``ratio`` of the requests succeed."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"a ratio is from 0 to 1, got {ratio}")
        with self._lock:
            self._advance()
            self._ratio = ratio

    def exposition(self) -> str:
        with self._lock:
            self._advance()
            self.scrapes += 1
            ok, failed, ratio = self._ok, self._failed, self._ratio
        return (
            "# HELP requests_total Requests served, by status code.\n"
            "# TYPE requests_total counter\n"
            f'requests_total{{code="200"}} {ok:.3f}\n'
            f'requests_total{{code="500"}} {failed:.3f}\n'
            "# HELP success_ratio The share of requests that succeed.\n"
            "# TYPE success_ratio gauge\n"
            f"success_ratio {ratio}\n"
        )

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrometheusError(RuntimeError):
    """Prometheus did not start, or a query failed."""


class Prometheus:
    """Debian's Prometheus scraping ``targets`` (``host:port``) on loopback."""

    def __init__(
        self,
        targets: list[str],
        *,
        scrape_interval: float = 1.0,
        binary: str = PROMETHEUS_BINARY,
    ):
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.binary = binary
        self.port = 0
        self._dir: Path | None = None
        self._process: ManagedProcess | None = None

    @staticmethod
    def available(binary: str = PROMETHEUS_BINARY) -> bool:
        return shutil.which(binary) is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise PrometheusError("not started")
        return self._process.pid

    def _config(self) -> str:
        seconds = f"{self.scrape_interval:g}s"
        targets = ", ".join(json.dumps(t) for t in self.targets)
        return (
            "global:\n"
            f"  scrape_interval: {seconds}\n"
            f"  scrape_timeout: {seconds}\n"
            f"  evaluation_interval: {seconds}\n"
            "scrape_configs:\n"
            "  - job_name: exporter\n"
            "    static_configs:\n"
            f"      - targets: [{targets}]\n"
        )

    def start(self, timeout: float = 60.0) -> Prometheus:
        binary = shutil.which(self.binary)
        if binary is None:
            raise PrometheusError(f"{self.binary} not found (apt-get install -y prometheus)")
        self._dir = Path(tempfile.mkdtemp(prefix="gitsync-prometheus-"))
        config = self._dir / "prometheus.yml"
        config.write_text(self._config())
        self.port = free_port()
        self._process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self._dir / 'data'}",
            ],
            self._dir / "prometheus.log",
        )
        self._process.start()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if not self._process.running():
                raise PrometheusError(f"prometheus exited:\n{self._process.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready after {timeout:.0f}s")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` gives now (``[]`` for none)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                doc = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"query {promql!r} failed: {exc}") from exc
        data = doc.get("data") or {}
        if doc.get("status") != "success" or data.get("resultType") != "vector":
            raise PrometheusError(f"query {promql!r}: unexpected answer {str(doc)[:200]}")
        result: list[dict[str, Any]] = data.get("result") or []
        return result

    def value(self, promql: str) -> float | None:
        """The value of a one-series query, or None when it has no data."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for_value(
        self, promql: str, accept: Callable[[float], bool], *, timeout: float = 30.0
    ) -> float:
        """Poll ``promql`` until its value satisfies ``accept``; returns that value."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while True:
            last = self.value(promql)
            if last is not None and accept(last):
                return last
            if time.monotonic() > deadline:
                raise PrometheusError(f"{promql!r} is still {last!r} after {timeout:.0f}s")
            time.sleep(self.scrape_interval / 4)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
