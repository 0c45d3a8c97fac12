"""Destination policy on the real control plane (issue 8, item 9): a repository that adds a
ClusterRoleBinding to cluster-admin, or an object in a namespace its Application may not touch,
gets SyncFailed for those objects - with no write, not even a dry run, reaching the API server -
while the rest of the app syncs; and an object the policy refuses is never pruned."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.application import Application, parse_application
from gitsync.kube import ApiError, KubeClient
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from gitsync.testing.apps import app_status, application
from gitsync.testing.audit import AuditEvent
from gitsync.testing.cluster import TestCluster, temporary_namespace
from gitsync.testing.gitserver import GitServer
from gitsync.testing.waiting import wait_for

pytestmark = pytest.mark.integration

RBAC = "rbac.authorization.k8s.io/v1"


def app_for(namespace: str) -> Application:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"policy-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True}},
            },
        }
    )


def manifest(obj: dict[str, Any]) -> RenderedManifest:
    return RenderedManifest(ResourceKey.of(obj), obj, "repo.yaml")


def cm(name: str, namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


def cluster_admin_binding(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }


@pytest.fixture
def other_namespace(kube: KubeClient) -> Iterator[str]:
    """A namespace that exists, so only the policy stands between the app and it."""
    with temporary_namespace(kube, "policy-other") as ns:
        yield ns


def writes_to(events: list[AuditEvent], *names: str) -> list[tuple[str, str, str, bool]]:
    return [(e.verb, e.resource, e.name, e.dry_run) for e in events if e.name in names]


def test_denied_objects_fail_and_never_reach_the_server(
    cluster: TestCluster, kube: KubeClient, namespace: str, other_namespace: str
) -> None:
    if cluster.audit is None:
        pytest.skip("needs the API server's audit log (test control plane)")
    agent = f"gitsync-policy-{secrets.token_hex(3)}"
    syncer = Syncer(cluster.client(user_agent=agent), policy=Policy())
    app = app_for(namespace)
    crb_name = f"repo-admin-{secrets.token_hex(3)}"
    outside = f"outside-{secrets.token_hex(3)}"
    manifests = [
        manifest(cm("allowed")),
        manifest(cluster_admin_binding(crb_name, namespace)),
        manifest(cm(outside, other_namespace)),
    ]
    mark = cluster.audit.mark()
    try:
        comparison = syncer.compare(app, manifests)
        errors = {key.name: why for key, why in comparison.errors}
        assert set(errors) == {crb_name, outside}
        assert not comparison.in_sync

        dry = syncer.sync(app, manifests, revision="r1", dry_run=True)
        result = syncer.sync(app, manifests, revision="r1")

        for outcome in (dry, result):
            by_name = {r.key.name: r for r in outcome.results}
            assert by_name["allowed"].code == ResultCode.SYNCED
            crb, out = by_name[crb_name], by_name[outside]
            assert crb.code == ResultCode.SYNC_FAILED and out.code == ResultCode.SYNC_FAILED
            assert crb.message == (
                f"denied by destination policy: ClusterRoleBinding {crb_name!r} binds the "
                "denied role 'cluster-admin'"
            )
            assert out.message.startswith(
                f"denied by destination policy: namespace {other_namespace!r} is not allowed "
                f"for Applications in namespace {namespace!r}"
            )
            assert outcome.phase == "Failed"

        assert kube.get("v1", "ConfigMap", "allowed", namespace) is not None
        assert kube.get(RBAC, "ClusterRoleBinding", crb_name) is None
        assert kube.get("v1", "ConfigMap", outside, other_namespace) is None

        # the allowed ConfigMap's dry run and apply are in the audit log, so its absence for
        # the denied objects means something
        def allowed_seen() -> list[AuditEvent] | None:
            assert cluster.audit is not None
            events = cluster.audit.writes(mark, user_agent=agent, include_dry_run=True)
            seen = {e.dry_run for e in events if e.name == "allowed"}
            return events if seen == {True, False} else None

        events = wait_for(allowed_seen, timeout=10, what="the allowed ConfigMap's writes")
        assert writes_to(events, crb_name, outside) == []
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(RBAC, "ClusterRoleBinding", crb_name)


def test_role_binding_to_cluster_admin_in_its_own_namespace_is_denied(
    kube: KubeClient, namespace: str
) -> None:
    rb = cluster_admin_binding("ns-admin", namespace)
    rb["kind"] = "RoleBinding"
    result = Syncer(kube, policy=Policy()).sync(
        app_for(namespace), [manifest(rb), manifest(cm("fine"))], revision="r1"
    )
    by_name = {r.key.name: r for r in result.results}
    assert by_name["ns-admin"].code == ResultCode.SYNC_FAILED
    assert "binds the denied role 'cluster-admin'" in by_name["ns-admin"].message
    assert by_name["fine"].code == ResultCode.SYNCED
    assert kube.get(RBAC, "RoleBinding", "ns-admin", namespace) is None


def test_a_project_entry_allows_its_namespaces(
    kube: KubeClient, namespace: str, other_namespace: str
) -> None:
    policy = Policy.from_yaml(f"projects: {{{namespace}: {{namespaces: [{namespace}, policy-*]}}}}")
    result = Syncer(kube, policy=policy).sync(
        app_for(namespace),
        [manifest(cm("here")), manifest(cm("there", other_namespace))],
        revision="r1",
    )
    assert result.succeeded, result.results
    assert kube.get("v1", "ConfigMap", "there", other_namespace) is not None


def test_an_object_the_policy_refuses_is_never_pruned(
    kube: KubeClient, namespace: str, other_namespace: str
) -> None:
    app = app_for(namespace)
    # synced before the policy existed, so it is in the inventory and owned by the app
    assert (
        Syncer(kube)
        .sync(app, [manifest(cm("kept")), manifest(cm("legacy", other_namespace))], revision="r1")
        .succeeded
    )
    result = Syncer(kube, policy=Policy()).sync(
        app, [manifest(cm("kept"))], revision="r2", prune=True
    )
    by_name = {r.key.name: r for r in result.results}
    assert by_name["legacy"].code == ResultCode.PRUNE_SKIPPED
    assert by_name["legacy"].message.startswith("denied by destination policy: namespace")
    assert kube.get("v1", "ConfigMap", "legacy", other_namespace) is not None


# -- through `gitsync serve --policy` ----------------------------------------------------------


def ready_condition(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    conditions = app_status(kube, namespace, name).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def test_serve_enforces_the_policy_and_the_status_names_the_object(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, tmp_path: Path
) -> None:
    crb_name = f"repo-admin-{secrets.token_hex(3)}"
    repo = git_server.create_repo(
        f"policy-{secrets.token_hex(3)}",
        files={
            "app/cm.yaml": yaml.safe_dump(cm("config")),
            "app/crb.yaml": yaml.safe_dump(cluster_admin_binding(crb_name, namespace)),
        },
    )
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("apiVersion: gitsync.dev/v1alpha1\nkind: DestinationPolicy\n")
    serve(f"--policy={policy_file}")
    try:
        kube.create(application("web", namespace, repo.file_url()))
        ready = wait_for(
            lambda: (
                (c := ready_condition(kube, namespace, "web")) is not None
                and c.get("reason") == "SyncFailed"
                and c
            ),
            timeout=60,
            what="Ready=False after the sync",
        )
        assert ready["status"] == "False"
        assert f"ClusterRoleBinding/{crb_name}: denied by destination policy" in ready["message"]
        assert kube.get("v1", "ConfigMap", "config", namespace) is not None  # the rest synced
        assert kube.get(RBAC, "ClusterRoleBinding", crb_name) is None
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(RBAC, "ClusterRoleBinding", crb_name)


def test_serve_refuses_to_start_with_a_bad_policy(serve: Any, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("projects:\n  team-a:\n    namespace: [team-a]\n")
    with pytest.raises(RuntimeError, match=r"projects\.team-a\.namespace: unknown field"):
        serve(f"--policy={policy_file}")
