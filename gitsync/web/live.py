"""Live updates for the UI: one fan-out of the controller's Application events to every open
page, as server-sent events (``GET /api/v1/stream`` for the list, and
``GET /api/v1/applications/<ns>/<name>/stream`` for one app's page).

Why it is shaped this way:

* **One watch, one serialization.** The controller already watches Applications (its
  ``WatchCache``); every status write reaches it as an event, and ``LiveHub.publish`` is called
  from that event. A thousand open tabs cost no watch and no read of the store: each event is
  turned into the list row (``view.summary``) and, when someone follows that app, its page
  document (``view.detail``) *once*, encoded once as an SSE frame, and the same bytes are handed
  to every subscriber (``LiveHub.serializations`` counts the encodings, for the tests).
* **Never on the watch thread.** ``publish`` only notes the event (the latest per app) and the
  hub's own thread encodes it: building the documents costs milliseconds per event, and the
  watch thread feeds the reconciles - it must not wait for the UI. Under a burst the hub encodes
  the latest state of each app once instead of every intermediate one.
* **A slow client never costs memory.** Each subscriber has a queue keyed by app: a second
  update of an app replaces the first one still waiting, so a client that does not read gets
  the latest state of each app, never a backlog. The queue is bounded too (``max_pending`` apps):
  when it overflows it is emptied and the client is told to ``resync`` (fetch the list once).
  Below the hub, waitress buffers at most its high watermark per connection (``server.py``).
* **Bounded in number and in time.** At most ``max_subscribers`` streams at once (the next is
  answered 503 with ``Retry-After``); each stream ends after ``max_lifetime`` seconds with a
  ``reconnect`` event (the page opens a new one and fetches once - nothing is replayed, so
  ``Last-Event-ID`` is not needed), which also bounds how long a logged-out session's stream
  lives on. A comment line every ``heartbeat`` seconds keeps proxies from closing an idle stream
  and finds clients that went away (the write fails).
* **Who sees what** is one function, ``Visibility(principal, app_key) -> bool``, asked for each
  event of each subscriber. Today every principal that passed ``guard.api_read`` sees every app
  (``everyone``); per-project roles replace that function, nothing else.

A stream holds one waitress worker thread for its lifetime; ``server.py`` sizes the worker pool
as the request threads plus ``max_subscribers``, so streams can never take the threads normal
requests need.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import flask
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gitsync.web.auth import Principal
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import Action
from gitsync.web.view import AppKey, detail, summary

log = structlog.get_logger(__name__)

Visibility = Callable[[Principal, AppKey], bool]

DEFAULT_MAX_SUBSCRIBERS = 100
DEFAULT_MAX_LIFETIME = 300.0  # seconds
DEFAULT_HEARTBEAT = 15.0  # seconds
DEFAULT_MAX_PENDING = 1000  # apps waiting per subscriber before it is told to resync
RETRY_MS = 2000  # the EventSource's own reconnect delay (``retry:``)


def everyone(principal: Principal, key: AppKey) -> bool:
    """Every principal that may read the API sees every Application (until per-project roles)."""
    return True


class HubFull(Exception):
    """``max_subscribers`` streams are open: answer 503."""


@dataclass(frozen=True)
class Update:
    """One event as subscribers get it: the app and its frames, encoded once for everyone."""

    key: AppKey
    row: bytes  # ``event: app`` with the list row, or ``event: deleted``
    document: bytes | None  # ``event: app`` with the page document; None: nobody follows it


def frame(event: str, data: Mapping[str, Any], event_id: int | None = None) -> bytes:
    """One SSE message. JSON has no raw newline, so ``data`` is one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


class Subscription:
    """One open stream: the apps it follows (``app`` None: all of them, as list rows) and the
    latest frame of each waiting to be sent. Filled by the publisher's thread, drained by the
    stream's worker thread."""

    def __init__(
        self,
        hub: LiveHub,
        principal: Principal,
        app: AppKey | None,
        max_pending: int,
    ):
        self.hub = hub
        self.principal = principal
        self.app = app
        self._max_pending = max_pending
        self._pending: OrderedDict[AppKey, bytes] = OrderedDict()
        self._resync = False
        self._closed = False
        self._ready = threading.Condition()
        self.coalesced = 0  # updates replaced by a newer one before being sent

    def offer(self, update: Update) -> bool:
        """Queue ``update`` (the publisher's thread); replaces an unsent update of the same app
        (then True)."""
        payload = update.row if self.app is None else update.document
        if payload is None:
            return False
        with self._ready:
            if self._closed:
                return False
            if update.key in self._pending:
                self.coalesced += 1
                self._pending[update.key] = payload
                self._ready.notify()
                return True
            elif len(self._pending) >= self._max_pending:
                self._pending.clear()  # too far behind: the client fetches the list once
                self._resync = True
            else:
                self._pending[update.key] = payload
            self._ready.notify()
            return False

    @property
    def pending(self) -> int:
        with self._ready:
            return len(self._pending)

    def next(self, timeout: float) -> list[bytes]:
        """The frames waiting, oldest app first; [] after ``timeout`` seconds without any."""
        with self._ready:
            if not self._pending and not self._resync and not self._closed:
                self._ready.wait(timeout)
            out = [frame("resync", {})] if self._resync else []
            self._resync = False
            out.extend(self._pending.values())
            self._pending.clear()
            return out

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._pending.clear()
            self._ready.notify()
        self.hub._remove(self)

    @property
    def closed(self) -> bool:
        return self._closed


class LiveHub:
    """The one broadcaster of Application changes to the UI's open streams."""

    def __init__(
        self,
        *,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_pending: int = DEFAULT_MAX_PENDING,
        visible: Visibility = everyone,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ):
        """``background=False`` starts no delivery thread: the caller calls ``deliver``."""
        self.max_subscribers = max_subscribers
        self.max_lifetime = max_lifetime
        self.heartbeat = heartbeat
        self.max_pending = max_pending
        self.visible = visible
        self._clock = clock
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._sequence = 0
        self.serializations = 0  # frames encoded: one or two per event, whatever the audience
        self.published = 0
        self.coalesced = 0  # a stream's queued update replaced by a newer one before written
        self.merged = 0  # events replaced by a newer one of the same app before being encoded
        # events not yet encoded, latest per app: the watch thread only puts them here
        self._incoming: OrderedDict[AppKey, tuple[str, Mapping[str, Any] | None]] = OrderedDict()
        self._arrived = threading.Condition(self._lock)
        if background:
            threading.Thread(target=self._deliver_forever, name="live-hub", daemon=True).start()

    # -- the controller's side -----------------------------------------------------------------

    def publish(self, event_type: str, key: AppKey, obj: Mapping[str, Any] | None) -> None:
        """An Application changed (the watch's ADDED / MODIFIED / DELETED). Called on the
        controller's watch thread, so it only notes the event (a newer one of the same app
        replaces it); the hub's own thread encodes and queues it (``deliver``)."""
        with self._lock:
            self.published += 1
            if not self._subscribers:
                return  # nobody is looking: nothing is kept or encoded
            if key in self._incoming:
                self.merged += 1
            self._incoming[key] = (event_type, obj)
            self._arrived.notify()

    def _deliver_forever(self) -> None:
        while True:
            with self._lock:
                while not self._incoming:
                    self._arrived.wait()
            self.deliver()

    def deliver(self) -> None:
        """Encode each event noted since the last call once and queue it for every subscriber
        that may see it."""
        with self._lock:
            events = list(self._incoming.items())
            self._incoming.clear()
        for key, (event_type, obj) in events:
            try:
                self._deliver(event_type, key, obj)
            except Exception:  # one malformed object must not end live updates for all
                log.exception("live update failed", app=f"{key[0]}/{key[1]}")

    def _deliver(self, event_type: str, key: AppKey, obj: Mapping[str, Any] | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            self._sequence += 1
            sequence = self._sequence
        if not subscribers:
            return
        namespace, name = key
        row: bytes
        document: bytes | None = None
        if event_type == "DELETED" or obj is None:
            row = frame("deleted", {"namespace": namespace, "name": name}, sequence)
            document = row
            encoded = 1
        else:
            row = frame("app", summary(obj), sequence)
            encoded = 1
            if any(s.app == key for s in subscribers):
                document = frame("app", detail(obj), sequence)
                encoded += 1
        with self._lock:
            self.serializations += encoded
        update = Update(key, row, document)
        coalesced = 0
        for subscriber in subscribers:
            if subscriber.app not in (None, key):
                continue
            if not self._may_see(subscriber, key):
                continue
            coalesced += subscriber.offer(update)
        with self._lock:
            self.coalesced += coalesced

    def _may_see(self, subscriber: Subscription, key: AppKey) -> bool:
        try:
            return self.visible(subscriber.principal, key)
        except Exception:  # a broken predicate hides the app rather than showing it
            return False

    # -- the streams' side ---------------------------------------------------------------------

    def subscribe(self, principal: Principal, app: AppKey | None = None) -> Subscription:
        """A new stream for ``principal`` (all apps, or only ``app``); raises ``HubFull``."""
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers:
                raise HubFull(f"{self.max_subscribers} live update streams are open")
            subscription = Subscription(self, principal, app, self.max_pending)
            self._subscribers.append(subscription)
            return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def pending(self) -> int:
        """Updates queued for all streams and not yet written."""
        with self._lock:
            subscribers = list(self._subscribers)
        return sum(s.pending for s in subscribers)

    def collect(self) -> Iterator[Metric]:
        """The hub's figures for /metrics (a prometheus-client collector)."""
        yield GaugeMetricFamily("gitsync_ui_streams", "Live update streams open", self.subscribers)
        yield GaugeMetricFamily(
            "gitsync_ui_stream_pending_updates",
            "Updates queued for live update streams, not yet written",
            self.pending,
        )
        yield CounterMetricFamily(
            "gitsync_ui_stream_coalesced",
            "Queued live updates replaced by a newer state of the same app before being written",
            self.coalesced,
        )
        yield CounterMetricFamily(
            "gitsync_ui_stream_merged_events",
            "Application events replaced by a newer one of the same app before being encoded",
            self.merged,
        )
        yield CounterMetricFamily(
            "gitsync_ui_stream_encoded_frames",
            "Live update frames encoded (once per Application event and view, for all streams)",
            self.serializations,
        )
        yield CounterMetricFamily(
            "gitsync_ui_stream_application_events",
            "Application events the live update hub was given",
            self.published,
        )

    def stream(self, subscription: Subscription, first: bytes = b"") -> Iterator[bytes]:
        """The response body of one stream: ``first`` (e.g. the app's document now), then its
        updates as they come, a heartbeat comment when idle, until ``max_lifetime`` is over.
        Closing the iterator (the client went away, or the server stops) unsubscribes."""
        ends = self._clock() + self.max_lifetime
        try:
            yield f"retry: {RETRY_MS}\n\n".encode() + first
            while True:
                left = ends - self._clock()
                if left <= 0:
                    yield frame("reconnect", {})
                    return
                frames = subscription.next(min(self.heartbeat, left))
                if subscription.closed:
                    return
                yield b"".join(frames) if frames else b": heartbeat\n\n"
        finally:
            subscription.close()


def live_blueprint(
    guard: Guard, hub: LiveHub, read_app: Callable[[AppKey], Mapping[str, Any] | None]
) -> flask.Blueprint:
    """The two streams, behind ``guard.api_read`` (a session cookie or a bearer token).
    ``read_app`` reads one Application from the controller's cache (``store.get``)."""
    bp = flask.Blueprint("live", __name__, url_prefix="/api/v1")

    def subscribe(app: AppKey | None) -> Subscription | flask.Response:
        try:
            return hub.subscribe(guard.principal(), app)
        except HubFull as exc:
            return json_error(503, str(exc), **{"Retry-After": "30"})

    def respond(subscription: Subscription, first: bytes = b"") -> flask.Response:
        response = flask.Response(
            hub.stream(subscription, first),
            mimetype="text/event-stream",
            headers={"X-Accel-Buffering": "no"},  # nginx: pass each event on at once
        )
        response.call_on_close(subscription.close)  # also when the body was never started
        return response

    @bp.get("/stream")
    @guard.api_read
    def applications_stream() -> Any:
        subscription = subscribe(None)
        if isinstance(subscription, flask.Response):
            return subscription
        return respond(subscription)

    @bp.get("/applications/<namespace>/<name>/stream")
    @guard.api_read
    @guard.allow(Action.GET)
    def application_stream(namespace: str, name: str) -> Any:
        key = (namespace, name)
        subscription = subscribe(key)
        if isinstance(subscription, flask.Response):
            return subscription
        # read after subscribing: a change in between is queued, none is lost
        obj = read_app(key)
        if obj is None or not hub.visible(guard.principal(), key):
            subscription.close()
            return json_error(404, f"no Application {namespace}/{name}")
        return respond(subscription, frame("app", detail(obj)))

    return bp
