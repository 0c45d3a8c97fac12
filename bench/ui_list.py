"""The Application list with many Applications: how fast the page and the list API are served.

The issue's bar: with 1,000 Applications the apps list page is served in under 300 ms. This
builds the real Flask app (``gitsync.web.create_app``, the app ``gitsync serve`` runs) over an
in-memory controller view holding ``--apps`` synthetic Applications - varied sync and health,
five objects and ten history entries each, and every 50th with a canary in progress, whose
Rollout the list reads (through an in-memory stand-in for the Kubernetes client) to show its
phase and weight. It logs in with the admin password, then times

* ``GET /`` - the list page (first page, 50 rows; filtering and sorting run over every app), and
* ``GET /api/v1/applications?per_page=100`` - what the list page polls, a bigger page,

``--requests`` times each (after one untimed request that loads the templates), two ways: with
Flask's test client (the application alone) and over HTTP through a real waitress server on
loopback (``urllib``, a fresh connection per request, as ``gitsync serve`` answers a browser).
The page reads the Application store afresh on every load; the API shares one read for a second
(``view.Snapshot``), as in production - so the page is the worst case of the two. The Applications
carry a ``uid`` and ``resourceVersion`` as the watch cache's do, and nothing changes them while the
bench runs, so the timed requests find every row summarised (``view.Summaries``); only the untimed
first requests pay for summarising rows.

    python -m bench.ui_list [--apps 1000] [--requests 20] [--json out.json]

Figures are milliseconds per request: median, p95 (nearest rank) and max. Nothing outside this
process is started; the waitress server is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import math
import re
import secrets
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import waitress
from flask import Flask
from waitress import wasyncore

from gitsync import logs
from gitsync.controller.interface import AppEvents, EventQuery
from gitsync.web import AuthSettings, create_app
from gitsync.webhook import PushEvent

TARGET_MS = 300.0
ROLLOUT_EVERY = 50
PAGE = "/"
API = "/api/v1/applications?per_page=100"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class BenchError(RuntimeError):
    """The bench could not measure what it says (a login failed, a page was wrong)."""


# -- the in-memory controller ------------------------------------------------------------------


def _sha(i: int, n: int) -> str:
    return f"{i:08x}{n:032x}"


def synthetic_application(i: int) -> dict[str, Any]:
    """Application ``i`` as the controller stores it, status included."""
    namespace, name = f"team-{i % 20:02d}", f"app-{i:04d}"
    sync = ("Synced", "Synced", "Synced", "OutOfSync")[i % 4]
    health = ("Healthy", "Healthy", "Progressing", "Degraded", "Healthy")[i % 5]
    sha = _sha(i, 10)
    resources: list[dict[str, Any]] = [
        {"group": "", "kind": "ConfigMap", "namespace": namespace, "name": "config"},
        {"group": "", "kind": "Service", "namespace": namespace, "name": "web"},
        {"group": "apps", "kind": "Deployment", "namespace": namespace, "name": "web"},
        {"group": "networking.k8s.io", "kind": "Ingress", "namespace": namespace, "name": "web"},
        {"group": "", "kind": "Secret", "namespace": namespace, "name": "db"},
    ]
    for r in resources:
        r.update(status=sync if r["kind"] == "ConfigMap" else "Synced", health={"status": health})
    if i % ROLLOUT_EVERY == 0:
        resources.append(
            {
                "group": "gitsync.dev",
                "kind": "Rollout",
                "namespace": namespace,
                "name": name,
                "status": "Synced",
                "health": {"status": "Progressing", "message": "step 1/4"},
            }
        )
    history = [
        {
            "id": n,
            "operation": f"op{n}",
            "revision": _sha(i, n),
            "message": f"change {n} of {name}\n\nwith a body",
            "author": "Ada <ada@example.com>",
            "deployedAt": f"2024-05-{n:02d}T10:00:00Z",
            "result": "Succeeded",
            "initiatedBy": "automated",
        }
        for n in range(1, 11)
    ]
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": namespace,
            # as the watch cache holds them: the web layer keeps summaries by these two
            "uid": f"00000000-0000-4000-8000-{i:012d}",
            "resourceVersion": str(100_000 + i),
            "generation": 1,
            "annotations": {},
        },
        "spec": {
            "source": {
                "repoURL": f"https://git.example.com/org/deploy-{i % 7}.git",
                "targetRevision": "main",
                "path": f"apps/{name}",
            },
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": {
            "sync": {"status": sync, "revision": sha},
            "health": {"status": health},
            "sourceRevision": {
                "sha": sha,
                "ref": "refs/heads/main",
                "message": f"change 10 of {name}",
                "author": "Ada <ada@example.com>",
                "date": "2024-05-10T09:59:00+00:00",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if sync == "Synced" else "False",
                    "reason": sync,
                    "message": "synced and healthy" if sync == "Synced" else "out of sync",
                    "lastTransitionTime": "2024-05-10T10:00:00Z",
                }
            ],
            "resources": resources,
            "operationState": {
                "id": "op10",
                "phase": "Succeeded",
                "revision": sha,
                "startedAt": "2024-05-10T09:59:58Z",
                "finishedAt": "2024-05-10T10:00:00Z",
                "message": "succeeded",
            },
            "history": history,
            "lastAppliedRevision": sha,
        },
    }


def synthetic_rollout(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": name},
            "strategy": {
                "canary": {
                    "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
                }
            },
        },
        "status": {
            "phase": "Paused",
            "currentStepIndex": 1,
            "currentWeight": 20,
            "canaryHash": "c4n4ry",
            "stableHash": "57ab1e",
            "replicas": 10,
        },
    }


class MemoryRollouts:
    """The Rollouts, behind the web layer's ``KubeAccess`` interface."""

    def __init__(self) -> None:
        self.objs: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads = 0

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        self.reads += 1
        return self.objs.get((namespace, name))

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: str = "merge",
    ) -> dict[str, Any]:
        raise BenchError("the bench does not act")


class MemoryApplications:
    """The controller as the web layer sees it (``gitsync.controller.interface.ControllerView``),
    in memory: Applications are read by key from a dict, as the controller reads its watch
    cache."""

    def __init__(self, count: int):
        objs = [synthetic_application(i) for i in range(count)]
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
        self.kube = MemoryRollouts()
        for (namespace, name), obj in self.objs.items():
            if any(r["kind"] == "Rollout" for r in obj["status"]["resources"]):
                self.kube.objs[(namespace, name)] = synthetic_rollout(namespace, name)
        self.ready = True
        self.store = self

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return self.objs.get(key)

    def patch_annotations(self, key: tuple[str, str], annotations: dict[str, str | None]) -> None:
        raise BenchError("the bench does not act")

    def on_push(self, event: PushEvent) -> int:
        return 0

    def application_objects(self) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.objs):
            obj = self.get(key)
            if obj is not None:
                out.append(obj)
        return out

    def application_set_objects(self) -> list[dict[str, Any]]:
        return []  # the list page's figures are about Applications: no sets here

    def refresh(self, key: tuple[str, str], reason: str = "manual") -> None:
        pass

    def application_diff(self, key: tuple[str, str]) -> None:
        raise BenchError("the bench does not ask for diffs")

    def application_tree(self, key: tuple[str, str], *, orphans: bool = False) -> None:
        raise BenchError("the list bench does not ask for trees (bench.ui_tree does)")

    def application_events(self, key: tuple[str, str], query: EventQuery) -> AppEvents:
        return AppEvents([])  # the list page's figures: no Events are read

    def application_manifests(self, key: tuple[str, str], revision: str) -> None:
        raise BenchError("the list bench does not ask for history diffs")

    def cluster_client(self, name: str) -> MemoryRollouts:
        return self.kube


def build(apps: int) -> tuple[Flask, MemoryApplications, str]:
    """The app ``gitsync serve`` would run over ``apps`` Applications, and its admin password."""
    password = "bench-" + secrets.token_urlsafe(12)
    view = MemoryApplications(apps)
    app = create_app(
        view,
        metrics_exposition=lambda: b"",
        webhook_secrets=lambda provider: [],
        auth=AuthSettings.build(admin_password=password),
    )
    return app, view, password


# -- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    transport: str  # "test client" | "waitress"
    path: str
    requests: int
    median_ms: float
    p95_ms: float
    max_ms: float
    min_ms: float
    bytes: int


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def time_requests(
    transport: str, path: str, fetch: Callable[[str], bytes], requests: int, check: str
) -> Figure:
    """``requests`` timed calls of ``fetch(path)`` after an untimed one; each body must hold
    ``check`` (the page or document is the full answer, not an error or a login page)."""
    body = fetch(path)
    if check not in body.decode("utf-8", "replace"):
        raise BenchError(f"{transport} {path}: the answer lacks {check!r}")
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        body = fetch(path)
        samples.append((time.perf_counter() - started) * 1000)
        if check not in body.decode("utf-8", "replace"):
            raise BenchError(f"{transport} {path}: the answer lacks {check!r}")
    return Figure(
        transport,
        path,
        requests,
        round(statistics.median(samples), 2),
        round(percentile(samples, 95), 2),
        round(max(samples), 2),
        round(min(samples), 2),
        len(body),
    )


def _login_form_token(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    if not match:
        raise BenchError("no CSRF field on the login form")
    return match.group(1)


def test_client_fetcher(app: Flask, password: str) -> Callable[[str], bytes]:
    client = app.test_client()
    token = _login_form_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"csrf_token": token, "password": password, "next": "/"})
    if answer.status_code != 303:
        raise BenchError(f"login through the test client answered {answer.status_code}")

    def fetch(path: str) -> bytes:
        response = client.get(path)
        if response.status_code != 200:
            raise BenchError(f"test client GET {path}: {response.status_code}")
        return response.get_data()

    return fetch


@contextmanager
def waitress_server(app: Flask) -> Iterator[str]:
    """``app`` behind waitress on a free loopback port (as ``gitsync serve`` runs it)."""
    server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=8, ident="bench")
    stopping = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:  # a socket closed under select() while stopping, as in `gitsync serve`
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stopping.set()
        server.task_dispatcher.shutdown()  # first: a worker finishing a request pulls the trigger
        server.close()  # then the trigger and the listening socket
        wasyncore.close_all(server._map)  # and the connections: server.run() returns
        thread.join(10)
        if thread.is_alive():
            raise BenchError("the waitress server did not stop")


def http_fetcher(base: str, password: str) -> Callable[[str], bytes]:
    """Log in over HTTP (login form, cookies) and GET with the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/login", timeout=30) as resp:
        token = _login_form_token(resp.read().decode())
    form = urllib.parse.urlencode({"csrf_token": token, "password": password, "next": "/"})
    with opener.open(base + "/login", data=form.encode(), timeout=30) as resp:
        if resp.status != 200 or urllib.parse.urlsplit(resp.url).path != "/":
            raise BenchError(f"login over HTTP ended at {resp.url} ({resp.status})")

    def fetch(path: str) -> bytes:
        with opener.open(base + path, timeout=30) as resp:
            if resp.status != 200:
                raise BenchError(f"waitress GET {path}: {resp.status}")
            return bytes(resp.read())

    return fetch


def run(apps: int, requests: int) -> dict[str, Any]:
    app, view, password = build(apps)
    # the first row of the first page, and the total in the API document
    first = min(view.objs)
    page_check = f'data-app="{first[0]}/{first[1]}"'
    api_check = f'"total":{apps}'
    figures = []
    fetch = test_client_fetcher(app, password)
    figures.append(time_requests("test client", PAGE, fetch, requests, page_check))
    figures.append(time_requests("test client", API, fetch, requests, api_check))
    with waitress_server(app) as base:
        fetch = http_fetcher(base, password)
        figures.append(time_requests("waitress", PAGE, fetch, requests, page_check))
        figures.append(time_requests("waitress", API, fetch, requests, api_check))
    page_over_http = figures[2]
    return {
        "benchmark": "ui_list",
        "apps": apps,
        "requests": requests,
        "rollouts_running": len(view.kube.objs),
        "target_ms": TARGET_MS,
        "target_met": page_over_http.p95_ms < TARGET_MS,
        "figures": [asdict(f) for f in figures],
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Application list with {result['apps']} Applications "
        f"({result['rollouts_running']} with a canary in progress), "
        f"{result['requests']} requests each, milliseconds:",
        "",
        f"{'transport':<12} {'request':<40} {'median':>8} {'p95':>8} {'max':>8} {'bytes':>9}",
    ]
    for f in result["figures"]:
        lines.append(
            f"{f['transport']:<12} {'GET ' + f['path']:<40} {f['median_ms']:>8.1f} "
            f"{f['p95_ms']:>8.1f} {f['max_ms']:>8.1f} {f['bytes']:>9}"
        )
    page = result["figures"][2]
    verdict = "met" if result["target_met"] else "NOT met"
    lines += [
        "",
        f"target: the list page under {result['target_ms']:.0f} ms: {verdict} "
        f"(p95 {page['p95_ms']:.1f} ms through waitress, "
        f"{page['p95_ms'] / result['target_ms']:.2f} of the budget)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_list", description=__doc__)
    parser.add_argument("--apps", type=int, default=1000, help="synthetic Applications")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per figure")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.apps < 1 or args.requests < 1:
        parser.error("--apps and --requests must be at least 1")
    logs.configure("warning")  # no log line per login in the report
    try:
        result = run(args.apps, args.requests)
    except BenchError as exc:
        print(f"ui_list: {exc}", file=sys.stderr)
        return 1
    print(report(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
