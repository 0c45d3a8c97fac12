"""Clients of the UI's live update streams (server-sent events), for the tests and the SSE bench.

One thread reads every stream (a selector over plain sockets), so 500 clients cost one thread,
and each event is stamped with ``time.monotonic()`` when the selector found its bytes there (not
when they were parsed, which for 500 streams comes up to tens of ms later): the bench's delivery
latency and the tests' "did it arrive" both read these stamps. Requests are HTTP/1.0, so the body
comes unchunked and ends when the server closes the stream.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    received: float  # time.monotonic() when the event's last byte arrived


@dataclass
class Stream:
    """One open stream: its status, and the events read so far (heartbeats are not events)."""

    sock: socket.socket
    status: int = 0
    events: list[Event] = field(default_factory=list)
    heartbeats: int = 0
    ended: bool = False
    _head: bytes = b""
    _body: bytes = b""

    def feed(self, data: bytes, now: float) -> None:
        if not self.status:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, data = self._head.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
        self._body += data
        *messages, self._body = self._body.split(b"\n\n")
        for message in messages:
            fields: dict[str, str] = {}
            for line in message.decode().splitlines():
                if line.startswith(":"):
                    self.heartbeats += 1
                elif ": " in line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
            if "event" in fields:
                self.events.append(Event(fields["event"], json.loads(fields["data"]), now))


class EventStreams:
    """Streams from one ``gitsync serve``, read by one background thread until ``close``."""

    def __init__(self, base_url: str, token: str = "", *, cookie: str = ""):
        """Authenticated by a bearer ``token``, or by a ``cookie`` header value (a browser's
        session, ``name=value``)."""
        parts = urlsplit(base_url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._credential = f"Cookie: {cookie}" if cookie else f"Authorization: Bearer {token}"
        self._selector = selectors.DefaultSelector()
        self._changed = threading.Condition()
        self._streams: list[Stream] = []  # the ones the reader reads
        self._sockets: list[socket.socket] = []  # every one opened, closed by ``close``
        self._stopped = threading.Event()
        self._reader = threading.Thread(target=self._read, name="sse-clients", daemon=True)
        self._reader.start()

    def open(self, path: str, *, read: bool = True, receive_buffer: int = 0) -> Stream:
        """GET ``path`` as a stream. ``read=False`` is a client that never reads (its socket's
        receive buffer ``receive_buffer`` bytes, if given): the server's writes back up."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._sockets.append(sock)
        sock.settimeout(10)
        sock.connect(self._address)
        sock.sendall(
            f"GET {path} HTTP/1.0\r\nHost: {self._address[0]}\r\n"
            f"{self._credential}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        stream = Stream(sock)
        if read:
            sock.setblocking(False)
            with self._changed:
                self._streams.append(stream)
                self._selector.register(sock, selectors.EVENT_READ, stream)
        return stream

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` (checked whenever bytes arrive); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _read(self) -> None:
        while not self._stopped.is_set():
            with self._changed:
                registered = bool(self._streams)
            if not registered:
                time.sleep(0.05)
                continue
            ready = self._selector.select(timeout=0.1)
            now = time.monotonic()  # when these bytes were there, not when they are parsed
            for key, _ in ready:
                stream: Stream = key.data
                try:
                    data = stream.sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                with self._changed:
                    if data:
                        stream.feed(data, now)
                    else:
                        stream.ended = True
                        self._selector.unregister(stream.sock)
                        self._streams.remove(stream)
                    self._changed.notify_all()

    def close(self) -> None:
        self._stopped.set()
        self._reader.join(5)
        with self._changed:
            for stream in self._streams:
                self._selector.unregister(stream.sock)
            self._streams.clear()
        self._selector.close()
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> EventStreams:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
