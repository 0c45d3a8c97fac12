"""Start and stop the long-running programs the local environment needs (etcd, kube-apiserver,
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
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_live: set[ManagedProcess] = set()


_issued_ports: set[int] = set()
_PORT_FLOOR = 20000  # above the well-known and registered services a Debian box may run


def _ephemeral_floor() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default range is 32768-60999
    return low


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, chosen *below* the kernel's ephemeral range.

    Asking the kernel for port 0 hands out an ephemeral port, and the kernel hands the same range
    to every outgoing connection: between this function returning and kube-apiserver binding the
    port, a client connection elsewhere in the test run could take it (CI saw exactly that:
    ``bind: address already in use``). Ports below the ephemeral range are never given to outgoing
    connections, and a port this process already handed out is not handed out again.
    """
    ceiling = _ephemeral_floor()
    if ceiling - _PORT_FLOOR < 1000:  # an unusual range: fall back to the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = _PORT_FLOOR + secrets.randbelow(ceiling - _PORT_FLOOR)
        if port in _issued_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _issued_ports.add(port)
        return port
    raise OSError(f"no free TCP port on 127.0.0.1 in {_PORT_FLOOR}-{ceiling - 1}")


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
