"""Running the ``gitsync`` command line as a separate process, the way a person does.

Engine acceptance tests go through the real CLI (exit codes, what is printed) rather than calling
functions, and capture stdout+stderr so they can prove that no secret is ever printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CliRun:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"gitsync {' '.join(self.args)} -> exit {self.code}\n{self.stdout}\n{self.stderr}"


def run_gitsync(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300.0, cwd: Path | None = None
) -> CliRun:
    full_env = {**os.environ, "GITSYNC_LOG_LEVEL": "info", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "gitsync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        check=False,
    )
    return CliRun(tuple(args), proc.returncode, proc.stdout, proc.stderr)
