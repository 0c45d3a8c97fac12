"""The import-linter contracts in pyproject.toml bite: each test plants one import a newcomer might
write into a copy of the package and asserts ``lint-imports`` (with the project's own configuration)
reports the contract that forbids it as broken. A contract that lets such an import through is an
allow-list with a hole, which is what these tests exist to catch.

The copy is analysed instead of the working tree so the tree is never edited; it is found first on
``sys.path`` because lint-imports runs in the copy's directory with ``PYTHONPATH`` pointing at it.
The clean copy passing proves the copy, not the installed package, is what gets analysed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@dataclass(frozen=True)
class PlantedImport:
    """One import planted at the end of one module, and the contract (by id) that must break."""

    module: str
    statement: str
    contract: str


# The four violations first; each passed `lint-imports` before the contracts were
# rewritten as allow-lists.
VIOLATIONS = {
    "kubernetes-in-rollout-executor": PlantedImport(
        "gitsync/rollout/executor.py", "import kubernetes", "kubernetes-client"
    ),
    "gitpython-in-web-pages": PlantedImport("gitsync/web/pages.py", "import git", "gitpython"),
    "kube-client-in-pure-canary": PlantedImport(
        "gitsync/rollout/canary.py", "from gitsync.kube import KubeClient", "pure-cores"
    ),
    "application-in-model": PlantedImport(
        "gitsync/model.py", "from gitsync import application", "layers"
    ),
    # More of the same kinds: a client outside its adapter, a pure core running a process, a
    # decision module calling up into the executor, one health check consulting another.
    "flask-in-sync": PlantedImport("gitsync/sync/syncer.py", "import flask", "flask"),
    "apscheduler-in-webhook": PlantedImport(
        "gitsync/webhook/events.py", "import apscheduler", "apscheduler"
    ),
    "subprocess-in-diff": PlantedImport(
        "gitsync/diff/compare.py", "import subprocess", "pure-cores"
    ),
    "executor-in-canary": PlantedImport(
        "gitsync/rollout/canary.py", "from gitsync.rollout import executor", "rollout-layers"
    ),
    "health-kind-in-kind": PlantedImport(
        "gitsync/health/pod.py", "from gitsync.health import deployment", "health-layers"
    ),
    # The local environment is the demo's and `gitsync cluster`'s, not the controller's; it talks
    # to the cluster through the kube client only; and the product never reaches test-only code,
    # which the wheel does not contain.
    "localenv-in-controller": PlantedImport(
        "gitsync/controller/controller.py", "from gitsync.localenv import controlplane", "layers"
    ),
    "engine-in-localenv": PlantedImport(
        "gitsync/localenv/controlplane.py", "from gitsync import engine", "localenv"
    ),
    "test-support-in-demo": PlantedImport(
        "gitsync/demo.py", "from tests.support import cluster", "no-test-code"
    ),
    "bench-in-cli": PlantedImport("gitsync/cli.py", "import bench", "no-test-code"),
    # Jsonnet can loop: evaluated in-process it would hold a controller thread without end.
    "jsonnet-in-directory": PlantedImport(
        "gitsync/render/directory.py", "import _jsonnet", "jsonnet"
    ),
    # CEL evaluated outside the metered evaluator (health.cel) could loop without a bound.
    "celpy-in-health-custom": PlantedImport("gitsync/health/custom.py", "import celpy", "cel"),
    # An ApplicationSet's generators get their inputs from the controller; they never reach the
    # cluster (or Git) themselves.
    "kube-in-appset-generate": PlantedImport(
        "gitsync/appset/generate.py", "from gitsync.kube import KubeClient", "appset-core"
    ),
    # The web layer reaching past the controller's interface into its internals.
    "controller-internals-in-web-diff": PlantedImport(
        "gitsync/web/diff.py",
        "from gitsync.controller.controller import Controller",
        "web-controller-interface",
    ),
    # ID tokens are checked in one place (web.oidc), and cookies sealed in one (web.sessions).
    "joserfc-in-web-guard": PlantedImport("gitsync/web/guard.py", "import joserfc", "oidc"),
    "cryptography-in-web-sso": PlantedImport(
        "gitsync/web/sso.py", "import cryptography", "cryptography"
    ),
}


def _contract_names() -> dict[str, str]:
    """Contract id -> display name, read from the configuration the tests run against."""
    import tomllib

    contracts = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]["contracts"]
    return {c["id"]: c["name"] for c in contracts}


def _copy_package(destination: Path) -> Path:
    shutil.copytree(
        ROOT / "gitsync", destination / "gitsync", ignore=shutil.ignore_patterns("__pycache__")
    )
    return destination


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "1000", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(CONFIG)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _broken(output: str, names: dict[str, str]) -> set[str]:
    """Ids of the contracts the report lists as BROKEN."""
    flat = re.sub(r"\s+", " ", output)
    return {cid for cid, name in names.items() if f"{name} BROKEN" in flat}


def test_the_clean_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("violation", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_a_planted_import_breaks_its_contract(tmp_path: Path, violation: PlantedImport) -> None:
    tree = _copy_package(tmp_path)
    module = tree / violation.module
    module.write_text(module.read_text() + f"\n{violation.statement}  # planted\n")

    result = _lint(tree)

    names = _contract_names()
    assert result.returncode != 0, result.stdout
    assert violation.contract in _broken(result.stdout, names), result.stdout


def test_contracts_have_unique_ids_and_names() -> None:
    import tomllib

    contracts = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]["contracts"]
    ids = [c["id"] for c in contracts]
    assert len(set(ids)) == len(ids)
    assert len(set(_contract_names().values())) == len(contracts)
