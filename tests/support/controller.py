"""Running ``gitsync serve`` as a real process against the test control plane, for tests that
need the controller (restarts, kill -9, two replicas) exactly as users run it."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gitsync.localenv.processes import ManagedProcess, free_port


@dataclass
class ServeProcess:
    kubeconfig: Path
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    # Tests point Applications at the Git server's file:// URLs; attack tests turn this off.
    allow_local_repos: bool = True
    proc: ManagedProcess | None = None
    impersonate: bool = False
    """False passes ``--impersonate=false``: most harness tests set up no tenant ServiceAccounts
    (the tests of impersonation set True and leave serve's default and ``extra_args`` in charge)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServeProcess:
        self.port = self.port or free_port()
        argv = [
            sys.executable,
            "-m",
            "gitsync",
            "serve",
            f"--listen=127.0.0.1:{self.port}",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.workdir / 'cache'}",
            *(["--allow-local-repos"] if self.allow_local_repos else []),
            *([] if self.impersonate else ["--impersonate=false"]),
            *self.extra_args,
        ]
        env = {**os.environ, "GITSYNC_LOG_LEVEL": "info", **self.env}
        self.proc = ManagedProcess(
            f"gitsync-serve-{self.port}", argv, self.workdir / f"serve-{self.port}.log", env=env
        )
        self.proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise RuntimeError("gitsync serve exited:\n" + self.proc.log_tail(60))
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError("gitsync serve not ready:\n" + self.proc.log_tail(60))

    def kill(self) -> None:
        """kill -9: no cleanup, no lease release."""
        if self.proc is not None and self.proc.popen is not None:
            self.proc.popen.kill()
            self.proc.popen.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log(self, lines: int = 200) -> str:
        return self.proc.log_tail(lines) if self.proc else ""

    def metric(self, name: str, /, **labels: str) -> float:
        """The sum of ``name``'s samples on /metrics whose labels include ``labels`` (0 if none)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
