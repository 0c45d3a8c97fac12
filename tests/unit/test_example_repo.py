"""The example GitOps repository users copy: its Applications parse and every app renders.

Rendering uses the tools directly (``kubectl kustomize``, the Helm engine) rather than
``gitsync.render``, so a broken example and a broken renderer fail different tests. The checks on
the rendered objects are the ones a user would otherwise hit on the v1.20 test cluster: APIs it
serves, ``protocol`` on every port (server-side apply rejects port lists without it there), no
hard-coded namespace, Services that select their Deployment's pods.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from gitsync.application import parse_application
from gitsync.demo import CHART_PLACEHOLDER_URL, DEMO_CHARTS, demo_policy
from gitsync.policy import Policy

EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
APPLICATIONS = sorted((EXAMPLE / "applications").glob("*.yaml"))
PLACEHOLDER_URL = "https://git.example.com/you/example-repo.git"
KUBECTL = Path(sys.executable).parent / "kubectl"

# Application name -> (source path, destination namespace)
EXPECTED_APPS = {
    "guestbook": ("apps/guestbook", "guestbook"),
    "podinfo-staging": ("apps/podinfo-kustomize/overlays/staging", "podinfo-staging"),
    "helm-chart": ("apps/helm-chart", "helm-demo"),
    "canary": ("apps/canary", "canary-demo"),
    "bluegreen": ("apps/bluegreen", "bluegreen-demo"),
    # from the demo's chart repository, which publishes charts/hello (not from Git)
    "hello-chart": ("charts/hello", "hello-chart"),
}
CHART_APPS = {"hello-chart"}
HELM_RELEASE = "helm-demo"

# What a v1.20 API server serves, by apiVersion; kinds listed in FORBIDDEN came later.
SERVED_API_VERSIONS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "batch/v1beta1",
    "networking.k8s.io/v1",
    "autoscaling/v1",
    "autoscaling/v2beta2",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "gitsync.dev/v1alpha1",  # gitsync's own Rollout (charts/gitsync/crds)
}
FORBIDDEN = {("batch/v1", "CronJob")}


def load_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def render_plain(directory: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((EXAMPLE / directory).glob("*.yaml")):
        docs += load_docs(path.read_text())
    return docs


def render_kustomize(path: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(EXAMPLE / path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return load_docs(result.stdout)


def helm_values(value_file: str | None) -> dict[str, Any]:
    """One values file, as Helm's ``-f`` takes it; the engine merges it over the chart defaults."""
    if value_file is None:
        return {}
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLE / "apps/helm-chart" / value_file).read_text())
    return loaded


def render_helm(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm_python.Chart.load(EXAMPLE / "apps/helm-chart") as chart:
        manifests = chart.render(values=values, name=HELM_RELEASE, namespace="helm-demo")
    docs: list[dict[str, Any]] = []
    for template, text in sorted(manifests.items()):
        if not template.endswith("NOTES.txt"):
            docs += load_docs(text)
    return docs


def render_chart_app(name: str) -> list[dict[str, Any]]:
    """A chart app as the engine renders it: its chart with the Application's ``valuesObject``
    over the chart's defaults, released as the app's name."""
    app = parse_application(yaml.safe_load((EXAMPLE / f"applications/{name}.yaml").read_text()))
    with helm_python.Chart.load(EXAMPLE / EXPECTED_APPS[name][0]) as chart:
        manifests = chart.render(values=dict(app.source.helm.values), name=name, namespace=name)
    return [doc for _, text in sorted(manifests.items()) for doc in load_docs(text)]


def render_app(name: str) -> list[dict[str, Any]]:
    if name in CHART_APPS:
        return render_chart_app(name)
    if name in ("guestbook", "canary", "bluegreen"):
        return render_plain(EXPECTED_APPS[name][0])
    if name == "podinfo-staging":
        return render_kustomize(EXPECTED_APPS[name][0])
    return render_helm(helm_values("values-prod.yaml"))


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        template = doc.get("spec", {}).get("template")
        if template is not None:
            yield f"{doc['kind']}/{doc['metadata']['name']}", template["spec"]


# -- Applications ----------------------------------------------------------------------------


def test_every_app_has_an_application() -> None:
    assert sorted(p.stem for p in APPLICATIONS) == sorted(EXPECTED_APPS)


@pytest.mark.parametrize(
    "path", [p for p in APPLICATIONS if p.stem not in CHART_APPS], ids=lambda p: p.stem
)
def test_application_parses(path: Path) -> None:
    app = parse_application(yaml.safe_load(path.read_text()))
    source_path, namespace = EXPECTED_APPS[path.stem]
    assert app.name == path.stem
    assert app.namespace == "gitsync"
    assert app.source.repo_url == PLACEHOLDER_URL  # the one string tests and users replace
    assert app.source.target_revision == "main"
    assert app.source.path == source_path
    assert (EXAMPLE / source_path).is_dir()
    assert app.destination.namespace == namespace
    policy = app.sync_policy
    assert policy.automated and policy.prune and policy.self_heal
    assert policy.option("CreateNamespace")


def test_the_chart_app_deploys_a_chart_the_demo_publishes() -> None:
    app = parse_application(yaml.safe_load((EXAMPLE / "applications/hello-chart.yaml").read_text()))
    assert app.source.is_chart and app.source.chart == "hello"
    assert app.source.repo_url == CHART_PLACEHOLDER_URL  # the demo replaces it
    assert app.source.chart in DEMO_CHARTS
    chart = yaml.safe_load((EXAMPLE / "charts/hello/Chart.yaml").read_text())
    assert chart["name"] == "hello" and chart["version"] == "0.1.0"
    assert app.source.target_revision == ">=0.1.0 <1.0.0"
    assert app.destination.namespace == "hello-chart"
    docs = render_chart_app("hello-chart")
    (page,) = by_kind(docs, "ConfigMap")
    assert "values from Git" in page["data"]["index.html"]
    assert app.sync_policy.automated and app.sync_policy.option("CreateNamespace")


def test_helm_application_names_release_and_existing_value_files() -> None:
    app = parse_application(yaml.safe_load((EXAMPLE / "applications/helm-chart.yaml").read_text()))
    assert app.source.helm is not None
    assert app.source.helm.release_name == HELM_RELEASE
    assert app.source.helm.value_files == ("values-prod.yaml",)
    for name in app.source.helm.value_files:
        assert (EXAMPLE / app.source.path / name).is_file()


def test_kustomize_application_asks_for_kustomize() -> None:
    doc = yaml.safe_load((EXAMPLE / "applications/podinfo-staging.yaml").read_text())
    assert parse_application(doc).source.kustomize


# -- each app renders ------------------------------------------------------------------------


def test_guestbook_is_plain_yaml_with_a_multi_document_file() -> None:
    files = sorted((EXAMPLE / "apps/guestbook").glob("*.yaml"))
    counts = {p.name: len(load_docs(p.read_text())) for p in files}
    assert len(files) >= 3 and max(counts.values()) >= 2, counts
    docs = render_plain("apps/guestbook")
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    assert sorted(doc["kind"] for doc in docs) == ["ConfigMap", "Deployment", "Secret", "Service"]
    assert by_kind(docs, "Deployment")[0]["spec"]["replicas"] == 2
    secret = by_kind(docs, "Secret")[0]
    assert "password" in {**secret.get("data", {}), **secret.get("stringData", {})}


def test_guestbook_deployment_uses_its_configmap_and_secret() -> None:
    docs = render_plain("apps/guestbook")
    [deployment] = by_kind(docs, "Deployment")
    text = yaml.safe_dump(deployment)
    for kind in ("ConfigMap", "Secret"):
        [obj] = by_kind(docs, kind)
        assert obj["metadata"]["name"] in text, f"{kind} not referenced by the Deployment"


def test_kustomize_staging_overlay_patches_the_base() -> None:
    base = render_kustomize("apps/podinfo-kustomize/base")
    staging = render_kustomize("apps/podinfo-kustomize/overlays/staging")
    assert sorted(doc["kind"] for doc in staging) == ["ConfigMap", "Deployment", "Service"]
    for doc in staging:
        assert doc["metadata"]["name"].startswith("staging-podinfo"), doc["metadata"]
        assert doc["metadata"]["labels"]["env"] == "staging"
    [base_deploy], [deploy] = by_kind(base, "Deployment"), by_kind(staging, "Deployment")
    assert base_deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["replicas"] == 2
    base_image = base_deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/stefanprodan/podinfo:6.6.0"
    assert base_image.split(":")[0] == image.split(":")[0] and base_image != image
    [config] = by_kind(staging, "ConfigMap")
    assert config["data"]["PODINFO_UI_MESSAGE"]
    env_from = deploy["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from == [{"configMapRef": {"name": config["metadata"]["name"]}}]


def test_helm_chart_renders_with_production_values() -> None:
    defaults = render_helm({})
    prod = render_helm(helm_values("values-prod.yaml"))
    assert sorted(doc["kind"] for doc in prod) == ["ConfigMap", "Deployment", "Service"]
    for doc in prod:
        assert doc["metadata"]["name"].startswith(HELM_RELEASE)
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == HELM_RELEASE
    [default_deploy], [deploy] = by_kind(defaults, "Deployment"), by_kind(prod, "Deployment")
    assert default_deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25.4"


def test_helm_chart_metadata() -> None:
    with helm_python.Chart.load(EXAMPLE / "apps/helm-chart") as chart:
        assert chart.metadata["apiVersion"] == "v2"
        assert {"replicaCount", "image"} <= set(chart.values)
        assert "tag" in chart.values["image"]
        names = {t["name"] for t in chart.templates}
    assert {"templates/_helpers.tpl", "templates/NOTES.txt"} <= names


@pytest.mark.parametrize("value_file", [None, "values-prod.yaml"], ids=["defaults", "prod"])
def test_helm_lint_is_clean(value_file: str | None) -> None:
    report = helm_python.lint(
        EXAMPLE / "apps/helm-chart",
        helm_values(value_file),
        namespace="helm-demo",
        kube_version="v1.20.2",
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # no warnings or errors


# -- what the v1.20 test cluster needs from every app ----------------------------------------


@pytest.mark.parametrize("app", sorted(EXPECTED_APPS))
def test_only_apis_a_v1_20_server_serves(app: str) -> None:
    for doc in render_app(app):
        assert doc["apiVersion"] in SERVED_API_VERSIONS, doc["apiVersion"]
        assert (doc["apiVersion"], doc["kind"]) not in FORBIDDEN


@pytest.mark.parametrize("app", sorted(EXPECTED_APPS))
def test_no_namespace_in_manifests(app: str) -> None:
    for doc in render_app(app):
        assert "namespace" not in doc["metadata"], f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("app", sorted(EXPECTED_APPS))
def test_every_port_sets_protocol(app: str) -> None:
    docs = render_app(app)
    ports: list[tuple[str, dict[str, Any]]] = []
    for service in by_kind(docs, "Service"):
        ports += [(f"Service/{service['metadata']['name']}", p) for p in service["spec"]["ports"]]
    for owner, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            ports += [(f"{owner} {container['name']}", p) for p in container.get("ports", [])]
    assert ports
    missing = [owner for owner, port in ports if port.get("protocol") != "TCP"]
    assert missing == []


@pytest.mark.parametrize("app", sorted(EXPECTED_APPS))
def test_services_select_their_deployment(app: str) -> None:
    docs = render_app(app)
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")]
    for service in by_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), selector


def test_the_demo_policy_lets_the_app_of_apps_deploy_every_example_and_nothing_else() -> None:
    policy = Policy.from_dict(demo_policy(EXAMPLE))
    root = parse_application(yaml.safe_load((EXAMPLE / "bootstrap" / "root.yaml").read_text()))
    for path in APPLICATIONS:
        doc = yaml.safe_load(path.read_text())
        app = parse_application(doc)
        assert policy.check(root.namespace, doc) is None, path.name  # the root creates it
        target = app.destination.namespace
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": target},
        }
        assert policy.check(app.namespace, namespace) is None, path.name  # CreateNamespace
        assert policy.check(app.namespace, deployment) is None, path.name
        assert policy.check(
            "guestbook", {**deployment, "metadata": {"name": "d", "namespace": "gitsync"}}
        )
    assert policy.check(
        root.namespace,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "kube-system"},
        },
    )
