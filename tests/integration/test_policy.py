"""Destination policy on the real control plane (issue 8, item 9): a repository that adds a
ClusterRoleBinding to cluster-admin, or an object in a namespace its Application may not touch,
gets SyncFailed for those objects - with no write, not even a dry run, reaching the API server -
while the rest of the app syncs; and an object the policy refuses is never pruned. Issue 13,
finding 3: the same fence between tenants, through ``gitsync serve`` (see the section below)."""

from __future__ import annotations

import contextlib
import http.server
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.application import Application, parse_application
from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from tests.support.apps import app_status, application
from tests.support.audit import AuditEvent
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.waiting import wait_for

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
    # synced under an allow-everything policy, so it is in the inventory and owned by the app
    assert (
        Syncer(kube, policy=Policy.allow_all())
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


def wait_ready(kube: KubeClient, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The app's Ready condition once its reason is ``reason``."""
    condition: dict[str, Any] = wait_for(
        lambda: (
            (c := ready_condition(kube, namespace, name)) is not None
            and c.get("reason") == reason
            and c
        ),
        timeout=60,
        what=f"{namespace}/{name} Ready reason {reason}",
    )
    return condition


def wait_sync_failed(kube: KubeClient, namespace: str, name: str) -> str:
    """The Ready condition's message once the app's sync finished with SyncFailed."""
    return str(wait_ready(kube, namespace, name, "SyncFailed")["message"])


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
        ready = wait_ready(kube, namespace, "web", "SyncFailed")
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


# -- issue 13, finding 3: the policy as a fence between tenants --------------------------------
#
# The attacker may create an Application in one namespace (``tenant-a``) and controls its
# repository. Without a policy entry for that namespace, the Application may not write into the
# ``spec.destination.namespace`` it names; an Application its repository renders may not land in
# a privileged project's namespace, and one the platform creates for the tenant runs with the
# tenant's rights, not its parent's; without ``--policy`` at all, a ClusterRole and a binding to
# cluster-admin are refused; and a repository outside ``sourceRepos`` is never contacted.

APPS = "gitsync.dev/v1alpha1"


def cluster_role(name: str) -> dict[str, Any]:
    """The ClusterRole ``*/*/*`` of the report."""
    return {
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }


def repo_with(git_server: GitServer, *objects: dict[str, Any]) -> GitRepo:
    files = {f"app/{i}.yaml": yaml.safe_dump(obj) for i, obj in enumerate(objects)}
    return git_server.create_repo(f"tenant-{secrets.token_hex(3)}", files=files)


@pytest.fixture
def tenant_b(kube: KubeClient) -> Iterator[str]:
    """Another tenant's namespace; it exists, so only the policy stands in the way."""
    with temporary_namespace(kube, "tenant-b") as ns:
        yield ns


@pytest.fixture
def privileged(kube: KubeClient) -> Iterator[str]:
    """A platform namespace the policy file lets deploy anything anywhere."""
    with temporary_namespace(kube, "platform") as ns:
        yield ns


def wide_policy(tmp_path: Path, privileged: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "projects": {
                    privileged: {
                        "namespaces": ["*"],
                        "clusterResources": [{"group": "*", "kind": "*"}],
                    }
                }
            }
        )
    )
    return path


@contextlib.contextmanager
def removed_afterwards(kube: KubeClient, *cluster_scoped: tuple[str, str, str]) -> Iterator[None]:
    try:
        yield
    finally:
        for api_version, kind, name in cluster_scoped:
            with contextlib.suppress(ApiError):
                kube.delete(api_version, kind, name)


# -- (a) a self-chosen destination -------------------------------------------------------------


def test_a_project_without_an_entry_cannot_write_into_the_destination_it_names(
    serve: Any, kube: KubeClient, namespace: str, tenant_b: str, git_server: GitServer
) -> None:
    tenant_a = namespace
    repo = repo_with(git_server, cm("planted"), cm("own", tenant_a))
    serve()  # no --policy: the built-in default
    kube.create(
        application("attack", tenant_a, repo.http_url(), destination={"namespace": tenant_b})
    )
    message = wait_sync_failed(kube, tenant_a, "attack")
    assert f"ConfigMap/planted: denied by destination policy: namespace {tenant_b!r}" in (
        message
    ), message
    assert f"projects.{tenant_a}.namespaces" in message  # the fix is named
    assert kube.get("v1", "ConfigMap", "own", tenant_a) is not None  # the rest synced
    assert kube.get("v1", "ConfigMap", "planted", tenant_b) is None


# -- (b) app-of-apps -----------------------------------------------------------------------------


def test_a_tenant_repository_cannot_create_an_application_in_a_privileged_namespace(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    privileged: str,
    git_server: GitServer,
    tmp_path: Path,
) -> None:
    tenant_a = namespace
    role = f"escalated-{secrets.token_hex(3)}"
    payload = repo_with(git_server, cluster_role(role))
    # the child names its namespace, and the parent points its destination there too: neither
    # a metadata.namespace nor a self-chosen destination may lend it the platform's rights
    child = application("escalate", privileged, payload.http_url())
    parent_repo = repo_with(git_server, child, cm("own", tenant_a))
    serve(f"--policy={wide_policy(tmp_path, privileged)}")
    with removed_afterwards(kube, (RBAC, "ClusterRole", role)):
        kube.create(
            application(
                "parent", tenant_a, parent_repo.http_url(), destination={"namespace": privileged}
            )
        )
        message = wait_sync_failed(kube, tenant_a, "parent")
        assert "Application/escalate: denied by destination policy" in message
        assert kube.get("v1", "ConfigMap", "own", tenant_a) is not None
        assert kube.get(APPS, "Application", "escalate", privileged) is None
        assert kube.get(RBAC, "ClusterRole", role) is None


def test_an_application_rendered_by_a_privileged_parent_gets_only_its_own_namespaces_rights(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    privileged: str,
    tenant_b: str,
    git_server: GitServer,
    tmp_path: Path,
) -> None:
    tenant_a = namespace
    role = f"escalated-{secrets.token_hex(3)}"
    # the tenant's repository: what the child deploys
    payload = repo_with(git_server, cluster_role(role), cm("outside", tenant_b), cm("inside"))
    child = application("child", tenant_a, payload.http_url(), destination={"namespace": tenant_b})
    platform_repo = repo_with(git_server, child)
    serve(f"--policy={wide_policy(tmp_path, privileged)}")
    with removed_afterwards(kube, (RBAC, "ClusterRole", role)):
        kube.create(application("platform", privileged, platform_repo.http_url()))
        wait_for(
            lambda: kube.get(APPS, "Application", "child", tenant_a),
            timeout=60,
            what="the platform's app created the child Application",
        )
        message = wait_sync_failed(kube, tenant_a, "child")
        assert f"ClusterRole/{role}: denied by destination policy: cluster-scoped" in message
        assert "ConfigMap/outside: denied by destination policy" in message
        assert "ConfigMap/inside: denied by destination policy" in message
        assert kube.get(RBAC, "ClusterRole", role) is None
        assert kube.get("v1", "ConfigMap", "outside", tenant_b) is None
        assert kube.get("v1", "ConfigMap", "inside", tenant_b) is None


# -- (c) no --policy is not "everything" ---------------------------------------------------------


def test_without_a_policy_cluster_roles_and_cluster_admin_bindings_are_refused(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    role, binding = f"wide-{secrets.token_hex(3)}", f"admin-{secrets.token_hex(3)}"
    repo = repo_with(
        git_server, cluster_role(role), cluster_admin_binding(binding, namespace), cm("own")
    )
    serve()
    with removed_afterwards(
        kube, (RBAC, "ClusterRole", role), (RBAC, "ClusterRoleBinding", binding)
    ):
        kube.create(application("admin", namespace, repo.http_url()))
        message = wait_sync_failed(kube, namespace, "admin")
        assert f"ClusterRole/{role}: denied by destination policy" in message
        assert (
            f"ClusterRoleBinding/{binding}: denied by destination policy: ClusterRoleBinding "
            f"{binding!r} binds the denied role 'cluster-admin'"
        ) in message
        assert kube.get("v1", "ConfigMap", "own", namespace) is not None
        assert kube.get(RBAC, "ClusterRole", role) is None
        assert kube.get(RBAC, "ClusterRoleBinding", binding) is None


def test_allow_all_must_be_asked_for_and_is_warned_about(
    serve: Any, kube: KubeClient, namespace: str, tenant_b: str, git_server: GitServer
) -> None:
    repo = repo_with(git_server, cm("there", tenant_b))
    proc = serve("--policy-allow-all")
    kube.create(application("open", namespace, repo.http_url()))
    wait_for(
        lambda: kube.get("v1", "ConfigMap", "there", tenant_b),
        timeout=60,
        what="the ConfigMap in another namespace, allowed by --policy-allow-all",
    )
    assert "--policy-allow-all: Applications may deploy any object to any namespace" in proc.log()


# -- sourceRepos ---------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def tenant_server() -> Iterator[tuple[str, list[str]]]:
    """The tenant's own web server on loopback; records every request path it receives."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_repository_outside_source_repos_is_a_spec_error_and_never_contacted(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    tenant_server: tuple[str, list[str]],
) -> None:
    base, seen = tenant_server
    allowed = repo_with(git_server, cm("allowed"))
    policy = tmp_path / "policy.yaml"
    glob = allowed.http_url().rsplit("/", 1)[0] + "/*"
    policy.write_text(yaml.safe_dump({"projects": {namespace: {"sourceRepos": [glob]}}}))
    serve(f"--policy={policy}")
    kube.create(application("outside", namespace, f"{base}/org/repo.git"))
    kube.create(application("inside", namespace, allowed.http_url()))
    condition = wait_ready(kube, namespace, "outside", "InvalidSpec")
    assert str(condition["message"]).startswith(
        "spec.source.repoURL: denied by destination policy: "
        f"{base}/org/repo is not in the sourceRepos of Applications in namespace {namespace!r}"
    ), condition
    wait_for(
        lambda: kube.get("v1", "ConfigMap", "allowed", namespace),
        timeout=60,
        what="the app inside sourceRepos synced",
    )
    assert seen == []
