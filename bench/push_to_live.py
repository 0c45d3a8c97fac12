"""Push-to-live latency: how long from ``git push`` until the API server serves the new config.

This is what a user waits for after pushing: the push itself, the forge's webhook, and gitsync's
refresh (ls-remote, fetch, render, compare, apply). One Application follows a repository holding
one ConfigMap. Each round commits a new value (off the clock), then - clock running - pushes it,
delivers a signed GitHub push webhook as the forge would, and reads the ConfigMap from the API
server every 20 ms until it carries the new value. The Application's interval is 3m, so every
round is the webhook's doing, never a poll's.

    python -m bench.push_to_live [--pushes 20] [--kubeconfig PATH] [--json out.json]

Without ``--kubeconfig`` the test control plane (``gitsync.localenv.controlplane``) is started in
a temporary directory; with it, an existing cluster is used. Either way the bench works in a
namespace of its own (deleted afterwards), its controller watches only that namespace, and every
process it starts - control plane, Git server, ``gitsync serve`` - is stopped when it ends, also
on Ctrl-C or SIGTERM.

Figures are per push, then p50 / p95 / max (nearest-rank percentiles: with few pushes p95 is
simply the slowest but one or the slowest).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from gitsync.controller.controller import PUSH_WINDOW, ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.controlplane import ControlPlane, ControlPlaneError
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support import apps as testing_apps
from tests.support.cluster import temporary_namespace
from tests.support.controller import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
POLL_SECONDS = 0.02
APP = "push-to-live"


class BenchError(RuntimeError):
    """The bench could not measure (the controller never deployed, refused a webhook...)."""


@dataclass(frozen=True)
class Round:
    """One push, timed from just before ``git push`` (seconds)."""

    sha: str
    pushed: float  # git push returned
    delivered: float  # the webhook was answered
    live: float  # the API server served the new value


# -- the cluster side ----------------------------------------------------------------------------


def configmap(value: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config"},
            "data": {"value": value},
        }
    )


def application(namespace: str, repo_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "source": {"repoURL": repo_url, "targetRevision": "main", "path": "app"},
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "interval": "3m",
        },
    }


def live_value(kube: KubeClient, namespace: str) -> str | None:
    cm = kube.get("v1", "ConfigMap", "config", namespace) or {}
    value = (cm.get("data") or {}).get("value")
    return value if isinstance(value, str) else None


def synced_revision(kube: KubeClient, namespace: str) -> str | None:
    app = kube.get("gitsync.dev/v1alpha1", "Application", APP, namespace) or {}
    sync = (app.get("status") or {}).get("sync") or {}
    return str(sync.get("revision")) if sync.get("status") == "Synced" else None


def wait_until(check: Callable[[], bool], timeout: float, what: str, ctl: ServeProcess) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}\n{ctl.log(40)}")
        time.sleep(POLL_SECONDS)


def wait_live(kube: KubeClient, namespace: str, value: str, ctl: ServeProcess) -> None:
    """Poll the API server every 20 ms until the ConfigMap carries ``value``."""
    wait_until(lambda: live_value(kube, namespace) == value, 30, f"{value!r} live", ctl)


def wait_synced(
    kube: KubeClient, namespace: str, sha: str, ctl: ServeProcess, timeout: float = 30
) -> None:
    """Until the Application's status says Synced at ``sha``."""
    wait_until(lambda: synced_revision(kube, namespace) == sha, timeout, f"Synced at {sha}", ctl)


# -- the forge side ------------------------------------------------------------------------------


def github_push(ctl: ServeProcess, secret: str, repo_url: str, sha: str) -> None:
    """Deliver a signed GitHub push webhook for ``main``; it must refresh exactly our app."""
    status, answer = testing_apps.github_push(ctl.url, repo_url, sha, secret=secret)
    if status != 202 or answer.get("refreshed") != 1:
        raise BenchError(f"webhook answered {status} {answer}; expected 202 refreshing 1 app")


# -- the measurement -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What the rounds work with: the cluster, the app's namespace and repo, the controller."""

    kube: KubeClient
    namespace: str
    repo: GitRepo
    ctl: ServeProcess
    secret: str  # the webhook secret the controller was started with


def measure(setup: Setup, *, pushes: int, pause: float) -> list[Round]:
    kube, namespace, repo, ctl = setup.kube, setup.namespace, setup.repo, setup.ctl
    rounds = []
    for i in range(1, pushes + 1):
        value = f"push-{i}-{secrets.token_hex(3)}"
        sha = repo.commit({"app/cm.yaml": configmap(value)}, f"set value {value}")
        started = time.perf_counter()
        repo.push()
        pushed = time.perf_counter() - started
        github_push(ctl, setup.secret, repo.file_url(), sha)
        delivered = time.perf_counter() - started
        wait_live(kube, namespace, value, ctl)
        live = time.perf_counter() - started
        rounds.append(Round(sha, pushed, delivered, live))
        print(
            f"  push {i:>3}/{pushes}: {live:7.3f} s"
            f"   (git push {pushed:.3f} s, webhook answered {delivered:.3f} s)",
            flush=True,
        )
        # Let the round finish (status written, the follow-up of the sync's own change) so the
        # next push meets an idle controller.
        wait_synced(kube, namespace, sha, ctl)
        time.sleep(pause)
    return rounds


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@contextlib.contextmanager
def cluster(kubeconfig: str | None, workdir: Path) -> Iterator[tuple[Path, str]]:
    """The kubeconfig to use and a word for the report: an existing cluster, or one started."""
    if kubeconfig:
        yield Path(kubeconfig).resolve(), "existing"
        return
    plane = ControlPlane(workdir / "cluster", simulator_nodes=0)  # a ConfigMap needs no nodes
    print("starting the test control plane ...", flush=True)
    plane.start()
    try:
        print(f"control plane ready in {plane.startup_seconds:.1f} s", flush=True)
        yield plane.kubeconfig_path, "started"
    finally:
        plane.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitsync-bench-")))
        kubeconfig, which = stack.enter_context(cluster(args.kubeconfig, workdir))
        kube = KubeClient.from_kubeconfig(str(kubeconfig), user_agent="gitsync-bench")
        ensure_crd(kube, yaml.safe_load(CRD.read_text()))
        git = stack.enter_context(GitServer(ssh=False))
        repo = git.create_repo(
            f"bench-{secrets.token_hex(3)}", files={"app/cm.yaml": configmap("initial")}
        )
        namespace = stack.enter_context(temporary_namespace(kube, "bench-push-to-live"))
        secret = secrets.token_hex(16)
        ctl = ServeProcess(
            kubeconfig,
            workdir / "serve",
            [f"--namespaces={namespace}"],
            {"GITSYNC_WEBHOOK_SECRET": secret, "GITSYNC_LOG_LEVEL": "warning"},
        )
        stack.callback(ctl.stop)
        ctl.start()
        kube.create(application(namespace, repo.file_url()))
        wait_synced(kube, namespace, repo.head(), ctl, timeout=60)
        print(f"push-to-live over {args.pushes} pushes (poll every 20 ms):", flush=True)
        setup = Setup(kube, namespace, repo, ctl, secret)
        rounds = measure(setup, pushes=args.pushes, pause=args.pause)
        assert ctl.proc is not None
        controller_pid = ctl.proc.pid
    samples = [r.live for r in rounds]
    return {
        "benchmark": "push_to_live",
        "pushes": len(rounds),
        "cluster": which,
        "poll_interval_seconds": POLL_SECONDS,
        "samples": samples,
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "max": max(samples),
        "rounds": [asdict(r) for r in rounds],
        "controller_pid": controller_pid,
    }


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: every process is stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push_to_live", description=__doc__)
    parser.add_argument("--pushes", type=int, default=20, help="how many pushes to time")
    parser.add_argument(
        "--kubeconfig", default=None, help="use this cluster instead of starting one"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--pause",
        type=float,
        default=PUSH_WINDOW,
        help="seconds of quiet between pushes (default: the controller's push window, "
        f"{PUSH_WINDOW:g}; a push inside it joins the run at its end)",
    )
    args = parser.parse_args(argv)
    if args.pushes < 1:
        parser.error("--pushes must be at least 1")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = run(args)
    except (BenchError, ControlPlaneError) as exc:
        print(f"push_to_live: {exc}", file=sys.stderr)
        return 1
    print(
        f"p50 {result['p50']:.3f} s   p95 {result['p95']:.3f} s   max {result['max']:.3f} s",
        flush=True,
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
