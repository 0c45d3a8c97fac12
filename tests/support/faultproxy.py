"""A loopback HTTPS proxy in front of the test API server that can fail on purpose.

Why a proxy and not the API server itself: the control plane is shared by the whole test session,
so stopping kube-apiserver or teaching it to fail would break every other test. The controller
under test is given a kubeconfig that points here instead (``write_kubeconfig``); everything else
keeps talking to the real server.

Shape: TLS is terminated with the control plane's own serving certificate (its SANs include
127.0.0.1 and the kubeconfig's CA signs it, so the controller verifies it exactly as it verifies
the real server), each request is read, and then either answered with an injected fault or sent on
to the real API server over a fresh verified TLS connection. The bearer token travels in the
request's own ``Authorization`` header; the proxy never reads or stores it. Every exchange is
``Connection: close`` on both sides, so a response - a watch stream included - simply ends when
the upstream closes, and no HTTP framing has to be understood beyond the request head and its
``Content-Length`` body.

Faults:

* ``set_down(True)`` is an outage: the listening socket is closed (new connections are refused)
  and every open connection, watches and requests in flight included, is cut. ``outage_on``
  starts one from the request that matches a predicate (e.g. the first real apply of a sync), for
  a fixed time, so a test can stop the API "mid-sync" without guessing at timing.
* ``hold`` keeps the matching requests waiting until the test releases them (a slow list under
  load, made certain: e.g. the first list of a namespace's Events), then forwards them.
* ``inject`` answers a seeded fraction of the matching requests (writes by default) with 409,
  429 (with ``Retry-After``) or 500 as a Kubernetes ``Status``. With ``lost_answers`` a 500 is
  sent *after* forwarding the request - the write happened, the client was told it failed - which
  is what a dropped response looks like to a client.

Stdlib only, one daemon thread per connection, loopback only; ``stop()`` closes everything.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import yaml

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_HEAD = 64 * 1024
_REASONS = {403: "Forbidden", 409: "Conflict", 429: "TooManyRequests", 500: "InternalError"}


@dataclass(frozen=True)
class ProxiedRequest:
    """What a fault predicate sees of one request."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names

    @property
    def dry_run(self) -> bool:
        return "dryRun=" in self.path


@dataclass
class _Injection:
    fraction: float
    statuses: tuple[int, ...]
    match: Callable[[ProxiedRequest], bool]
    lost_answers: bool
    rng: random.Random
    times: int | None


@dataclass
class FaultProxy:
    """Proxy ``upstream`` (``https://127.0.0.1:<port>``) on a loopback port."""

    upstream: str
    serving_cert: Path
    serving_key: Path
    ca_cert: Path
    port: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    """``forwarded``, ``injected-<code>``, ``lost-<code>``, ``cut``, ``outages``."""
    requests: list[tuple[float, str, str, str]] = field(default_factory=list)
    """``(monotonic time, method, path, outcome)`` per request; outcome ``forward``, ``outage``,
    ``injected-<code>`` or ``lost-<code>``."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _listener: socket.socket | None = field(default=None, repr=False)
    _open: set[socket.socket] = field(default_factory=set, repr=False)
    _injection: _Injection | None = field(default=None, repr=False)
    _outage: tuple[Callable[[ProxiedRequest], bool], float] | None = field(default=None, repr=False)
    _hold: tuple[Callable[[ProxiedRequest], bool], threading.Event, float] | None = field(
        default=None, repr=False
    )
    _stopped: bool = field(default=False, repr=False)
    outage_started: threading.Event = field(default_factory=threading.Event, repr=False)
    outage_ended: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the fault proxy only fronts a loopback API server, not {parts!r}")
        self._up_addr = (parts.hostname, int(parts.port or 443))
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(str(self.serving_cert), str(self.serving_key))
        self._server_tls.set_alpn_protocols(["http/1.1"])
        self._client_tls = ssl.create_default_context(cafile=str(self.ca_cert))
        self._client_tls.set_alpn_protocols(["http/1.1"])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listen()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self.set_down(True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def write_kubeconfig(self, source: Path, target: Path) -> Path:
        """A copy of ``source`` whose clusters all point at this proxy (same CA, same user)."""
        doc = yaml.safe_load(source.read_text())
        for cluster in doc.get("clusters") or []:
            cluster["cluster"]["server"] = self.url
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        target.chmod(0o600)
        return target

    # -- faults -------------------------------------------------------------------------------

    def set_down(self, down: bool) -> None:
        """Down: refuse new connections and cut every open one. Up: listen again, same port."""
        if not down:
            self._listen()
            return
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._open = set(self._open), set()
        if listener is not None:
            _cut(listener)  # shutdown() first: close() alone leaves a blocked accept() running
        for conn in conns:
            _cut(conn)
        with self._lock:
            self.counts["cut"] += len(conns)

    def outage_on(self, match: Callable[[ProxiedRequest], bool], seconds: float) -> None:
        """Go down for ``seconds`` at the first request matching ``match`` (which fails)."""
        self.outage_started.clear()
        self.outage_ended.clear()
        with self._lock:
            self._outage = (match, seconds)

    def hold(
        self, match: Callable[[ProxiedRequest], bool], release: threading.Event, limit: float = 120
    ) -> None:
        """Keep each request matching ``match`` waiting until ``release`` is set (at most
        ``limit`` seconds), then forward it as usual."""
        with self._lock:
            self._hold = (match, release, limit)

    def inject(
        self,
        fraction: float,
        *,
        seed: int = 0,
        statuses: tuple[int, ...] = (409, 429, 500),
        match: Callable[[ProxiedRequest], bool] | None = None,
        lost_answers: bool = False,
        times: int | None = None,
    ) -> None:
        """Fail ``fraction`` of the matching requests (default: writes), seeded; with ``times``,
        only that many, then forward everything again."""
        chosen = match or (lambda r: r.method in WRITE_METHODS)
        with self._lock:
            self._injection = _Injection(
                fraction,
                statuses,
                chosen,
                lost_answers,
                random.Random(seed),
                times,
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._injection = None
            self._outage = None
            self._hold = None

    # -- plumbing -----------------------------------------------------------------------------

    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None or self._stopped:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(128)
            self.port = int(sock.getsockname()[1])
            self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by set_down/stop
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._listener is None:
                return False  # went down meanwhile
            self._open.add(sock)
            return True

    def _retrack(self, old: socket.socket, new: socket.socket) -> bool:
        """``wrap_socket`` detaches ``old``: from now on cutting means cutting ``new``."""
        with self._lock:
            self._open.discard(old)
            if self._listener is None:
                return False
            self._open.add(new)
            return True

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self, raw: socket.socket) -> None:
        if not self._track(raw):
            _cut(raw)
            return
        upstream: socket.socket | None = None
        client: socket.socket = raw
        try:
            raw.settimeout(60)
            client = self._server_tls.wrap_socket(raw, server_side=True)
            if not self._retrack(raw, client):
                return
            head, body = _read_request(client)
            request = _parse_head(head)
            if self._start_outage(request):
                self._note(request, "outage")
                return
            with self._lock:
                hold = self._hold
            if hold is not None and hold[0](request):
                self._note(request, "held")
                hold[1].wait(hold[2])
            fault = self._pick_fault(request)
            self._note(
                request, f"{'lost' if fault[1] else 'injected'}-{fault[0]}" if fault else "forward"
            )
            if fault and not fault[1]:
                client.sendall(_status_response(fault[0]))
                return
            upstream = self._connect()
            if upstream is None:
                return
            upstream.sendall(_close_after(head) + body)
            if fault:
                _drain(upstream)
                client.sendall(_status_response(fault[0]))
                return
            self._relay(upstream, client)
            with self._lock:
                self.counts["forwarded"] += 1
        except (OSError, ValueError):
            pass  # a cut, a client that went away, or a request this proxy does not speak
        finally:
            self._untrack(raw, client, *([upstream] if upstream is not None else []))

    def _note(self, request: ProxiedRequest, outcome: str) -> None:
        with self._lock:
            self.requests.append((time.monotonic(), request.method, request.path, outcome))

    def _start_outage(self, request: ProxiedRequest) -> bool:
        with self._lock:
            outage = self._outage
            if outage is None or not outage[0](request):
                return False
            self._outage = None
            self.counts["outages"] += 1
        self.set_down(True)
        self.outage_started.set()

        def back_up() -> None:
            time.sleep(outage[1])
            self.set_down(False)
            self.outage_ended.set()

        threading.Thread(target=back_up, daemon=True).start()
        return True

    def _pick_fault(self, request: ProxiedRequest) -> tuple[int, bool] | None:
        """``(status, after_forwarding)`` or None."""
        with self._lock:
            inj = self._injection
            if inj is None or not inj.match(request) or inj.rng.random() >= inj.fraction:
                return None
            if inj.times is not None:
                if inj.times <= 0:
                    return None
                inj.times -= 1
            status = inj.rng.choice(inj.statuses)
            lost = inj.lost_answers and status >= 500
            self.counts[f"{'lost' if lost else 'injected'}-{status}"] += 1
            return status, lost

    def _connect(self) -> socket.socket | None:
        raw = socket.create_connection(self._up_addr, timeout=30)
        if not self._track(raw):
            _cut(raw)
            return None
        try:
            tls = self._client_tls.wrap_socket(raw, server_hostname=self._up_addr[0])
        except BaseException:
            self._untrack(raw)
            raise
        if not self._retrack(raw, tls):
            _cut(tls)
            return None
        tls.settimeout(None)  # a watch may be silent for minutes; cuts end it, not timeouts
        return tls

    @staticmethod
    def _relay(upstream: socket.socket, client: socket.socket) -> None:
        """Copy the response (head rewritten to ``Connection: close``) until upstream closes."""
        assert isinstance(upstream, ssl.SSLSocket)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = upstream.recv(65536)
            if not chunk:
                return
            head += chunk
            if len(head) > _MAX_HEAD:
                raise ValueError("response head too large")
        first, rest = head.split(b"\r\n\r\n", 1)
        client.sendall(_close_after(first + b"\r\n\r\n") + rest)
        client.setblocking(True)
        while True:
            if not upstream.pending():
                ready, _, _ = select.select([upstream, client], [], [], 5.0)
                if client in ready:
                    return  # the client hung up (or spoke out of turn): end the exchange
                if upstream not in ready:
                    continue
            chunk = upstream.recv(65536)
            if not chunk:
                return
            client.sendall(chunk)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _read_request(client: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            raise ValueError("client closed before a full request head")
        data += chunk
        if len(data) > _MAX_HEAD:
            raise ValueError("request head too large")
    head, body = data.split(b"\r\n\r\n", 1)
    head += b"\r\n\r\n"
    headers = _parse_head(head).headers
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ValueError("chunked request bodies are not supported")
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = client.recv(min(65536, length - len(body)))
        if not chunk:
            raise ValueError("client closed mid-body")
        body += chunk
    return head, body


def _parse_head(head: bytes) -> ProxiedRequest:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return ProxiedRequest(method, path, headers)


def _close_after(head: bytes) -> bytes:
    """``head`` with any Connection/Keep-Alive header replaced by ``Connection: close``."""
    lines = head.split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if line and not line.lower().startswith((b"connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""])


def _drain(upstream: socket.socket) -> None:
    while upstream.recv(65536):
        pass


def _status_response(code: int) -> bytes:
    reason = _REASONS.get(code, "InternalError")
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"injected by the test fault proxy ({code})",
            "reason": reason,
            "code": code,
        }
    ).encode()
    extra = "Retry-After: 1\r\n" if code == 429 else ""
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + body
