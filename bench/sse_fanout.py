"""SSE fan-out: what the UI's live updates cost the controller with 500 open pages.

    python -m bench.sse_fanout [--clients 500] [--updates 50] [--kubeconfig PATH] [--json out.json]

One ``gitsync serve`` process watches a namespace with one Application (suspended, so the
controller itself never writes it); ``--clients`` stream clients (``tests.support.sse``, one
reader thread in this process) hold ``GET /api/v1/stream`` open. The bench then writes the
Application's status ``--updates`` times, 0.25 s apart (each one a separate event, as status
writes of different reconciles are), and for each write records when every client received it.

Figures:

* **controller CPU per update**: the serve process's user+system CPU (``/proc/PID/stat``) over
  the updates, less the CPU of an equally long idle window with the same clients connected (the
  watches, heartbeats and Python's own idling), divided by the number of updates. It covers the
  watch event, one encoding, and the write of the frame to every client.
* **delivery latency**: from the status write's request to each client's receipt of the frame,
  p50 and p95 over every (update, client) pair; and the p95 over updates of the *last* client's
  receipt ("to all clients").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from bench.push_to_live import cluster
from bench.scenarios import Row
from gitsync import kinds
from gitsync.controller.controller import ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.controlplane import ControlPlaneError
from tests.support.cluster import temporary_namespace
from tests.support.controller import ServeProcess
from tests.support.sse import EventStreams, Stream

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
APP = "fanout"
GAP_SECONDS = 0.25  # between status writes: each is its own event, none merged with the next


class BenchError(RuntimeError):
    """The bench could not measure (streams refused, updates never arrived...)."""


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def suspended_application(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": "Application",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "source": {"repoURL": "https://git.example.invalid/fanout.git", "path": "."},
            "destination": {"namespace": namespace},
            "suspend": True,
        },
    }


def write_status(kube: KubeClient, namespace: str, message: str) -> float:
    """Write the Application's status; returns when the request was sent (monotonic): the
    watch event can reach the controller - and the clients - before the PATCH's answer has been
    read here, so the write is timed from its start (the latency includes the API server's
    write, a few ms)."""
    sent = time.monotonic()
    kube.patch(
        kinds.API_VERSION,
        "Application",
        APP,
        {"status": {"health": {"status": "Healthy", "message": message}}},
        namespace=namespace,
        subresource="status",
    )
    return sent


def received(stream: Stream, message: str) -> float | None:
    for event in stream.events:
        if event.name == "app" and event.data.get("health", {}).get("message") == message:
            return event.received
    return None


def run(kubeconfig: Path, clients: int, updates: int, workdir: Path) -> dict[str, Any]:
    kube = KubeClient.from_kubeconfig(str(kubeconfig), user_agent="gitsync-bench")
    ensure_crd(kube, yaml.safe_load(CRD.read_text()))
    token = "bench-" + secrets.token_hex(16)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tokens").write_text(token + "\n")
    with contextlib.ExitStack() as stack:
        namespace = stack.enter_context(temporary_namespace(kube, "bench-sse"))
        kube.create(suspended_application(namespace))
        ctl = ServeProcess(
            kubeconfig,
            workdir / "serve",
            [
                f"--namespaces={namespace}",
                f"--read-only-token-file={workdir / 'tokens'}",
                f"--ui-max-streams={clients}",
            ],
            {"GITSYNC_LOG_LEVEL": "warning"},
        )
        (workdir / "serve").mkdir(exist_ok=True)
        stack.callback(ctl.stop)
        ctl.start()
        assert ctl.proc is not None and ctl.proc.pid is not None
        pid = ctl.proc.pid
        streams = stack.enter_context(EventStreams(ctl.url, token))
        opened = [streams.open("/api/v1/stream") for _ in range(clients)]
        if not streams.wait(lambda: all(s.status for s in opened), 60):
            raise BenchError(f"only {sum(bool(s.status) for s in opened)} streams answered")
        refused = [s.status for s in opened if s.status != 200]
        if refused:
            raise BenchError(f"{len(refused)} streams refused: {sorted(set(refused))}")
        print(f"sse fan-out: {clients} streams open; {updates} status writes ...", flush=True)

        written: dict[str, float] = {}
        window = updates * GAP_SECONDS
        cpu_before = process_cpu(pid)
        began = time.monotonic()
        for i in range(updates):
            message = f"update {i} {secrets.token_hex(4)}"
            written[message] = write_status(kube, namespace, message)
            time.sleep(max(0.0, began + (i + 1) * GAP_SECONDS - time.monotonic()))
        last = list(written)[-1]
        if not streams.wait(lambda: all(received(s, last) for s in opened), 60):
            raise BenchError("the last update did not reach every client within 60 s")
        busy_cpu = process_cpu(pid) - cpu_before
        busy_seconds = time.monotonic() - began

        idle_cpu = process_cpu(pid)
        time.sleep(busy_seconds)  # the same clients, no updates
        idle_cpu = process_cpu(pid) - idle_cpu

        latencies: list[float] = []
        to_all: list[float] = []
        missing = 0
        for message, at in written.items():
            times = [received(s, message) for s in opened]
            got = [t - at for t in times if t is not None]
            missing += len(times) - len(got)
            latencies += got
            if len(got) == len(times):
                to_all.append(max(got))
    cpu_per_update = max(0.0, busy_cpu - idle_cpu) / updates
    return {
        "benchmark": "sse_fanout",
        "clients": clients,
        "updates": updates,
        "window_seconds": window,
        "cpu_busy_seconds": busy_cpu,
        "cpu_idle_seconds": idle_cpu,
        "cpu_per_update_ms": cpu_per_update * 1000,
        "latency_p50_ms": percentile(latencies, 50) * 1000,
        "latency_p95_ms": percentile(latencies, 95) * 1000,
        "to_all_p50_ms": percentile(to_all, 50) * 1000 if to_all else None,
        "to_all_p95_ms": percentile(to_all, 95) * 1000 if to_all else None,
        "coalesced_or_missing": missing,
    }


def sse_rows(kubeconfig: Path, clients: int, updates: int, workdir: Path) -> list[Row]:
    result = run(kubeconfig, clients, updates, workdir)
    return [
        Row(
            "SSE fan-out: controller CPU per update",
            clients,
            "ms",
            result["cpu_per_update_ms"],
            "",
            None,
            updates,
            note=f"{result['cpu_busy_seconds']:.2f} s CPU over {updates} updates, less "
            f"{result['cpu_idle_seconds']:.2f} s idle with the same streams open",
        ),
        Row(
            "SSE fan-out: delivery latency p95 (to all)",
            clients,
            "ms",
            result["to_all_p95_ms"] or float("nan"),
            "",
            None,
            updates,
            note=f"per client p50 {result['latency_p50_ms']:.0f} ms, p95 "
            f"{result['latency_p95_ms']:.0f} ms; last client p50 {result['to_all_p50_ms']:.0f} "
            f"ms; full run: python -m bench.sse_fanout",
        ),
    ]


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_fanout", description=__doc__)
    parser.add_argument("--clients", type=int, default=500, help="stream clients to hold open")
    parser.add_argument("--updates", type=int, default=50, help="status writes to deliver")
    parser.add_argument("--kubeconfig", default=None, help="use this cluster, not a new one")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.updates < 1:
        parser.error("--clients and --updates must be at least 1")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with contextlib.ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitsync-sse-")))
            kubeconfig, _ = stack.enter_context(cluster(args.kubeconfig, workdir))
            result = run(kubeconfig, args.clients, args.updates, workdir)
    except (BenchError, ControlPlaneError) as exc:
        print(f"sse_fanout: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
