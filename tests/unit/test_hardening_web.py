"""Hardening (issue 8, items 10, 14 and 17) at the unit level: the pieces an attacker reaches
first, exercised directly and quickly.

* 10 - ``gitsync.web.server``, the waitress server ``gitsync serve`` runs, on loopback in-process:
  a request must arrive whole within the deadline (slow-loris), yet a well-behaved keep-alive
  client is never cut off, and a chunked body is refused at the size limit. The same server as a
  real ``gitsync serve`` process: tests/integration/test_hardening_web_it.py.
* 11 - webhook bodies nested 10,000 deep are refused by a linear scan before the JSON decoder
  recurses, for every provider (the other malformed payloads: tests/unit/test_webhook.py).
* 12 - bearer tokens are opaque and compared whole: JWT-shaped forgeries (``alg: none``,
  expired, another audience) are refused like any wrong token.
* 14 - ``ignoreDifferences`` expressions: gitsync takes JSON pointers only (bounded: at most 1024
  characters, walked token by token); jq expressions, which can loop forever or allocate without
  bound, are refused when the spec is read, naming the field. Analysis conditions (CEL) are
  bounded by construction: tests/unit/test_rollout_analysis_core.py.
* 17 - a revision or URL shaped like an option or a shell command reaches git as an argument,
  never as an option or through a shell: with a real local repository, no command runs. A
  remote cluster's kubeconfig that would run a program (``exec``, ``auth-provider``) is refused
  unless ``--allow-exec-credentials`` (through a real second cluster:
  tests/integration/test_controller_clusters.py).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_web_support import API_TOKEN, FakeController, application, make_app
from test_webhook import PUSH_HEADERS

from gitsync.application import SpecError, parse_application
from gitsync.controller.clusters import ClusterError, check_kubeconfig
from gitsync.errors import TerminalError
from gitsync.source import GitInvalidURLError, GitSourceError, clone, ls_remote
from gitsync.web.server import DeadlineServer, create_server
from gitsync.webhook import MAX_DEPTH, WebhookPayloadError, parse_push

# -- 10: the HTTP server ---------------------------------------------------------------------


def _ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


@pytest.fixture
def server() -> Iterator[DeadlineServer]:
    srv = create_server(_ok, host="127.0.0.1", port=0, max_body_bytes=64 * 1024, timeout=2)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield srv
    srv.close()
    thread.join(10)


def _get(port: int, conn: http.client.HTTPConnection | None = None) -> int:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/")
        resp = c.getresponse()
        resp.read()
        return resp.status
    finally:
        if conn is None:
            c.close()


def test_a_request_dripping_past_the_deadline_is_dropped_others_are_served(
    server: DeadlineServer,
) -> None:
    port = server.effective_port
    others: list[int] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 30:
            try:
                sock.sendall(b"a")  # one header byte at a time: never idle
                readable = select.select([sock], [], [], 0.5)[0]
                closed = bool(readable) and sock.recv(1024) == b""
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if not closed:
                others.append(_get(port))
        dripped = time.monotonic() - started
    assert closed, "the dripping client was never disconnected"
    assert dripped >= 2, dripped  # the deadline, not something else
    assert others and set(others) == {200}


def test_a_keep_alive_client_making_requests_is_not_cut_off(server: DeadlineServer) -> None:
    # Requests on one connection, over three times the 2 s deadline, with pauses shorter than
    # the idle timeout in between (so the server's checks run between requests too): each
    # request is measured on its own, so the connection stays.
    conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=10)
    conn.connect()
    sock = conn.sock
    statuses = []
    started = time.monotonic()
    while time.monotonic() - started < 6:
        statuses.append(_get(server.effective_port, conn))
        time.sleep(1.2)
    assert conn.sock is sock, "the connection was replaced"
    assert set(statuses) == {200}
    conn.close()


def test_a_chunked_body_over_the_limit_is_refused_at_the_limit(server: DeadlineServer) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        while sent < 512 * 1024 * 1024:
            sent += 16 * 1024
            yield b"x" * (16 * 1024)

    conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", "/", body=chunks(), encode_chunked=True)
        try:
            status = conn.getresponse().status
        except (ConnectionResetError, http.client.RemoteDisconnected):
            status = 0  # closed before the answer could be read: also a refusal
    finally:
        conn.close()
    assert status in (413, 0)
    assert sent < 64 * 1024 * 1024  # cut off near 64 KiB (plus socket buffers), not 512 MiB
    assert _get(server.effective_port) == 200
    assert sent > 0


# -- 11: nesting is refused before the JSON decoder recurses ------------------------------------


@pytest.mark.parametrize("provider", sorted(PUSH_HEADERS))
@pytest.mark.parametrize("depth", [65, 10_000])
def test_deep_nesting_is_refused_by_the_linear_scan_for_every_provider(
    provider: str, depth: int
) -> None:
    # 65 levels would decode fine; 10,000 would cost the decoder a RecursionError. Both are
    # refused by the bracket scan, before json.loads runs, with the same message.
    body = b'{"repository": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(WebhookPayloadError, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse_push(PUSH_HEADERS[provider], body)


# -- 12: tokens are opaque, so JWT tricks have nothing to work on ------------------------------


def _jwt(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(claims)}.{signature}"


@pytest.mark.parametrize(
    "token",
    [
        _jwt({"alg": "none", "typ": "JWT"}, {"sub": "admin", "role": "admin"}),
        _jwt({"alg": "HS256"}, {"sub": "admin", "exp": 1}, "c2lnbmF0dXJl"),  # expired
        _jwt({"alg": "HS256"}, {"sub": "admin", "aud": "someone-else"}, "c2ln"),
        API_TOKEN + ".",  # the real token with something appended
        API_TOKEN[:-1],
    ],
    ids=["alg-none", "expired", "wrong-audience", "token-suffix", "token-prefix"],
)
def test_forged_and_jwt_shaped_bearer_tokens_are_refused(token: str) -> None:
    # Bearer tokens are compared whole (by SHA-256) with the configured ones; nothing in a token
    # is decoded or trusted, so a JWT with alg "none" is just another wrong token.
    client = make_app(FakeController(objs=[application("web")])).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/applications", headers=headers).status_code == 401
    action = client.post("/api/v1/applications/team-a/web/sync", json={}, headers=headers)
    assert action.status_code == 401
    good = {"Authorization": f"Bearer {API_TOKEN}"}
    assert client.get("/api/v1/applications", headers=good).status_code == 200


# -- 14: ignoreDifferences expressions ---------------------------------------------------------

APP: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "web", "namespace": "gitsync"},
    "spec": {
        "source": {"repoURL": "https://git.example.com/x.git", "path": "app"},
        "destination": {"namespace": "web"},
    },
}


def _with_ignore(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {**APP, "spec": {**APP["spec"], "ignoreDifferences": rules}}


@pytest.mark.parametrize(
    "expression",
    [
        "def f: f; f",  # never terminates
        "[range(1e18)]",  # allocates without bound
        "[recurse(.[]?; true)]",
        ".. |= .",
    ],
)
def test_jq_expressions_are_refused_when_the_spec_is_read(expression: str) -> None:
    doc = _with_ignore([{"kind": "Deployment", "jqPathExpressions": [expression]}])
    with pytest.raises(SpecError) as caught:
        parse_application(doc)
    assert caught.value.field == "spec.ignoreDifferences[0].jqPathExpressions"
    assert "unknown field" in str(caught.value)


def test_json_pointers_are_bounded_in_length() -> None:
    doc = _with_ignore([{"jsonPointers": ["/a" * 600]}])
    with pytest.raises(SpecError, match=r"ignoreDifferences\[0\]\.jsonPointers\[0\]"):
        parse_application(doc)
    assert parse_application(_with_ignore([{"jsonPointers": ["/a" * 512]}]))


# -- 17: options and commands in revisions and URLs --------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> str:
    work = tmp_path / "origin"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "cm.yaml").write_text("a: 1\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return f"file://{work}"


def _injections(marker: Path) -> list[str]:
    # No spaces (refused outright): ${IFS} is what a shell would turn into one.
    touch = "touch${IFS}" + str(marker)
    return [
        f"--upload-pack={touch}",
        f"-cprotocol.allow=always${{IFS}}--upload-pack={touch}",
        f"main;{touch}",
        f"main$({touch})",
        f"main`{touch}`",
        f"main|{touch}",
        f"main&&{touch}",
    ]


def test_revisions_shaped_like_options_or_commands_run_nothing(repo: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for i, revision in enumerate(_injections(marker)):
        with pytest.raises(GitSourceError) as caught:
            clone(repo, tmp_path / f"checkout-{i}", revision=revision, allow_local=True)
        assert not marker.exists(), f"{revision!r} ran a command"
        assert isinstance(caught.value, TerminalError), (revision, caught.value)
    # The same repository and a plain revision: the refusals above were about the revision.
    assert len(clone(repo, tmp_path / "good", revision="main", allow_local=True)) == 40


@pytest.mark.parametrize(
    "template",
    [
        "ssh://-oProxyCommand=touch${{IFS}}{m}/x.git",
        "ssh://-oProxyCommand=touch${{IFS}}{m}@example.com/x.git",
        "-oProxyCommand=touch${{IFS}}{m}",
        "git@-oProxyCommand=touch${{IFS}}{m}:x.git",
        "ext::touch${{IFS}}{m}",
    ],
)
def test_ssh_proxy_commands_in_urls_run_nothing(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(GitInvalidURLError):
        ls_remote(template.format(m=marker))
    assert not marker.exists()


KUBECONFIG: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "remote", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "u"}}],
    "current-context": "remote",
}


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "sh"}},
        {"auth-provider": {"name": "gcp", "config": {"cmd-path": "sh"}}},
    ],
    ids=["exec", "auth-provider"],
)
def test_a_remote_kubeconfig_running_a_program_is_refused_unless_allowed(
    user: dict[str, Any],
) -> None:
    doc = {
        **KUBECONFIG,
        "users": [{"name": "u", "user": {"token": "t"}}, {"name": "x", "user": user}],
    }
    with pytest.raises(ClusterError, match="refused") as caught:
        check_kubeconfig(doc, allow_exec=False)
    assert isinstance(caught.value, TerminalError)
    assert check_kubeconfig(doc, allow_exec=True) is doc
