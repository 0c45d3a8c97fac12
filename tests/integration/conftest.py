"""The test Git server, shared by every integration test of the session.

Tests that break the server on purpose (fault modes, stop/start) start their own instead, so this
one stays healthy for everybody else.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.controller import ensure_crd
from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.controlplane import ControlPlane
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import APPSET_CRD, CRD, NOTIFICATION_CRDS, ROLLOUT_CRD, WEBHOOK_SECRET
from tests.support.audit import AuditLog
from tests.support.browser import UI, chromium
from tests.support.chartrepo import CHART_REPO_PASSWORD, CHART_REPO_USER, ChartRepoServer
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.ociregistry import OciRegistry


@pytest.fixture(scope="session")
def git_server() -> Iterator[GitServer]:
    with GitServer(username="gitsync-test", password="integration-secret-7f3a") as server:
        yield server


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[ChartRepoServer]:
    """A Helm chart repository over HTTPS (test CA: ``ca_pem``) with basic auth, empty until
    a test publishes charts into it."""
    with ChartRepoServer(
        tmp_path / "chart-repo", username=CHART_REPO_USER, password=CHART_REPO_PASSWORD
    ) as server:
        yield server


@pytest.fixture(scope="session")
def crd(kube: KubeClient) -> None:
    """The Application and ApplicationSet CRDs from the chart (left installed)."""
    ensure_crd(kube, yaml.safe_load(CRD.read_text()))
    ensure_crd(kube, yaml.safe_load(APPSET_CRD.read_text()))


@pytest.fixture
def serve(cluster: TestCluster, tmp_path: Path, crd: None) -> Iterator[Any]:
    started: list[ServeProcess] = []

    def start(
        *extra: str,
        env: dict[str, str] | None = None,
        allow_local_repos: bool = True,
        impersonate: bool = False,
    ) -> ServeProcess:
        proc = ServeProcess(
            cluster.kubeconfig_path,
            tmp_path,
            list(extra),
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET, **(env or {})},
            allow_local_repos=allow_local_repos,
            impersonate=impersonate,
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def rollout_crd(kube: KubeClient) -> None:
    """The Rollout CRD from the chart, installed and Established (left installed)."""
    ensure_crd(kube, yaml.safe_load(ROLLOUT_CRD.read_text()))


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A second control plane playing a remote cluster; shared by the module's tests."""
    cp = ControlPlane(tmp_path_factory.mktemp("remote"), simulator_nodes=1)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def register(kube: KubeClient, controller_namespace: str) -> Iterator[Any]:
    """``register(name, kubeconfig, labels=..., annotations=...)``: a cluster Secret in the
    controller namespace; the Secrets go afterwards."""
    made: list[str] = []

    def add(
        name: str,
        kubeconfig: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        secret_name = f"cluster-{name}-{secrets.token_hex(3)}"
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": secret_name,
                    "namespace": controller_namespace,
                    "labels": {"gitsync.dev/secret-type": "cluster", **(labels or {})},
                    "annotations": annotations or {},
                },
                "data": {
                    "name": base64.b64encode(name.encode()).decode(),
                    "kubeconfig": base64.b64encode(kubeconfig.encode()).decode(),
                },
            }
        )
        made.append(secret_name)

    yield add
    for secret_name in made:
        with contextlib.suppress(ApiError):
            kube.delete("v1", "Secret", secret_name, controller_namespace)


@pytest.fixture(scope="session")
def notification_crds(kube: KubeClient) -> None:
    """NotificationProvider and NotificationRule from the chart, Established (left installed)."""
    for path in NOTIFICATION_CRDS:
        ensure_crd(kube, yaml.safe_load(path.read_text()))


@pytest.fixture
def sim(cluster: TestCluster) -> None:
    """Tests that tell pods to misbehave through the gitsync pod simulator."""
    if not cluster.has_simulator:
        pytest.skip("tells pods to misbehave through the gitsync pod simulator")


CONTROLLER_NAMESPACE = "gitsync"


@pytest.fixture
def controller_namespace(kube: KubeClient) -> str:
    """The namespace holding the controller's Lease; shared by the session, so never deleted."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    try:
        kube.create(ns)
    except ApiError as exc:
        if exc.status != 409:
            raise
    return CONTROLLER_NAMESPACE


@pytest.fixture
def audit(cluster: TestCluster) -> AuditLog:
    """The API server's audit log: what landed and who sent it. A cluster given by
    GITSYNC_TEST_KUBECONFIG has none we can read, so tests that need it skip there."""
    if cluster.audit is None:
        pytest.skip("needs the test control plane's audit log")
    return cluster.audit


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    """A real OCI registry (docker-registry) on loopback with TLS and htpasswd auth; tests push
    the charts they need under names of their own."""
    with OciRegistry(tmp_path_factory.mktemp("oci-registry")) as registry:
        yield registry


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium (tests/support/browser.py), one per test module."""
    with chromium() as launched:
        yield launched


class AdminUI:
    """``gitsync serve`` with an admin password, and browser pages logged in to it.

    ``ui(name, *flags)`` starts a server and opens a page; ``ui.serve(*flags)`` and
    ``ui.open(ctl, name)`` do the two apart, for a test that opens the page later. Every page
    opened is closed at teardown, which fails on a console error (CSP)."""

    def __init__(self, serve: Any, browser: Any, password_file: Path, namespace: str):
        self.password = "ui-" + secrets.token_urlsafe(12)
        password_file.write_text(self.password + "\n")
        self._serve, self._browser = serve, browser
        self._password_file, self._namespace = password_file, namespace
        self.opened: list[UI] = []

    def serve(self, *extra: str) -> ServeProcess:
        started: ServeProcess = self._serve(
            "--admin-password-file",
            str(self._password_file),
            f"--namespaces={self._namespace}",
            *extra,
        )
        return started

    def open(self, ctl: ServeProcess, name: str) -> UI:
        view = UI(self._browser, ctl, self.password, name)
        self.opened.append(view)
        return view

    def __call__(self, name: str, *extra: str) -> UI:
        return self.open(self.serve(*extra), name)


@pytest.fixture
def ui(serve: Any, browser: Any, tmp_path: Path, namespace: str) -> Iterator[AdminUI]:
    """Start ``gitsync serve`` with an admin password and open browser pages on it."""
    admin = AdminUI(serve, browser, tmp_path / "admin-password", namespace)
    yield admin
    for view in admin.opened:
        view.close()
