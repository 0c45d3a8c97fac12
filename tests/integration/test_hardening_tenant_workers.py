"""Issue 13, finding 8: a tenant's Git server that accepts TCP and never answers must not delay
another tenant's deploy.

Against a real ``gitsync serve`` (4 workers, the default) on the test control plane. The
tenant's servers are real loopback listeners (``HangingServer``) that accept every connection
and never send a byte; each records when a connection opened and when the controller gave up on
it. The victim's repository is on the real Git server over HTTP. The assertion is about order,
not a wall clock: the victim is live while every hanging fetch that was in flight when the
victim's trigger arrived is still stuck - so no worker had to wait for a Git timeout first.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import (
    app_status,
    application,
    configmap_repo,
    configmap_value,
    github_push,
    push_value,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

HANGING_APPS = 6


@dataclass
class Connection:
    opened: float
    closed: float | None = None


@dataclass
class HangingServer:
    """Accepts TCP on 127.0.0.1 and never answers; records each connection's life."""

    sock: socket.socket = field(default_factory=socket.socket)
    connections: list[Connection] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> HangingServer:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection(time.monotonic())
            with self.lock:
                self.connections.append(record)
            threading.Thread(target=self._hold, args=(conn, record), daemon=True).start()

    def _hold(self, conn: socket.socket, record: Connection) -> None:
        conn.settimeout(0.2)
        with conn:
            while not self.stopping.is_set():  # read (and drop) the request, never answer
                try:
                    if not conn.recv(65536):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
        record.closed = time.monotonic()

    def open_now(self) -> list[Connection]:
        with self.lock:
            return [c for c in self.connections if c.closed is None]

    def most_open_at_once(self) -> int:
        with self.lock:
            events = sorted(
                [(c.opened, 1) for c in self.connections]
                + [(c.closed, -1) for c in self.connections if c.closed is not None]
            )
        most = current = 0
        for _, step in events:
            current += step
            most = max(most, current)
        return most

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[Any]:
    servers: list[HangingServer] = []

    def start() -> HangingServer:
        server = HangingServer().start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def open_connections(servers: list[HangingServer]) -> list[Connection]:
    return [c for s in servers for c in s.open_now()]


def create_hanging_apps(kube: KubeClient, namespace: str, urls: list[str]) -> None:
    for n, url in enumerate(urls):
        name = f"tenant-{n}"
        kube.create(application(name, namespace, f"{url}/{name}.git"))


def still_stuck_when_live(stuck: list[Connection], live_at: float) -> list[Connection]:
    """The connections of ``stuck`` that the controller gave up on before ``live_at``."""
    return [c for c in stuck if c.closed is not None and c.closed <= live_at]


def test_one_hanging_host_holds_at_most_its_share_of_workers_and_a_new_app_deploys(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, hanging: Any
) -> None:
    server: HangingServer = hanging()
    ctl = serve()  # 4 workers: at most 2 reconciles talk to one Git host at once
    create_hanging_apps(kube, namespace, [server.url] * HANGING_APPS)
    wait_for(lambda: len(server.open_now()) >= 2, timeout=30, what="hanging fetches in flight")
    time.sleep(2)  # room for more fetches to start, were they allowed to
    stuck = server.open_now()

    repo = configmap_repo(git_server)
    kube.create(application("victim", namespace, repo.http_url()))
    wait_for(
        lambda: configmap_value(kube, namespace) == "v1", timeout=60, what="the victim deployed"
    )
    live_at = time.monotonic()

    gave_up = still_stuck_when_live(stuck, live_at)
    assert not gave_up, f"the victim waited for {len(gave_up)} hanging fetches to time out"
    assert server.most_open_at_once() <= 2, f"{server.most_open_at_once()} fetches at once"
    assert ctl.proc is not None and ctl.proc.running()


def test_a_push_goes_live_while_hanging_servers_hold_every_ordinary_worker(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, hanging: Any
) -> None:
    # Six hosts (a tenant can name as many as it likes), so the per-host limit does not help:
    # all 4 ordinary workers end up waiting on them. Only the push worker is left.
    servers: list[HangingServer] = [hanging() for _ in range(HANGING_APPS)]
    ctl = serve()
    repo = configmap_repo(git_server)
    kube.create(application("victim", namespace, repo.http_url()))
    wait_for(
        lambda: app_status(kube, namespace, "victim").get("sync", {}).get("status") == "Synced",
        timeout=60,
        what="the victim synced",
    )
    create_hanging_apps(kube, namespace, [s.url for s in servers])
    wait_for(lambda: len(open_connections(servers)) >= 4, timeout=30, what="every worker hanging")
    stuck = open_connections(servers)

    sha = push_value(repo, "v2")
    status, _ = github_push(ctl.url, repo.http_url(), sha, changed=["app/cm.yaml"])
    assert status == 202
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=90, what="v2 live")
    live_at = time.monotonic()

    gave_up = still_stuck_when_live(stuck, live_at)
    assert not gave_up, f"the push waited for {len(gave_up)} hanging fetches to time out"
    print(f"v2 live {live_at - min(c.opened for c in stuck):.1f}s after the first hang began")
