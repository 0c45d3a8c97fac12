"""The newcomer path: `gitsync demo` brings up the control plane, the example repo, the
controller and the UI; the app of apps creates every example Application; the suggested
edit-and-push deploys. Ctrl-C (SIGINT) stops everything it started."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.processes import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_APPS = {
    "guestbook",
    "helm-chart",
    "podinfo-staging",
    "canary",
    "bluegreen",
    "hello-chart",
}


def read_until(
    proc: subprocess.Popen[str], pattern: str, lines: list[str], limit: int = 400
) -> re.Match[str]:
    assert proc.stdout is not None
    for _ in range(limit):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("demo exited early:\n" + "".join(lines))
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not printed:\n" + "".join(lines))


def logged_in_opener(url: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    page = opener.open(url + "/login", timeout=10).read().decode()
    field = re.search(r'type="hidden" name="([^"]+)" value="([^"]+)"', page)
    assert field, page
    form = urllib.parse.urlencode(
        {field.group(1): field.group(2), "next": "/", "password": password}
    )
    opener.open(url + "/login", data=form.encode(), timeout=10).read()
    return opener


@pytest.mark.skipif(sys.platform != "linux", reason="the demo runs the Linux control plane")
def test_demo_brings_up_all_example_apps_and_deploys_a_push(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gitsync",
            "demo",
            f"--port={port}",
            f"--state-dir={tmp_path / 'demo'}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        password = read_until(proc, r"admin password: (\S+)\)", lines).group(1)
        kubeconfig = read_until(proc, r"export KUBECONFIG=(\S+);", lines).group(1)
        work_tree = read_until(proc, r"^  cd (\S+)$", lines).group(1)
        kube = KubeClient.from_kubeconfig(kubeconfig)

        def all_synced_and_healthy() -> bool:
            apps = kube.list("gitsync.dev/v1alpha1", "Application", "gitsync")["items"]
            got = {
                a["metadata"]["name"]: (
                    a.get("status", {}).get("sync", {}).get("status"),
                    a.get("status", {}).get("health", {}).get("status"),
                )
                for a in apps
            }
            return EXAMPLE_APPS | {"root"} <= set(got) and all(
                v == ("Synced", "Healthy") for v in got.values()
            )

        wait_for(
            all_synced_and_healthy,
            timeout=180,
            interval=1,
            what="every example app Synced and Healthy",
        )

        # the app from the demo's own chart repository: a chart version, not a commit
        hello = kube.get("gitsync.dev/v1alpha1", "Application", "hello-chart", "gitsync")
        assert hello is not None
        assert hello["status"]["sourceType"] == "HelmRepository"
        assert hello["status"]["sync"]["revision"] == "hello@0.1.0"
        page_cm = kube.get("v1", "ConfigMap", "hello-chart-page", "hello-chart")
        assert page_cm is not None and "values from Git" in page_cm["data"]["index.html"]

        url = f"http://127.0.0.1:{port}"
        page = logged_in_opener(url, password).open(url + "/", timeout=10).read().decode()
        for name in EXAMPLE_APPS:
            assert name in page
        assert page.count("Synced") >= 4 and page.count("Healthy") >= 4

        # the suggested edit-and-push: a new image for the canary app
        deployment = Path(work_tree) / "apps/canary/deployment.yaml"
        deployment.write_text(deployment.read_text().replace("nginx:1.25\n", "nginx:1.26\n"))
        subprocess.run(["git", "commit", "-qam", "new canary image"], cwd=work_tree, check=True)
        pushed = subprocess.run(
            ["git", "push", "origin", "main"],
            cwd=work_tree,
            check=True,
            capture_output=True,
            text=True,
        )
        assert "webhook delivered" in pushed.stderr, pushed.stderr

        def canary_running() -> dict[str, Any] | None:
            rollout = kube.get("gitsync.dev/v1alpha1", "Rollout", "web", "canary-demo") or {}
            status = rollout.get("status") or {}
            # 1 of the 5 pods (apps/canary/rollout.yaml, step 1: setWeight 20), counted from ready
            # pods; 1 of 6 (17 %) on the way, while the stable side scales down
            return (
                status if status.get("canaryHash") and status.get("currentWeight") == 20 else None
            )

        wait_for(canary_running, timeout=90, what="a canary with ready pods taking traffic")
        opener = logged_in_opener(url, password)
        detail = opener.open(url + "/apps/gitsync/canary", timeout=10).read().decode()
        assert "rollout-step" in detail and "canary 20 %" in detail, detail[:3000]
        listed = opener.open(url + "/", timeout=10).read().decode()
        assert "canary 20 %" in listed
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, "".join(lines)
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "demo")], check=False, capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == "", "processes left running: " + leftovers.stdout
