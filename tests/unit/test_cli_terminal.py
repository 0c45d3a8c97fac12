"""The command line on a terminal (issue 20): ``--log-format`` picks the log renderer for every
command, and ``gitsync completion`` prints a script that completes subcommands and flags.

Both run in a child process: logging is configured once per process, and completion is a bash
function that only bash can run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

LOG_AFTER_MAIN = (
    "import sys, structlog; from gitsync import cli; cli.main(sys.argv[1:]); "
    "structlog.get_logger().info('probe', answer=42)"
)


def log_line(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOG_AFTER_MAIN, *args, "version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_log_format_json_and_console() -> None:
    as_json = log_line("--log-format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stderr.strip())["event"] == "probe"
    console = log_line("--log-format", "console")
    assert "probe" in console.stderr and "answer=42" in console.stderr
    with pytest.raises(ValueError):
        json.loads(console.stderr.strip())
    # stderr is a pipe here: auto means JSON, as in a pod or a CI job
    assert json.loads(log_line().stderr.strip())["answer"] == 42


def test_a_bad_log_format_from_the_environment_is_refused() -> None:
    run = log_line(env={"GITSYNC_LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2
    assert "--log-format / GITSYNC_LOG_FORMAT: unknown format 'xml'" in run.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("gitsync ap", {"app", "appset"}),
        ("gitsync appset g", {"get"}),
        ("gitsync app wa", {"wait"}),
        ("gitsync app wait team-a/web --ti", {"--timeout"}),
        ("gitsync serve --leader", {"--leader-elect"}),
    ],
)
def test_bash_completion(words: str, expected: set[str]) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "gitsync", "completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    probe = (
        f"{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
        '_gitsync; echo "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert set(out.split()) == expected
