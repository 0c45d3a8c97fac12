"""The cluster a test run uses: the project's own control plane, or one the user points at.

``GITSYNC_TEST_KUBECONFIG=path`` makes the whole suite use an existing cluster (kind, k3d, a real
one) instead of starting the test control plane. Tests that exercise the pod simulator itself (pods
told to crash through annotations) check ``has_simulator`` - a real kubelet runs real images.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.controlplane import ControlPlane
from tests.support.audit import AuditLog


@dataclass
class TestCluster:
    """What tests need to know about the cluster under test."""

    __test__ = False  # not a pytest test class

    kubeconfig_path: Path
    has_simulator: bool
    control_plane: ControlPlane | None = None

    @property
    def audit(self) -> AuditLog | None:
        """The API server's audit log; ``None`` on an external cluster."""
        return AuditLog(self.control_plane.audit_log_path) if self.control_plane else None

    def client(self, user_agent: str = "gitsync-tests") -> KubeClient:
        return KubeClient.from_kubeconfig(str(self.kubeconfig_path), user_agent=user_agent)


@contextmanager
def test_cluster() -> Iterator[TestCluster]:
    """Yield the cluster for this run, starting (and later stopping) the control plane if needed."""
    external = os.environ.get("GITSYNC_TEST_KUBECONFIG")
    if external:
        yield TestCluster(Path(external).resolve(), has_simulator=False)
        return
    with tempfile.TemporaryDirectory(prefix="gitsync-cp-") as tmp:
        cp = ControlPlane(Path(tmp))
        cp.start()
        print(f"\n[gitsync] test control plane ready in {cp.startup_seconds:.1f}s at {cp.host}")
        try:
            yield TestCluster(cp.kubeconfig_path, has_simulator=True, control_plane=cp)
        finally:
            cp.stop()


@contextmanager
def temporary_namespace(client: KubeClient, prefix: str = "t") -> Iterator[str]:
    """A fresh namespace, deleted afterwards (without waiting for finalization)."""
    name = f"{prefix[:40].lower().strip('-')}-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            client.delete("v1", "Namespace", name)


def endpoint_pods(client: KubeClient, namespace: str, service: str) -> list[dict[str, Any] | None]:
    """The pods behind ``service``'s ready Endpoints addresses, ``None`` for an unknown one.

    Pods are listed before and after the Endpoints read: a pod deleted or created between the
    reads is still found, so a test that asks "which image served traffic" never sees an
    address it cannot explain because of the order of its own reads.
    """
    pods = {p["metadata"]["name"]: p for p in client.list("v1", "Pod", namespace)["items"]}
    live = client.get("v1", "Endpoints", service, namespace) or {}
    pods.update({p["metadata"]["name"]: p for p in client.list("v1", "Pod", namespace)["items"]})
    return [
        pods.get(a.get("targetRef", {}).get("name"))
        for subset in live.get("subsets") or []
        for a in subset.get("addresses") or []
    ]


def endpoint_images(client: KubeClient, namespace: str, service: str) -> list[str]:
    """The first container image of each pod behind ``service``'s ready addresses, sorted."""
    return sorted(
        p["spec"]["containers"][0]["image"] if p else "?"
        for p in endpoint_pods(client, namespace, service)
    )
