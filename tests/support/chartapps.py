"""What the end-to-end tests of chart sources (Helm repositories, OCI registries) look at: the
version a chart deployed, an app Synced/Healthy at a ``chart@version``, a condition naming an
error, the controller's peak memory, and that a repository password is shown nowhere a user or
an operator can read (log, metrics, events, status)."""

from __future__ import annotations

import base64
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


def assert_shown_nowhere(
    kube: KubeClient, namespace: str, ctl: ServeProcess, passwords: list[str]
) -> None:
    """None of ``passwords`` (nor their base64) in serve's log, metrics, the namespace's
    events or its Applications' status."""
    with urllib.request.urlopen(ctl.url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    events = kube.list("v1", "Event", namespace)["items"]
    apps = kube.list("gitsync.dev/v1alpha1", "Application", namespace)["items"]
    for where, text in (
        ("log", ctl.log(1_000_000)),
        ("metrics", metrics),
        ("events", repr(events)),
        ("status", repr([a.get("status") for a in apps])),
    ):
        for password in passwords:
            assert password not in text, where
            assert base64.b64encode(password.encode()).decode() not in text, where
