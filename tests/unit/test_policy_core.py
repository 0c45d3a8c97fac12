"""Destination policy: the file parses strictly (errors name the field), and ``check`` allows an
Application's objects only into its allowed namespaces, refuses cluster-scoped kinds unless listed,
and refuses bindings to cluster-admin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitsync.cli import build_parser
from gitsync.model import ResourceKey
from gitsync.policy import Policy, PolicyError

EXAMPLE = """\
apiVersion: gitsync.dev/v1alpha1
kind: DestinationPolicy
defaults:
  namespaces: [shared]
  deniedKinds:
    - {group: "", kind: PersistentVolume}
projects:
  team-a:
    namespaces: ["team-a", "team-a-*"]
    clusterResources:
      - {group: apiextensions.k8s.io, kind: CustomResourceDefinition}
  platform:
    namespaces: ["*"]
    clusterResources:
      - {group: "*", kind: "*"}
    deniedRoleRefs: ["system:*"]
"""


def cm(namespace: str, name: str = "c") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }


def binding(kind: str, role: str, namespace: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "b"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "team-a"}],
    }


def cluster_obj(api_version: str, kind: str, name: str = "x") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml(EXAMPLE)


# -- parsing ---------------------------------------------------------------------------------------


def test_example_parses(policy: Policy) -> None:
    assert set(policy.projects) == {"team-a", "platform"}
    assert policy.projects["team-a"].namespaces == ("team-a", "team-a-*")
    assert policy.defaults.denied_role_refs == ("cluster-admin",)  # default kept


def test_empty_file_is_the_default_policy() -> None:
    policy = Policy.from_yaml("")
    assert policy.projects == {}
    assert policy.defaults.denied_role_refs == ("cluster-admin",)
    assert policy.defaults.namespaces is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: Policy", "kind"),
        ("apiVersion: v1", "apiVersion"),
        ("bogus: 1", "bogus"),
        ("projects: []", "projects"),
        ("projects: {Team_A: {}}", "projects.Team_A"),
        ("projects: {team-a: {namespace: [x]}}", "projects.team-a.namespace"),
        ("projects: {team-a: {namespaces: x}}", "projects.team-a.namespaces"),
        ("projects: {team-a: {namespaces: [ok, 'Bad NS']}}", "projects.team-a.namespaces[1]"),
        ("projects: {team-a: {namespaces: ['']}}", "projects.team-a.namespaces[0]"),
        ("defaults: {clusterResources: [{group: x}]}", "defaults.clusterResources[0].kind"),
        (
            "defaults: {clusterResources: [{kind: K, version: v1}]}",
            "defaults.clusterResources[0].version",
        ),
        ("defaults: {deniedKinds: [Secret]}", "defaults.deniedKinds[0]"),
        ("defaults: {deniedRoleRefs: [1]}", "defaults.deniedRoleRefs[0]"),
        ("defaults: 3", "defaults"),
        ("defaults: {sourceRepos: x}", "defaults.sourceRepos"),
        ("projects: {a: {sourceRepos: ['']}}", "projects.a.sourceRepos[0]"),
        ("projects: {a: {sourceRepos: ['https://x/ y']}}", "projects.a.sourceRepos[0]"),
        ("projects: {a: {sourceRepos: [1]}}", "projects.a.sourceRepos[0]"),
        ("[1, 2]", ""),
    ],
)
def test_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(text)
    assert info.value.field == field
    if field:
        assert str(info.value).startswith(f"{field}: ")


def test_invalid_yaml_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        Policy.from_yaml("projects: {team-a: [")


# -- namespaces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_namespace", "target", "allowed"),
    [
        # team-a's entry: its globs plus the defaults ("shared")
        ("team-a", "team-a", True),
        ("team-a", "team-a-web", True),
        ("team-a", "shared", True),
        ("team-a", "team-b", False),
        ("team-a", "team-ab", False),
        ("team-a", "kube-system", False),
        # no entry: only the project's own namespace, plus the defaults - whatever the
        # Application names as its destination (finding 3 of issue 13)
        ("team-b", "team-b", True),
        ("team-b", "shared", True),
        ("team-b", "team-b-prod", False),
        ("team-b", "team-a", False),
        ("team-b", "kube-system", False),
        # "*" allows anything
        ("platform", "kube-system", True),
    ],
)
def test_namespaces(policy: Policy, app_namespace: str, target: str, allowed: bool) -> None:
    reason = policy.check(app_namespace, cm(target))
    assert (reason is None) == allowed, reason
    if not allowed:
        assert f"namespace {target!r} is not allowed" in (reason or "")
        assert f"Applications in namespace {app_namespace!r}" in (reason or "")


def test_the_built_in_default_gives_a_project_only_its_own_namespace() -> None:
    policy = Policy()
    assert policy.allowed_namespaces("tenant-a") == ("tenant-a",)
    assert policy.check("tenant-a", cm("tenant-a")) is None
    reason = policy.check("tenant-a", cm("tenant-b"))
    assert reason == (
        "namespace 'tenant-b' is not allowed for Applications in namespace 'tenant-a' "
        "(allowed: tenant-a; the operator may add it to projects.tenant-a.namespaces of the "
        "--policy file)"
    )


def test_no_namespace_and_no_entry_allows_no_namespace() -> None:
    reason = Policy().check("", cm("anything"))
    assert reason is not None and "allowed: none" in reason


def application(namespace: str, destination: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "child", "namespace": namespace},
        "spec": {"destination": {"namespace": destination}},
    }


def test_an_application_in_a_repository_is_a_tenant_object_like_any_other(
    policy: Policy,
) -> None:
    # team-b may not put an Application into the platform project's namespace (which may use
    # every namespace), nor one into its own namespace that names another destination and then
    # runs with team-b's rights only (checked when the child itself syncs)
    reason = policy.check("team-b", application("platform", "kube-system"))
    assert reason is not None and "namespace 'platform' is not allowed" in reason
    assert policy.check("team-b", application("team-b", "kube-system")) is None
    assert policy.check("team-b", cm("kube-system")) is not None  # what the child would get


# -- cluster-scoped kinds --------------------------------------------------------------------------


def test_cluster_scoped_kinds_are_refused_unless_listed(policy: Policy) -> None:
    crd = cluster_obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "w.example.com")
    role = cluster_obj("rbac.authorization.k8s.io/v1", "ClusterRole")
    assert policy.check("team-a", crd) is None
    reason = policy.check("team-b", crd)
    assert reason is not None
    assert "cluster-scoped CustomResourceDefinition.apiextensions.k8s.io is not allowed" in reason
    assert "allowed cluster-scoped kinds: none" in reason
    assert policy.check("team-a", role) is not None
    assert policy.check("platform", role) is None


def test_namespace_objects_only_for_allowed_namespaces(policy: Policy) -> None:
    def ns(name: str) -> dict[str, Any]:
        return cluster_obj("v1", "Namespace", name)

    assert policy.check("team-b", ns("team-b")) is None  # CreateNamespace of its own
    assert policy.check("team-a", ns("team-a-new")) is None
    assert policy.check("team-b", ns("kube-system")) is not None
    assert policy.check("team-a", ns("team-c")) is not None


def test_scope_comes_from_the_caller_when_known() -> None:
    policy = Policy()
    # a namespaced kind whose namespace is missing would otherwise look cluster-scoped
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert "namespace '' is not allowed" in (policy.check("a", obj, namespaced=True) or "")
    assert "cluster-scoped ConfigMap" in (policy.check("a", obj) or "")


# -- denied kinds and role bindings ----------------------------------------------------------------


def test_denied_kinds_apply_everywhere(policy: Policy) -> None:
    pv = cluster_obj("v1", "PersistentVolume")
    reason = policy.check("platform", pv)  # even where "*/*" is allowed
    assert reason is not None and "kind PersistentVolume is denied" in reason


def test_cluster_role_binding_to_cluster_admin_is_denied(policy: Policy) -> None:
    reason = policy.check("platform", binding("ClusterRoleBinding", "cluster-admin"))
    assert reason == "ClusterRoleBinding 'b' binds the denied role 'cluster-admin'"
    # the default policy denies it too (it is cluster-scoped, but the role is what is named)
    reason = Policy().check("team-a", binding("ClusterRoleBinding", "cluster-admin"))
    assert reason is not None and "cluster-admin" in reason


def test_role_binding_to_cluster_admin_is_denied_even_in_its_own_namespace(
    policy: Policy,
) -> None:
    reason = policy.check("team-a", binding("RoleBinding", "cluster-admin", "team-a"))
    assert reason == "RoleBinding 'b' binds the denied role 'cluster-admin'"
    assert policy.check("team-a", binding("RoleBinding", "view", "team-a")) is None


def test_project_role_refs_add_to_the_defaults(policy: Policy) -> None:
    crb = binding("ClusterRoleBinding", "system:node")
    assert "system:node" in (policy.check("platform", crb) or "")
    assert policy.check("platform", binding("ClusterRoleBinding", "view")) is None


def test_denied_role_refs_can_be_cleared() -> None:
    policy = Policy.from_yaml(
        "defaults: {deniedRoleRefs: []}\n"
        "projects: {platform: {clusterResources: [{group: rbac.authorization.k8s.io, kind: '*'}]}}"
    )
    assert policy.check("platform", binding("ClusterRoleBinding", "cluster-admin")) is None


# -- the CLI -----------------------------------------------------------------------------------


def app_file(tmp_path: Path) -> Path:
    app = tmp_path / "app.yaml"
    app.write_text(
        "apiVersion: gitsync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\n"
        "spec: {source: {repoURL: 'file:///unused'}, destination: {namespace: web}}\n"
    )
    return app


def test_cli_refuses_a_bad_policy_before_touching_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_file(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults: {namespaces: [Web]}\n")
    kubeconfig = tmp_path / "no-such-kubeconfig"
    # the command itself, not main(): main() configures process-wide logging onto pytest's capture
    args = build_parser().parse_args(
        ["diff", "-f", str(app), "--policy", str(policy), "--kubeconfig", str(kubeconfig)]
    )
    code = args.func(args)
    assert code == 2
    assert "defaults.namespaces[0]: not a namespace name or glob" in capsys.readouterr().err


def test_the_readme_example_parses_and_means_what_it_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
    policy = Policy.from_yaml(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "team-a"},
    }
    assert "kind Secret is denied" in (policy.check("team-a", secret) or "")
    crd = cluster_obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "w.example.com")
    assert policy.check("gitsync", crd) is None
    assert policy.check("team-a", crd) is not None
    admin = binding("ClusterRoleBinding", "cluster-admin")
    assert policy.check("gitsync", admin) is not None


def test_allow_all_is_the_old_behaviour_and_only_on_request() -> None:
    everything = Policy.allow_all()
    crb = binding("ClusterRoleBinding", "cluster-admin")
    for obj in (cm("kube-system"), crb, cluster_obj("rbac.authorization.k8s.io/v1", "ClusterRole")):
        assert everything.check("tenant-a", obj) is None
        assert Policy().check("tenant-a", obj) is not None


# -- sourceRepos -----------------------------------------------------------------------------------

SOURCES = """\
defaults:
  sourceRepos: ["https://git.example.com/shared/*"]
projects:
  team-a:
    sourceRepos: ["https://git.example.com/team-a/*", "git@git.example.com:team-a/*"]
"""


@pytest.mark.parametrize(
    ("project", "url", "allowed"),
    [
        ("team-a", "https://git.example.com/team-a/app.git", True),
        ("team-a", "https://git.example.com/team-a/app/", True),
        ("team-a", "HTTPS://GIT.Example.com/team-a/app", True),  # scheme and host: any case
        ("team-a", "https://token@git.example.com/team-a/app", True),  # userinfo is no location
        ("team-a", "git@git.example.com:team-a/app.git", True),
        ("team-a", "https://git.example.com/shared/lib", True),  # the defaults add
        ("team-a", "https://git.example.com/TEAM-A/app", False),  # a path keeps its case
        ("team-a", "https://git.example.com/team-b/app", False),
        ("team-a", "https://git.example.com.evil.test/team-a/app", False),
        ("team-a", "http://evil.test/#@git.example.com/team-a/app", False),
        ("team-a", "https://git.example.com/team-a/../team-b/app", False),
        ("team-a", "https://git.example.com/team-a/%2e%2e/team-b/app", False),
        ("team-a", "file:///srv/git/team-a/app", False),
        ("team-b", "https://git.example.com/shared/lib", True),  # no entry: the defaults
        ("team-b", "https://git.example.com/team-a/app", False),
    ],
)
def test_source_repos(project: str, url: str, allowed: bool) -> None:
    reason = Policy.from_yaml(SOURCES).check_source(project, url)
    assert (reason is None) == allowed, reason
    if not allowed:
        assert "token" not in (reason or "")


def test_source_repos_refusal_names_the_project_and_the_globs_never_the_userinfo() -> None:
    reason = Policy.from_yaml(SOURCES).check_source("team-b", "https://ghp_secret@evil.test/x.git")
    assert reason == (
        "https://evil.test/x is not in the sourceRepos of Applications in namespace 'team-b' "
        "(allowed: https://git.example.com/shared/*)"
    )


def test_no_source_repos_anywhere_means_any_repository() -> None:
    assert Policy().allowed_sources("team-a") is None
    assert Policy().check_source("team-a", "https://anywhere.test/x") is None
    only_a = Policy.from_yaml("projects: {team-a: {sourceRepos: []}}")
    assert only_a.check_source("team-a", "https://anywhere.test/x") is not None
    assert only_a.check_source("team-b", "https://anywhere.test/x") is None


def test_cli_refuses_policy_and_allow_all_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_file(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("")
    args = build_parser().parse_args(
        ["diff", "-f", str(app), "--policy", str(policy), "--policy-allow-all"]
    )
    assert args.func(args) == 2
    assert "--policy-allow-all: give either --policy FILE or --policy-allow-all" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        (ResourceKey("apps", "Deployment", "team-a", "web"), True),
        (ResourceKey("", "Pod", "team-a", ""), True),  # a namespace's children
        (ResourceKey("apps", "Deployment", "team-b", "payroll"), False),
        (ResourceKey("", "Pod", "team-b", ""), False),
        (ResourceKey("", "Namespace", "", "team-a"), True),
        (ResourceKey("", "Namespace", "", "kube-system"), False),
        (ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "admin"), False),
    ],
)
def test_what_a_tree_may_read_is_what_the_app_may_deploy(key: ResourceKey, allowed: bool) -> None:
    assert Policy().allows("team-a", key) is allowed
