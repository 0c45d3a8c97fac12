"""Hardening (issue 8, items 10 and 15): the HTTP face of a real ``gitsync serve`` under abuse.

Whoever can reach the endpoint can send anything, so the HTTP server itself must hold: a 2 GB
chunked body is cut off near ``--webhook-max-bytes`` (not spooled whole) with the process's
memory unchanged; a client dripping header bytes (slow-loris) is disconnected at the
``--http-timeout`` deadline while other clients are served; a flood of deliveries with bad
signatures is refused 401 while probes and signed deliveries still get through. Each test talks
to the process over raw loopback sockets, as an attacker would. And (item 15) a password in an
Application's repository URL appears in no status, event, metric, log line, API answer or page.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import secrets
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.processes import free_port
from tests.support.apps import WEBHOOK_SECRET, app_status, application
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024  # --webhook-max-bytes (the default, given explicitly)
TWO_GIB = 2 * 1024**3
CHUNK = 256 * 1024
BODY = json.dumps(
    {
        "ref": "refs/heads/main",
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {"clone_url": "https://git.example.com/org/none.git"},
    }
).encode()


def github_headers(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + digest,
    }


def rss_bytes(ctl: ServeProcess) -> int:
    assert ctl.proc is not None
    for line in Path(f"/proc/{ctl.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def get_status(ctl: ServeProcess, path: str) -> int:
    with urllib.request.urlopen(ctl.url + path, timeout=30) as resp:
        return int(resp.status)


def post_status(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> int:
    conn.request("POST", "/api/webhook", body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def signed_delivery(ctl: ServeProcess) -> int:
    """A good delivery: signed, and a new one each time (the same body again is a replay)."""
    body = json.dumps({**json.loads(BODY), "after": secrets.token_hex(20)}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", ctl.port, timeout=30)
    try:
        return post_status(conn, body, github_headers(body))
    finally:
        conn.close()


def test_a_2gb_chunked_body_is_cut_off_at_the_limit_with_memory_bounded(serve: Any) -> None:
    ctl = serve(f"--webhook-max-bytes={LIMIT}")
    assert signed_delivery(ctl) == 202
    rss_before = rss_bytes(ctl)

    head = (
        "POST /api/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in github_headers(BODY).items())
        + "\r\n"
    ).encode()
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", ctl.port), timeout=60) as sock:
        sock.sendall(head)
        # Stream up to 2 GiB; stop as soon as the server answers or stops reading (reset).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < TWO_GIB:
                sock.sendall(chunk)
                sent += CHUNK
                if select.select([sock], [], [], 0)[0]:
                    break
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while part := sock.recv(65536):
                answer += part

    # The server stopped reading near the limit (what is in flight is the sockets' buffers),
    # not at waitress's default of 1 GiB, let alone 2 GiB.
    assert sent < 64 * 1024 * 1024, f"the server read {sent} bytes of a {LIMIT}-byte limit"
    # Answered 413, or (if the reset overtook the answer) closed without one.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:100]
    # Nothing of the body was kept: the serve process's memory did not grow by the body.
    assert rss_bytes(ctl) - rss_before < 32 * 1024 * 1024
    # ... and it serves on.
    assert get_status(ctl, "/healthz") == 200
    assert signed_delivery(ctl) == 202


def test_a_slow_loris_client_is_dropped_at_the_deadline_while_others_are_served(
    serve: Any,
) -> None:
    ctl = serve("--http-timeout=3")
    served_meanwhile: list[int] = []
    with socket.create_connection(("127.0.0.1", ctl.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
        started = time.monotonic()

        def dropped() -> bool:
            """Send one more header byte (a second apart, via wait_for); True once the server
            has closed the connection."""
            try:
                sock.sendall(b"a")
                if select.select([sock], [], [], 0)[0]:
                    return sock.recv(1024) == b""
            except (BrokenPipeError, ConnectionResetError):
                return True
            if not served_meanwhile:  # another client, while this one drips
                served_meanwhile.append(get_status(ctl, "/healthz"))
            return False

        wait_for(dropped, timeout=90, interval=1.0, what="the dripping client disconnected")
        dripped = time.monotonic() - started
    assert served_meanwhile == [200]
    # Functional, not a performance bound: it dripped past the 3 s deadline, and was not
    # dropped early for some other reason (a header-size limit would take days at this pace).
    assert dripped >= 3, dripped
    assert get_status(ctl, "/healthz") == 200


def test_a_flood_of_bad_signatures_is_refused_while_good_requests_are_served(
    serve: Any,
) -> None:
    ctl = serve()
    unauthorized_before = ctl.metric(
        "gitsync_webhook_requests_total", provider="github", result="unauthorized"
    )
    flooders, per_thread = 4, 750  # 3,000 deliveries, about 1,000/s where the machine allows
    bad_headers = github_headers(BODY, secret="not-" + WEBHOOK_SECRET)
    bad_statuses: list[list[int]] = [[] for _ in range(flooders)]
    good_statuses: list[int] = []
    flooding = threading.Event()
    done = threading.Event()
    start = threading.Barrier(flooders + 1)

    def flood(out: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ctl.port, timeout=60)
        start.wait()
        flooding.set()
        try:
            for _ in range(per_thread):
                out.append(post_status(conn, BODY, bad_headers))
        finally:
            conn.close()

    threads = [threading.Thread(target=flood, args=(out,)) for out in bad_statuses]
    for t in threads:
        t.start()

    def good_requests() -> None:
        start.wait()
        flooding.wait()
        while not done.is_set():
            good_statuses.append(get_status(ctl, "/healthz"))
            good_statuses.append(signed_delivery(ctl))

    good = threading.Thread(target=good_requests)
    good.start()
    for t in threads:
        t.join(timeout=300)
    done.set()
    good.join(timeout=60)
    elapsed_requests = sum(len(s) for s in bad_statuses)

    assert elapsed_requests == flooders * per_thread
    assert {s for out in bad_statuses for s in out} == {401}
    # Good requests were served during the flood, every one of them.
    assert len(good_statuses) >= 2
    assert set(good_statuses) <= {200, 202} and good_statuses.count(202) >= 1
    after = ctl.metric("gitsync_webhook_requests_total", provider="github", result="unauthorized")
    assert after - unauthorized_before == flooders * per_thread


def test_a_password_in_a_repo_url_shows_nowhere(
    serve: Any, kube: KubeClient, namespace: str
) -> None:
    """Item 15: an Application whose repoURL carries a password, to a port nothing listens on.
    The failure is reported everywhere it should be - with the password in none of them."""
    password = "S3CRET" + secrets.token_hex(4)
    port = free_port()  # closed: the clone fails at once
    ctl = serve("--anonymous-read")
    kube.create(application("leak", namespace, f"https://user:{password}@127.0.0.1:{port}/x.git"))

    def failure_reported() -> str | None:
        conds = app_status(kube, namespace, "leak").get("conditions") or []
        messages = [str(c.get("message", "")) for c in conds if c.get("status") == "True"]
        return next((m for m in messages if f"127.0.0.1:{port}" in m), None)

    message = wait_for(failure_reported, timeout=60, what="the fetch failure in status")
    assert "user:***@" in message or "***" in message or "user@" in message, message
    base = f"/apps/{namespace}/leak"
    api = f"/api/v1/applications/{namespace}/leak"
    pages = ["/", base, base + "/diff", "/api/v1/applications", api, api + "/diff", "/metrics"]
    shown = {path: _read(ctl, path) for path in pages}
    assert f"127.0.0.1:{port}" in shown[api], "the API does not show the Application's URL"
    # (A fetch failure records no Event today; whatever Events there are are checked too.)
    events = kube.list("v1", "Event", namespace)["items"]
    places = {
        **shown,
        "status": json.dumps(
            kube.get("gitsync.dev/v1alpha1", "Application", "leak", namespace)["status"]
        ),
        "events": json.dumps(events),
        "log": ctl.log(100_000),
    }
    leaked = [where for where, text in places.items() if password in text]
    assert not leaked, f"the password shows in: {leaked}"


def _read(ctl: ServeProcess, path: str) -> str:
    """The body at ``path``, error answers included (the diff of an app that cannot be fetched
    is an error, and its text counts too)."""
    try:
        with urllib.request.urlopen(ctl.url + path, timeout=30) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())
