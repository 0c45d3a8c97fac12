"""Running a rendering tool (kubectl kustomize, the Helm worker) as a bounded child process.

Tools run in a child process rather than in the controller because only a process can be stopped:
a template loop or a huge kustomize build is killed when the render's deadline passes, and its
output is read incrementally and cut off at a byte limit, so neither time nor memory is at the
mercy of the repository. Memory is bounded too: right after the child starts, its data segment
limit (``RLIMIT_DATA``, which on Linux counts private writable mappings, i.e. the Go and Python
heaps) is set with ``prlimit``, so a template such as ``{{ range until 100000000 }}`` dies with an
out-of-memory error instead of taking gigabytes from the controller's node. ``prlimit`` from the
parent rather than ``preexec_fn`` because the controller is multi-threaded, where ``preexec_fn`` is
unsafe; ``Popen`` returns only after ``exec``, so the child has allocated next to nothing by then.
``RLIMIT_AS`` would be the obvious choice but Go reserves far more address space than it uses.

The child gets a scrubbed environment with ``HOME`` pointing at an empty temporary directory of its
own (random name, mode 0700, removed afterwards), so no credentials (git, docker, kube config, cloud
SDKs) are visible to it and two concurrent renders never share working files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitsync.render.errors import LimitExceededError, RenderError

_STDERR_KEEP = 16 * 1024
# Go: "fatal error: runtime: out of memory", "out of memory allocating heap arena metadata", and
# "runtime/cgo: pthread_create failed: Resource temporarily unavailable" when the data limit is
# reached while the runtime maps a new thread's stack (seen once in CI);
# Python: "MemoryError".
_OUT_OF_MEMORY = re.compile(
    r"out of memory|MemoryError|cannot allocate memory|pthread_create failed", re.IGNORECASE
)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr: str


@contextlib.contextmanager
def scrubbed_env(extra: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """A minimal environment whose HOME is a fresh empty directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gitsync-render-") as home:
        env = {
            "HOME": home,
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "XDG_CACHE_HOME": os.path.join(home, ".cache"),
            "KUBECONFIG": os.path.join(home, "no-kubeconfig"),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C.UTF-8",
            "TMPDIR": home,
            "PATH": os.defpath,
        }
        env.update(extra or {})
        yield env


def _worker_env_path() -> str:
    """PYTHONPATH for a Python worker: where this gitsync package is, installed or not."""
    return os.fspath(Path(__file__).resolve().parents[2])


def run_worker(
    module: str,
    payload: bytes,
    *,
    timeout: float,
    max_output: int,
    max_memory: int,
    what: str,
    worker: str,
    source: str,
) -> dict[str, Any]:
    """Run the Python module ``module`` (a gitsync worker: one JSON request on stdin, one JSON
    reply on stdout) under ``run_tool``'s bounds; ``worker`` names it in errors."""
    argv = [sys.executable, "-m", module]
    extra = {"PYTHONPATH": _worker_env_path(), "PYTHONDONTWRITEBYTECODE": "1"}
    with scrubbed_env(extra) as env:
        result = run_tool(
            argv,
            env=env,
            cwd=env["HOME"],
            stdin=payload,
            timeout=timeout,
            max_output=max_output,
            max_memory=max_memory,
            what=what,
            source=source,
        )
    if result.returncode != 0:
        raise RenderError(f"{worker} worker failed: {result.stderr.strip()[-2000:]}", source=source)
    try:
        reply: dict[str, Any] = json.loads(result.stdout)
    except ValueError as exc:
        raise RenderError(f"{worker} worker returned malformed output", source=source) from exc
    return reply


def run_tool(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    stdin: bytes = b"",
    timeout: float,
    max_output: int,
    max_memory: int,
    what: str,
    source: str,
) -> ToolResult:
    """Run ``argv`` with at most ``max_memory`` bytes of heap; kill it (its whole process group)
    on timeout or when stdout passes ``max_output`` bytes, raising ``LimitExceededError`` about
    ``what`` (e.g. "helm template") located at ``source`` (the app directory). A child that ran
    out of memory is reported as ``LimitExceededError`` too."""
    proc = _start(argv, env=env, cwd=cwd, source=source)
    _limit_memory(proc, max_memory, what=what, source=source)
    end = time.monotonic() + timeout
    try:
        out, err = _exchange(
            proc, stdin, end=end, max_output=max_output, timeout=timeout, what=what, source=source
        )
        returncode = proc.wait(timeout=max(0.1, end - time.monotonic()))
    except subprocess.TimeoutExpired as exc:
        _kill(proc)
        raise _timeout(what, timeout, source) from exc
    except BaseException:
        _kill(proc)
        raise
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
    stderr = err.decode("utf-8", "replace")
    if returncode != 0 and _OUT_OF_MEMORY.search(stderr):
        raise LimitExceededError(
            f"{what} ran out of memory (limit {max_memory} bytes)", source=source
        )
    return ToolResult(returncode, out, stderr)


def _start(
    argv: list[str], *, env: Mapping[str, str], cwd: str, source: str
) -> subprocess.Popen[bytes]:
    """The child in a session of its own, so that a kill reaches every process it started."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise RenderError(f"cannot start {argv[0]}: {exc.strerror}", source=source) from exc
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    return proc


def _limit_memory(
    proc: subprocess.Popen[bytes], max_memory: int, *, what: str, source: str
) -> None:
    """``RLIMIT_DATA`` on the child right after it started (see the module docstring); a child
    that cannot be limited does not run."""
    try:
        resource.prlimit(proc.pid, resource.RLIMIT_DATA, (max_memory, max_memory))
    except OSError as exc:
        _kill(proc)
        raise RenderError(
            f"cannot limit the memory of {what}: {exc.strerror}", source=source
        ) from exc


def _exchange(
    proc: subprocess.Popen[bytes],
    stdin: bytes,
    *,
    end: float,
    max_output: int,
    timeout: float,
    what: str,
    source: str,
) -> tuple[bytes, bytes]:
    """Feed ``stdin`` and read stdout and stderr at once until the child closes them (so that
    neither side blocks on a full pipe), within the deadline ``end`` and ``max_output`` bytes.
    Returns stdout and the last ``_STDERR_KEEP`` bytes of stderr."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    pending = memoryview(stdin)
    sel = selectors.DefaultSelector()
    try:
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while len(sel.get_map()) > 0:
            left = end - time.monotonic()
            if left <= 0:
                raise _timeout(what, timeout, source)
            for key, _ in sel.select(timeout=min(left, 1.0)):
                if key.fileobj is proc.stdin:
                    pending = _feed(proc, sel, pending)
                    continue
                fd = key.fileobj.fileno()  # type: ignore[union-attr]
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += chunk
                    if len(out) > max_output:
                        raise LimitExceededError(
                            f"{what} produced more than {max_output} bytes", source=source
                        )
                else:
                    err += chunk
                    del err[:-_STDERR_KEEP]
    finally:
        sel.close()
    return bytes(out), bytes(err)


def _feed(
    proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, pending: memoryview
) -> memoryview:
    """Write the next chunk of stdin; close it once all is written or the child stopped
    reading (a tool may exit without reading its input: its exit status tells)."""
    assert proc.stdin is not None
    try:
        written = os.write(proc.stdin.fileno(), pending[:_CHUNK])
    except BrokenPipeError:
        written = len(pending)
    pending = pending[written:]
    if not pending:
        sel.unregister(proc.stdin)
        proc.stdin.close()
    return pending


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _timeout(what: str, timeout: float, source: str) -> LimitExceededError:
    return LimitExceededError(
        f"{what} did not finish before the render deadline ({timeout:.1f}s left when started)",
        source=source,
    )
