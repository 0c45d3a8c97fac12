"""Application spec validation: good specs parse; bad ones name the offending field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitsync.application import SpecError, is_semver_range, parse_application, parse_duration

FULL: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "guestbook", "namespace": "gitsync"},
    "spec": {
        "source": {
            "repoURL": "https://git.example.com/org/deploy.git",
            "targetRevision": "main",
            "path": "apps/guestbook",
            "helm": {
                "releaseName": "guestbook",
                "valueFiles": ["values-prod.yaml", "../common/values.yaml"],
                "values": {"replicaCount": 2},
            },
        },
        "destination": {"namespace": "guestbook"},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
            "syncOptions": ["CreateNamespace=true", "PruneLast=true"],
            "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
        },
        "ignoreDifferences": [
            {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
        ],
        "interval": "3m",
        "suspend": False,
    },
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FULL)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return doc


def test_full_example_parses() -> None:
    app = parse_application(FULL)
    assert app.qualified_name == "gitsync/guestbook"
    assert app.source.helm is not None and app.source.helm.release_name == "guestbook"
    assert app.source.helm.value_files == ("values-prod.yaml", "../common/values.yaml")
    assert app.sync_policy.automated and app.sync_policy.prune and app.sync_policy.self_heal
    assert app.sync_policy.option("CreateNamespace") and app.sync_policy.option("PruneLast")
    assert app.sync_policy.retry.backoff.max_duration == 180
    assert app.ignore_differences[0].json_pointers == ("/spec/replicas",)
    assert app.interval == 180


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("spec.source.repoURL", None, "spec.source.repoURL"),
        ("spec.source.repoURL", "--upload-pack=touch /tmp/x", "spec.source.repoURL"),
        ("spec.source.repoURL", "ftp://example.com/x", "spec.source.repoURL"),
        ("spec.source.targetRevision", "-x", "spec.source.targetRevision"),
        ("spec.source.targetRevision", "main;rm -rf /", "spec.source.targetRevision"),
        ("spec.source.targetRevision", "a..b", "spec.source.targetRevision"),
        ("spec.source.targetRevision", ">=1.2.0 <<2", "spec.source.targetRevision"),
        ("spec.source.path", "../../", "spec.source.path"),
        ("spec.source.path", "/etc", "spec.source.path"),
        ("spec.source.path", "apps/../../x", "spec.source.path"),
        ("spec.source.bogus", 1, "spec.source.bogus"),
        ("spec.bogus", 1, "spec.bogus"),
        ("spec.interval", "-1s", "spec.interval"),
        ("spec.interval", "99999999999h", "spec.interval"),
        ("spec.interval", "soon", "spec.interval"),
        ("spec.interval", "0s", "spec.interval"),
        ("spec.syncPolicy.retry.limit", 10**9, "spec.syncPolicy.retry.limit"),
        ("spec.syncPolicy.retry.limit", "5", "spec.syncPolicy.retry.limit"),
        ("spec.syncPolicy.syncOptions", ["Frobnicate=true"], "spec.syncPolicy.syncOptions[0]"),
        ("spec.syncPolicy.syncOptions", ["CreateNamespace"], "spec.syncPolicy.syncOptions[0]"),
        ("spec.syncPolicy.automated", {"prune": "yes"}, "spec.syncPolicy.automated.prune"),
        ("spec.suspend", "no", "spec.suspend"),
        ("spec.destination.namespace", "Not_A_Namespace", "spec.destination.namespace"),
        ("metadata.name", "", "metadata.name"),
        ("spec.source.helm", {"valueFiles": ["/etc/passwd"]}, "spec.source.helm.valueFiles[0]"),
        (
            "spec.ignoreDifferences",
            [{"jsonPointers": ["spec/replicas"]}],
            "spec.ignoreDifferences[0].jsonPointers[0]",
        ),
    ],
)
def test_bad_specs_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_application(with_change(path, value))
    assert err.value.field == field, str(err.value)
    assert str(err.value).startswith(field)


def test_sync_policy_backoff_durations_are_bounded() -> None:
    doc = with_change("spec.syncPolicy.retry", {"backoff": {"duration": "-5s"}})
    with pytest.raises(SpecError, match=r"retry\.backoff\.duration: duration must not be negative"):
        parse_application(doc)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("3m", 180), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5), (45, 45)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text, "f", maximum=10**6) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("revision", "is_range"),
    [
        (">=1.2.0 <2.0.0", True),
        ("^1.2", True),
        ("~1.2.3", True),
        ("1.x", True),
        ("*", True),
        ("v1.2.3", False),
        ("1.2.3", False),
        ("main", False),
        ("release/1.x-hotfix", False),
        ("0123abc", False),
    ],
)
def test_semver_range_detection(revision: str, is_range: bool) -> None:
    assert is_semver_range(revision) is is_range


def test_at_most_one_source_type() -> None:
    doc = with_change("spec.source.kustomize", {})
    with pytest.raises(SpecError, match="at most one of directory, kustomize, helm"):
        parse_application(doc)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("spec.interval", "", "spec.interval"),
        ("spec.interval", 0, "spec.interval"),
        ("spec.source.helm", {"values": []}, "spec.source.helm.values"),
    ],
)
def test_empty_values_are_errors_not_defaults(path: str, value: Any, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_application(with_change(path, value))
    assert err.value.field == field


def test_malformed_url_host_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        parse_application(with_change("spec.source.repoURL", "http://[::1/team/repo.git"))
    assert err.value.field == "spec.source.repoURL"


# -- spec.source.helm: Argo CD's options ------------------------------------------------------


def helm_spec(**helm: Any) -> Any:
    app = parse_application(with_change("spec.source.helm", helm))
    assert app.source.helm is not None
    return app.source.helm


def test_helm_values_as_a_yaml_string_an_object_or_values_object() -> None:
    as_string = helm_spec(values="replicaCount: 3\n")
    assert (as_string.values_yaml, dict(as_string.values)) == ("replicaCount: 3\n", {})
    as_object = helm_spec(values={"replicaCount": 3})  # gitsync's earlier form stays valid
    assert (as_object.values_yaml, dict(as_object.values)) == ("", {"replicaCount": 3})
    values_object = helm_spec(valuesObject={"replicaCount": 3})
    assert dict(values_object.values) == {"replicaCount": 3}


def test_values_and_values_object_together_are_refused_not_half_ignored() -> None:
    with pytest.raises(SpecError) as err:
        helm_spec(values="a: 1\n", valuesObject={"a": 2})
    assert err.value.field == "spec.source.helm.values"
    assert "set only one of values, valuesObject" in str(err.value)


def test_helm_parameters_ignore_missing_skip_crds_namespace_and_capabilities() -> None:
    helm = helm_spec(
        valueFiles=["envs/*.yaml"],
        ignoreMissingValueFiles=True,
        parameters=[
            {"name": "image.tag", "value": "1.26"},
            {"name": "port", "value": "80", "forceString": True},
        ],
        skipCrds=True,
        namespace="templated",
        kubeVersion="v1.29.3",
        apiVersions=["monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"],
    )
    assert helm.value_files == ("envs/*.yaml",)
    assert helm.ignore_missing_value_files and helm.skip_crds
    assert [(p.name, p.value, p.force_string) for p in helm.parameters] == [
        ("image.tag", "1.26", False),
        ("port", "80", True),
    ]
    [empty] = helm_spec(parameters=[{"name": "image.tag"}]).parameters
    assert empty.value == ""  # as in Argo CD, no value is the empty string
    assert (helm.namespace, helm.kube_version) == ("templated", "v1.29.3")
    assert helm.api_versions == (
        "monitoring.coreos.com/v1",
        "monitoring.coreos.com/v1/ServiceMonitor",
    )
    absent = helm_spec()
    assert (absent.kube_version, absent.api_versions) == ("", None)  # from the cluster


@pytest.mark.parametrize(
    ("helm", "field"),
    [
        ({"values": 3}, "spec.source.helm.values"),
        ({"valuesObject": "a: 1"}, "spec.source.helm.valuesObject"),
        ({"parameters": [{"name": "a", "value": 3}]}, "spec.source.helm.parameters[0].value"),
        ({"parameters": [{"name": "a=b", "value": "x"}]}, "spec.source.helm.parameters[0].name"),
        ({"parameters": [{"name": "a,b", "value": "x"}]}, "spec.source.helm.parameters[0].name"),
        ({"parameters": [{"value": "x"}]}, "spec.source.helm.parameters[0].name"),
        ({"parameters": [{"name": "a", "value": "x", "x": 1}]}, "spec.source.helm.parameters[0].x"),
        (
            {"parameters": [{"name": "a", "forceString": "yes"}]},
            "spec.source.helm.parameters[0].forceString",
        ),
        ({"skipCrds": "true"}, "spec.source.helm.skipCrds"),
        ({"ignoreMissingValueFiles": 1}, "spec.source.helm.ignoreMissingValueFiles"),
        ({"namespace": "Not_A_Label"}, "spec.source.helm.namespace"),
        ({"kubeVersion": "latest"}, "spec.source.helm.kubeVersion"),
        ({"kubeVersion": "1"}, "spec.source.helm.kubeVersion"),
        ({"apiVersions": []}, "spec.source.helm.apiVersions"),
        ({"apiVersions": ["apps/v1 Deployment"]}, "spec.source.helm.apiVersions[0]"),
        ({"apiVersions": ["a/b/c/d"]}, "spec.source.helm.apiVersions[0]"),
    ],
)
def test_bad_helm_options_name_the_field(helm: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        helm_spec(**helm)
    assert err.value.field == field


@pytest.mark.parametrize(
    "name", ["fileParameters", "passCredentials", "version", "skipTests", "skipSchemaValidation"]
)
def test_argo_helm_fields_gitsync_does_not_support_are_named(name: str) -> None:
    with pytest.raises(SpecError) as err:
        helm_spec(**{name: True})
    assert err.value.field == f"spec.source.helm.{name}"
    assert f"Argo CD's {name} is not supported by gitsync" in str(err.value)


def test_kube_versions_clusters_report_are_accepted() -> None:
    for version in ("1.29", "v1.30.4-eks-a737599", "v1.31.2+k3s1", "v1.29.0-0"):
        assert helm_spec(kubeVersion=version).kube_version == version
