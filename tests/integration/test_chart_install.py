"""The Helm chart installed on the test control plane, and gitsync running with exactly its RBAC.

The chart is rendered for the server's Kubernetes version (as ``helm install`` would see it), its
objects are server-side-applied (CRDs first), and ``gitsync serve`` runs as the chart's
ServiceAccount - its token, nothing more - with the arguments of the chart's Deployment. So the
test proves the grants are enough for what the controller does (watch Applications, apply and
prune, inventory, status, Events, the leader Lease) and, in namespaced mode, that a destination
outside the listed namespaces is refused by the API server and reported in the status.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helm_python import _native

from gitsync.controller.controller import ensure_crd
from gitsync.controller.interface import REFRESH_REQUEST
from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support import rollouts
from tests.support.apps import (
    app_status,
    application,
    configmap_repo,
    configmap_value,
    tenant_escapes,
)
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.controller import ServeProcess
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gitsync"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}
# Kinds the chart may render that a bare control plane need not serve (their CRDs come from
# other projects). Anything else the server does not serve is a chart bug and must fail.
OPTIONAL_KINDS = {("monitoring.coreos.com", "ServiceMonitor")}


def render_chart(
    kube: KubeClient, values: dict[str, Any], *, release: str, namespace: str
) -> list[dict[str, Any]]:
    """The chart's objects for this cluster's Kubernetes version (``--kube-version``)."""
    kube_version = str(kube.request("GET", "/version")["gitVersion"])
    opts = {"name": release, "namespace": namespace, "kube_version": kube_version}
    with helm_python.Chart.load(CHART) as chart:
        # Chart.render (helm_python 0.2.2) does not expose --kube-version, although the C ABI it
        # calls accepts the option; call the ABI the same way Chart.render does.
        rendered: dict[str, str] = json.loads(
            _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts))
        )
    objects = []
    for path, text in sorted(rendered.items()):
        if not path.endswith("NOTES.txt"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc is not None]
    return objects


def chart_crds() -> list[dict[str, Any]]:
    with helm_python.Chart.load(CHART) as chart:
        return [yaml.safe_load(crd["data"]) for crd in chart.crds]


def install(kube: KubeClient, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply, CRDs first; returns what was applied (optional kinds not served are
    skipped)."""
    for crd in chart_crds():
        ensure_crd(kube, crd)
    applied = []
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        try:
            kube.resource(obj["apiVersion"], obj["kind"])
        except ApiError as exc:
            if exc.status == 404 and (group, obj["kind"]) in OPTIONAL_KINDS:
                continue
            raise
        kube.apply(obj, field_manager="helm-test")
        applied.append(obj)
    return applied


def remove_cluster_scoped(kube: KubeClient, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED - {"CustomResourceDefinition"}:
            with contextlib.suppress(ApiError):
                kube.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def service_account_token(kube: KubeClient, namespace: str, name: str) -> str:
    """The token the v1.20 token controller minted for the ServiceAccount (in a Secret)."""

    def probe() -> str | None:
        sa = kube.get("v1", "ServiceAccount", name, namespace) or {}
        for ref in sa.get("secrets") or []:
            secret = kube.get("v1", "Secret", ref["name"], namespace) or {}
            token = (secret.get("data") or {}).get("token")
            if secret.get("type") == "kubernetes.io/service-account-token" and token:
                return base64.b64decode(token).decode()
        return None

    return wait_for(probe, timeout=30, what=f"a token Secret for {namespace}/{name}")


def serve_as_chart(
    cluster: TestCluster, kube: KubeClient, objects: list[dict[str, Any]], workdir: Path
) -> ServeProcess:
    """``gitsync serve`` with the chart Deployment's arguments, as its ServiceAccount."""
    assert cluster.control_plane is not None
    (dep,) = of_kind(objects, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    token = service_account_token(kube, dep["metadata"]["namespace"], pod["serviceAccountName"])
    kubeconfig = cluster.control_plane.write_token_kubeconfig(
        workdir / "chart-sa.kubeconfig", token, user=pod["serviceAccountName"]
    )
    (container,) = pod["containers"]
    args = [
        a
        for a in container["args"]
        if a != "serve" and not a.startswith(("--listen=", "--cache-dir="))
    ]
    # the policy ConfigMap the pod would mount, as a local file
    for config in of_kind(objects, "ConfigMap"):
        if config["metadata"]["name"].endswith("-policy"):
            local = workdir / "chart-policy.yaml"
            local.write_text(config["data"]["policy.yaml"])
            args = [f"--policy={local}" if a.startswith("--policy=") else a for a in args]
    # impersonate=True: the chart's own arguments decide (it impersonates unless told not to)
    return ServeProcess(kubeconfig, workdir, extra_args=args, impersonate=True).start()


DEPLOYER = "gitsync-deployer"  # the chart's default tenant ServiceAccount name
MANAGE = ["get", "list", "watch", "create", "update", "patch", "delete"]


def with_tenant(values: dict[str, Any], namespace: str, **tenant: Any) -> dict[str, Any]:
    """``values`` plus a tenant entry for ``namespace`` whose ServiceAccount is the default."""
    return {
        **values,
        "impersonation": {"defaultServiceAccount": DEPLOYER},
        "tenants": [{"namespace": namespace, **tenant}],
    }


def ready_condition(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    status = app_status(kube, namespace, name)
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def wait_ready_true(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            ready_condition(kube, namespace, name).get("status") == "True"
            and app_status(kube, namespace, name)
        ),
        timeout=90,
        what=f"Application {namespace}/{name} Ready=True",
    )


def application_events(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    events = kube.list("v1", "Event", namespace)["items"]
    return [
        e
        for e in events
        if e["involvedObject"].get("kind") == "Application" and e["involvedObject"]["name"] == name
    ]


@pytest.fixture
def release_namespace(kube: KubeClient) -> Iterator[str]:
    with temporary_namespace(kube, "gitsync-release") as ns:
        yield ns


@pytest.fixture
def needs_control_plane(cluster: TestCluster) -> None:
    if cluster.control_plane is None:
        pytest.skip("writes a ServiceAccount kubeconfig through the project's control plane")


@pytest.mark.parametrize(
    "values", [{}, {"rbac": {"manageAll": False}}], ids=["default", "explicit-kinds"]
)
def test_cluster_mode_install_and_sync(
    values: dict[str, Any],
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    release_namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    needs_control_plane: None,
) -> None:
    release = f"gs-{secrets.token_hex(3)}"
    values = with_tenant(values, namespace)  # impersonation is on: the app runs as the tenant
    objects = render_chart(kube, values, release=release, namespace=release_namespace)
    ctl = None
    try:
        applied = install(kube, objects)
        assert {o["kind"] for o in applied} >= {"ClusterRole", "ClusterRoleBinding", "Deployment"}
        pdb = of_kind(applied, "PodDisruptionBudget")[0]
        assert pdb["apiVersion"] == "policy/v1beta1"  # v1.20 has no policy/v1
        ctl = serve_as_chart(cluster, kube, objects, tmp_path)
        repo = configmap_repo(git_server, "from-chart")
        kube.create(application("web", namespace, repo.file_url()))
        status = wait_ready_true(kube, namespace, "web")
        assert status["sync"] == {"status": "Synced", "revision": repo.head()}
        assert configmap_value(kube, namespace) == "from-chart"
        assert kube.get("v1", "ConfigMap", "gitsync-inventory-web", namespace)
        assert application_events(kube, namespace, "web")  # events: create is granted
    finally:
        if ctl is not None:
            ctl.stop()
        remove_cluster_scoped(kube, objects)


def test_namespaced_mode_syncs_inside_and_is_refused_outside(
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    release_namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    needs_control_plane: None,
) -> None:
    allowed = namespace
    release = f"gs-{secrets.token_hex(3)}"
    values = {
        "replicas": 2,
        "rbac": {"namespaced": True, "namespaces": [allowed]},
        "ingress": {"enabled": True},
        "webhook": {"existingSecret": "gitsync-webhook"},
        "networkPolicy": {"enabled": True, "egress": {"enabled": True}},
        "serviceMonitor": {"enabled": True},
        "impersonation": {"defaultServiceAccount": DEPLOYER},
        "tenants": [{"namespace": allowed}],
        # the policy lets the project go anywhere: what refuses "outside" here is the API server
        "policy": {"projects": {allowed: {"namespaces": ["*"]}}},
    }
    objects = render_chart(kube, values, release=release, namespace=release_namespace)
    assert of_kind(objects, "ClusterRole") == of_kind(objects, "ClusterRoleBinding") == []
    ctl = None
    with temporary_namespace(kube, "gitsync-outside") as outside:
        try:
            applied = install(kube, objects)
            assert {o["kind"] for o in applied} >= {"Ingress", "NetworkPolicy", "Role"}
            assert not of_kind(applied, "ServiceMonitor")  # not served here: skipped
            ctl = serve_as_chart(cluster, kube, objects, tmp_path)
            assert "--leader-elect" in ctl.extra_args
            assert f"--namespaces={allowed}" in ctl.extra_args

            repo = configmap_repo(git_server, "inside")
            kube.create(application("inside", allowed, repo.file_url()))
            status = wait_ready_true(kube, allowed, "inside")
            assert status["sync"]["revision"] == repo.head()
            assert configmap_value(kube, allowed) == "inside"
            lease = kube.get(
                "coordination.k8s.io/v1", "Lease", "gitsync-controller", release_namespace
            )
            assert lease and lease["spec"]["holderIdentity"]

            kube.create(
                application("outside", allowed, repo.file_url(), destination={"namespace": outside})
            )

            def refused() -> dict[str, Any] | None:
                status = app_status(kube, allowed, "outside")
                ready = ready_condition(kube, allowed, "outside")
                op = status.get("operationState") or {}
                if ready.get("status") != "False" or op.get("phase") != "Failed":
                    return None
                return status

            status = wait_for(refused, timeout=60, what="the outside Application refused")
            assert ready_condition(kube, allowed, "outside")["reason"] == "SyncFailed"
            resources = status["operationState"]["resources"]
            assert {(r["kind"], r["namespace"]) for r in resources} == {
                ("ConfigMap", outside),
                ("Deployment", outside),
            }
            for r in resources:
                assert r["status"] == "SyncFailed", r
                assert "forbidden" in r["message"].lower(), r
            assert kube.get("v1", "ConfigMap", "config", outside) is None
            assert kube.get("apps/v1", "Deployment", "web", outside) is None
        finally:
            if ctl is not None:
                ctl.stop()
            remove_cluster_scoped(kube, objects)


EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "example-repo"


def test_the_chart_service_account_syncs_the_example_apps(
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    release_namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    needs_control_plane: None,
) -> None:
    """A single-team install (cluster mode, impersonation off) runs every example app with the
    permissions the chart grants and nothing more: the controller's only credential is the
    chart's token. (The example apps create their own namespaces, which a tenant may not.)"""
    # the example apps deploy into namespaces of their own: the policy must say so (the demo's
    # policy does the same for its project)
    policy = {"projects": {namespace: {"namespaces": [namespace, f"{namespace[:40]}-*"]}}}
    objects = render_chart(
        kube,
        {"impersonation": {"enabled": False}, "policy": policy},
        release=f"gs-{secrets.token_hex(3)}",
        namespace=release_namespace,
    )
    ctl = None
    created: list[str] = []
    try:
        install(kube, objects)
        ctl = serve_as_chart(cluster, kube, objects, tmp_path)
        repo = git_server.create_repo(f"examples-{secrets.token_hex(3)}", from_dir=EXAMPLE_REPO)
        names = ["guestbook", "podinfo-staging", "helm-chart"]
        for name in names:
            doc = yaml.safe_load((EXAMPLE_REPO / "applications" / f"{name}.yaml").read_text())
            doc["metadata"]["namespace"] = namespace
            doc["spec"]["source"]["repoURL"] = repo.file_url()
            target = f"{namespace[:40]}-{name[:10]}"
            doc["spec"]["destination"]["namespace"] = target
            created.append(target)
            kube.create(doc)
        for name in names:
            status = wait_ready_true(kube, namespace, name)
            assert status["sync"]["status"] == "Synced" and status["health"]["status"] == "Healthy"
    finally:
        if ctl is not None:
            ctl.stop()
        for target in created:
            with contextlib.suppress(ApiError):
                kube.delete("v1", "Namespace", target)
        remove_cluster_scoped(kube, objects)


# The chart's defaults ship two fences: impersonation (RBAC) and the built-in destination policy.
# "both" is the chart exactly as installed; "rbac-alone" opens the policy for the tenant's project
# (every namespace, every kind, no denied role refs) so the API server's RBAC is all that stands.
FENCES = {
    "both": {},
    "rbac-alone": {
        "defaults": {"deniedRoleRefs": []},
        "projects": {
            "TENANT": {"namespaces": ["*"], "clusterResources": [{"group": "*", "kind": "*"}]}
        },
    },
}


@pytest.mark.parametrize("fence", sorted(FENCES))
def test_a_tenant_cannot_leave_its_namespace_with_the_chart_defaults(
    fence: str,
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    release_namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    needs_control_plane: None,
) -> None:
    """Issue 13's acceptance: the chart installed with its defaults and one tenant whose
    ServiceAccount may only manage ConfigMaps and Deployments in its namespace. Whatever its
    repository holds, it creates no ClusterRole, no RoleBinding, nothing in another namespace
    and no Application elsewhere; each refusal is that object's SyncFailed naming the RBAC
    denial, the rest of the app syncs, and the refused objects are never pruned. With the
    policy also in place (``both``) an object may be refused by either fence; with the policy
    opened (``rbac-alone``) every refusal must be the RBAC denial."""
    tenant, suffix = namespace, secrets.token_hex(3)
    rules = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": MANAGE},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": MANAGE},
    ]
    policy = json.loads(json.dumps(FENCES[fence]).replace("TENANT", tenant))
    values = with_tenant({"policy": policy} if policy else {}, tenant, rules=rules)
    objects = render_chart(kube, values, release=f"gs-{suffix}", namespace=release_namespace)
    ctl = None
    with temporary_namespace(kube, "other-team") as other:
        # Another team's object, carrying the tenant app's tracking annotation (as if the app
        # had deployed it before the tenant model): RBAC, not bookkeeping, must protect it.
        tracking = f"{tenant}/web:/ConfigMap:{other}/victim"
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "victim",
                    "namespace": other,
                    "annotations": {"gitsync.dev/tracking": tracking},
                },
                "data": {"owner": "other-team"},
            }
        )
        try:
            install(kube, objects)
            ctl = serve_as_chart(cluster, kube, objects, tmp_path)
            assert not [a for a in ctl.extra_args if a.startswith("--impersonate")]  # default: on
            repo = configmap_repo(git_server, "tenant")
            repo.commit(
                {
                    "app/escape.yaml": yaml.safe_dump_all(
                        tenant_escapes(tenant, DEPLOYER, other, suffix)
                    )
                },
                message="escape",
            )
            repo.push()
            kube.create(application("web", tenant, repo.file_url()))

            def failed_sync() -> list[dict[str, Any]] | None:
                op = app_status(kube, tenant, "web").get("operationState") or {}
                if op.get("phase") != "Failed":
                    return None
                resources: list[dict[str, Any]] = op["resources"]
                return resources

            resources = wait_for(failed_sync, timeout=90, what="the tenant's sync refused")
            by_kind = {(r["kind"], r["namespace"]): r for r in resources}
            assert by_kind[("ConfigMap", tenant)]["status"] == "Synced"
            assert by_kind[("Deployment", tenant)]["status"] == "Synced"
            refused = {k for k, r in by_kind.items() if r["status"] == "SyncFailed"}
            assert refused == {
                ("ClusterRole", ""),
                ("RoleBinding", tenant),
                ("ConfigMap", other),
                ("Application", other),
            }
            user = f"system:serviceaccount:{tenant}:{DEPLOYER}"
            for key in refused:
                message = by_kind[key]["message"]
                if fence == "both" and message.startswith("denied by destination policy: "):
                    continue
                assert "forbidden" in message, by_kind[key]
                assert user in message, by_kind[key]
            assert ready_condition(kube, tenant, "web")["reason"] == "SyncFailed"
            assert configmap_value(kube, tenant) == "tenant"
            assert kube.get("apps/v1", "Deployment", "web", tenant) is not None
            rbac = "rbac.authorization.k8s.io/v1"
            assert kube.get(rbac, "ClusterRole", f"tenant-escape-{suffix}") is None
            assert kube.get(rbac, "RoleBinding", "tenant-admin", tenant) is None
            assert kube.get("gitsync.dev/v1alpha1", "Application", "hijack", other) is None
            victim = kube.get("v1", "ConfigMap", "victim", other)
            assert victim is not None and victim["data"] == {"owner": "other-team"}

            # The repository drops them: their prunes run as the tenant too, and are refused.
            repo.commit({"app/escape.yaml": None}, message="retreat")
            repo.push()

            def pruned_or_skipped() -> dict[tuple[str, str], dict[str, Any]] | None:
                op = app_status(kube, tenant, "web").get("operationState") or {}
                rows = {(r["kind"], r["namespace"]): r for r in op.get("resources") or []}
                if rows.get(("ConfigMap", other), {}).get("status") != "PruneSkipped":
                    return None
                return rows

            rows = wait_for(pruned_or_skipped, timeout=90, what="the prune of the victim refused")
            if fence == "rbac-alone":
                assert rows[("ConfigMap", other)]["message"].startswith("prune refused: ")
                assert "forbidden" in rows[("ConfigMap", other)]["message"]
            victim = kube.get("v1", "ConfigMap", "victim", other)
            assert victim is not None and victim["data"] == {"owner": "other-team"}
        finally:
            if ctl is not None:
                ctl.stop()
            with contextlib.suppress(ApiError):
                kube.delete(
                    "rbac.authorization.k8s.io/v1", "ClusterRole", f"tenant-escape-{suffix}"
                )
            remove_cluster_scoped(kube, objects)


def test_a_tenants_rollout_runs_with_the_chart_defaults(
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    release_namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    needs_control_plane: None,
) -> None:
    """With impersonation the chart grants gitsync only reads on what tenants deploy, plus its
    own objects: a tenant's canary is still created (as the tenant's ServiceAccount) and its
    Rollout's status written (by gitsync, under the chart's ``rollouts/status`` grant)."""
    tenant, suffix = namespace, secrets.token_hex(3)
    rules = [
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": MANAGE},
        {"apiGroups": [""], "resources": ["services"], "verbs": MANAGE},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["gitsync.dev"], "resources": ["rollouts"], "verbs": MANAGE},
    ]
    values = with_tenant({}, tenant, rules=rules)
    objects = render_chart(kube, values, release=f"gs-{suffix}", namespace=release_namespace)
    steps = [{"setWeight": 50}, {"pause": {}}]

    def files(image: str) -> dict[str, str]:
        own = [web_deployment(image, 2), web_service(), canary_rollout(steps)]
        return {"app/web.yaml": yaml.safe_dump_all(own)}

    ctl = None
    try:
        install(kube, objects)
        ctl = serve_as_chart(cluster, kube, objects, tmp_path)
        repo = git_server.create_repo(f"chart-rollout-{suffix}", files=files("nginx:1.25"))
        kube.create(application("web", tenant, repo.file_url()))
        wait_for(
            lambda: app_status(kube, tenant, "web").get("sync", {}).get("revision") == repo.head(),
            timeout=90,
            what="the first sync",
        )
        repo.commit(files("nginx:1.26"), message="v2")
        repo.push()
        kube.patch(
            "gitsync.dev/v1alpha1",
            "Application",
            "web",
            {"metadata": {"annotations": {REFRESH_REQUEST: f"v2-{suffix}"}}},
            namespace=tenant,
        )
        status = rollouts.canary_started(kube, tenant, "nginx:1.26")
        assert status["phase"] in ("Progressing", "Paused"), status
    finally:
        if ctl is not None:
            ctl.stop()
        remove_cluster_scoped(kube, objects)
