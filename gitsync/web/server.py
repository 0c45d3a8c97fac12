"""The HTTP server of ``gitsync serve``: waitress, with limits for an endpoint anyone can reach.

waitress reads requests on one thread (asyncore) and hands only complete ones to its worker
threads, so a slow client never holds a worker. Two of its defaults are not enough for a webhook
endpoint facing the internet, so ``create_server`` sets them:

* **the body size.** waitress de-chunks and spools a body itself before the application sees it,
  up to ``max_request_body_size`` (1 GB by default). It is set just above the webhook limit, so a
  2 GB chunked body is answered 413 after about ``--webhook-max-bytes`` have been read.
* **a deadline per request.** waitress's ``channel_timeout`` closes only connections that are
  *idle*; a client that drips one header byte a second (slow-loris) is never idle, and would hold
  its connection - one of the ``connection_limit`` slots - forever. ``DeadlineChannel`` records
  when the first byte of the request being received arrived, and the server's periodic
  maintenance closes the connection once that is older than ``timeout`` seconds. Idle keep-alive
  connections are still closed after the same ``timeout``.

Live update streams (``gitsync.web.live``, server-sent events) are the one kind of response
that lasts: a stream holds a worker thread for its lifetime. So the pool has ``threads`` workers
for requests *plus* ``stream_threads`` (the hub's subscriber cap, ``--ui-max-streams``): the hub
refuses the stream after the cap (503), so at most ``stream_threads`` workers ever wait on a
stream and normal requests always have their ``threads``. The deadline above concerns a request
*arriving*, so it never cuts a stream; a stream ends itself after its lifetime, and
``max_service`` (the stream lifetime plus ``timeout``) closes any connection whose response is
still being written after that long - a client that stops reading cannot hold a worker beyond
it. A client that stops reading holds at most ``OUTBUF_HIGH_WATERMARK`` bytes: beyond that the
worker waits for the socket instead of buffering more (waitress's default is 16 MiB).

waitress would also delete ``X-Forwarded-*`` headers, since it is told of no trusted proxy. It
is told to leave them: whether to believe ``X-Forwarded-For`` is decided per request against
``--trusted-proxy`` (``gitsync.web.auth.client_address``), and nothing else reads them.
"""

from __future__ import annotations

import time
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

DEFAULT_TIMEOUT = 30
"""Seconds a request may take to arrive whole, and an idle connection may stay open."""
DEFAULT_CONNECTION_LIMIT = 100  # waitress's own default, for everything but streams
OUTBUF_HIGH_WATERMARK = 1024 * 1024
"""Bytes of response buffered for one connection before its worker waits for the client."""


class DeadlineChannel(HTTPChannel):  # type: ignore[misc]  # waitress has no type hints
    """A connection that remembers when the request it is receiving began (``None`` between
    requests). Only the asyncore thread touches it: in ``received`` and in maintenance."""

    request_started: float | None = None
    serving_since: float | None = None  # a worker is writing this connection's response

    def service(self) -> None:  # a worker thread
        self.serving_since = time.monotonic()
        try:
            super().service()
        finally:
            self.serving_since = None

    def received(self, data: bytes) -> bool:
        if data and self.request_started is None:
            self.request_started = time.monotonic()
        result: bool = super().received(data)
        if self.request is None:  # every request in ``data`` arrived whole
            self.request_started = None
        return result


class DeadlineServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with ``DeadlineChannel`` connections and their deadline enforced."""

    channel_class = DeadlineChannel
    max_service: float | None = None  # seconds a response may take; None: no bound

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections
        cutoff = time.monotonic() - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if started is not None and started < cutoff and not channel.requests:
                channel.will_close = True  # the asyncore loop closes it on its next pass
            serving = getattr(channel, "serving_since", None)
            if (
                self.max_service is not None
                and serving is not None
                and serving < time.monotonic() - self.max_service
            ):
                # the worker may be waiting for a client that stopped reading: closing wakes
                # it (its next write raises ClientDisconnected)
                channel.handle_close()


def create_server(
    app: Any,
    *,
    host: str,
    port: int,
    max_body_bytes: int,
    timeout: int = DEFAULT_TIMEOUT,
    threads: int = 8,
    stream_threads: int = 0,
    max_service: float | None = None,
) -> DeadlineServer:
    """A server for ``app`` on ``host:port`` (one address); ``run()`` serves, ``close()`` stops.

    ``max_body_bytes`` is the largest body waitress reads (the webhook limit + 1, so the webhook
    handler still tells "at the limit" from "over it"); ``timeout`` is the per-request deadline
    and the idle timeout, in seconds. ``stream_threads`` workers are added for live update
    streams; ``max_service`` bounds how long any response may take to write, in seconds.
    """
    adj = Adjustments(
        host=host,
        port=port,
        threads=threads + stream_threads,
        # waitress accepts 100 connections at most by default: open streams count among them
        connection_limit=DEFAULT_CONNECTION_LIMIT + stream_threads,
        outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
        max_request_body_size=max_body_bytes,
        channel_timeout=timeout,
        cleanup_interval=max(1, timeout // 4),  # how often the deadlines are checked
        ident="gitsync",
        clear_untrusted_proxy_headers=False,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    server = DeadlineServer(
        app, {}, True, None, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0]
    )
    server.max_service = max_service
    return server
