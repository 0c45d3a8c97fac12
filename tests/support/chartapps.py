"""What the end-to-end tests of chart sources (Helm repositories, OCI registries) look at: the
version a chart deployed, an app Synced/Healthy at a ``chart@version``, a condition naming an
error, the controller's peak memory, and that a repository password is shown nowhere a user or
an operator can read (log, metrics, events, status)."""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gitsync.kube import KubeClient
from tests.support.apps import app_status
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

MIB = 1024 * 1024
PEAK_RSS_GROWTH_BOUND = 200 * MIB


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def chart_app(
    name: str, namespace: str, repo_url: str, target: str, chart: str | None = "web", **helm: Any
) -> dict[str, Any]:
    """An Application deploying ``chart`` (None: an ``oci://`` URL that ends with its name)
    from ``repo_url`` into its own namespace, refreshed every 3 s."""
    source: dict[str, Any] = {"repoURL": repo_url, "targetRevision": target}
    if chart is not None:
        source["chart"] = chart
    if helm:
        source["helm"] = helm
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": source,
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "interval": "3s",
        },
    }


def deployed_version(kube: KubeClient, namespace: str, release: str) -> str | None:
    """The version of the ConfigMap chart (``tests.support.chartrepo``) deployed as
    ``release``, or None."""
    cm = kube.get("v1", "ConfigMap", f"{release}-cm", namespace)
    return None if cm is None else str(cm["data"]["chartVersion"])


def synced_healthy(kube: KubeClient, namespace: str, name: str, revision: str) -> bool:
    status = app_status(kube, namespace, name)
    return (
        (status.get("sync") or {}).get("status") == "Synced"
        and (status.get("sync") or {}).get("revision") == revision
        and (status.get("health") or {}).get("status") == "Healthy"
    )


def condition_naming(kube: KubeClient, namespace: str, name: str, needle: str) -> str:
    def probe() -> str | None:
        for condition in app_status(kube, namespace, name).get("conditions") or []:
            message = str(condition.get("message", ""))
            if condition.get("status") == "True" and needle in message:
                return message
        return None

    return wait_for(probe, timeout=90, what=f"{name}: a condition naming {needle!r}")


def _read(ctl: ServeProcess, path: str) -> str:
    """The body at ``path``, error answers included."""
    try:
        with urllib.request.urlopen(ctl.url + path, timeout=30) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())


def assert_shown_nowhere(
    kube: KubeClient,
    namespace: str,
    ctl: ServeProcess,
    passwords: list[str],
    children: ChildWatch | None = None,
) -> None:
    """None of ``passwords`` (nor their base64) in serve's log, metrics, the namespace's
    events, its Applications' status, the UI's pages and the API (list, each app, each app's
    diff), nor - when ``children`` watched serve - in any child's argv or environment."""
    events = kube.list("v1", "Event", namespace)["items"]
    apps = kube.list("gitsync.dev/v1alpha1", "Application", namespace)["items"]
    places = {
        "log": ctl.log(1_000_000),
        "metrics": _read(ctl, "/metrics"),
        "events": repr(events),
        "status": repr([a.get("status") for a in apps]),
        "/": _read(ctl, "/"),
        "/api/v1/applications": _read(ctl, "/api/v1/applications"),
    }
    for app in apps:
        name = app["metadata"]["name"]
        for path in (
            f"/apps/{namespace}/{name}",
            f"/apps/{namespace}/{name}/diff",
            f"/api/v1/applications/{namespace}/{name}",
            f"/api/v1/applications/{namespace}/{name}/diff",
        ):
            places[path] = _read(ctl, path)
    if children is not None:
        places["children"] = children.seen()
    for where, text in places.items():
        for password in passwords:
            assert password not in text, where
            assert base64.b64encode(password.encode()).decode() not in text, where


class ChildWatch:
    """Samples the argv and environment of every descendant of ``pid`` every 20 ms until
    stopped, so a credential handed to a short-lived child (a Helm worker) is caught."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.children: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def seen(self) -> str:
        return "\n".join(self.children.values())

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for child in _descendants(self.pid):
                if child in self.children:
                    continue
                try:
                    argv = (Path("/proc") / str(child) / "cmdline").read_bytes()
                    environ = (Path("/proc") / str(child) / "environ").read_bytes()
                except OSError:
                    continue
                self.children[child] = (argv + b"\0" + environ).decode(errors="replace")


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
