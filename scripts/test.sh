#!/usr/bin/env bash
# The test command: static checks (ruff, mypy --strict, import-linter contracts), then pytest
# (unit tests, then integration tests on the real test control plane and Git server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
V=.venv/bin
echo "== ruff"; $V/ruff check gitsync tests
echo "== ruff format"; $V/ruff format --check gitsync tests
echo "== mypy --strict"; $V/mypy --strict gitsync tests/support
echo "== import-linter"; $V/lint-imports
echo "== pytest"; $V/pytest "$@"
