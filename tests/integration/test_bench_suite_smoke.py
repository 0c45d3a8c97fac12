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

from gitsync.testing.cluster import TestCluster

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
    "diff: diff_resource",
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
}
WITH_REFERENCE = EXPECTED - {
    "no-change re-sync: real writes (steady)",
    "no-change re-sync: dry-run PATCHes (steady)",
    "push-to-live p50",
    "refresh all apps: CPU seconds (controller)",
    "refresh all apps: writes",
    "refresh all apps: GETs + dry runs",
    "create + first sync of the new apps (setup)",
    "growth: RSS above the smallest stage, per app",
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_suite_reports_every_scenario(cluster: TestCluster, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--scale=small",
            "--runs=1",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
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
