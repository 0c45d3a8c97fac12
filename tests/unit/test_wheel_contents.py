"""The wheel (and so the image, which pip-installs it) ships the product and nothing of the tests.

Test-only helpers live in ``tests/support/``; what ``gitsync demo`` and ``gitsync cluster`` run
(control plane, simulator, Git server) is the product's ``gitsync.localenv``. Two things could
bring test code back into the wheel: packaging configuration that picks up ``tests/`` or
``bench/``, and a test-only helper put back under ``gitsync/``. The first test builds the wheel as
the Dockerfile does (pip, from a copy of what a clean clone holds, offline: no build isolation, no
index) and compares it with the ``gitsync/`` tree; the second checks that every module of
``gitsync.localenv`` is run by the product - imported, directly or not, by ``cli`` or ``demo``, or
started by such a module as ``python -m`` - and that the old ``gitsync.testing`` is gone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_ENTRY_POINTS = ("gitsync.cli", "gitsync.demo")
LOCAL_ENVIRONMENT = "gitsync.localenv"
# A module named in a string literal: how `python -m gitsync.x.y` children are started.
MODULE_LITERAL = re.compile(r"""["'](gitsync(?:\.\w+)+)["']""")


def _clean_clone(destination: Path) -> Path:
    """What a clean clone has that the build could pick up: the package, the tests, the bench."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    for name in ("gitsync", "tests", "bench"):
        shutil.copytree(
            ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return destination


def _build_wheel(source: Path, out: Path) -> Path:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("gitsync-*.whl")
    return wheel


def test_the_wheel_holds_the_gitsync_package_and_nothing_else(tmp_path: Path) -> None:
    source = _clean_clone(tmp_path / "clone")
    wheel = _build_wheel(source, tmp_path / "dist")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

    names = zipfile.ZipFile(wheel).namelist()

    assert {n.split("/")[0] for n in names} == {"gitsync", f"gitsync-{version}.dist-info"}
    shipped = {n for n in names if n.endswith(".py")}
    package = {p.relative_to(source).as_posix() for p in (source / "gitsync").rglob("*.py")}
    assert shipped == package
    assert "gitsync/localenv/controlplane.py" in shipped  # the demo's control plane ships
    assert "gitsync/health/bundled_checks.yaml" in names  # data the health checks load


def _run_by_the_product(graph: grimp.ImportGraph) -> set[str]:
    """Modules the product's entry points import, directly or not, plus the modules any of those
    starts as ``python -m`` (and what those import), until nothing new is found."""
    reached: set[str] = set()
    frontier = set(PRODUCT_ENTRY_POINTS)
    while frontier:
        reached |= frontier
        for module in frontier.copy():
            reached |= graph.find_upstream_modules(module)
        started = {
            named
            for module in reached
            for named in MODULE_LITERAL.findall(_source_of(module).read_text())
            if named in graph.modules
        }
        frontier = started - reached
    return reached


def _source_of(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_every_local_environment_module_is_run_by_the_product() -> None:
    graph = grimp.build_graph("gitsync")
    local_environment = graph.find_children(LOCAL_ENVIRONMENT)
    assert local_environment, f"{LOCAL_ENVIRONMENT} has no modules: is the graph built from ROOT?"

    test_only = sorted(local_environment - _run_by_the_product(graph))

    assert test_only == [], "not run by gitsync cli/demo: move it to tests/support/"
    assert not (ROOT / "gitsync" / "testing").exists(), "test helpers belong in tests/support/"
