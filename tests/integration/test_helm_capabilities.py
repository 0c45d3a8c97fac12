"""Helm's ``.Capabilities`` reflect the destination cluster: a chart from a real Git server,
synced by the real CLI engine onto the real control plane. And the CRD carries Argo CD's helm
options to the controller: the ``values`` string, and the Argo fields gitsync refuses by name.

Without ``helm.kubeVersion``/``helm.apiVersions`` the chart sees the API server's own version and
what it serves (a CRD created during the test appears in ``APIVersions.Has``); with them it sees
exactly the spec. A discovery that fails is a failed render - the chart is never rendered with
default capabilities that would drop an object and let prune delete it (hardening: issue 15).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.application import SpecError, parse_application
from gitsync.controller.controller import ensure_crd
from gitsync.engine import Engine
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.rollout.executor import RolloutExecutor
from gitsync.source import SourceCache
from gitsync.sync import Syncer
from tests.support.apps import application
from tests.support.cli import CliRun, run_gitsync
from tests.support.cluster import TestCluster
from tests.support.crds import gadget_crd
from tests.support.faultproxy import FaultProxy, ProxiedRequest
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

REPORT = """apiVersion: v1
kind: ConfigMap
metadata:
  name: caps-report
data:
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  hasGadget: {{ .Capabilities.APIVersions.Has "GROUP/v1/Gadget" | quote }}
  hasGroup: {{ .Capabilities.APIVersions.Has "GROUP/v1" | quote }}
{{- if .Capabilities.APIVersions.Has "GROUP/v1/Gadget" }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: caps-gadget-extras
data:
  rendered: "only where the cluster serves Gadgets"
{{- end }}
"""


class CapsApp:
    """A chart whose output depends on ``.Capabilities``, its Git repo and its Application."""

    def __init__(
        self, git_server: GitServer, cluster: TestCluster, namespace: str, tmp_path: Path
    ) -> None:
        suffix = secrets.token_hex(3)
        self.group = f"caps{suffix}.gitsync.test"
        self.namespace = namespace
        self.repo = git_server.create_repo(
            f"caps-{suffix}",
            files={
                "chart/Chart.yaml": "apiVersion: v2\nname: caps\nversion: 0.1.0\n",
                "chart/templates/report.yaml": REPORT.replace("GROUP", self.group),
            },
        )
        self.manifest = tmp_path / f"caps-{suffix}.yaml"
        self.kubeconfig = cluster.kubeconfig_path
        self.cache_dir = tmp_path / "cache"
        self.env = {
            "GITSYNC_GIT_USERNAME": git_server.username,
            "GITSYNC_GIT_PASSWORD": git_server.password,
            "GITSYNC_GIT_INSECURE_ALLOW_HTTP": "true",
        }
        self.write()

    def write(self, **helm: Any) -> None:
        doc = {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "caps", "namespace": self.namespace},
            "spec": {
                "source": {
                    "repoURL": self.repo.http_url(auth=True),
                    "targetRevision": "main",
                    "path": "chart",
                    "helm": {"releaseName": "caps", **helm},
                },
                "destination": {"namespace": self.namespace},
            },
        }
        self.manifest.write_text(yaml.safe_dump(doc))

    def sync(self, kubeconfig: Path | None = None) -> CliRun:
        return run_gitsync(
            "sync",
            "-f",
            str(self.manifest),
            "--kubeconfig",
            str(kubeconfig or self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            "--prune",
            env=self.env,
        )


@pytest.fixture
def caps_app(
    git_server: GitServer, cluster: TestCluster, namespace: str, tmp_path: Path
) -> CapsApp:
    return CapsApp(git_server, cluster, namespace, tmp_path)


@pytest.fixture
def gadgets(kube: KubeClient, caps_app: CapsApp) -> Iterator[None]:
    """Serve the app's Gadget kind, until the test ends."""
    crd = gadget_crd(caps_app.group)
    ensure_crd(kube, crd)  # applied, then waited for until Established
    wait_for(
        lambda: caps_app.group in str(kube.request("GET", "/apis")),
        what="the Gadget group in discovery",
    )
    yield
    kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])


def report(kube: KubeClient, namespace: str) -> dict[str, str]:
    data: dict[str, str] = kube.get("v1", "ConfigMap", "caps-report", namespace)["data"]
    return data


def extras(kube: KubeClient, namespace: str) -> bool:
    return kube.get("v1", "ConfigMap", "caps-gadget-extras", namespace) is not None


def test_capabilities_come_from_the_clusters_discovery_when_not_given(
    kube: KubeClient, caps_app: CapsApp
) -> None:
    server_version = kube.request("GET", "/version")["gitVersion"]
    synced = caps_app.sync()
    assert synced.code == 0, synced
    before = report(kube, caps_app.namespace)
    assert before == {"kubeVersion": server_version, "hasGadget": "false", "hasGroup": "false"}
    assert not extras(kube, caps_app.namespace)

    crd = gadget_crd(caps_app.group)
    kube.create(crd)
    try:
        wait_for(
            lambda: caps_app.group in str(kube.request("GET", "/apis")),
            what="the Gadget group in discovery",
        )
        synced = caps_app.sync()
        assert synced.code == 0, synced
        after = report(kube, caps_app.namespace)
        assert (after["hasGadget"], after["hasGroup"]) == ("true", "true")
        assert extras(kube, caps_app.namespace)
    finally:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])


def test_capabilities_in_the_spec_replace_the_clusters(
    kube: KubeClient, caps_app: CapsApp, gadgets: None
) -> None:
    caps_app.write(kubeVersion="v1.29.3", apiVersions=["example.com/v1"])
    synced = caps_app.sync()
    assert synced.code == 0, synced
    # the cluster serves Gadgets, but the spec's list is what the chart sees
    assert report(kube, caps_app.namespace) == {
        "kubeVersion": "v1.29.3",
        "hasGadget": "false",
        "hasGroup": "false",
    }
    caps_app.write(apiVersions=[f"{caps_app.group}/v1/Gadget"])  # version: the cluster's again
    synced = caps_app.sync()
    assert synced.code == 0, synced
    data = report(kube, caps_app.namespace)
    assert data["kubeVersion"] == kube.request("GET", "/version")["gitVersion"]
    assert data["hasGadget"] == "true"


def _engine(kube: KubeClient, tmp_path: Path) -> Engine:
    return Engine(SourceCache(tmp_path / "cache"), Syncer(kube), RolloutExecutor(kube))


def test_discovery_is_read_once_per_interval_for_all_apps_on_a_cluster(
    kube: KubeClient, tmp_path: Path
) -> None:
    engine = _engine(kube, tmp_path)
    first = engine.capabilities()
    assert "v1/ConfigMap" in first.api_versions and "apps/v1/Deployment" in first.api_versions
    before = kube.requests.total()
    assert engine.capabilities() is first
    assert kube.requests.total() == before, "a cached discovery made an API request"
    engine.capabilities_ttl = 0.0
    # read again (another test's CRD may still be going away, so the lists need not be equal)
    again = engine.capabilities()
    assert again is not first and again.kube_version == first.kube_version
    assert kube.requests.total() > before


def test_the_engine_hands_the_spec_to_the_renderer_and_asks_discovery_only_for_what_is_missing(
    kube: KubeClient, tmp_path: Path
) -> None:
    root = tmp_path / "checkout"
    (root / "chart").mkdir(parents=True)
    (root / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    doc = application("wired", "apps", "https://git.example.com/org/charts.git", interval="3m")
    doc["spec"]["source"]["path"] = "chart"
    doc["spec"]["source"]["helm"] = {
        "namespace": "templated",
        "parameters": [
            {"name": "a", "value": "x,y"},
            {"name": "b", "value": "80", "forceString": True},
        ],
        "kubeVersion": "v1.29.3",
        "apiVersions": ["example.com/v1"],
    }
    engine = _engine(kube, tmp_path)
    before = kube.requests.total()
    req = engine.render_request(parse_application(doc), root)
    assert kube.requests.total() == before, "capabilities given in full: no discovery"
    assert req.namespace == "templated"
    assert req.helm is not None
    assert (req.helm.release_name, req.helm.set_values, req.helm.set_string_values) == (
        "wired",
        ("a=x\\,y",),
        ("b=80",),
    )
    assert (req.helm.kube_version, req.helm.api_versions) == ("v1.29.3", ("example.com/v1",))

    del doc["spec"]["source"]["helm"]  # a chart found by its Chart.yaml gets the cluster's too
    req = engine.render_request(parse_application(doc), root)
    assert req.namespace == "apps" and req.helm is not None
    assert req.helm.release_name == ""  # the renderer names it after the directory, as before
    assert req.helm.kube_version == kube.request("GET", "/version")["gitVersion"]
    assert "apps/v1/Deployment" in req.helm.api_versions


@pytest.fixture
def proxy(cluster: TestCluster) -> Iterator[FaultProxy]:
    cp = cluster.control_plane
    if cp is None:
        pytest.skip("puts a proxy in front of the test control plane's own API server")
    pki = cp.pki
    with FaultProxy(cp.host, pki.serving_cert, pki.serving_key, pki.ca_cert) as fault_proxy:
        yield fault_proxy


def test_a_failed_discovery_fails_the_render_and_prunes_nothing(
    kube: KubeClient, caps_app: CapsApp, gadgets: None, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxied = proxy.write_kubeconfig(caps_app.kubeconfig, tmp_path / "proxied.kubeconfig")
    synced = caps_app.sync(proxied)
    assert synced.code == 0, synced
    assert extras(kube, caps_app.namespace)

    # the Gadget group's discovery answers 500: rendering with what is left (or with Helm's
    # defaults) would drop caps-gadget-extras, and --prune would delete it
    def gadget_discovery(request: ProxiedRequest) -> bool:
        return request.method == "GET" and request.path.startswith(f"/apis/{caps_app.group}/")

    proxy.inject(1.0, statuses=(500,), match=gadget_discovery)
    failed = caps_app.sync(proxied)
    assert failed.code != 0, failed
    assert "render failed" in failed.stdout + failed.stderr
    assert proxy.counts["injected-500"] >= 1
    assert extras(kube, caps_app.namespace), "a failed discovery let prune delete an object"


@pytest.mark.parametrize(
    ("helm", "refused"),
    [
        ({"values": "greeting: hello\n", "parameters": [{"name": "a", "value": "1"}]}, None),
        ({"passCredentials": True}, "spec.source.helm.passCredentials"),
        ({"fileParameters": [{"name": "a", "path": "a.txt"}]}, "spec.source.helm.fileParameters"),
    ],
)
def test_the_crd_keeps_argo_helm_fields_for_the_parser(
    kube: KubeClient, crd: None, namespace: str, helm: dict[str, Any], refused: str | None
) -> None:
    doc = application("argo-helm", namespace, "https://git.example.com/org/charts.git")
    doc["spec"]["source"]["helm"] = helm
    kube.create(doc)
    stored = kube.get(doc["apiVersion"], "Application", "argo-helm", namespace)
    assert stored is not None
    assert stored["spec"]["source"]["helm"] == helm  # nothing pruned, a string stays a string
    if refused is None:
        parsed = parse_application(stored).source.helm
        assert parsed is not None and parsed.values_yaml == "greeting: hello\n"
        return
    with pytest.raises(SpecError) as info:
        parse_application(stored)
    assert info.value.field == refused
