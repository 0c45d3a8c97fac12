"""Start and stop the long-running programs the test infrastructure needs (etcd, kube-apiserver,
kube-controller-manager, the simulator, sshd).

Two promises matter here: a process we start is stopped by *its* pid (never by name, never a
``pkill``), and a crashed test run leaves nothing listening. Attached processes are started
through util-linux's ``setpriv --pdeathsig SIGKILL`` so the kernel kills them if the test process
dies, even by ``kill -9`` (``preexec_fn`` would do the same but is unsafe once threads run);
detached ones (``gitsync cluster up``) are recorded in a state file with their command line, and
``cluster down`` only signals a pid whose ``/proc/<pid>/cmdline`` still matches.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_live: set[ManagedProcess] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent(argv: list[str]) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # util-linux is essential on Debian; degrade to atexit cleanup only
        return argv
    return [setpriv, "--pdeathsig", "SIGKILL", "--", *argv]


@dataclass(eq=False)
class ManagedProcess:
    """One child process with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    detached: bool = False
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv if self.detached else _die_with_parent(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        if not self.detached:
            _live.add(self)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(5)
        _live.discard(self)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "cmdline": self.argv}


def stop_recorded(records: list[dict[str, Any]], timeout: float = 10.0) -> list[str]:
    """Stop detached processes from a state file; returns the names that were running."""
    stopped = []
    for rec in reversed(records):
        pid = int(rec["pid"])
        if not _cmdline_matches(pid, rec["cmdline"]):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _cmdline_matches(pid, rec["cmdline"]):
            time.sleep(0.1)
        if _cmdline_matches(pid, rec["cmdline"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stopped.append(str(rec["name"]))
    return stopped


def _cmdline_matches(pid: int, argv: list[str]) -> bool:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie holds no ports
        return False
    return raw.split(b"\0")[0].decode(errors="replace") == argv[0]


@atexit.register
def _stop_all() -> None:
    for proc in list(_live):
        proc.stop(timeout=5)
