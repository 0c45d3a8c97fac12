"""``gitsync demo``: everything a newcomer needs to watch gitsync work, on one machine.

It starts the project's own test control plane (real etcd, kube-apiserver, kube-controller-manager
and the pod simulator), serves a copy of ``example-repo/`` from a real Git server on loopback (with
a post-receive hook that delivers a signed push webhook, so ``git push`` deploys in about a
second), serves a Helm chart repository of its own (``example-repo/charts/hello`` packaged by
Helm; plain HTTP on loopback, with a repository-credential entry that allows plain HTTP for that
URL only) for the one Application deployed from a chart repository, installs the CRDs, starts
``gitsync serve`` with the UI, a generated admin password and a destination policy that grants
the example apps' project (namespace ``gitsync``) the namespaces they deploy into, and
bootstraps the app-of-apps root, which creates every example Application.
Ctrl-C stops everything it started. Nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import stat
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gitsync import kinds
from gitsync.localenv.chartrepo import ChartRepositoryServer
from gitsync.localenv.controlplane import ControlPlane, binaries_dir
from gitsync.localenv.gitserver import GitServer
from gitsync.localenv.processes import ManagedProcess, free_port

REPO_NAME = "example-repo"
PLACEHOLDER_URL = "https://git.example.com/you/example-repo.git"
CHART_PLACEHOLDER_URL = "https://charts.example.com/you"
DEMO_CHARTS = ("hello",)
"""The charts under ``example-repo/charts/`` the demo publishes to its chart repository."""

HOOK = """#!{python}
# gitsync demo: tell the controller about every push, like a forge's webhook would.
import hashlib, hmac, json, sys, urllib.request
secret = {secret!r}
for line in sys.stdin:
    old, new, ref = line.split()
    body = json.dumps({{"repository": {{"url": {url!r}}}, "ref": ref, "after": new}}).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request({endpoint!r}, data=body, method="POST", headers={{
        "Content-Type": "application/json", "X-Gitsync-Event": "push", "X-Signature": sig}})
    try:
        urllib.request.urlopen(req, timeout=5).read()
        print("gitsync: webhook delivered for", ref)
    except Exception as exc:
        print("gitsync: webhook failed:", exc)
"""


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _wait_http(url: str, proc: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail(40)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback only
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s:\n{proc.log_tail(40)}")


def demo_policy(work: Path) -> dict[str, Any]:
    """The demo's destination policy: the Applications live in ``gitsync`` (the app-of-apps
    root creates them there) and each deploys into a namespace of its own, so that project is
    granted exactly those namespaces - the built-in default for everyone else stays closed."""
    namespaces = {"gitsync"}
    for path in sorted((work / "applications").glob("*.yaml")):
        app = yaml.safe_load(path.read_text())
        namespaces.add(app["spec"]["destination"]["namespace"])
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.DESTINATION_POLICY,
        "projects": {"gitsync": {"namespaces": sorted(namespaces)}},
    }


def _rewrite_applications(work: Path, repo_url: str, chart_repo_url: str) -> None:
    """Point the example Applications at the demo's Git server and chart repository instead of
    the placeholders."""
    for path in sorted((work / "applications").glob("*.yaml")) + sorted(
        (work / "bootstrap").glob("*.yaml")
    ):
        text = path.read_text().replace(PLACEHOLDER_URL, repo_url)
        path.write_text(text.replace(CHART_PLACEHOLDER_URL, chart_repo_url))


def chart_repository_entry(url: str, namespace: str) -> dict[str, Any]:
    """The repository-credential entry for the demo's chart repository: no password (there is
    none), plain HTTP allowed for this URL prefix only, offered to the Applications in
    ``namespace``."""
    data = {"url": url, "insecureAllowHttp": "true", "namespaces": namespace}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "demo-chart-repository",
            "namespace": namespace,
            "labels": {"gitsync.dev/secret-type": "repository"},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


class Demo:
    def __init__(self, root: Path, example_repo: Path, *, port: int = 8080, crds: Path):
        self.root = root
        self.example_repo = example_repo
        self.port = port
        self.crds = crds
        self.stack: list[Callable[[], None]] = []
        self.password = secrets.token_urlsafe(12)
        self.webhook_secret = secrets.token_hex(16)

    def run(self, *, wait: bool = True) -> dict[str, Any]:
        try:
            info = self.start()
            if wait:
                stop = threading.Event()
                signal.signal(signal.SIGINT, lambda *_: stop.set())
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                stop.wait()
                _say("stopping everything the demo started")
            return info
        finally:
            if wait:
                self.stop()

    def start(self) -> dict[str, Any]:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        if not (binaries_dir() / "kube-apiserver").exists():
            _say("building kube-apiserver and kube-controller-manager once (about 5 minutes)...")
        began = time.monotonic()
        cp = ControlPlane(self.root / "cluster")
        _say("starting the local control plane (etcd, kube-apiserver, controller-manager, nodes)")
        cp.start()
        self.stack.append(cp.stop)
        _say(f"control plane ready in {cp.startup_seconds:.1f}s")
        kube = cp.client(user_agent="gitsync-demo")

        git = GitServer(ssh=False)
        git.start()
        self.stack.append(git.close)
        repo = git.create_repo(REPO_NAME, from_dir=self.example_repo)
        url = repo.http_url()
        charts = ChartRepositoryServer(self.root / "chart-repository", tls=False)
        self.stack.append(charts.close)
        for chart in DEMO_CHARTS:
            charts.publish_chart(repo.work_path / "charts" / chart)
        _say(f"serving a Helm chart repository at {charts.url} ({', '.join(DEMO_CHARTS)})")
        _rewrite_applications(repo.work_path, url, charts.url)
        repo.commit(message="demo: point the Applications at the local Git server")
        repo.push()
        endpoint = f"http://127.0.0.1:{self.port}/api/webhook"
        hook = repo.bare_path / "hooks" / "post-receive"
        hook.write_text(
            HOOK.format(
                python=sys.executable, secret=self.webhook_secret, url=url, endpoint=endpoint
            )
        )
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        _say(f"serving example-repo at {url}")

        password_file = self.root / "admin-password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        policy_file = self.root / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(demo_policy(repo.work_path), sort_keys=False))
        crd_args = [f"--install-crd={p}" for p in sorted(self.crds.glob("*.yaml"))]
        serve = ManagedProcess(
            "gitsync-serve",
            [
                sys.executable, "-m", "gitsync", "serve",
                f"--listen=127.0.0.1:{self.port}",
                f"--kubeconfig={cp.kubeconfig_path}",
                f"--cache-dir={self.root / 'cache'}",
                f"--admin-password-file={password_file}",
                # one user on a private control plane, and the example apps create their own
                # namespaces: the single-team opt-out (serve logs it as a warning)
                "--impersonate=false",
                f"--policy={policy_file}",
                *crd_args,
            ],
            self.root / "gitsync-serve.log",
            env={**os.environ, "GITSYNC_WEBHOOK_SECRET": self.webhook_secret},
        )  # fmt: skip
        serve.start()
        self.stack.append(serve.stop)
        _wait_http(f"http://127.0.0.1:{self.port}/readyz", serve, 90)
        _say("gitsync serve is up")

        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gitsync"}},
            field_manager="gitsync-demo",
        )
        # before the Applications: without it the chart app's plain-HTTP fetch is refused
        kube.apply(chart_repository_entry(charts.url, "gitsync"), field_manager="gitsync-demo")
        root_app = yaml.safe_load((repo.work_path / "bootstrap" / "root.yaml").read_text())
        kube.apply(root_app, field_manager="gitsync-demo")
        info = {
            "url": f"http://127.0.0.1:{self.port}",
            "username": "admin",
            "password": self.password,
            "kubeconfig": str(cp.kubeconfig_path),
            "work_tree": str(repo.work_path),
            "repo_url": url,
            "chart_repo_url": charts.url,
            "seconds": time.monotonic() - began,
        }
        self._print_next_steps(info)
        return info

    def stop(self) -> None:
        while self.stack:
            step = self.stack.pop()
            try:
                step()
            except Exception as exc:
                print(f"[demo] while stopping: {exc}", file=sys.stderr)

    @staticmethod
    def _print_next_steps(info: dict[str, Any]) -> None:
        print(
            f"""
gitsync demo is running ({info["seconds"]:.0f}s to start).

  UI:          {info["url"]}   (admin password: {info["password"]})
  kubectl:     export KUBECONFIG={info["kubeconfig"]}; kubectl get applications -A
  Git repo:    {info["repo_url"]}  (a working copy is at {info["work_tree"]})
  Chart repo:  {info["chart_repo_url"]}  (chart "hello", deployed by the hello-chart app)

Try next:
  cd {info["work_tree"]}
  sed -i 's/nginx:1.25$/nginx:1.26/' apps/canary/deployment.yaml
  git commit -am "new canary image" && git push origin main
  -> the push hook sends a signed webhook; open the "canary" app in the UI and watch the
     canary take 20 % of the pods, pause 30 s, take 60 %, then wait for you to press Promote.

Press Ctrl-C to stop everything the demo started.
""",
            flush=True,
        )


def main(repo_root: Path, *, port: int | None, state_dir: Path | None) -> int:
    example = repo_root / "example-repo"
    crds = repo_root / "charts" / "gitsync" / "crds"
    if not example.is_dir() or not crds.is_dir():
        print("error: run the demo from a clone of the gitsync repository", file=sys.stderr)
        return 2
    chosen = port or (8080 if _port_free(8080) else free_port())
    Demo(state_dir or repo_root / ".demo", example, port=chosen, crds=crds).run()
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


__all__ = ["Demo", "main"]
