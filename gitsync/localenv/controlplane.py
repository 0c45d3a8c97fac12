"""The local control plane (the demo's, ``gitsync cluster``'s and the tests'): real etcd,
kube-apiserver and kube-controller-manager.

There is no Docker engine on our machines, so kind and k3d are out. Like Flux's envtest this runs
the API server against etcd, and adds the controller-manager so Deployments really roll and
Endpoints really fill - diff noise and rollout behaviour only show up against the real thing.
kube-apiserver and kube-controller-manager v1.20.2 are built once from Debian bookworm's
``kubernetes`` source package (``scripts/build-k8s.sh``) and cached by tarball checksum; etcd comes
from Debian's ``etcd-server``. The node and pod simulator (``gitsync.localenv.simulator``) plays the
kubelets.

``ControlPlane.start()`` blocks until ``/readyz`` is ok and the controller-manager serves
``/healthz``; the result is a kubeconfig that verifies the serving certificate against the test CA.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.pki import ControlPlanePKI, make_pki
from gitsync.localenv.processes import ManagedProcess, free_port, stop_recorded

K8S_VERSION = "v1.20.2"
# sha256 of kubernetes_1.20.5+really1.20.2.orig.tar.gz (Debian bookworm); the cache key.
ORIG_SHA256 = "b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc"

# Every persisted write at Metadata level (user agent, user, dry run), nothing else: tests count
# writes where they land (tests/support/audit.py reads the log), and a person can too.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"""
BUILD_RECIPE = "r2"  # keep in step with scripts/build-k8s.sh
SERVICE_CIDR = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message says which part and why."""


def binaries_dir() -> Path:
    """Where ``scripts/build-k8s.sh`` caches kube-apiserver and kube-controller-manager."""
    override = os.environ.get("GITSYNC_K8S_BIN_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "gitsync" / "k8s" / K8S_VERSION / f"{ORIG_SHA256[:16]}-{BUILD_RECIPE}"


def _find_etcd() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if not found:
        raise ControlPlaneError("etcd not found: install Debian's etcd-server package")
    return found


@dataclass
class ControlPlane:
    """A running (or startable) control plane whose files live in ``workdir``."""

    workdir: Path
    simulator_nodes: int = 3
    detached: bool = False
    processes: list[ManagedProcess] = field(default_factory=list)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    api_port: int = 0
    startup_seconds: float = 0.0

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def host(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki(self) -> ControlPlanePKI:
        return make_pki(self.workdir / "pki")

    @property
    def audit_log_path(self) -> Path:
        """Where the API server logs every persisted write it accepted (``AUDIT_POLICY``)."""
        return self.workdir / "audit.log"

    def client(self, user_agent: str = "gitsync-tests") -> KubeClient:
        return KubeClient.from_kubeconfig(str(self.kubeconfig_path), user_agent=user_agent)

    # -- start / stop -------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        bins = binaries_dir()
        apiserver, kcm = bins / "kube-apiserver", bins / "kube-controller-manager"
        if not (apiserver.exists() and kcm.exists()):
            raise ControlPlaneError(
                f"kube-apiserver/kube-controller-manager {K8S_VERSION} not found in {bins}; "
                "build them once with `make cluster-binaries` (scripts/build-k8s.sh)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.pki
        logs = self.workdir / "logs"
        etcd_port, etcd_peer = free_port(), free_port()
        self.api_port = free_port()
        kcm_port = free_port()

        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},gitsync-admin,gitsync-admin,"system:masters"\n')
        tokens.chmod(0o600)
        self._write_kubeconfig(self.kubeconfig_path, self.admin_token, "gitsync-admin")
        audit_policy = self.workdir / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)

        etcd = ManagedProcess(
            "etcd",
            [
                _find_etcd(),
                "--name=gitsync-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=gitsync-test=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            logs / "etcd.log",
            detached=self.detached,
        )
        api = ManagedProcess(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                "--insecure-port=0",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={self.audit_log_path}",
                "--audit-log-maxbackup=0",
                "--enable-priority-and-fairness=false",
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                # pods/log reaches the simulated kubelets (gitsync.localenv.kubelet) at the Node's
                # loopback InternalIP (its Hostname does not resolve), verified with the test CA
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--v=0",
            ],
            logs / "kube-apiserver.log",
            detached=self.detached,
        )
        kcm_kubeconfig = self.workdir / "kcm.kubeconfig"
        self._write_kubeconfig(kcm_kubeconfig, self.admin_token, "gitsync-admin")
        controller_manager = ManagedProcess(
            "kube-controller-manager",
            [
                str(kcm),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                "--port=0",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-endpoint-syncs=10",
                "--node-monitor-period=5s",
                "--v=0",
            ],
            logs / "kube-controller-manager.log",
            detached=self.detached,
        )
        simulator = ManagedProcess(
            "simulator",
            [
                sys.executable,
                "-m",
                "gitsync.localenv.simulator",
                f"--kubeconfig={self.kubeconfig_path}",
                f"--nodes={self.simulator_nodes}",
                f"--pki-dir={self.workdir / 'pki'}",
            ],
            logs / "simulator.log",
            detached=self.detached,
        )
        try:
            etcd.start()
            self.processes.append(etcd)
            self._wait_http(f"http://127.0.0.1:{etcd_port}/health", etcd, 20)
            api.start()
            self.processes.append(api)
            client = self.client()
            self._wait(lambda: self._ready(client), api, 60, "kube-apiserver /readyz")
            controller_manager.start()
            self.processes.append(controller_manager)
            self._wait_http(f"https://127.0.0.1:{kcm_port}/healthz", controller_manager, 30)
            if self.simulator_nodes > 0:
                simulator.start()
                self.processes.append(simulator)
                self._wait(lambda: self._nodes_ready(client), simulator, 30, "simulated nodes")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        self._write_state()

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state for `gitsync cluster up/down` ---------------------------------------------------

    def _write_state(self) -> None:
        state = {
            "kubeconfig": str(self.kubeconfig_path),
            "processes": [p.record() for p in self.processes],
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))

    @staticmethod
    def stop_detached(workdir: Path) -> list[str]:
        """Stop what ``start()`` recorded in ``workdir/state.json`` (for ``cluster down``)."""
        state_file = workdir / "state.json"
        if not state_file.exists():
            return []
        state = json.loads(state_file.read_text())
        stopped = stop_recorded(state.get("processes", []))
        state_file.unlink()
        return stopped

    # -- helpers ------------------------------------------------------------------------------

    def _write_kubeconfig(self, path: Path, token: str, user: str) -> None:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "gitsync-test",
                    "cluster": {
                        "server": self.host,
                        "certificate-authority": str(self.pki.ca_cert.resolve()),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": "gitsync-test", "context": {"cluster": "gitsync-test", "user": user}}
            ],
            "current-context": "gitsync-test",
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)

    def write_token_kubeconfig(self, path: Path, token: str, user: str = "user") -> Path:
        """A kubeconfig for another identity (e.g. a ServiceAccount token) on this cluster."""
        self._write_kubeconfig(path, token, user)
        return path

    @staticmethod
    def _ready(client: KubeClient) -> bool:
        try:
            client.wait_ready(timeout=0.5)
        except Exception:
            return False
        return True

    @staticmethod
    def _nodes_ready(client: KubeClient) -> bool:
        try:
            nodes = client.request("GET", "/api/v1/nodes").get("items", [])
        except Exception:
            return False
        return bool(nodes) and all(
            any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
            for n in nodes
        )

    def _wait_http(self, url: str, proc: ManagedProcess, timeout: float) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # health probe of our own child's self-signed port

        def ok() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1, context=ctx) as resp:  # noqa: S310
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        self._wait(ok, proc, timeout, url)

    @staticmethod
    def _wait(check: object, proc: ManagedProcess, timeout: float, what: str) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.running():
                raise ControlPlaneError(
                    f"{proc.name} exited while waiting for {what}; log {proc.log_path}:\n"
                    + proc.log_tail()
                )
            if check():
                return
            time.sleep(0.1)
        raise ControlPlaneError(
            f"timed out after {timeout:.0f}s waiting for {what}; log {proc.log_path}:\n"
            + proc.log_tail()
        )
