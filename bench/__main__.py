"""The benchmark suite in one command: gitsync next to its reference, scenario by scenario.

    python -m bench [--scale default|small] [--runs 5] [--kubeconfig PATH] [--json out.json]
                    [--only cold,render,chart,diff,diff-view,push,ui,ui-tree,refresh,drift,
                            push-many,growth,shards,appset,sse] [--profile report.txt]

Without ``--kubeconfig`` the test control plane (``gitsync.localenv.controlplane``, no simulated
nodes) is started in a temporary directory and stopped at the end, also on Ctrl-C or SIGTERM;
with it, an existing cluster is used. Every scenario works in namespaces of its own, deleted
afterwards. Scenarios (``bench.scenarios``): cold apply against ``kubectl apply --server-side``
and a raw concurrent SSA client, no-change re-sync with its API writes, render (plain directory,
Kustomize, Helm, cache hit), a chart from a Helm repository rendered warm (``chart``,
``bench.chart_render``), diff throughput, the UI's diff view of a 500-object app
(``bench.diff_view``); then the existing push-to-live and UI-list benches (``bench.push_to_live``,
``bench.ui_list``) with fewer pushes/requests, and the app page with its live tree for 200
objects and 600 Pods (``ui-tree``, ``bench.ui_tree``); last the many-app scenarios on one in-process
controller (``bench.scale``): a no-change refresh of 1,000 apps (``refresh``), drift among them
(``drift``), push-to-live for one of them (``push-many``), the same refresh at 100, 1,000 and
3,000 apps (``growth``) - one run that adds apps stage by stage - and the refresh by 1 and 2
shard processes (``shards``, ``bench.shard_worker``); then one ApplicationSet generating 1,000
apps on a controller of its own (``appset``, ``bench.appset``); and the UI's live updates fanned
out to 500 stream clients (``sse``, ``bench.sse_fanout``). ``--profile`` adds a
pyinstrument profile of a serial refresh at the largest stage.

Each figure is the median of ``--runs`` runs, gitsync and reference alternating in the same run.
``ratio`` is gitsync / reference: below 1 is faster for times, above 1 is better for objects/s.
``--scale small`` shrinks every N for a smoke run; ``--scale default`` is what BENCHMARKS.md shows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bench import push_to_live, scale, ui_list
from bench.appset import appset_rows
from bench.chart_render import chart_render_rows
from bench.diff_view import diff_view_rows
from bench.scenarios import (
    ROOT,
    BenchError,
    Cluster,
    Row,
    cold_apply_and_resync,
    diff_rows,
    render_rows,
)
from bench.sse_fanout import sse_rows
from bench.ui_tree import ui_tree_rows
from gitsync import logs
from gitsync.controller.controller import PUSH_WINDOW
from gitsync.localenv.controlplane import ControlPlane, ControlPlaneError

SCENARIOS = (
    "cold",
    "render",
    "chart",
    "diff",
    "diff-view",
    "push",
    "ui",
    "ui-tree",
    "refresh",
    "drift",
    "push-many",
    "growth",
    "shards",
    "appset",
    "sse",
)
MANY_APPS = {"refresh", "drift", "push-many", "growth", "shards"}


@dataclass(frozen=True)
class Scale:
    """Sizes of one suite run."""

    cold_sizes: tuple[int, ...]
    cold_runs_cap: dict[int, int]  # N -> at most this many runs (time budget)
    render_files: int
    diff_pairs: int
    pushes: int
    ui_apps: int
    ui_requests: int
    refresh_apps: int  # scenario 2 (and 3, which runs among them)
    growth_apps: tuple[int, ...]  # scenario 8
    drift_edits: int
    diff_view_objects: int  # scenario 6, second half
    many_pushes: tuple[int, int]  # scenario 4 among refresh_apps apps: (shared, own repo)
    shard_at: dict[int, tuple[int, ...]]  # scenario 9: stage -> shard process counts to run
    appset_apps: int  # issue 18: apps one ApplicationSet generates
    appset_steady_seconds: float  # the window its steady-state CPU and writes are read over
    sse_clients: int = 500  # issue 20: live update streams held open
    sse_updates: int = 50  # status writes fanned out to them


SCALES = {
    "default": Scale(
        (100, 1000),
        {},
        1000,
        10_000,
        10,
        1000,
        10,
        1000,
        (100, 1000, 3000),
        10,
        500,
        (5, 20),  # a push to the shared repo refreshes all 1,000 apps: ~15 s each here
        {1000: (1,), 3000: (1, 2)},
        1000,
        60.0,
    ),
    "small": Scale(
        (12,), {}, 30, 200, 2, 20, 2, 4, (2, 4), 2, 6, (2, 2), {4: (1, 2)}, 20, 5.0, 20, 5
    ),
}


@contextlib.contextmanager
def cluster(kubeconfig: str | None, workdir: Path) -> Iterator[tuple[Path, str]]:
    """The kubeconfig to use and a word for the report: an existing cluster, or one started."""
    if kubeconfig:
        yield Path(kubeconfig).resolve(), "existing"
        return
    plane = ControlPlane(workdir / "cluster", simulator_nodes=0)  # nothing here needs nodes
    print("starting the test control plane ...", flush=True)
    plane.start()
    try:
        print(f"control plane ready in {plane.startup_seconds:.1f} s", flush=True)
        yield plane.kubeconfig_path, "started"
    finally:
        plane.stop()


def machine() -> dict[str, Any]:
    # "-dirty" when tracked files differ from the commit: the figures are then not its own
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "objects/s":
        return f"{value:,.0f}"
    if unit in ("writes", "requests"):
        return f"{value:g}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: Sequence[Row]) -> str:
    header = (
        f"{'scenario':<48} {'N':>6} {'unit':>9} {'gitsync':>10}  "
        f"{'reference':<36} {'ref':>10} {'ratio':>6} {'runs':>4}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"{r.scenario:<48} {r.n:>6} {r.unit:>9} {_fmt(r.gitsync, r.unit):>10}  "
            f"{r.reference_name or '-':<36} {_fmt(r.reference, r.unit):>10} {ratio:>6} {r.runs:>4}"
        )
    notes = [f"  {r.scenario} (N={r.n}): {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def push_rows(kubeconfig: Path, pushes: int) -> list[Row]:
    args = argparse.Namespace(
        pushes=pushes, kubeconfig=str(kubeconfig), pause=PUSH_WINDOW, json=None
    )
    result = push_to_live.run(args)
    return [
        Row(
            "push-to-live p50",
            pushes,
            "s",
            result["p50"],
            "",
            None,
            pushes,
            samples={"gitsync": result["samples"]},
            note=f"p95 {result['p95']:.3f} s over {pushes} pushes; full run: "
            "python -m bench.push_to_live --pushes 20",
        )
    ]


def ui_rows(apps: int, requests: int) -> list[Row]:
    result = ui_list.run(apps, requests)
    page, api = result["figures"][2], result["figures"][3]  # through waitress
    return [
        Row(
            "UI apps list page (waitress), median",
            apps,
            "ms",
            page["median_ms"],
            "goal",
            ui_list.TARGET_MS,
            requests,
            note=f"p95 {page['p95_ms']:.1f} ms; full run: python -m bench.ui_list",
        ),
        Row(
            "UI JSON API page of 100 (waitress), median",
            apps,
            "ms",
            api["median_ms"],
            "goal",
            50.0,
            requests,
            note=f"p95 {api['p95_ms']:.1f} ms",
        ),
    ]


def many_app_rows(
    kubeconfig: Path,
    sizes: Scale,
    only: set[str],
    runs: int,
    workdir: Path,
    *,
    profile: Path | None = None,
) -> list[Row]:
    """Scenarios 2, 3, 4 (among many apps), 8 and 9 in one controller run: ``growth`` and
    ``shards`` add their stages around the refresh size; ``drift`` and ``push-many`` run at the
    refresh size; ``--profile`` profiles a serial refresh at the largest stage."""
    stages = {sizes.refresh_apps}
    if "growth" in only:
        stages |= set(sizes.growth_apps)
    shard_at = sizes.shard_at if "shards" in only else {}
    stages |= set(shard_at)
    drift_at = sizes.refresh_apps if "drift" in only else -1
    push_at = sizes.refresh_apps if "push-many" in only else -1
    print(f"many apps: stages {sorted(stages)}, {runs} refreshes each ...", flush=True)
    rows = scale.scale_rows(
        kubeconfig,
        sorted(stages),
        runs,
        drift_at=drift_at,
        drift_edits=sizes.drift_edits,
        workdir=workdir,
        push_at=push_at,
        pushes=sizes.many_pushes,
        shard_at=shard_at,
        shard_runs=min(runs, 3),
        profile=profile,
    )
    if "growth" not in only:
        rows = [r for r in rows if not r.scenario.startswith("growth")]
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = SCALES[args.scale]
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    rows: list[Row] = []
    began = time.monotonic()

    def show(new: list[Row]) -> None:
        rows.extend(new)
        print(table(new) + "\n", flush=True)

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitsync-bench-")))
        needs_cluster = bool(
            only & ({"cold", "push", "diff-view", "ui-tree", "appset", "sse"} | MANY_APPS)
        )
        kubeconfig, which = (
            stack.enter_context(cluster(args.kubeconfig, workdir))
            if needs_cluster
            else (Path(), "none")
        )
        target = Cluster(kubeconfig, args.workers)
        if "cold" in only:
            for n in scale.cold_sizes:
                runs = min(args.runs, scale.cold_runs_cap.get(n, args.runs))
                print(f"cold apply + no-change re-sync, N={n}, {runs} runs ...", flush=True)
                show(cold_apply_and_resync(target, n, runs, workdir))
        if "render" in only:
            print(f"render, {scale.render_files} files ...", flush=True)
            show(render_rows(scale.render_files, args.runs, workdir))
        if "chart" in only:
            print("chart from a Helm repository, warm ...", flush=True)
            show(chart_render_rows(args.runs, workdir))
        if "diff" in only:
            print(f"diff, {scale.diff_pairs} pairs ...", flush=True)
            show(diff_rows(scale.diff_pairs, args.runs))
        if "diff-view" in only:
            print(f"UI diff view, {scale.diff_view_objects} objects ...", flush=True)
            show(diff_view_rows(kubeconfig, scale.diff_view_objects, args.runs, workdir))
        if "push" in only:
            print(f"push-to-live, {scale.pushes} pushes ...", flush=True)
            show(push_rows(kubeconfig, scale.pushes))
        if "ui" in only:
            print(f"UI list, {scale.ui_apps} apps ...", flush=True)
            logs.configure("warning")
            show(ui_rows(scale.ui_apps, scale.ui_requests))
        if "ui-tree" in only:
            deployments, replicas = (100, 6) if args.scale == "default" else (4, 2)
            print(f"UI app page, {deployments * 2} objects and {deployments * replicas} pods ...")
            show(ui_tree_rows(kubeconfig, deployments, replicas, scale.ui_requests))
        if only & MANY_APPS:
            show(many_app_rows(kubeconfig, scale, only, args.runs, workdir, profile=args.profile))
        if "appset" in only:
            print(f"one ApplicationSet generating {scale.appset_apps} apps ...", flush=True)
            show(
                appset_rows(
                    kubeconfig, scale.appset_apps, workdir / "appset", scale.appset_steady_seconds
                )
            )
        if "sse" in only:
            print(f"SSE fan-out to {scale.sse_clients} clients ...", flush=True)
            show(sse_rows(kubeconfig, scale.sse_clients, scale.sse_updates, workdir / "sse"))
    return {
        "benchmark": "suite",
        "scale": args.scale,
        "runs": args.runs,
        "workers": args.workers,
        "cluster": which,
        "machine": machine(),
        "wall_seconds": time.monotonic() - began,
        "rows": [r.as_json() for r in rows],
    }


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: the control plane is stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--workers", type=int, default=8, help="apply threads (Syncer and raw)")
    parser.add_argument(
        "--kubeconfig", default=None, help="use this cluster instead of starting one"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="also profile a serial no-change refresh at the largest many-app stage with "
        "pyinstrument and write its text report here",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.profile is not None and not importlib.util.find_spec("pyinstrument"):
        parser.error("--profile needs pyinstrument (pip install -e '.[dev]')")
    unknown = set(filter(None, args.only.split(","))) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    signal.signal(signal.SIGTERM, _terminate)
    logs.configure("warning")
    try:
        result = run(args)
    except (BenchError, ControlPlaneError, push_to_live.BenchError, ui_list.BenchError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    m = result["machine"]
    print(
        f"all scenarios, {result['wall_seconds']:.0f} s - commit {m['commit']}, {m['date']}, "
        f"{m['nproc']} cores, {m['memory_mib']} MiB",
        flush=True,
    )
    print(table([Row(**_row_args(r)) for r in result["rows"]]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _row_args(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "ratio"}


if __name__ == "__main__":
    sys.exit(main())
