"""``gitsync app``: the wait decisions, the formatting and the HTTP client's limits.

The decisions and formatters are pure and table-tested. The client is tested against real HTTP
listeners on loopback (``http.server`` in a thread) that record what they receive: a redirect
must not carry the token anywhere, an oversized answer is cut off, and errors name the server
without the token.
"""

from __future__ import annotations

import argparse
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync.appcli import _cmd_wait
from gitsync.appclient import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    ApiClient,
    ClientError,
    WaitGoal,
    WaitState,
    format_detail,
    format_list,
    parse_duration,
    split_app,
    table,
    wait_decision,
)
from gitsync.cli import build_parser
from gitsync.localenv.pki import make_pki

SHA = "a" * 40
OLD = "b" * 40
TOKEN = "tok-" + "s3cr3t" * 4


def app_doc(
    sync: str = "Synced",
    health: str = "Healthy",
    revision: str = SHA,
    *,
    phase: str = "Succeeded",
    op_revision: str = SHA,
    stalled: bool = False,
    message: str = "",
) -> dict[str, Any]:
    return {
        "namespace": "team-a",
        "name": "web",
        "sync": {"status": sync, "revision": revision},
        "health": {"status": health, "message": message},
        "stalled": stalled,
        "operation": {"phase": phase, "revision": op_revision, "message": message},
        "conditions": [
            {"type": "Stalled", "status": "True", "reason": "SpecInvalid", "message": message}
        ]
        if stalled
        else [],
    }


@pytest.mark.parametrize(
    ("doc", "goal", "state", "reason"),
    [
        (app_doc(), WaitGoal(), WaitState.REACHED, "Synced and Healthy"),
        (app_doc(), WaitGoal(revision=SHA[:7]), WaitState.REACHED, "Synced"),
        # still the previous revision: wait, even though that one is Synced/Healthy
        (app_doc(revision=OLD, op_revision=OLD), WaitGoal(revision=SHA), WaitState.WAITING, "sync"),
        (app_doc("OutOfSync", "Healthy"), WaitGoal(), WaitState.WAITING, "sync OutOfSync"),
        (app_doc("OutOfSync", "Healthy"), WaitGoal(sync=False), WaitState.REACHED, "Healthy"),
        (app_doc("Synced", "Progressing"), WaitGoal(), WaitState.WAITING, "health Progressing"),
        (app_doc("Synced", "Progressing"), WaitGoal(health=False), WaitState.REACHED, "Synced"),
        (
            app_doc(health="Degraded", message="progress deadline exceeded"),
            WaitGoal(),
            WaitState.FAILED,
            "health Degraded: progress deadline exceeded",
        ),
        # the old revision's Degraded says nothing about the one waited for
        (
            app_doc(health="Degraded", revision=OLD, op_revision=OLD),
            WaitGoal(revision=SHA),
            WaitState.WAITING,
            "health Degraded",
        ),
        (app_doc(health="Degraded"), WaitGoal(health=False), WaitState.REACHED, "Synced"),
        (
            app_doc("OutOfSync", phase="Failed", message="apply refused"),
            WaitGoal(),
            WaitState.FAILED,
            "operation Failed: apply refused",
        ),
        (
            app_doc("OutOfSync", "Unknown", stalled=True, message="bad path"),
            WaitGoal(),
            WaitState.FAILED,
            "Stalled: SpecInvalid bad path",
        ),
        (app_doc(phase="Running"), WaitGoal(), WaitState.WAITING, "an operation is running"),
    ],
)
def test_wait_decision(doc: dict[str, Any], goal: WaitGoal, state: WaitState, reason: str) -> None:
    decision = wait_decision(doc, goal)
    assert decision.state is state
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("3s", 3), ("5m", 300), ("1h", 3600), ("1m30s", 90)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-3s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["web", "/web", "team-a/", "a/b/c", "Team/web"])
def test_split_app_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        split_app(text)


def test_table_cells_stay_on_one_line() -> None:
    out = table(["A", "B"], [["x\ny", None], ["long value", "z"]])
    assert out.splitlines() == ["A            B", "x y          -", "long value   z"]


def test_format_list_and_detail() -> None:
    item = {**app_doc(), "revision": {"short": SHA[:7]}, "lastSyncedAt": "2024-05-02T10:00:00Z"}
    lines = format_list([item], wide=False).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "SYNC", "HEALTH", "REVISION", "LAST", "SYNCED"]
    assert lines[1].split() == ["team-a", "web", "Synced", "Healthy", SHA[:7], item["lastSyncedAt"]]
    detail = {
        **item,
        "resources": [
            {
                "group": "apps",
                "kind": "Deployment",
                "namespace": "team-a",
                "name": "web",
                "status": "Synced",
                "health": {"status": "Degraded", "message": "deadline exceeded"},
                "lastResult": {"status": "Synced", "message": ""},
            }
        ],
    }
    out = format_detail(detail, wide=False)
    assert "Name:" in out and "team-a/web" in out
    assert "apps    Deployment   team-a      web    Synced   Degraded   deadline exceeded" in out


def wait_args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(
        app="team-a/web", sync=False, health=False, revision="", timeout=3.0, **kw
    )


class ScriptedApi:
    """Stands in for the client in the wait loop's unit tests: answers documents in order."""

    def __init__(self, *docs: dict[str, Any]):
        self.docs = list(docs)

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self.docs.pop(0) if len(self.docs) > 1 else self.docs[0]


def run_wait(api: ScriptedApi, **kw: Any) -> int:
    now = [0.0]
    return _cmd_wait(
        wait_args(**kw),
        api,  # type: ignore[arg-type]
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )


def test_wait_loop_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_wait(ScriptedApi(app_doc("OutOfSync"), app_doc())) == EXIT_OK
    assert run_wait(ScriptedApi(app_doc(health="Progressing"))) == EXIT_TIMEOUT
    assert "timed out after 3s waiting: health Progressing" in capsys.readouterr().err
    assert run_wait(ScriptedApi(app_doc(health="Degraded", message="x"))) == EXIT_FAILED
    assert "health Degraded: x" in capsys.readouterr().err


def test_every_flag_has_help() -> None:
    """Every option and argument of every command - ``serve`` above all - says what it does in
    ``--help``."""
    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif action.help in (None, "") and not isinstance(action, argparse._HelpAction):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "gitsync")
    assert missing == []


# -- the client against real HTTP listeners on loopback -----------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ``server.answer`` (status, headers, body) and records the request."""

    server: Any

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "headers": dict(self.headers)})
        status, headers, body = self.server.answer
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Any:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.seen = []  # type: ignore[attr-defined]
        server.answer = (status, headers or {}, body)  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def url_of(server: Any, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


def test_https_is_verified_with_the_ca_file(listener: Any, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki.serving_cert, pki.serving_key)
    api = url_of(listener(200, b'{"items": []}', tls=tls), "https")
    assert ApiClient(api, TOKEN, ca_file=str(pki.ca_cert)).get("/applications") == {"items": []}
    assert ApiClient(api, TOKEN, insecure_skip_tls_verify=True).get("/applications") == {
        "items": []
    }
    with pytest.raises(ClientError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        ApiClient(api, TOKEN).get("/applications")  # the system's CAs do not know the test CA
    assert TOKEN not in str(caught.value)


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(listener: Any) -> None:
    elsewhere = listener(200, b'{"items": []}')
    api = listener(302, b"", {"Location": url_of(elsewhere) + "/steal"})
    with pytest.raises(ClientError, match="redirect, not followed") as caught:
        ApiClient(url_of(api), TOKEN).get("/applications")
    assert elsewhere.seen == []
    assert api.seen[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(caught.value)


def test_an_oversized_answer_is_cut_off(listener: Any) -> None:
    api = listener(200, b'{"items": "' + b"x" * 5000 + b'"}')
    with pytest.raises(ClientError, match="larger than 4096 bytes"):
        ApiClient(url_of(api), TOKEN, max_bytes=4096).get("/applications")


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (401, "401 unauthenticated; not authenticated: set GITSYNC_TOKEN"),
        (403, "403 unauthenticated; forbidden: the token's role"),
        (404, "404 unauthenticated"),
    ],
)
def test_errors_name_the_server_not_the_token(listener: Any, status: int, text: str) -> None:
    api = listener(status, json.dumps({"error": "unauthenticated"}).encode())
    with pytest.raises(ClientError) as caught:
        ApiClient(url_of(api), TOKEN).get("/applications/team-a/web")
    message = str(caught.value)
    assert text in message
    assert f"GET {url_of(api)}/api/v1/applications/team-a/web" in message
    assert TOKEN not in message


def test_connection_refused_names_the_server() -> None:
    with pytest.raises(ClientError, match=r"127\.0\.0\.1:9/api/v1/applications: cannot reach"):
        ApiClient("http://127.0.0.1:9").get("/applications")


@pytest.mark.parametrize(
    ("server", "match"),
    [
        ("ftp://host", "http"),
        ("https://user:pw@host", "must not carry credentials"),
    ],
)
def test_bad_server_urls_are_refused(server: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ApiClient(server)


def test_tls_options_need_https() -> None:
    with pytest.raises(ValueError, match="need an https:// --server"):
        ApiClient("http://host", ca_file="/etc/ssl/ca.pem")
    with pytest.raises(ValueError, match="exclude each other"):
        ApiClient("https://host", ca_file="/ca.pem", insecure_skip_tls_verify=True)


def test_wait_takes_no_output_flag() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["app", "wait", "team-a/web", "-o", "json"])
