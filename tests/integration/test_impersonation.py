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
import yaml

from gitsync.application import Application, parse_application
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.localenv.gitserver import GitServer
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.rollout import RolloutSyncHook, template_hash
from gitsync.rollout.status import STABLE_HASH_ANNOTATION
from gitsync.sync import Impersonation, Syncer
from gitsync.sync.inventory import Inventory
from tests.support import rollouts
from tests.support.apps import (
    app_status,
    application,
    configmap_repo,
    github_webhook,
    rollout_status,
    tenant_escapes,
)
from tests.support.cluster import temporary_namespace
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# The destination policy is opened in these syncer-level tests: what must refuse here is the
# ServiceAccount's RBAC alone (tests/integration/test_policy.py shows the policy fence).
OPEN = Policy.allow_all()

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
    syncer = Syncer(kube, impersonation=Impersonation(), policy=OPEN)
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

        syncer = Syncer(kube, live=cached, impersonation=Impersonation(TENANT_SA), policy=OPEN)
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
    before = Syncer(kube, policy=OPEN).sync(
        app, [manifest(cm("config")), manifest(cm("elsewhere", other))], revision="c" * 40
    )
    assert before.succeeded, before.results
    result = Syncer(kube, impersonation=Impersonation(), policy=OPEN).sync(
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


def test_a_rollout_acts_as_the_service_account_and_cannot_touch_another_namespace(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    other: str,
    git_server: GitServer,
    rollout_crd: None,
) -> None:
    """Confused deputy through the rollout executor: a tenant that may read everywhere but write
    only in its own namespace renders another team's Rollout and its Deployment with its own
    image. The sync refuses both applies; the rollout must not then create the canary (the
    tenant's pods in the other namespace) or write that Rollout's status with the controller's
    rights. Its own Rollout still rolls out."""
    suffix = secrets.token_hex(3)
    make_tenant(kube, namespace)
    grant(
        kube,
        namespace,
        "tenant-rollouts",
        [
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ALL_VERBS},
            {"apiGroups": [""], "resources": ["services"], "verbs": ALL_VERBS},
            {"apiGroups": [""], "resources": ["pods", "endpoints"], "verbs": ["get", "list"]},
            {"apiGroups": ["gitsync.dev"], "resources": ["rollouts"], "verbs": ALL_VERBS},
        ],
    )
    reader = f"tenant-reads-everywhere-{suffix}"
    kube.apply(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": reader},
            "rules": [
                {
                    "apiGroups": ["", "apps", "gitsync.dev"],
                    "resources": ["deployments", "services", "pods", "endpoints", "rollouts"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        field_manager="test",
    )
    kube.apply(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": reader},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole"}
            | {"name": reader},
            "subjects": [{"kind": "ServiceAccount", "name": TENANT_SA, "namespace": namespace}],
        },
        field_manager="test",
    )
    tenant = kube.impersonating_service_account(namespace, TENANT_SA)
    wait_for(lambda: tenant.may("get", "gitsync.dev", "rollouts", other), what="the read grant")
    steps = [{"setWeight": 50}, {"pause": {}}]
    # The other team's rollout, at rest on nginx:1.25.
    victim = web_deployment("nginx:1.25", 2)
    victim["metadata"]["annotations"] = {
        STABLE_HASH_ANNOTATION: template_hash(victim["spec"]["template"])
    }
    for obj in (victim, web_service(), canary_rollout(steps)):
        kube.create(obj | {"metadata": obj["metadata"] | {"namespace": other}})
    # The tenant's repository: its own rollout, and the other team's with the tenant's image.
    hostile = web_deployment("registry.example/tenant:evil", 2)
    theirs = [
        o | {"metadata": o["metadata"] | {"namespace": other}}
        for o in (hostile, canary_rollout(steps))
    ]
    repo = git_server.create_repo(
        f"rollimp-{suffix}",
        files={
            "app/own.yaml": yaml.safe_dump_all(
                [web_deployment("nginx:1.25", 2), web_service(), canary_rollout(steps)]
            ),
            "app/theirs.yaml": yaml.safe_dump_all(theirs),
        },
    )
    try:
        # no destination policy: the ServiceAccount's RBAC alone must stop the deputy
        ctl = serve("--policy-allow-all", impersonate=True)
        kube.create(application("web", namespace, repo.file_url(), serviceAccountName=TENANT_SA))

        def rollout_refused() -> list[dict[str, Any]]:
            op = app_status(kube, namespace, "web").get("operationState") or {}
            return [
                r
                for r in op.get("resources") or []
                if (r["kind"], r["namespace"]) == ("Rollout", other)
                and r.get("message", "").startswith("rollout: ")
            ]

        (refused,) = wait_for(rollout_refused, timeout=90, what="the other team's rollout result")
        assert kube.get("apps/v1", "Deployment", "web-canary", other) is None
        assert refused["status"] == "SyncFailed"
        assert "CreateCanary failed: RBAC denied" in refused["message"]
        assert f"system:serviceaccount:{namespace}:{TENANT_SA}" in refused["message"]
        assert f'in the namespace "{other}"' in refused["message"]

        # Its own rollout, within its rights, runs: a new image becomes a canary.
        sha = repo.commit(
            {
                "app/own.yaml": yaml.safe_dump_all(
                    [web_deployment("nginx:1.26", 2), web_service(), canary_rollout(steps)]
                )
            },
            "v2",
        )
        repo.push()
        assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
        own = rollouts.canary_started(kube, namespace, "nginx:1.26")
        assert own["phase"] in ("Progressing", "Paused"), own

        # Nothing in the other namespace moved: no canary of the tenant's image, the stable
        # Deployment untouched, and the other team's Rollout carries no status of the tenant's.
        assert kube.get("apps/v1", "Deployment", "web-canary", other) is None
        live = kube.get("apps/v1", "Deployment", "web", other)
        assert live is not None
        assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
        assert rollout_status(kube, other) == {}
        assert "RBAC denied" in ctl.log()
    finally:
        for kind in ("ClusterRoleBinding", "ClusterRole"):
            with contextlib.suppress(ApiError):
                kube.delete(RBAC, kind, reader)


READS = ["get", "list", "watch"]
ONLY_WEB = [  # may change the Deployment web, not create web-canary
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": READS},
    {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}
    | {"verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": READS},
]
NO_PODS = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ALL_VERBS}]


@pytest.mark.parametrize(
    ("rules", "reason", "denied"),
    [
        (ONLY_WEB, "CreateCanary failed: RBAC denied", 'cannot patch resource "deployments"'),
        (NO_PODS, "rollout stopped: RBAC denied", 'cannot list resource "pods"'),
    ],
    ids=["a-write", "a-read"],
)
def test_a_rollout_step_its_service_account_may_not_take_is_degraded_naming_the_denial(
    kube: KubeClient,
    namespace: str,
    rollout_crd: None,
    rules: list[dict[str, Any]],
    reason: str,
    denied: str,
) -> None:
    """In its own namespace, a ServiceAccount that may change only the Deployment ``web`` cannot
    have the rollout create ``web-canary``, nor one that may not list Pods have it read them:
    the rollout stops Degraded with the API server's denial (not retried on a timer), the sync
    result says so, and no canary exists."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": TENANT_SA, "namespace": namespace},
        },
        field_manager="test",
    )
    rollouts_rule = {"apiGroups": ["gitsync.dev"], "resources": ["rollouts"], "verbs": ALL_VERBS}
    grant(kube, namespace, "narrow", [*rules, rollouts_rule])
    tenant = kube.impersonating_service_account(namespace, TENANT_SA)
    wait_for(lambda: tenant.may("patch", "gitsync.dev", "rollouts", namespace), what="the grant")
    app = tenant_app(namespace, serviceAccountName=TENANT_SA)
    steps = [{"setWeight": 50}, {"pause": {}}]
    hook = RolloutSyncHook(kube)
    v1 = [manifest(web_deployment("nginx:1.25", 2)), manifest(canary_rollout(steps))]
    assert Syncer(kube, takeover=hook).sync(app, v1, revision="e" * 40).succeeded
    syncer = Syncer(kube, takeover=hook, impersonation=Impersonation())
    v2 = [manifest(web_deployment("nginx:1.26", 2)), manifest(canary_rollout(steps))]
    result = syncer.sync(app, v2, revision="f" * 40)
    (started,) = [r for r in result.results if r.message.startswith("rollout: ")]
    assert started.code == ResultCode.SYNC_FAILED
    assert reason in started.message
    assert f'User "system:serviceaccount:{namespace}:{TENANT_SA}" {denied}' in started.message
    status = rollout_status(kube, namespace)
    assert status["phase"] == "Degraded"
    assert status["message"] in started.message
    assert kube.get("apps/v1", "Deployment", "web-canary", namespace) is None
    live = kube.get("apps/v1", "Deployment", "web", namespace)
    assert live is not None  # the template change stays held
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    again = hook.executor.tick(namespace, "web", kube=tenant)
    assert again.requeue_after is None  # waits for RBAC (or a retry request), not a timer
