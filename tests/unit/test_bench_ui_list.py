"""The apps-list benchmark runs (50 Applications, three requests per figure).

No timing is asserted - figures belong to the benchmark's output - only that it measures what it
says (both requests, both ways, with a canary on the first page), reports it, and stops its
server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ui_list_bench_measures_the_page_and_the_api_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "ui_list.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.ui_list", "--apps=50", "--requests=3", f"--json={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(out.read_text())
    assert doc["apps"] == 50 and doc["requests"] == 3 and doc["rollouts_running"] == 1
    figures = [(f["transport"], f["path"]) for f in doc["figures"]]
    assert figures == [
        ("test client", "/"),
        ("test client", "/api/v1/applications?per_page=100"),
        ("waitress", "/"),
        ("waitress", "/api/v1/applications?per_page=100"),
    ]
    for f in doc["figures"]:
        assert f["requests"] == 3
        assert 0 < f["min_ms"] <= f["median_ms"] <= f["p95_ms"] <= f["max_ms"]
        assert f["bytes"] > 1000
    assert "Application list with 50 Applications (1 with a canary in progress)" in result.stdout
    assert "waitress     GET /api/v1/applications?per_page=100" in result.stdout
    assert "target: the list page under 300 ms:" in result.stdout
