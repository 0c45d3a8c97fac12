"""The Helm chart (charts/gitsync), linted and rendered offline with the real Helm engine.

What an operator relies on: the chart lints clean, every template renders to well-formed objects,
the controller pod is locked down (non-root, read-only root, no capabilities, seccomp, resource
limits), RBAC never grants the ``*`` verb and stays inside the listed namespaces in namespaced
mode, the Deployment's arguments are ones ``gitsync serve`` accepts, and no secret material is
rendered. ``tests/integration/test_chart_install.py`` applies the same output to the control plane.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helm_python import _native

from gitsync.cli import build_parser
from gitsync.policy import Policy
from gitsync.web.rbac import parse_policy

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gitsync"
RELEASE_NS = "gitsync"
MANAGE_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]

NON_DEFAULT: dict[str, Any] = {
    "replicas": 2,
    "rbac": {"namespaced": True, "namespaces": ["team-a"]},
    "ingress": {"enabled": True, "className": "nginx"},
    "networkPolicy": {"enabled": True, "egress": {"enabled": True}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "webhook": {"existingSecret": "gitsync-webhook", "providerKeys": {"github": "github"}},
    "ui": {
        "adminPassword": {"existingSecret": "gitsync-ui"},
        "readOnlyTokens": {"existingSecret": "gitsync-viewers", "key": "tokens"},
        "behindTLS": True,
        "trustedProxies": ["10.0.0.0/8", "fd00::/8"],
        "logs": {"role": "viewer", "maxBytes": 1048576, "maxSeconds": 60, "maxStreams": 2},
    },
    "repoCredentials": {
        "existingSecret": "gitsync-repo",
        "url": "https://git.example.com/org",
        "namespaces": ["team-a", "team-b-*"],
    },
    "metrics": {"tokens": {"existingSecret": "gitsync-metrics"}},
    "controller": {"gitMaxPerHost": 3},
    "policy": {"allowAll": True},
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "non-default": NON_DEFAULT,
    "explicit-kinds": {
        "rbac": {
            "manageAll": False,
            "extraRules": [
                {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}
            ],
        }
    },
    "namespaced-explicit-kinds": {
        "rbac": {"namespaced": True, "namespaces": ["team-a", "team-b"], "manageAll": False}
    },
    "sharded": {"replicas": 3, "sharding": {"shards": 16}},
    "single-team": {"impersonation": {"enabled": False}},
    "tenants": {
        "impersonation": {"defaultServiceAccount": "gitsync-deployer"},
        "tenants": [
            {
                "namespace": "team-a",
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            },
            {"namespace": "team-b", "serviceAccount": "deployer", "clusterRole": "admin"},
        ],
    },
}
IMPERSONATE = {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}
# what the controller may write on its own (the reads, such as applicationsets, are not listed)
APPLICATION_WRITES = [
    {
        "apiGroups": ["gitsync.dev"],
        "resources": ["applications"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": ["gitsync.dev"], "resources": ["applications/status"], "verbs": ["get", "patch"]},
    {"apiGroups": ["gitsync.dev"], "resources": ["applications"], "verbs": ["create", "delete"]},
    {
        "apiGroups": ["gitsync.dev"],
        "resources": ["applicationsets/status"],
        "verbs": ["get", "patch"],
    },
    {
        "apiGroups": ["gitsync.dev"],
        "resources": ["applicationsets/finalizers"],
        "verbs": ["update"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def render_templates(
    values: dict[str, Any] | None = None,
    *,
    namespace: str = RELEASE_NS,
    name: str = "gitsync",
    kube_version: str | None = None,
) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` would print it."""
    with helm_python.Chart.load(CHART) as chart:
        if kube_version is None:
            return chart.render(values, name=name, namespace=namespace)
        # Chart.render (helm_python 0.2.2) does not expose --kube-version, although the C ABI it
        # calls accepts the option; call the ABI the same way Chart.render does.
        opts = {"name": name, "namespace": namespace, "kube_version": kube_version}
        rendered: dict[str, str] = json.loads(
            _native.call_string(
                "helm_render",
                chart._raw(),
                None if values is None else json.dumps(values),
                json.dumps(opts),
            )
        )
        return rendered


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The rendered objects (NOTES.txt and empty documents left out)."""
    objects = []
    for path, text in sorted(render_templates(values, **kwargs).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc is not None]
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = of_kind(objects, "Deployment")
    return dep


def container_args(objects: list[dict[str, Any]]) -> list[str]:
    (container,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


def security_problems(dep: dict[str, Any]) -> list[str]:
    """What a pod security review would flag in the controller Deployment."""
    problems = []
    pod = dep["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext") or {}
    if pod.get("automountServiceAccountToken") is not True:
        problems.append("the pod needs its service-account token (in-cluster config)")
    for container in pod["containers"]:
        name = container["name"]
        sc = {**pod_sc, **(container.get("securityContext") or {})}
        if sc.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") in (None, 0):
            problems.append(f"{name}: runAsUser is not a non-root uid")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if ((sc.get("capabilities") or {}).get("add")) or []:
            problems.append(f"{name}: adds capabilities")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(section) or {}).get(resource):
                    problems.append(f"{name}: no {resource} {section}")
    return problems


# -- lint and well-formedness ---------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", [None, "v1.20.2"])
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_lint_is_clean(values: dict[str, Any], kube_version: str | None) -> None:
    report = helm_python.lint(
        CHART, values, strict=True, namespace=RELEASE_NS, kube_version=kube_version
    )
    assert report["errors"] == []
    # Severity 1 is INFO ("icon is recommended"); warnings (2) and errors (3) must not appear.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    """The lint check above can fail: the same call on a chart with a bad template does."""
    broken = tmp_path / "gitsync"
    broken.mkdir()
    for item in ("Chart.yaml", "values.yaml"):
        (broken / item).write_text((CHART / item).read_text())
    (broken / "templates").mkdir()
    (broken / "templates" / "bad.yaml").write_text("kind: {{ .Values.nope.deeper }\n")
    assert helm_python.lint(broken, strict=True)["errors"]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_template_renders_valid_objects(values: dict[str, Any]) -> None:
    objects = render(values)
    assert objects
    cluster_kinds = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
    for obj in objects:
        assert obj.get("apiVersion"), obj
        assert obj.get("kind"), obj
        name = (obj.get("metadata") or {}).get("name")
        assert isinstance(name, str) and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == "gitsync"
        if obj["kind"] not in cluster_kinds:
            assert obj["metadata"].get("namespace"), f"{obj['kind']} {name} has no namespace"
    identities = [
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects
    ]
    assert len(identities) == len(set(identities)), "two objects share kind, namespace and name"


def test_default_render_has_the_expected_objects() -> None:
    kinds = sorted(o["kind"] for o in render())
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )


def test_optional_objects_only_when_enabled() -> None:
    default = {o["kind"] for o in render()}
    assert not default & {"Ingress", "NetworkPolicy", "ServiceMonitor"}
    enabled = render(NON_DEFAULT)
    (ingress,) = of_kind(enabled, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/api/webhook"]  # not /metrics
    assert paths[0]["backend"]["service"] == {"name": "gitsync", "port": {"number": 8080}}
    (netpol,) = of_kind(enabled, "NetworkPolicy")
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert netpol["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    (monitor,) = of_kind(enabled, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_service_exposes_port_8080_named_http() -> None:
    (service,) = of_kind(render(), "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    dep = deployment(render())
    assert service["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


# -- the controller pod ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_deployment_passes_the_security_check(values: dict[str, Any]) -> None:
    assert security_problems(deployment(render(values))) == []


def test_security_check_flags_a_weakened_pod() -> None:
    weakened = {
        "securityContext": {"readOnlyRootFilesystem": False, "capabilities": {"drop": []}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": None},
    }
    problems = security_problems(deployment(render(weakened)))
    assert any("root filesystem is writable" in p for p in problems)
    assert any("drop ALL" in p for p in problems)
    assert any("no cpu limits" in p for p in problems)


def test_deployment_runs_serve_in_cluster_with_a_cache_volume() -> None:
    dep = deployment(render())
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container_args(render())
    assert args[:3] == ["serve", "--listen=0.0.0.0:8080", "--cache-dir=/cache"]
    assert f"--controller-namespace={RELEASE_NS}" in args
    assert not any(a.startswith(("--kubeconfig", "--namespaces", "--leader-elect")) for a in args)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/cache", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
    assert pod["serviceAccountName"] == "gitsync"
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # never two writers without a lease


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_deployment_args_are_accepted_by_gitsync_serve(values: dict[str, Any]) -> None:
    args = build_parser().parse_args(container_args(render(values)))
    assert args.command == "serve"
    assert args.cache_dir == "/cache"
    assert args.kubeconfig is None  # in-cluster config


def policy_of(objects: list[dict[str, Any]]) -> Policy:
    """The policy file the chart mounts, parsed as ``gitsync serve --policy`` would."""
    (config,) = of_kind(objects, "ConfigMap")
    assert config["metadata"]["name"] == "gitsync-policy"
    assert "--policy=/etc/gitsync/policy/policy.yaml" in container_args(objects)
    pod = deployment(objects)["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "policy"]
    assert mount["mountPath"] == "/etc/gitsync/policy" and mount["readOnly"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "policy"]
    assert volume["configMap"]["name"] == "gitsync-policy"
    return Policy.from_yaml(config["data"]["policy.yaml"])


def test_the_default_install_ships_the_built_in_policy() -> None:
    assert policy_of(render()) == Policy()


def test_policy_values_become_the_policy_file_and_roll_the_pods() -> None:
    projects = {"platform": {"namespaces": ["*"], "sourceRepos": ["https://git.example.com/*"]}}
    values = {"policy": {"projects": projects, "defaults": {"namespaces": ["shared"]}}}
    policy = policy_of(render(values))
    assert policy.allowed_namespaces("platform") == ("*", "shared")
    assert policy.allowed_namespaces("team-a") == ("team-a", "shared")
    assert policy.allowed_sources("platform") == ("https://git.example.com/*",)

    def checksum(objects: list[dict[str, Any]]) -> str:
        return str(
            deployment(objects)["spec"]["template"]["metadata"]["annotations"]["checksum/policy"]
        )

    assert checksum(render(values)) != checksum(render())


def test_allow_all_is_a_flag_and_ships_no_policy() -> None:
    objects = render({"policy": {"allowAll": True}})
    assert "--policy-allow-all" in container_args(objects)
    assert not any(a.startswith("--policy=") for a in container_args(objects))
    assert of_kind(objects, "ConfigMap") == []


def test_two_replicas_turn_on_leader_election() -> None:
    objects = render({"replicas": 2})
    args = container_args(objects)
    assert "--leader-elect" in args
    assert "--lease-duration=15" in args
    assert deployment(objects)["spec"]["replicas"] == 2
    assert deployment(objects)["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--leader-elect" not in container_args(render({"replicas": 1}))
    assert "--leader-elect" in container_args(render({"controller": {"leaderElect": True}}))


def test_sharding_replaces_leader_election_and_may_juggle_leases() -> None:
    objects = render({"replicas": 3, "sharding": {"shards": 16}})
    args = container_args(objects)
    assert "--shards=16" in args
    assert "--lease-duration=15" in args
    assert "--leader-elect" not in args  # each shard's Lease replaces the one leader Lease
    assert build_parser().parse_args(args).shards == 16
    assert deployment(objects)["spec"]["strategy"]["type"] == "RollingUpdate"
    (controller,) = [
        o for o in of_kind(objects, "Role") if o["metadata"]["name"].endswith("-controller")
    ]
    lease_rules = [r for r in controller["rules"] if r["apiGroups"] == ["coordination.k8s.io"]]
    assert {"resources": ["leases"], "verbs": ["get", "list", "update", "delete"]} in [
        {k: v for k, v in r.items() if k != "apiGroups"} for r in lease_rules
    ]
    default = render({})
    assert not any(a.startswith("--shards") for a in container_args(default))
    (plain,) = [
        o for o in of_kind(default, "Role") if o["metadata"]["name"].endswith("-controller")
    ]
    assert all(
        "list" not in r["verbs"]
        for r in plain["rules"]
        if r["apiGroups"] == ["coordination.k8s.io"]
    )


# -- RBAC -----------------------------------------------------------------------------------------


def rbac_rules(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}", rule)
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
        for rule in o.get("rules") or []
    ]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_no_rbac_rule_grants_the_star_verb(values: dict[str, Any]) -> None:
    rules = rbac_rules(render(values))
    assert rules
    for where, rule in rules:
        assert "*" not in rule.get("verbs", []), f"{where}: {rule}"
        if rule != IMPERSONATE:  # the one extra verb: acting as ServiceAccounts, nothing else
            assert set(rule["verbs"]) <= set(MANAGE_VERBS), f"{where}: {rule}"


def test_impersonation_is_on_by_default_and_only_of_service_accounts() -> None:
    objects = render()
    (role,) = of_kind(objects, "ClusterRole")
    assert IMPERSONATE in role["rules"]
    impersonating = [r for _, r in rbac_rules(objects) if "impersonate" in r["verbs"]]
    assert impersonating == [IMPERSONATE]  # never users or groups
    args = container_args(objects)
    assert not [a for a in args if a.startswith(("--impersonate", "--default-service-account"))]
    assert build_parser().parse_args(args).impersonate is True


def test_namespaced_mode_impersonates_in_each_listed_namespace() -> None:
    objects = render(VALUE_SETS["namespaced-explicit-kinds"])
    manage = [o for o in of_kind(objects, "Role") if o["metadata"]["name"] == "gitsync-manage"]
    assert {o["metadata"]["namespace"] for o in manage} == {"team-a", "team-b"}
    for role in manage:
        assert IMPERSONATE in role["rules"]


def test_single_team_install_opts_out_of_impersonation() -> None:
    objects = render(VALUE_SETS["single-team"])
    assert "--impersonate=false" in container_args(objects)
    assert not [r for _, r in rbac_rules(objects) if "impersonate" in r["verbs"]]


def test_tenants_get_a_service_account_and_rights_in_their_namespace_only() -> None:
    objects = render(VALUE_SETS["tenants"])
    assert "--default-service-account=gitsync-deployer" in container_args(objects)
    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in of_kind(objects, "ServiceAccount")
    }
    assert {("team-a", "gitsync-deployer"), ("team-b", "deployer")} <= accounts
    bindings = {
        b["metadata"]["namespace"]: b
        for b in of_kind(objects, "RoleBinding")
        if b["metadata"]["namespace"] in ("team-a", "team-b")
    }
    assert bindings["team-a"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "gitsync-deployer",
    }
    assert bindings["team-a"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "gitsync-deployer", "namespace": "team-a"}
    ]
    assert bindings["team-b"]["roleRef"]["kind"] == "ClusterRole"
    assert bindings["team-b"]["roleRef"]["name"] == "admin"
    (tenant_role,) = [o for o in of_kind(objects, "Role") if o["metadata"]["namespace"] == "team-a"]
    assert tenant_role["rules"] == VALUE_SETS["tenants"]["tenants"][0]["rules"]
    # a tenant is never granted anything cluster-wide
    assert [o["metadata"]["name"] for o in of_kind(objects, "ClusterRoleBinding")] == [
        "gitsync-gitsync"
    ]


@pytest.mark.parametrize(
    ("tenant", "error"),
    [
        ({"serviceAccount": "x"}, r"tenants\[0\]\.namespace is required"),
        (
            {"namespace": "a", "clusterRole": "edit", "rules": [{"verbs": ["get"]}]},
            r"tenants\[0\]: set rules or clusterRole, not both",
        ),
        ({"namespace": "a", "rules": [{"verbs": ["*"]}]}, r"tenants\[0\]\.rules: the \"\*\" verb"),
    ],
)
def test_bad_tenant_entries_are_refused_naming_the_field(
    tenant: dict[str, Any], error: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=error):
        render({"tenants": [tenant]})


def test_extra_rules_with_the_star_verb_are_refused() -> None:
    star = {"rbac": {"extraRules": [{"apiGroups": [""], "resources": ["x"], "verbs": ["*"]}]}}
    with pytest.raises(helm_python.HelmError, match="verb is not allowed"):
        render(star)


def test_with_impersonation_the_controller_only_reads_what_tenants_deploy() -> None:
    """Every apply, prune and rollout step runs as an Application's ServiceAccount, so the
    controller's own rights are reads plus its own objects: inventories, a Rollout's status."""
    own = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": MANAGE_VERBS},
        {"apiGroups": ["gitsync.dev"], "resources": ["rollouts/status"], "verbs": ["get", "patch"]},
    ]
    (role,) = of_kind(render(), "ClusterRole")
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]} in (
        role["rules"]
    )
    writes = [r for r in role["rules"] if set(r["verbs"]) - {"get", "list", "watch"}]
    assert writes == [*own, IMPERSONATE, *APPLICATION_WRITES]
    (kinds,) = of_kind(render(VALUE_SETS["explicit-kinds"]), "ClusterRole")
    writes = [r for r in kinds["rules"] if set(r["verbs"]) - {"get", "list", "watch"}]
    assert writes == [own[0], own[1], IMPERSONATE, *APPLICATION_WRITES]


def test_cluster_mode_manages_everything_with_explicit_verbs() -> None:
    objects = render(VALUE_SETS["single-team"])  # no impersonation: gitsync applies itself
    (role,) = of_kind(objects, "ClusterRole")
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gitsync", "namespace": RELEASE_NS}
    ]
    rules = role["rules"]
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": MANAGE_VERBS} in rules
    assert {
        "apiGroups": ["gitsync.dev"],
        "resources": ["applications/status"],
        "verbs": ["get", "patch"],
    } in rules
    # Two releases of one name in two namespaces must not share a ClusterRole.
    assert RELEASE_NS in role["metadata"]["name"]
    other = of_kind(render(namespace="elsewhere"), "ClusterRole")[0]
    assert other["metadata"]["name"] != role["metadata"]["name"]


def test_explicit_kinds_mode_lists_kinds_and_reads_crds() -> None:
    values = VALUE_SETS["explicit-kinds"] | VALUE_SETS["single-team"]
    (role,) = of_kind(render(values), "ClusterRole")
    granted = {
        (group, resource): tuple(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert not any(g == "*" or r == "*" for g, r in granted)
    for group, resource in [
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "namespaces"),
        ("batch", "jobs"),
        ("networking.k8s.io", "ingresses"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
    ]:
        assert granted[(group, resource)] == tuple(MANAGE_VERBS), (group, resource)
    assert granted[("", "pods")] == ("get", "list", "watch")
    assert granted[("apiextensions.k8s.io", "customresourcedefinitions")] == (
        "get",
        "list",
        "watch",
    )
    assert granted[("gitsync.dev", "rollouts")] == tuple(MANAGE_VERBS)
    assert granted[("gitsync.dev", "rollouts/status")] == ("get", "patch")
    assert granted[("example.com", "widgets")] == ("get", "list")


def test_lease_role_is_confined_to_the_release_namespace() -> None:
    for values in VALUE_SETS.values():
        objects = render(values)
        roles = {o["metadata"]["name"]: o for o in of_kind(objects, "Role")}
        controller = roles["gitsync-controller"]
        assert controller["metadata"]["namespace"] == RELEASE_NS
        lease_rules = [r for r in controller["rules"] if r["apiGroups"] == ["coordination.k8s.io"]]
        create = {k: v for k, v in lease_rules[0].items() if k != "apiGroups"}
        assert create == {"resources": ["leases"], "verbs": ["create"]}
        assert lease_rules[1]["resourceNames"] == ["gitsync-controller"]
        assert lease_rules[1]["verbs"] == ["get", "update"]


def test_namespaced_mode_grants_nothing_cluster_wide() -> None:
    values = {"replicas": 2, "rbac": {"namespaced": True, "namespaces": ["team-a"]}}
    objects = render(values)
    assert of_kind(objects, "ClusterRole") == []
    assert of_kind(objects, "ClusterRoleBinding") == []
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in of_kind(objects, "Role")}
    assert roles == {("team-a", "gitsync-manage"), (RELEASE_NS, "gitsync-controller")}
    bindings = of_kind(objects, "RoleBinding")
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == roles
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "gitsync", "namespace": RELEASE_NS}
        ]
    args = container_args(objects)
    assert "--namespaces=team-a" in args
    assert "--leader-elect" in args


def test_namespaced_mode_covers_every_listed_namespace() -> None:
    objects = render(VALUE_SETS["namespaced-explicit-kinds"])
    assert of_kind(objects, "ClusterRole") == []
    manage = {o["metadata"]["namespace"] for o in of_kind(objects, "Role")} - {RELEASE_NS}
    assert manage == {"team-a", "team-b"}
    assert "--namespaces=team-a,team-b" in container_args(objects)
    for role in of_kind(objects, "Role"):
        for rule in role["rules"]:
            # A Role cannot grant cluster-scoped kinds; only reading its own Namespace works.
            if "namespaces" in rule["resources"]:
                assert rule["verbs"] == ["get"]
            assert "customresourcedefinitions" not in rule["resources"]


def test_namespaced_mode_without_namespaces_is_refused() -> None:
    with pytest.raises(helm_python.HelmError, match=r"rbac\.namespaces"):
        render({"rbac": {"namespaced": True}})


# -- secrets --------------------------------------------------------------------------------------


def test_no_secret_is_rendered_by_default() -> None:
    objects = render()
    assert of_kind(objects, "Secret") == []
    pod = deployment(objects)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert not [e for e in container.get("env", []) if "SECRET" in e["name"] and "value" in e]
    assert {v["name"] for v in pod["volumes"]} == {"cache", "tmp", "policy"}  # policy: a ConfigMap
    assert not any(a.startswith(("--admin-password", "--api-token")) for a in container["args"])


def test_secrets_are_referenced_by_name_never_inlined() -> None:
    objects = render(NON_DEFAULT)
    assert of_kind(objects, "Secret") == []
    pod = deployment(objects)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in (e.get("valueFrom") or {})
    }
    assert refs["GITSYNC_WEBHOOK_SECRET"] == {"name": "gitsync-webhook", "key": "webhook-secret"}
    assert refs["GITSYNC_WEBHOOK_SECRET_GITHUB"] == {"name": "gitsync-webhook", "key": "github"}
    assert refs["GITSYNC_GIT_PASSWORD"]["name"] == "gitsync-repo"
    assert all("value" not in e for e in container["env"] if e["name"] in refs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["repo-credentials"]["secret"]["secretName"] == "gitsync-repo"
    # The UI's credentials are files (nothing secret in the environment or in `ps`).
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["ui-credentials"] == {
        "name": "ui-credentials",
        "mountPath": "/etc/gitsync/ui",
        "readOnly": True,
    }
    sources = volumes["ui-credentials"]["projected"]["sources"]
    assert sources == [
        {
            "secret": {
                "name": "gitsync-ui",
                "items": [{"key": "admin-password", "path": "admin-password"}],
            }
        },
        {
            "secret": {
                "name": "gitsync-viewers",
                "items": [{"key": "tokens", "path": "read-only-tokens"}],
            }
        },
        {
            "secret": {
                "name": "gitsync-metrics",
                "items": [{"key": "metrics-token", "path": "metrics-tokens"}],
            }
        },
    ]
    args = container_args(objects)
    assert "--admin-password-file=/etc/gitsync/ui/admin-password" in args
    assert "--read-only-token-file=/etc/gitsync/ui/read-only-tokens" in args
    assert "--behind-tls" in args
    assert not any(a.startswith("--api-token-file") for a in args)
    bcrypt = render({"ui": {"adminPassword": {"existingSecret": "ui", "bcrypt": True}}})
    assert "--admin-password-bcrypt=/etc/gitsync/ui/admin-password" in container_args(bcrypt)


def test_repo_credentials_are_one_entry_scoped_to_their_url() -> None:
    """Issue 13 finding 1: the chart's default credentials go only to repositories under
    ``repoCredentials.url``; without one the chart refuses to render."""
    with pytest.raises(helm_python.HelmError, match=r"repoCredentials\.url"):
        render({"repoCredentials": {"existingSecret": "gitsync-repo", "namespaces": ["*"]}})
    env = {
        e["name"]: e.get("value")
        for e in deployment(render(NON_DEFAULT))["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["GITSYNC_GIT_URL"] == "https://git.example.com/org"
    assert env["GITSYNC_GIT_INSECURE_ALLOW_HTTP"] == "false"
    plain = render(
        {
            "repoCredentials": {
                "existingSecret": "r",
                "url": "http://git.internal/org",
                "namespaces": "*",
                "insecureAllowHttp": True,
            }
        }
    )
    (container,) = deployment(plain)["spec"]["template"]["spec"]["containers"]
    assert {"name": "GITSYNC_GIT_INSECURE_ALLOW_HTTP", "value": "true"} in container["env"]


def test_tenant_hardening_values_become_serve_flags() -> None:
    args = build_parser().parse_args(container_args(render(NON_DEFAULT)))
    assert args.git_max_per_host == 3
    assert args.trusted_proxy == ["10.0.0.0/8", "fd00::/8"]
    assert args.metrics_token_file == "/etc/gitsync/ui/metrics-tokens"
    assert not args.allow_unsigned_webhooks
    (monitor,) = of_kind(render(NON_DEFAULT), "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["bearerTokenSecret"] == {"name": "gitsync-metrics", "key": "metrics-token"}
    defaults = build_parser().parse_args(container_args(render()))
    assert (defaults.git_max_per_host, defaults.trusted_proxy) == (None, [])
    assert defaults.metrics_token_file is None
    unsigned = render({"webhook": {"allowUnsigned": True}})
    assert "--allow-unsigned-webhooks" in container_args(unsigned)


def test_repo_credentials_are_offered_only_to_the_namespaces_named() -> None:
    """Issue 13: the chart's credentials are one entry scoped to Application namespaces too;
    without ``repoCredentials.namespaces`` the chart refuses to render rather than offer them
    to every tenant."""
    url = "https://git.example.com/org"
    for missing in ({}, {"namespaces": []}, {"namespaces": ""}):
        with pytest.raises(helm_python.HelmError, match=r"repoCredentials\.namespaces"):
            render({"repoCredentials": {"existingSecret": "r", "url": url, **missing}})
    (container,) = deployment(render(NON_DEFAULT))["spec"]["template"]["spec"]["containers"]
    assert {"name": "GITSYNC_GIT_NAMESPACES", "value": "team-a,team-b-*"} in container["env"]
    every = render({"repoCredentials": {"existingSecret": "r", "url": url, "namespaces": ["*"]}})
    (container,) = deployment(every)["spec"]["template"]["spec"]["containers"]
    assert {"name": "GITSYNC_GIT_NAMESPACES", "value": "*"} in container["env"]


def test_an_ingress_needs_a_webhook_secret() -> None:
    with pytest.raises(helm_python.HelmError, match=r"webhook\.existingSecret"):
        render({"ingress": {"enabled": True}})
    allowed = render({"ingress": {"enabled": True}, "webhook": {"allowUnsigned": True}})
    assert of_kind(allowed, "Ingress")


# -- the PodDisruptionBudget ----------------------------------------------------------------------


def test_pdb_api_version_follows_the_cluster() -> None:
    (modern,) = of_kind(render(), "PodDisruptionBudget")
    assert modern["apiVersion"] == "policy/v1"
    (old,) = of_kind(render(kube_version="v1.20.2"), "PodDisruptionBudget")
    assert old["apiVersion"] == "policy/v1beta1"
    forced = render({"podDisruptionBudget": {"apiVersion": "policy/v1beta1"}})
    assert of_kind(forced, "PodDisruptionBudget")[0]["apiVersion"] == "policy/v1beta1"
    assert modern["spec"]["maxUnavailable"] == 1
    selector = deployment(render())["spec"]["selector"]["matchLabels"]
    assert modern["spec"]["selector"]["matchLabels"] == selector
    assert of_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


# -- values.yaml ----------------------------------------------------------------------------------

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w.-]*):(?P<rest>.*)$")


def undocumented_values(text: str) -> list[str]:
    """Keys of values.yaml without a comment: a key needs a comment right above it, unless an
    ancestor's comment starts with ``# --`` (documenting its whole default), or it is a section
    whose keys are all documented themselves."""
    lines = text.splitlines()
    missing = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documents its subtree)
    for i, line in enumerate(lines):
        match = _KEY.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        block = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            block.insert(0, lines[j].strip())
            j -= 1
        documented = bool(block)
        whole = documented and block[0].startswith("# --")
        covered = any(doc for _, _, doc in stack)
        following = [n for n in lines[i + 1 :] if n.strip() and not n.strip().startswith("#")]
        section = (
            match["rest"].strip() == ""
            and bool(following)
            and _KEY.match(following[0]) is not None
            and len(following[0]) - len(following[0].lstrip()) > indent
        )
        path = ".".join([k for _, k, _ in stack] + [match["key"]])
        if not (documented or covered or section):
            missing.append(path)
        stack.append((indent, match["key"], whole or covered))
    return missing


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART / "values.yaml").read_text()) == []
    assert undocumented_values("a:\n  # -- doc\n  b: 1\n  c: 2\n") == ["a.c"]


def test_values_hold_no_secret_material() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif re.search(r"(password|token|secret)$", path, re.IGNORECASE):
            assert node in ("", None), f"{path} has a default: {node!r}"

    walk(values, "")
    assert values["webhook"]["existingSecret"] == ""
    assert values["ui"]["adminPassword"]["existingSecret"] == ""
    assert values["repoCredentials"]["existingSecret"] == ""


def test_analysis_allow_entries_become_serve_flags() -> None:
    entries = ["http://prometheus.monitoring.svc:9090/*", "https://metrics.example.com/*"]
    args = container_args(render({"controller": {"analysisAllow": entries}}))
    assert [a for a in args if a.startswith("--analysis-allow")] == [
        f"--analysis-allow={e}" for e in entries
    ]
    assert build_parser().parse_args(args).analysis_allow == entries
    assert not any(a.startswith("--analysis-allow") for a in container_args(render({})))


def test_health_checks_become_a_labelled_config_map_the_controller_may_watch() -> None:
    from gitsync.health.custom import load_strict

    entry = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "current": "has(status.phase) && status.phase == 'Ready'",
    }
    objects = render({"healthChecks": [entry]})
    (config_map,) = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-health-checks")
    ]
    assert config_map["metadata"]["labels"]["gitsync.dev/health-checks"] == "true"
    (check,) = load_strict(config_map["data"]["health-checks.yaml"], "chart")
    assert (check.group, check.kind) == ("example.com", "Widget")
    roles = {o["metadata"]["name"]: o for o in of_kind(objects, "Role")}
    assert {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]} in (
        roles["gitsync-controller"]["rules"]
    )
    assert not [
        o for o in of_kind(render({}), "ConfigMap") if o["metadata"]["name"].endswith("-checks")
    ]


def test_no_cross_namespace_refs_becomes_the_serve_flag() -> None:
    args = container_args(render({"controller": {"noCrossNamespaceRefs": True}}))
    assert build_parser().parse_args(args).no_cross_namespace_refs is True
    assert build_parser().parse_args(container_args(render({}))).no_cross_namespace_refs is False


def test_notification_values_become_flags_and_objects() -> None:
    values = {
        "controller": {
            "notificationAllow": ["https://hooks.slack.com/*", "smtp://mail.example.com:587/*"],
            "externalURL": "https://gitsync.example.com",
        },
        "notifications": {
            "providers": [
                {
                    "name": "slack",
                    "namespace": "team-a",
                    "type": "slack",
                    "secretRef": {"name": "slack-webhook"},
                },
            ],
            "rules": [
                {
                    "name": "deploys",
                    "namespace": "team-a",
                    "providerRefs": [{"name": "slack"}],
                    "events": ["deployed", "sync-failed"],
                },
            ],
        },
    }
    objs = render(values)
    args = container_args(objs)
    parsed = build_parser().parse_args(args)
    assert parsed.notification_allow == values["controller"]["notificationAllow"]
    assert parsed.external_url == "https://gitsync.example.com"
    (provider,) = of_kind(objs, "NotificationProvider")
    assert provider["metadata"]["namespace"] == "team-a"
    assert provider["spec"] == {"type": "slack", "secretRef": {"name": "slack-webhook"}}
    (rule,) = of_kind(objs, "NotificationRule")
    assert rule["spec"]["events"] == ["deployed", "sync-failed"]
    assert not of_kind(render({}), "NotificationProvider")
    assert not any(a.startswith("--notification-allow") for a in container_args(render({})))


@pytest.mark.parametrize(("role", "granted"), [("admin", True), ("viewer", True), ("none", False)])
def test_pod_logs_values_become_flags_and_the_pods_log_rule(role: str, granted: bool) -> None:
    objects = render({"rbac": {"manageAll": False}, "ui": {"logs": {"role": role}}})
    args = container_args(objects)
    assert f"--logs-role={role}" in args
    assert "--logs-max-bytes=10485760" in args and "--logs-max-seconds=300" in args
    log_rules = [r for _, r in rbac_rules(objects) if "pods/log" in r.get("resources", [])]
    assert bool(log_rules) is granted
    assert all(r["verbs"] == ["get"] for r in log_rules)


def test_rbac_policy_and_admin_enabled_become_flags_and_a_configmap() -> None:
    """Issue 21: ``ui.rbacPolicy`` is rendered into a ConfigMap that ``gitsync serve`` parses,
    ``ui.admin.enabled: false`` disables the password, and the token Secret is writable by name."""
    bindings = [{"subjects": ["group:team-a"], "role": "operator", "projects": ["team-a"]}]
    objects = render({"ui": {"rbacPolicy": {"bindings": bindings}, "admin": {"enabled": False}}})
    args = container_args(objects)
    assert "--rbac-policy=/etc/gitsync/rbac/policy.yaml" in args
    assert "--disable-admin-password" in args
    (config,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "gitsync-rbac"
    ]
    policy = parse_policy(config["data"]["policy.yaml"])
    assert [b.grant.projects for b in policy.bindings] == [("team-a",)]
    pod = deployment(objects)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "rbac-policy"]
    assert volume["configMap"]["name"] == "gitsync-rbac"
    assert "checksum/rbac" in deployment(objects)["spec"]["template"]["metadata"]["annotations"]
    default = container_args(render())
    assert "--disable-admin-password" not in default
    assert not any(a.startswith("--rbac-policy") for a in default)
    roles = {o["metadata"]["name"]: o for o in of_kind(objects, "Role")}
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["gitsync-api-tokens"],
        "verbs": ["patch"],
    } in roles["gitsync-controller"]["rules"]


READ_EVENTS = {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}


@pytest.mark.parametrize("namespaced", [False, True])
def test_events_per_app_is_passed_on_and_events_may_be_watched(namespaced: bool) -> None:
    """The Events section reads a watch of Events where Applications deploy (issue 20)."""
    values: dict[str, Any] = {"controller": {"eventsPerApp": 50}}
    if namespaced:
        values["rbac"] = {"namespaced": True, "namespaces": ["team-a"]}
    objects = render(values)
    args = container_args(objects)
    assert "--events-per-app=50" in args
    assert build_parser().parse_args(args).events_per_app == 50
    roles = of_kind(objects, "Role" if namespaced else "ClusterRole")
    assert any(READ_EVENTS in r["rules"] for r in roles)
    assert "--events-per-app=200" in container_args(render())


def test_sso_and_session_key_values_become_serve_flags_and_mounts() -> None:
    values = {
        "controller": {"externalURL": "https://gitsync.example.com"},
        "ui": {
            "sessionKey": {"existingSecret": "gitsync-session"},
            "oidc": {
                "issuer": "https://dex.example.com",
                "clientID": "gitsync",
                "clientSecret": {"existingSecret": "gitsync-oidc"},
                "scopes": ["openid", "email", "groups"],
                "adminGroups": ["platform"],
            },
        },
    }
    objects = render(values)
    args = build_parser().parse_args(container_args(objects))
    assert args.session_key_file == "/etc/gitsync/ui/session-key"
    assert args.oidc_issuer == "https://dex.example.com"
    assert args.oidc_client_id == "gitsync"
    assert args.oidc_client_secret_file == "/etc/gitsync/ui/oidc-client-secret"
    assert args.oidc_scopes == "openid email groups"
    assert args.oidc_groups_claim == "groups"
    assert args.oidc_admin_group == ["platform"]
    volumes = {v["name"]: v for v in deployment(objects)["spec"]["template"]["spec"]["volumes"]}
    assert {
        "secret": {
            "name": "gitsync-oidc",
            "items": [{"key": "client-secret", "path": "oidc-client-secret"}],
        }
    } in volumes["ui-credentials"]["projected"]["sources"]
    rules = [r for role in of_kind(objects, "Role") for r in role["rules"]]
    assert {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["gitsync-session-revocations"],
        "verbs": ["update"],
    } in rules
    with pytest.raises(helm_python.HelmError, match=r"controller\.externalURL"):
        render({"ui": {"oidc": {"issuer": "https://dex.example.com", "clientID": "g"}}})
