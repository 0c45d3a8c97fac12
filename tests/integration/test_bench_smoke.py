"""The push-to-live benchmark runs end to end (three pushes, the session's cluster).

No timing is asserted - figures belong to the benchmark's output - only that it measures what it
says, reports it, and leaves nothing running behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import TestCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_push_to_live_bench_measures_three_pushes(cluster: TestCluster, tmp_path: Path) -> None:
    out = tmp_path / "push_to_live.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.push_to_live",
            "--pushes=3",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "p50" in result.stdout and "p95" in result.stdout, result.stdout
    assert result.stdout.count("/3:") == 3, result.stdout  # one line per push

    figures = json.loads(out.read_text())
    assert figures["pushes"] == 3
    assert len(figures["samples"]) == 3
    assert all(isinstance(s, float) and s > 0 for s in figures["samples"])
    assert figures["p50"] <= figures["p95"] <= figures["max"] == max(figures["samples"])
    assert len({r["sha"] for r in figures["rounds"]}) == 3
    assert figures["cluster"] == "existing"

    # The controller it started is gone (reaped, not a zombie).
    with pytest.raises(ProcessLookupError):
        os.kill(figures["controller_pid"], 0)
