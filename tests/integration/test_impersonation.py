"""Impersonation on the real control plane: an Application's reads and writes run as its
ServiceAccount, so RBAC - not the controller's rights - decides what it may deploy.

The tenant in these tests may manage ConfigMaps and Deployments in its own namespace and nothing
else. The chart-level acceptance test (the chart installed server-side, ``gitsync serve`` with
the chart's arguments and token) is in ``test_chart_install.py``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from gitsync.application import Application, parse_application
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.model import ResourceKey, ResultCode
from gitsync.render import RenderedManifest
from gitsync.sync import Impersonation, Syncer
from gitsync.sync.inventory import Inventory
from gitsync.testing.apps import app_status, application, configmap_repo, tenant_escapes
from gitsync.testing.cluster import temporary_namespace
from gitsync.testing.gitserver import GitServer
from gitsync.testing.waiting import wait_for

pytestmark = pytest.mark.integration

RBAC = "rbac.authorization.k8s.io/v1"
TENANT_SA = "deployer"
ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def grant(kube: KubeClient, namespace: str, name: str, rules: list[dict[str, Any]]) -> None:
    """A Role holding ``rules``, bound to the ServiceAccount ``namespace/TENANT_SA``."""
    kube.apply(
        {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": name, "namespace": namespace}}
        | {"rules": rules},
        field_manager="test",
    )
    kube.apply(
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": TENANT_SA, "namespace": namespace}],
        },
        field_manager="test",
    )


def make_tenant(kube: KubeClient, namespace: str) -> KubeClient:
    """ServiceAccount ``TENANT_SA`` managing ConfigMaps and Deployments in ``namespace`` only;
    returns a client acting as it, once RBAC answers for the grant."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": TENANT_SA, "namespace": namespace},
        },
        field_manager="test",
    )
    grant(
        kube,
        namespace,
        "tenant",
        [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ALL_VERBS},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ALL_VERBS},
        ],
    )
    tenant = kube.impersonating_service_account(namespace, TENANT_SA)
    wait_for(lambda: tenant.may("create", "", "configmaps", namespace), what="the tenant's grant")
    return tenant


@pytest.fixture
def other(kube: KubeClient) -> Iterator[str]:
    with temporary_namespace(kube, "imp-other") as ns:
        yield ns


def tenant_app(namespace: str, **spec: Any) -> Application:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"imp-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "https://git.example.com/unused.git", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True}},
                **spec,
            },
        }
    )


def manifest(obj: dict[str, Any]) -> RenderedManifest:
    return RenderedManifest(ResourceKey.of(obj), obj, "repo.yaml")


def cm(name: str, namespace: str = "", value: str = "v1") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"value": value}}


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }


def test_an_impersonated_client_has_the_service_accounts_rights_and_its_groups(
    kube: KubeClient, namespace: str, other: str
) -> None:
    tenant = make_tenant(kube, namespace)
    assert tenant.impersonated_user == f"system:serviceaccount:{namespace}:{TENANT_SA}"
    assert tenant.get("v1", "ConfigMap", "absent", namespace) is None  # allowed, not found
    with pytest.raises(ApiError) as refused:
        tenant.get("v1", "ConfigMap", "absent", other)
    assert refused.value.status == 403
    assert f'User "system:serviceaccount:{namespace}:{TENANT_SA}"' in refused.value.message
    assert kube.get("v1", "ConfigMap", "absent", other) is None  # the controller is itself
    assert not tenant.may("get", "", "secrets", namespace)
    # The API server adds the ServiceAccount's groups itself: a grant to the group of every
    # ServiceAccount in the namespace reaches the impersonated one.
    kube.apply(
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": {"name": "group-reads-secrets", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [
                {
                    "kind": "Group",
                    "name": f"system:serviceaccounts:{namespace}",
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            ],
        },
        field_manager="test",
    )
    wait_for(lambda: tenant.may("list", "", "pods", namespace), what="the group grant")


def test_each_refusal_is_a_sync_failed_naming_the_rbac_denial_and_the_rest_syncs(
    kube: KubeClient, namespace: str, other: str, crd: None
) -> None:
    make_tenant(kube, namespace)
    suffix = secrets.token_hex(3)
    app = tenant_app(namespace, serviceAccountName=TENANT_SA)
    syncer = Syncer(kube, impersonation=Impersonation())
    hostile = tenant_escapes(namespace, TENANT_SA, other, suffix)
    try:
        result = syncer.sync(
            app,
            [manifest(cm("config")), manifest(deployment("web"))] + [manifest(o) for o in hostile],
            revision="a" * 40,
        )
        by_key = {r.key: r for r in result.results}
        assert by_key[ResourceKey("", "ConfigMap", namespace, "config")].code == ResultCode.SYNCED
        assert by_key[ResourceKey("apps", "Deployment", namespace, "web")].code == (
            ResultCode.SYNCED
        )
        refused = [r for r in result.results if r.code == ResultCode.SYNC_FAILED]
        assert {(r.key.kind, r.key.namespace) for r in refused} == {
            ("ClusterRole", ""),
            ("RoleBinding", namespace),
            ("ConfigMap", other),
            ("Application", other),
        }
        for r in refused:
            assert "forbidden" in r.message, r
            assert f"system:serviceaccount:{namespace}:{TENANT_SA}" in r.message, r
        assert kube.get("v1", "ConfigMap", "config", namespace) is not None
        assert kube.get(RBAC, "ClusterRole", f"tenant-escape-{suffix}") is None
        assert kube.get(RBAC, "RoleBinding", "tenant-admin", namespace) is None
        assert kube.get("v1", "ConfigMap", "victim", other) is None
        assert kube.get("gitsync.dev/v1alpha1", "Application", "hijack", other) is None
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(RBAC, "ClusterRole", f"tenant-escape-{suffix}")


def test_cached_reads_never_show_an_object_the_service_account_cannot_read(
    kube: KubeClient, namespace: str
) -> None:
    """The watch cache holds what the controller may read; the app sees only what its
    ServiceAccount may - and a no-change refresh still writes nothing."""
    make_tenant(kube, namespace)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": namespace},
            "stringData": {"password": "hunter2-the-victims"},
        }
    )
    cache = WatchCache(kube)
    try:

        def cached(api_version: str, kind: str, name: str, ns: str) -> dict[str, Any] | None:
            cache.ensure(api_version, kind)
            return cache.get(api_version, kind, name, ns)

        syncer = Syncer(kube, live=cached, impersonation=Impersonation(TENANT_SA))
        app = tenant_app(namespace)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"password": "guess"},
        }
        manifests = [manifest(cm("config")), manifest(secret)]
        syncer.sync(app, manifests, revision="b" * 40)
        assert cached("v1", "Secret", "db", namespace) is not None  # the cache does hold it
        applied = kube.get("v1", "ConfigMap", "config", namespace)
        assert applied is not None
        wait_for(
            lambda: (
                (cached("v1", "ConfigMap", "config", namespace) or {})["metadata"][
                    "resourceVersion"
                ]
                == applied["metadata"]["resourceVersion"]
            ),
            what="the watch cache caught up with the apply",
        )
        comparison = syncer.compare(app, manifests)
        by_kind = {i.key.kind: i for i in comparison.items}
        assert by_kind["ConfigMap"].live is not None  # readable: answered from the cache
        hidden = by_kind["Secret"]
        assert hidden.live is None
        assert "forbidden" in hidden.error
        assert "hunter2" not in repr(comparison.diffs)
        writes = kube.requests.writes()
        syncer.compare(app, manifests)  # a no-change refresh: reviews are remembered
        assert kube.requests.writes() == writes
    finally:
        cache.stop()


def test_a_prune_the_service_account_may_not_make_is_skipped_and_kept(
    kube: KubeClient, namespace: str, other: str
) -> None:
    make_tenant(kube, namespace)
    app = tenant_app(namespace, serviceAccountName=TENANT_SA)
    # What the app owned before impersonation was switched on (synced as the controller).
    before = Syncer(kube).sync(
        app, [manifest(cm("config")), manifest(cm("elsewhere", other))], revision="c" * 40
    )
    assert before.succeeded, before.results
    result = Syncer(kube, impersonation=Impersonation()).sync(
        app, [manifest(cm("config"))], revision="d" * 40
    )
    key = ResourceKey("", "ConfigMap", other, "elsewhere")
    (skipped,) = [r for r in result.results if r.key == key]
    assert skipped.code == ResultCode.PRUNE_SKIPPED
    assert skipped.message.startswith("prune refused: ")
    assert "forbidden" in skipped.message
    assert kube.get("v1", "ConfigMap", "elsewhere", other) is not None  # not pruned
    assert key in Inventory(kube, namespace, app.name).load()  # and still tracked


def test_serve_stalls_an_application_without_a_service_account(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    make_tenant(kube, namespace)
    repo = configmap_repo(git_server, "tenant")
    ctl = serve(impersonate=True)
    kube.create(application("nobody", namespace, repo.file_url()))
    kube.create(application("somebody", namespace, repo.file_url(), serviceAccountName=TENANT_SA))

    def stalled() -> dict[str, Any] | None:
        conditions = app_status(kube, namespace, "nobody").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Stalled"), None)

    condition = wait_for(stalled, timeout=60, what="the Application without a ServiceAccount")
    assert condition["status"] == "True"
    assert "spec.serviceAccountName" in condition["message"]
    assert "--default-service-account" in condition["message"]
    synced = wait_for(
        lambda: app_status(kube, namespace, "somebody").get("sync", {}).get("status") == "Synced",
        timeout=60,
        what="the Application with a ServiceAccount synced",
    )
    assert synced
    assert "impersonation is off" not in ctl.log()
