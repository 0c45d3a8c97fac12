"""The live update hub (``gitsync.web.live``): one encoding per event whatever the audience, a
per-subscriber queue that coalesces by app and stays bounded, the subscriber cap, the per-principal
filter, the stream's lifetime and heartbeat - and the two endpoints behind the guard."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from gitsync.web import AuthSettings, create_app
from gitsync.web.auth import Method, Principal, Role, Via, global_grant
from gitsync.web.live import HubFull, LiveHub, Subscription
from gitsync.web.rbac import Authorizer, Grant
from gitsync.web.view import AppKey
from tests.unit.test_web_support import (
    ADMIN_PASSWORD,
    API_TOKEN,
    FakeController,
    application,
    bearer,
)

ALICE = Principal("alice", Via.BEARER, Method.STATIC_TOKEN, global_grant(Role.VIEWER))
BOB = Principal("bob", Via.BEARER, Method.STATIC_TOKEN, global_grant(Role.VIEWER))
WEB: AppKey = ("team-a", "web")
API: AppKey = ("team-a", "api")


def events(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE message in ``frames``."""
    out = []
    for message in b"".join(frames).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def revision_of(data: dict[str, Any]) -> str:
    return str(data["revision"]["sha"])


def test_an_event_is_encoded_once_for_any_number_of_subscribers() -> None:
    hub = LiveHub(background=False)
    lists = [hub.subscribe(ALICE) for _ in range(50)]
    pages = [hub.subscribe(ALICE, WEB) for _ in range(50)]
    hub.publish("MODIFIED", WEB, application("web", sha="a" * 40))
    hub.deliver()
    assert hub.serializations == 2  # the list row and the page document, once each
    for subscription in lists + pages:
        [(name, data)] = events(subscription.next(0))
        assert name == "app" and revision_of(data) == "a" * 40
    hub.publish("MODIFIED", API, application("api"))
    hub.deliver()
    assert hub.serializations == 3  # nobody follows api's page: only its row is encoded


def test_a_burst_is_encoded_once_per_app_off_the_watch_thread() -> None:
    hub = LiveHub(background=False)
    subscription = hub.subscribe(ALICE)
    for i in range(50):  # what the watch thread does: note the event, nothing more
        hub.publish("MODIFIED", WEB, application("web", sha=f"{i:040d}"))
    assert hub.serializations == 0
    hub.deliver()  # the hub's thread: the latest state, encoded once
    assert hub.serializations == 1 and hub.merged == 49
    [(_, data)] = events(subscription.next(0))
    assert revision_of(data) == f"{49:040d}"


def test_the_hub_thread_delivers_without_being_asked() -> None:
    hub = LiveHub()
    subscription = hub.subscribe(ALICE)
    hub.publish("MODIFIED", WEB, application("web"))
    assert [name for name, _ in events(subscription.next(timeout=30))] == ["app"]


def test_nothing_is_encoded_without_subscribers() -> None:
    hub = LiveHub(background=False)
    hub.publish("MODIFIED", WEB, application("web"))
    hub.deliver()
    assert hub.serializations == 0 and hub.published == 1


def test_page_streams_get_the_document_and_only_their_app() -> None:
    hub = LiveHub(background=False)
    page = hub.subscribe(ALICE, WEB)
    hub.publish("MODIFIED", API, application("api"))
    hub.publish("MODIFIED", WEB, application("web"))
    hub.deliver()
    [(name, data)] = events(page.next(0))
    assert name == "app" and data["name"] == "web"
    assert "history" in data and "resources" in data  # the app page's document, not a row


def test_a_slow_subscriber_gets_the_latest_state_of_each_app_not_a_backlog() -> None:
    hub = LiveHub(background=False)
    slow = hub.subscribe(ALICE)
    for i in range(200):
        hub.publish("MODIFIED", WEB, application("web", sha=f"{i:040d}"))
        hub.publish("MODIFIED", API, application("api", sha=f"{i:040d}"))
        hub.deliver()
    assert slow.pending == 2
    assert slow.coalesced == 398
    got = events(slow.next(0))
    assert [(d["name"], revision_of(d)) for _, d in got] == [
        ("web", f"{199:040d}"),
        ("api", f"{199:040d}"),
    ]


def test_an_overflowing_queue_is_dropped_and_the_client_told_to_resync() -> None:
    hub = LiveHub(background=False, max_pending=3)
    slow = hub.subscribe(ALICE)
    for i in range(10):
        hub.publish("MODIFIED", (f"ns{i}", "app"), application("app", f"ns{i}"))
        hub.deliver()
    assert slow.pending <= 3
    names = [name for name, _ in events(slow.next(0))]
    assert names[0] == "resync" and len(names) <= 4


def test_the_subscriber_cap_refuses_the_next_stream_until_one_closes() -> None:
    hub = LiveHub(background=False, max_subscribers=2)
    first = hub.subscribe(ALICE)
    hub.subscribe(ALICE, WEB)
    with pytest.raises(HubFull):
        hub.subscribe(BOB)
    first.close()
    assert hub.subscribers == 1
    hub.subscribe(BOB)


def test_each_subscriber_sees_only_what_the_visibility_function_allows() -> None:
    hub = LiveHub(
        background=False, visible=lambda principal, key: principal.name == "alice" or key != WEB
    )
    alice, bob = hub.subscribe(ALICE), hub.subscribe(BOB)
    hub.publish("MODIFIED", WEB, application("web"))
    hub.publish("MODIFIED", API, application("api"))
    hub.deliver()
    assert [d["name"] for _, d in events(alice.next(0))] == ["web", "api"]
    assert [d["name"] for _, d in events(bob.next(0))] == ["api"]


def test_a_failing_visibility_function_hides_the_app() -> None:
    def broken(principal: Principal, key: AppKey) -> bool:
        raise RuntimeError("role lookup failed")

    hub = LiveHub(background=False, visible=broken)
    subscription = hub.subscribe(ALICE)
    hub.publish("MODIFIED", WEB, application("web"))
    hub.deliver()
    assert subscription.next(0) == []


def test_a_deleted_app_is_an_event_for_the_list_and_its_page() -> None:
    hub = LiveHub(background=False)
    row, page = hub.subscribe(ALICE), hub.subscribe(ALICE, WEB)
    hub.publish("DELETED", WEB, None)
    hub.deliver()
    for subscription in (row, page):
        assert events(subscription.next(0)) == [("deleted", {"namespace": "team-a", "name": "web"})]


def test_the_stream_sends_heartbeats_and_ends_after_its_lifetime() -> None:
    now = [0.0]
    hub = LiveHub(background=False, max_lifetime=60, heartbeat=0.01, clock=lambda: now[0])
    subscription = hub.subscribe(ALICE)
    body = hub.stream(subscription, first=b"event: app\ndata: {}\n\n")
    assert next(body).startswith(b"retry: ")
    assert next(body) == b": heartbeat\n\n"  # nothing happened within the heartbeat
    hub.publish("MODIFIED", WEB, application("web"))
    hub.deliver()
    assert [name for name, _ in events([next(body)])] == ["app"]
    now[0] = 61
    assert [name for name, _ in events([next(body)])] == ["reconnect"]
    with pytest.raises(StopIteration):
        next(body)
    assert hub.subscribers == 0  # the stream's end unsubscribed it


def test_closing_the_stream_unsubscribes() -> None:
    hub = LiveHub(background=False)
    subscription: Subscription = hub.subscribe(ALICE)
    body = hub.stream(subscription)
    next(body)
    body.close()  # what the server does when the client goes away
    assert hub.subscribers == 0


# -- the endpoints -----------------------------------------------------------------------------


def live_app(hub: LiveHub, controller: FakeController) -> Flask:
    app = create_app(
        controller,
        metrics_exposition=lambda: b"",
        webhook_secrets=lambda provider: [],
        auth=AuthSettings.build(admin_password=ADMIN_PASSWORD, api_tokens=[API_TOKEN]),
        live=hub,
    )
    app.testing = True
    return app


def test_the_streams_need_credentials() -> None:
    client = live_app(LiveHub(background=False), FakeController([application("web")])).test_client()
    assert client.get("/api/v1/stream").status_code == 401
    assert client.get("/api/v1/applications/team-a/web/stream").status_code == 401


def test_the_app_stream_starts_with_the_document_and_follows_updates() -> None:
    hub = LiveHub(background=False)
    client = live_app(hub, FakeController([application("web", sha="a" * 40)])).test_client()
    response = client.get(
        "/api/v1/applications/team-a/web/stream", headers=bearer(API_TOKEN), buffered=False
    )
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    chunks = iter(response.response)
    [(name, data)] = events([next(chunks)])
    assert name == "app" and revision_of(data) == "a" * 40
    hub.publish("MODIFIED", WEB, application("web", sha="b" * 40))
    hub.deliver()
    [(name, data)] = events([next(chunks)])
    assert revision_of(data) == "b" * 40
    response.close()
    assert hub.subscribers == 0


def test_an_unknown_app_has_no_stream() -> None:
    hub = LiveHub(background=False)
    client = live_app(hub, FakeController([application("web")])).test_client()
    response = client.get("/api/v1/applications/team-a/nope/stream", headers=bearer(API_TOKEN))
    assert response.status_code == 404
    assert hub.subscribers == 0


def test_beyond_the_cap_a_stream_is_answered_503() -> None:
    hub = LiveHub(background=False, max_subscribers=1)
    client = live_app(hub, FakeController([application("web")])).test_client()
    first = client.get("/api/v1/stream", headers=bearer(API_TOKEN), buffered=False)
    assert first.status_code == 200
    refused = client.get("/api/v1/stream", headers=bearer(API_TOKEN))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"
    assert "1 live update streams are open" in refused.get_json()["error"]
    first.close()
    again = client.get("/api/v1/stream", headers=bearer(API_TOKEN), buffered=False)
    assert again.status_code == 200
    again.close()


def test_pages_name_their_stream_only_when_there_is_one() -> None:
    controller = FakeController([application("web")])
    with_live = live_app(LiveHub(background=False), controller).test_client()
    page = with_live.get("/apps/team-a/web", headers=bearer(API_TOKEN)).get_data(as_text=True)
    assert 'data-stream="/api/v1/applications/team-a/web/stream"' in page
    listing = with_live.get("/", headers=bearer(API_TOKEN)).get_data(as_text=True)
    assert 'data-stream="/api/v1/stream"' in listing
    without = create_app(
        controller,
        metrics_exposition=lambda: b"",
        webhook_secrets=lambda provider: [],
        auth=AuthSettings.build(api_tokens=[API_TOKEN]),
    ).test_client()
    assert "data-stream" not in without.get("/", headers=bearer(API_TOKEN)).get_data(as_text=True)
    assert without.get("/api/v1/stream", headers=bearer(API_TOKEN)).status_code == 404


def test_the_hub_reports_its_figures_to_prometheus() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    hub = LiveHub(background=False)
    registry = CollectorRegistry()
    registry.register(hub)
    slow = hub.subscribe(ALICE)
    for sha in ("a", "b", "c"):
        hub.publish("MODIFIED", WEB, application("web", sha=sha * 40))
        hub.deliver()
    text = generate_latest(registry).decode()
    assert "gitsync_ui_streams 1.0" in text
    assert "gitsync_ui_stream_pending_updates 1.0" in text
    assert "gitsync_ui_stream_coalesced_total 2.0" in text
    assert "gitsync_ui_stream_encoded_frames_total 3.0" in text
    slow.close()


# -- the server: a response still being written after max_service is cut -----------------------


def test_a_client_that_never_reads_is_cut_off_after_max_service() -> None:
    import socket
    import threading

    from gitsync.web.server import create_server

    ended = threading.Event()

    def endless(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def body() -> Any:
            try:
                while True:
                    yield b"data: " + b"x" * 65536 + b"\n\n"
            finally:
                ended.set()  # the worker thread is free again

        return body()

    server = create_server(
        endless, host="127.0.0.1", port=0, max_body_bytes=1024, timeout=1, max_service=2
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", int(server.effective_port)))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
            assert ended.wait(30), "the stuck response still holds its worker"
    finally:
        server.close()
        thread.join(10)


# -- the serve flags ---------------------------------------------------------------------------


def test_the_serve_flags_make_the_hub_or_none() -> None:
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from gitsync.cli import _live_hub, build_parser

    def controller() -> Any:
        return SimpleNamespace(
            application_listeners=[], metrics=SimpleNamespace(registry=CollectorRegistry())
        )

    def parse(*argv: str) -> Any:
        return build_parser().parse_args(["serve", *argv])

    ctl = controller()
    hub = _live_hub(parse("--ui-max-streams=7", "--ui-stream-max-seconds=60"), ctl, Authorizer())
    assert hub is not None and (hub.max_subscribers, hub.max_lifetime) == (7, 60)
    assert ctl.application_listeners == [hub.publish]  # fed by the controller's one watch
    # each stream gets only what the RBAC authorizer lets its principal read (issue 21)
    team_a = Principal("alice", Via.SESSION, Method.OIDC, (Grant(Role.OPERATOR, ("team-a",)),))
    assert hub.visible(team_a, ("team-a", "web")) and not hub.visible(team_a, ("team-b", "web"))
    assert _live_hub(parse("--ui-max-streams=0"), controller(), Authorizer()) is None
    assert (
        _live_hub(parse("--config=apps.yaml"), controller(), Authorizer()) is None
    )  # nothing watched


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--ui-max-streams=-1", "argument --ui-max-streams: must be >= 0"),
        ("--ui-stream-max-seconds=0", "argument --ui-stream-max-seconds: must be > 0"),
    ],
)
def test_bad_stream_flags_are_refused_naming_the_flag(
    flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gitsync.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", flag])
    assert message in capsys.readouterr().err


def test_the_serve_flags_default_to_the_hubs_defaults() -> None:
    from gitsync import cli
    from gitsync.web import live

    assert cli.UI_MAX_STREAMS == live.DEFAULT_MAX_SUBSCRIBERS
    assert cli.UI_STREAM_MAX_SECONDS == live.DEFAULT_MAX_LIFETIME
