"""How ``run_tool`` reports a child that died of its memory limit, whatever words it used.

A Go child under RLIMIT_DATA usually says "fatal error: runtime: out of memory", but when the
limit is reached while the runtime maps a new thread's stack it says "runtime/cgo:
pthread_create failed: Resource temporarily unavailable" instead (seen once in CI from
``test_8_template_allocating_without_bound_is_stopped_by_the_memory_limit``). Both are the limit
at work and must read as one, not as a generic tool failure.
"""

from __future__ import annotations

import sys

import pytest

from gitsync.render.errors import LimitExceededError
from gitsync.render.tool_process import ToolResult, run_tool

MIB = 1024 * 1024


def run(stderr: str, code: int) -> ToolResult:
    script = f"import sys; sys.stderr.write({stderr!r}); sys.exit({code})"
    return run_tool(
        [sys.executable, "-c", script],
        env={},
        cwd="/",
        timeout=30,
        max_output=MIB,
        max_memory=1024 * MIB,
        what="helm template",
        source="charts/web",
    )


@pytest.mark.parametrize(
    "stderr",
    [
        "fatal error: runtime: out of memory\n",
        "runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\n",
        "MemoryError\n",
    ],
)
def test_a_child_that_ran_out_of_memory_is_a_limit_error(stderr: str) -> None:
    with pytest.raises(LimitExceededError, match="helm template ran out of memory"):
        run(stderr, 2)


def test_another_failure_is_returned_as_the_tool_s_own_result() -> None:
    result = run('Error: template: web/templates/x.yaml:1: function "nope" not defined\n', 1)
    assert result.returncode == 1 and "not defined" in result.stderr


def test_the_words_alone_are_not_a_failure() -> None:
    """A child that succeeded is not out of memory because its log mentions it."""
    assert run("warning: pthread_create failed once, retried\n", 0).returncode == 0
