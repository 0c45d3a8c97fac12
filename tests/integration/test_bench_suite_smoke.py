"""The benchmark suite (``python -m bench``) runs end to end, small, on the session's cluster.

No timing is asserted - figures belong to the benchmark's output - only that every scenario is
measured and reported with numbers, so the harness cannot rot unnoticed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import TestCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "cold apply",
    "no-change re-sync, first after apply",
    "no-change re-sync, steady (memo warm)",
    "no-change re-sync: real writes (steady)",
    "no-change re-sync: dry-run PATCHes (steady)",
    "render: plain directory",
    "render: example Kustomize overlay",
    "render: example Helm chart",
    "render cache hit, per call",
    # a chart from a Helm repository, warm (bench.chart_render)
    "render: repository chart, warm (index 304, cached archive)",
    "refresh: repository chart, unchanged (index 304, render cache hit)",
    "diff: diff_resource",
    "UI diff view, time to first byte (waitress)",
    "push-to-live p50",
    "UI apps list page (waitress), median",
    "UI JSON API page of 100 (waitress), median",
    # many apps on one controller (bench.scale): refresh, drift, growth
    "refresh all apps, no change",
    "refresh all apps: CPU seconds (controller)",
    "refresh all apps: writes",
    "refresh all apps: GETs + dry runs",
    "controller RSS after refresh",
    "create + first sync of the new apps (setup)",
    "drift: all edits reported (self-heal started)",
    "drift: all edits corrected",
    "growth: refresh time per app",
    "growth: RSS above the smallest stage, per app",
    # push-to-live for one of many apps (scenario 4), both repository layouts
    "push-to-live p50, 1 of N apps, shared repo",
    "push-to-live p50, 1 of N apps, own repo",
    # the pyinstrument profile of a serial refresh (--profile)
    "refresh all apps, serial, under pyinstrument",
    # sharded refresh in 1 and 2 processes (scenario 9, bench.shard_worker)
    *(
        f"sharded refresh{what}, {label}"
        for label in ("1 process", "2 processes")
        for what in (", no change", ": CPU s per process", ": RSS per process", ": writes")
    ),
}
# one ApplicationSet generating many apps (issue 18, bench.appset): no reference to compare with
APPSET = {
    "appset: set created -> applicationCount N",
    "appset: set created -> all apps Synced",
    "appset: steady CPU s per minute (controller)",
    "appset: Application writes by the set (steady)",
    "appset: one no-change set pass",
}
EXPECTED |= APPSET
# the app page with its live tree (issue 20, bench.ui_tree): figures only, no reference
UI_TREE = {
    "UI app page with live tree, first byte, p50",
    "UI app page with live tree, last byte, p50",
    "tree API document complete, p50",
}
EXPECTED |= UI_TREE
# the UI's live updates fanned out to many stream clients (issue 20, bench.sse_fanout)
SSE = {
    "SSE fan-out: controller CPU per update",
    "SSE fan-out: delivery latency p95 (to all)",
}
EXPECTED |= SSE
WITH_REFERENCE = EXPECTED - {
    "no-change re-sync: real writes (steady)",
    "no-change re-sync: dry-run PATCHes (steady)",
    "push-to-live p50",
    "refresh all apps: CPU seconds (controller)",
    "refresh all apps: writes",
    "refresh all apps: GETs + dry runs",
    "create + first sync of the new apps (setup)",
    "growth: RSS above the smallest stage, per app",
    "refresh all apps, serial, under pyinstrument",
    "sharded refresh: CPU s per process, 1 process",
    "sharded refresh: CPU s per process, 2 processes",
    "sharded refresh: writes, 1 process",
    "sharded refresh: writes, 2 processes",
    *APPSET,
    *UI_TREE,
    *SSE,
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _small_bench(
    cluster: TestCluster, out: Path, *extra: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m bench`` at the small scale, one run, on the session's cluster."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--scale=small",
            "--runs=1",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--json={out}",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_bench_suite_reports_every_scenario(cluster: TestCluster, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    profile = tmp_path / "profile.txt"
    result = _small_bench(cluster, out, f"--profile={profile}", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scenario" in result.stdout and "ratio" in result.stdout, result.stdout

    report = json.loads(out.read_text())
    assert report["cluster"] == "existing"
    assert report["scale"] == "small" and report["runs"] == 1
    assert {"commit", "date", "nproc", "memory_mib"} <= set(report["machine"])
    rows = report["rows"]
    assert {r["scenario"] for r in rows} == EXPECTED
    for row in rows:
        assert _number(row["gitsync"]), row
        assert _number(row["n"]) and row["n"] > 0, row
        if row["scenario"] in WITH_REFERENCE:
            assert _number(row["reference"]) and row["reference"] > 0, row
            assert _number(row["ratio"]), row
    # cold apply is reported against both references: kubectl and the raw SSA client
    cold = [r["reference_name"] for r in rows if r["scenario"] == "cold apply"]
    assert len(cold) == 2 and any("kubectl" in name for name in cold), cold
    # nothing changed between the re-syncs: gitsync must not have written anything
    writes = next(r for r in rows if r["scenario"] == "no-change re-sync: real writes (steady)")
    assert writes["gitsync"] == 0, writes
    # the many-app scenarios ran at every stage of the small growth run (2 and 4 apps)
    refreshes = {r["n"] for r in rows if r["scenario"] == "refresh all apps, no change"}
    assert refreshes == {2, 4}, rows
    # a refresh is answered from the watch cache: no GET per object (one inventory read per app)
    for row in rows:
        if row["scenario"] == "refresh all apps: GETs + dry runs":
            assert row["gitsync"] <= row["n"], row
    # scenario 9: the two shard processes split the apps, and a no-change refresh writes nothing
    by_name = {(r["scenario"], r["n"]): r for r in rows}
    for label in ("1 process", "2 processes"):
        assert by_name[(f"sharded refresh: writes, {label}", 4)]["gitsync"] == 0, rows
    two = by_name[("sharded refresh, no change, 2 processes", 4)]
    assert "apps per process [" in two["note"] and ", " in two["note"].split("[")[1], two
    # scenario 4: the shared repository's webhook refreshed every app, the own one's only one
    shared = by_name[("push-to-live p50, 1 of N apps, shared repo", 4)]
    own = by_name[("push-to-live p50, 1 of N apps, own repo", 4)]
    assert "refreshed 4 apps" in shared["note"] and "refreshed 1 apps" in own["note"], rows
    # --profile wrote pyinstrument's text report of the serial refresh
    assert "Recorded:" in profile.read_text(), profile.read_text()[:500]
    _check_appset_rows(rows)


def _check_appset_rows(rows: list[dict[str, object]]) -> None:
    """The set's rows are there for the small scale's 20 apps, and in the steady window the
    set wrote no Application (nothing changed, so nothing may be applied)."""
    by_name = {r["scenario"]: r for r in rows if r["scenario"] in APPSET}
    assert set(by_name) == APPSET, rows
    assert {r["n"] for r in by_name.values()} == {20}, rows
    for row in by_name.values():
        assert _number(row["gitsync"]), row
    assert by_name["appset: Application writes by the set (steady)"]["gitsync"] == 0, by_name
    # a forced pass with nothing changed applies no Application either
    assert "Application writes 0" in str(by_name["appset: one no-change set pass"]["note"])
    created = by_name["appset: set created -> applicationCount N"]["gitsync"]
    synced = by_name["appset: set created -> all apps Synced"]["gitsync"]
    assert isinstance(created, float) and isinstance(synced, float)
    assert 0 < created <= synced, by_name


def test_bench_appset_scenario_alone(cluster: TestCluster, tmp_path: Path) -> None:
    out = tmp_path / "appset.json"
    result = _small_bench(cluster, out, "--only=appset", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    _check_appset_rows(json.loads(out.read_text())["rows"])


def test_bench_sse_scenario_alone(cluster: TestCluster, tmp_path: Path) -> None:
    out = tmp_path / "sse.json"
    result = _small_bench(cluster, out, "--only=sse", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {r["scenario"] for r in rows} == SSE, rows
    for row in rows:
        assert _number(row["gitsync"]) and row["n"] == 20, row
