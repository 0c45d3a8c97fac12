"""Time to first byte of the UI's diff view for an Application with many out-of-sync objects.

Issue 9's scenario 6 asks, next to the raw diff throughput, how long a user waits for the diff
page of a big app. The page (``GET /apps/<ns>/<name>/diff``, ``gitsync.web.pages``) compares on
demand - Git at the target revision against the live cluster, through the controller's engine -
then renders every differing object's masked unified diff into HTML, so its first byte comes only
after all of that. Measured end to end with real parts:

* a real ``Controller`` in this process over the given API server (its watch cache, render
  cache and compare memo warm, as in production: its own startup reconcile has just compared
  the app), following a repository of ``objects`` ConfigMaps on the test Git server over HTTP;
* every one of those ConfigMaps already exists in the cluster with a different value, and the
  Application has no automated sync, so all ``objects`` stay out of sync;
* the Flask app ``gitsync serve`` builds (``create_app`` over that controller) behind a real
  waitress server on loopback, logged in with the admin password over HTTP (cookies, CSRF).

Each request waits out the diff's 2 s reuse window first (``gitsync.web.diff.Differ``), so every
page computes its compare anew. The clock runs from sending the request until the status line
and headers are read (time to first byte; Flask sends the page in one piece, so this is nearly
the whole page) and, separately, until the body is read. The reference is the same compare called
directly (``Engine.compare``, no web layer), alternating with the page.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import secrets
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bench.scenarios import BenchError, Row, median
from bench.ui_list import _login_form_token, waitress_server
from gitsync.controller.controller import Controller, ControllerConfig, ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.web import AuthSettings, create_app
from tests.support.cluster import temporary_namespace

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
APP = "diff-view"
REUSE_SECONDS = 2.0  # gitsync.web.diff.Differ's default reuse window


def configmap(i: int, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:04d}", "labels": {"bench": "diff-view"}},
        "data": {"index": str(i), "value": value},
    }


def login(base: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/login", timeout=30) as resp:
        token = _login_form_token(resp.read().decode())
    form = urllib.parse.urlencode({"csrf_token": token, "password": password, "next": "/"})
    with opener.open(base + "/login", data=form.encode(), timeout=30) as resp:
        if resp.status != 200:
            raise BenchError(f"login over HTTP answered {resp.status}")
    return opener


def out_of_sync(controller: Controller, key: tuple[str, str]) -> bool:
    status = (controller.store.get(key) or {}).get("status") or {}
    return (status.get("sync") or {}).get("status") == "OutOfSync"


def diff_view_rows(kubeconfig: Path, objects: int, requests: int, workdir: Path) -> list[Row]:
    kube = KubeClient.from_kubeconfig(str(kubeconfig), user_agent="gitsync-bench")
    ensure_crd(kube, yaml.safe_load(CRD.read_text()))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(GitServer(ssh=False))
        files: dict[str, str | bytes | None] = {
            f"app/cm-{i:04d}.yaml": yaml.safe_dump(configmap(i, "from git")) for i in range(objects)
        }
        repo = server.create_repo("diff-view", files=files)
        namespace = stack.enter_context(temporary_namespace(kube, "bench-diff-view"))
        with ThreadPoolExecutor(8) as pool:  # the live side: every object differs from Git
            list(
                pool.map(
                    lambda i: kube.create(configmap(i, "edited live"), namespace=namespace),
                    range(objects),
                )
            )
        kube.create(
            {
                "apiVersion": "gitsync.dev/v1alpha1",
                "kind": "Application",
                "metadata": {"name": APP, "namespace": namespace},
                "spec": {
                    "source": {"repoURL": repo.http_url(), "targetRevision": "main", "path": "app"},
                    "destination": {"namespace": namespace},
                    "interval": "3m",
                },
            }
        )
        controller = Controller(
            kube,
            ControllerConfig(
                cache_dir=workdir / "diff-view", namespaces=[namespace], impersonate=False
            ),
        )
        controller.start()
        stack.callback(controller.stop)
        key = (namespace, APP)
        deadline = time.monotonic() + 120 + objects / 5
        while not out_of_sync(controller, key):
            if time.monotonic() > deadline:
                raise BenchError(f"the {objects}-object app never reported OutOfSync")
            time.sleep(0.2)
        password = "bench-" + secrets.token_urlsafe(12)
        app = create_app(
            controller,
            metrics_exposition=lambda: b"",
            webhook_secrets=lambda provider: [],
            auth=AuthSettings.build(admin_password=password),
        )
        base = stack.enter_context(waitress_server(app))
        opener = login(base, password)
        path = f"/apps/{namespace}/{APP}/diff"

        def page() -> tuple[float, float, int]:
            time.sleep(REUSE_SECONDS + 0.1)  # past the reuse window: a fresh compare
            started = time.perf_counter()
            with opener.open(base + path, timeout=120) as resp:
                first = time.perf_counter() - started
                body = resp.read()
                if resp.status != 200:
                    raise BenchError(f"GET {path}: {resp.status}")
            return first, time.perf_counter() - started, body.count(b"edited live")

        def direct() -> float:
            started = time.perf_counter()
            state = controller.application_diff(key)  # what the page's Differ calls
            if state is None:
                raise BenchError(f"the Application {namespace}/{APP} is gone")
            seconds = time.perf_counter() - started
            changed = sum(1 for d in state.comparison.diffs if str(d.status) != "Synced")
            if changed != objects:
                raise BenchError(f"the compare found {changed} of {objects} objects out of sync")
            return seconds

        ttfb: list[float] = []
        total: list[float] = []
        refs: list[float] = []
        shown = 0
        for r in range(requests):
            if r % 2:
                refs.append(direct())
            first, whole, shown = page()
            ttfb.append(first)
            total.append(whole)
            if not r % 2:
                refs.append(direct())
        if shown < objects:
            raise BenchError(f"the diff page showed {shown} of {objects} changed values")
    return [
        Row(
            "UI diff view, time to first byte (waitress)",
            objects,
            "s",
            median(ttfb),
            "`Engine.compare` called directly",
            median(refs),
            requests,
            samples={"gitsync": ttfb, "reference": refs, "whole page": total},
            note=f"{objects} out-of-sync ConfigMaps; whole page {median(total):.3f} s (median); "
            "fresh compare per request (watch cache, render cache and memo warm)",
        )
    ]
