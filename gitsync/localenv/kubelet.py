"""The kubelet's container-logs endpoint, played for the simulated nodes.

The real kube-apiserver serves ``pods/log`` by proxying to the kubelet of the Pod's node: it
connects to the Node's ``InternalIP`` (``--kubelet-preferred-address-types=InternalIP``) on
``status.daemonEndpoints.kubeletEndpoint.Port`` over HTTPS, verifies the certificate against
``--kubelet-certificate-authority`` (the control plane's test CA, which signs this server's
certificate for every node address) and passes the query through. So a logs test goes through the
real API server's validation (container names, ``previous``, ``tailLines``, RBAC on
``pods/log``) and its streaming proxy; only the kubelet's side is played here. Each node gets one
listener on its own loopback address (``127.0.1.N``) and a free port.

What a container "wrote" comes from the Pod's annotations (set them in a pod template):

* ``sim.gitsync.dev/log-lines``: the lines of every container's log (newline separated); without
  it (and without ``log-bytes``) one line naming the container;
* ``sim.gitsync.dev/log-bytes``: that many more bytes after those lines, as numbered 1 KiB lines
  (the remainder below 1 KiB is dropped) - generated while sending, never held in memory;
* ``sim.gitsync.dev/previous-log-lines``: the previous container's log, served for
  ``previous=true`` when the container restarted (``restartCount`` > 0, e.g. ``crashloop``);
  without a restart the kubelet's own 400 answer.

The query parameters the API server passes are honoured as a kubelet does: ``tailLines``,
``limitBytes`` (the answer is cut at that many bytes), ``timestamps`` (each line prefixed with the
container's start time), ``sinceSeconds`` (the written lines are all stamped with the container's
start, so they are dropped when older), ``follow`` (after the log, a ``tick N`` line every second
until the client goes away) and ``previous``.

Like everything of the simulator, the listener is on loopback only and does not authenticate its
clients (a real kubelet asks the API server); it serves made-up logs.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LOG_LINES = "sim.gitsync.dev/log-lines"
LOG_BYTES = "sim.gitsync.dev/log-bytes"
PREVIOUS_LOG_LINES = "sim.gitsync.dev/previous-log-lines"
GENERATED_LINE_BYTES = 1024
MAX_LOG_BYTES = 1 << 31  # what ``log-bytes`` may ask for: 2 GiB
WRITE_BATCH = 64 * 1024
TICK_SECONDS = 1.0

PodLookup = Callable[[str, str], dict[str, Any] | None]


class LogRequestError(Exception):
    """A request the kubelet refuses: ``status`` and the message it answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def generated_line(index: int) -> bytes:
    """Line ``index`` of a ``log-bytes`` log: ``GENERATED_LINE_BYTES`` long with its newline."""
    head = f"{index:09d} generated log line "
    return (head + "x" * (GENERATED_LINE_BYTES - len(head) - 1) + "\n").encode()


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    try:
        value = int(values[0])
    except ValueError as exc:
        raise LogRequestError(400, f"{name}: not an integer") from exc
    if value < 0:
        raise LogRequestError(400, f"{name}: must not be negative")
    return value


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("true", "1")


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return dict(status)
    return {}


def _start_time(pod: dict[str, Any]) -> datetime:
    text = (pod.get("status") or {}).get("startTime") or pod["metadata"]["creationTimestamp"]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def container_log(
    pod: dict[str, Any], container: str, query: dict[str, list[str]], stopped: threading.Event
) -> Generator[bytes]:
    """The bytes of ``container``'s log as the kubelet would send them for ``query``, in batches
    of about ``WRITE_BATCH`` bytes, then (``follow``) each new line as it is written, until
    ``stopped``. Raises ``LogRequestError`` (before the first batch) for a refused request."""
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if container not in names:
        raise LogRequestError(404, f'container "{container}" not found in pod')
    annotations = pod["metadata"].get("annotations") or {}
    previous = _flag(query, "previous")
    if previous:
        if int(_container_status(pod, container).get("restartCount") or 0) == 0:
            raise LogRequestError(
                400,
                f'previous terminated container "{container}" in pod '
                f'"{pod["metadata"]["name"]}" not found',
            )
        text = annotations.get(PREVIOUS_LOG_LINES, f"previous run of {container}: exit 1")
        written, generated = text.splitlines(), 0
    else:
        written = annotations.get(LOG_LINES, "").splitlines()
        try:
            generated = min(int(annotations.get(LOG_BYTES, "0")), MAX_LOG_BYTES)
        except ValueError:
            generated = 0
        generated //= GENERATED_LINE_BYTES
        if not written and not generated:
            written = [f"simulated container {container} of pod {pod['metadata']['name']}"]
    tail = _int_param(query, "tailLines")
    since = _int_param(query, "sinceSeconds")
    started = _start_time(pod)
    stamp = started.strftime("%Y-%m-%dT%H:%M:%S.000000000Z ").encode()
    timestamps = _flag(query, "timestamps")
    total = len(written) + generated
    first = max(0, total - tail) if tail is not None else 0
    if since is not None and (datetime.now(UTC) - started).total_seconds() > since:
        first = total  # every written line is older than asked for
    batch: list[bytes] = []
    size = 0
    for index in range(first, total):
        line = (
            (written[index] + "\n").encode()
            if index < len(written)
            else generated_line(index - len(written))
        )
        batch.append(stamp + line if timestamps else line)
        size += len(batch[-1])
        if size >= WRITE_BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    yield b"".join(batch)
    if not _flag(query, "follow") or previous:
        return
    tick = 0
    while not stopped.wait(TICK_SECONDS):
        tick += 1
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z ").encode()
        line = f"tick {tick}\n".encode()
        yield now + line if timestamps else line


def _limited(batches: Iterator[bytes], limit: int | None) -> Iterator[bytes]:
    """``batches`` cut after ``limit`` bytes (``limitBytes``), like the kubelet does."""
    sent = 0
    for batch in batches:
        if limit is not None and sent + len(batch) >= limit:
            yield batch[: limit - sent]
            return
        sent += len(batch)
        yield batch


class KubeletLogServer:
    """One HTTPS listener per node address, answering ``/containerLogs/<ns>/<pod>/<container>``
    from the Pods ``lookup`` returns (the simulator's watched copies)."""

    def __init__(self, addresses: list[str], cert: Path, key: Path, lookup: PodLookup):
        self._lookup = lookup
        self._stopped = threading.Event()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        self._servers: list[ThreadingHTTPServer] = []
        for address in addresses:
            server = ThreadingHTTPServer((address, 0), self._handler_class())
            server.daemon_threads = True
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._servers.append(server)

    @property
    def ports(self) -> list[int]:
        """The port of each address's listener, in the order of the addresses."""
        return [int(server.server_address[1]) for server in self._servers]

    def start(self) -> None:
        for server in self._servers:
            threading.Thread(target=server.serve_forever, name="sim-kubelet", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the simulator's log is for the control plane's events, not requests

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        segments = [unquote(s) for s in parts.path.split("/")]
        try:
            if len(segments) != 5 or segments[1] != "containerLogs":
                raise LogRequestError(404, "not found")
            _, _, namespace, name, container = segments
            pod = self._lookup(namespace, name)
            if pod is None:
                raise LogRequestError(404, f'pod "{name}" not found')
            query = parse_qs(parts.query)
            limit = _int_param(query, "limitBytes")
            batches = container_log(pod, container, query, self._stopped)
            first = next(batches, b"")  # raises for a refused request before the status goes out
        except LogRequestError as exc:
            body = (str(exc) + "\n").encode()
            handler.send_response(exc.status)
            handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.end_headers()
        handler.wfile.flush()

        def chained() -> Iterator[bytes]:
            yield first
            yield from batches

        try:
            for batch in _limited(chained(), limit):
                if batch:
                    handler.wfile.write(batch)
                    handler.wfile.flush()
        except OSError:
            return  # the API server closed the stream (its client left, or a limit was reached)
        finally:
            batches.close()
