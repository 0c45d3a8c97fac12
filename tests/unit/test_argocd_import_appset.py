"""``gitsync import argocd`` with Argo CD ApplicationSets (``gitsync.argocd.appset``).

Table tests: every generator gitsync has is carried as written and the result parses as a
gitsync ApplicationSet; each Argo CD generator and spec field gitsync lacks is reported not
carried with a reason; the template goes through the Application translation with its
parameters kept; and a fixture holding every field of Argo CD's ApplicationSet spec has each of
its field paths in the report.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from gitsync.appset.spec import parse_application_set
from gitsync.argocd import ImportOptions, ImportResult, Outcome, SourceDocument, translate
from gitsync.argocd.report import DocumentReport, format_path

LOCAL = "https://kubernetes.default.svc"
REPO = "https://git.example.com/platform/apps.git"


def argo_set(generators: list[Any], **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd"},
        "spec": {
            "generators": generators,
            "template": {
                "metadata": {"name": "{{path.basename}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": REPO, "targetRevision": "HEAD", "path": "{{path}}"},
                    "destination": {"server": LOCAL, "namespace": "{{path.basename}}"},
                },
            },
        },
    }
    base["spec"].update(spec)
    return base


def run(doc: Mapping[str, Any], **options: Any) -> ImportResult:
    return translate([SourceDocument("doc1", doc)], ImportOptions(**options))


def outcomes(report: DocumentReport) -> dict[str, tuple[Outcome, str]]:
    return {format_path(f.path): (f.outcome, f.note) for f in report.fields}


GIT_DIRS = {"git": {"repoURL": REPO, "revision": "HEAD", "directories": [{"path": "apps/*"}]}}
GIT_FILES = {"git": {"repoURL": REPO, "files": [{"path": "config/*.json"}]}}
LIST = {"list": {"elements": [{"path": "a", "path.basename": "a"}]}}
CLUSTERS = {"clusters": {"selector": {"matchLabels": {"env": "prod"}}}}


@pytest.mark.parametrize(
    "generator",
    [
        GIT_DIRS,
        GIT_FILES,
        LIST,
        CLUSTERS,
        {"matrix": {"generators": [GIT_DIRS, LIST]}},
        {"merge": {"mergeKeys": ["path"], "generators": [GIT_DIRS, LIST]}},
    ],
    ids=["git-directories", "git-files", "list", "clusters", "matrix", "merge"],
)
def test_every_generator_gitsync_has_is_carried_as_written(generator: dict[str, Any]) -> None:
    result = run(argo_set([copy.deepcopy(generator)]))
    (report,) = result.report.documents
    assert report.complete, report.as_dict()
    (out,) = result.application_sets
    assert out["apiVersion"] == "gitsync.dev/v1alpha1" and out["kind"] == "ApplicationSet"
    assert out["spec"]["generators"] == [generator]
    parse_application_set(out)
    assert outcomes(report)["spec.generators[0]"][0] == Outcome.CARRIED


@pytest.mark.parametrize(
    ("generator", "named"),
    [
        ({"scmProvider": {"github": {"organization": "o"}}}, "scmProvider"),
        ({"pullRequest": {"github": {"owner": "o", "repo": "r"}}}, "pullRequest"),
        ({"plugin": {"configMapRef": {"name": "p"}}}, "plugin"),
        ({"clusterDecisionResource": {"configMapRef": "c"}}, "clusterDecisionResource"),
        ({**LIST, "selector": {"matchLabels": {"a": "b"}}}, "selector"),
        ({"git": {**GIT_DIRS["git"], "pathParamPrefix": "p"}}, "pathParamPrefix"),
        ({"list": {"elements": [], "elementsYaml": "- a: b"}}, "elementsYaml"),
    ],
)
def test_a_generator_gitsync_lacks_is_not_carried_and_the_others_are_kept(
    generator: dict[str, Any], named: str
) -> None:
    result = run(argo_set([generator, GIT_DIRS]))
    (report,) = result.report.documents
    outcome, note = outcomes(report)["spec.generators[0]"]
    assert outcome == Outcome.NOT_CARRIED and named in note
    assert outcomes(report)["spec.generators[1]"][0] == Outcome.TRANSLATED
    assert not report.complete and report.written
    (out,) = result.application_sets
    assert out["spec"]["generators"] == [GIT_DIRS]


def test_a_set_with_no_generator_gitsync_has_is_not_written() -> None:
    result = run(argo_set([{"pullRequest": {"github": {"owner": "o", "repo": "r"}}}]))
    (report,) = result.report.documents
    assert not report.written and "no generator gitsync supports" in report.problem
    assert result.application_sets == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("templatePatch", "spec: {}"),
        ("ignoreApplicationDifferences", [{"jsonPointers": ["/spec/source"]}]),
        ("preservedFields", {"annotations": ["a"]}),
        ("applyNestedSelectors", True),
    ],
)
def test_a_spec_field_gitsync_lacks_is_not_carried(field: str, value: Any) -> None:
    result = run(argo_set([GIT_DIRS], **{field: value}))
    (report,) = result.report.documents
    outcome, note = outcomes(report)[f"spec.{field}"]
    assert outcome == Outcome.NOT_CARRIED and "not supported" in note
    (out,) = result.application_sets
    assert field not in out["spec"]
    parse_application_set(out)


def test_a_rolling_sync_is_carried() -> None:
    steps = [{"matchExpressions": [{"key": "env", "operator": "In", "values": ["staging"]}]}]
    rolling = {"type": "RollingSync", "rollingSync": {"steps": steps}}
    result = run(argo_set([GIT_DIRS], strategy=rolling))
    (report,) = result.report.documents
    assert outcomes(report)["spec.strategy"][0] == Outcome.CARRIED
    (out,) = result.application_sets
    assert out["spec"]["strategy"] == rolling
    assert parse_application_set(out).strategy is not None


def test_sync_policy_and_go_template_are_carried() -> None:
    doc = argo_set(
        [GIT_DIRS],
        goTemplate=True,
        goTemplateOptions=["missingkey=error"],
        syncPolicy={"applicationsSync": "create-update", "preserveResourcesOnDeletion": True},
    )
    result = run(doc)
    assert result.report.complete, result.report.as_dict()
    spec = parse_application_set(result.application_sets[0])
    assert spec.go_template and spec.missing_key_error and spec.preserve_resources_on_deletion


def test_template_parameters_are_kept_and_plain_fields_translated() -> None:
    doc = argo_set([GIT_DIRS])
    doc["spec"]["template"]["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    result = run(doc, namespace="team-a")
    (report,) = result.report.documents
    assert report.complete, report.as_dict()
    (out,) = result.application_sets
    assert out["metadata"]["namespace"] == "team-a"
    template = out["spec"]["template"]
    assert template["metadata"]["name"] == "{{path.basename}}"
    assert template["metadata"]["namespace"] == "team-a"
    assert template["metadata"]["finalizers"] == ["gitsync.dev/resources-finalizer"]
    assert template["spec"]["source"]["path"] == "{{path}}"
    assert template["spec"]["destination"] == {"namespace": "{{path.basename}}"}
    assert "project" not in template["spec"]
    seen = outcomes(report)
    assert seen["metadata.namespace"] == (Outcome.TRANSLATED, "argocd -> team-a (--namespace)")
    assert seen["spec.template.spec.destination.server"][0] == Outcome.TRANSLATED
    assert seen["spec.template.spec.project"][0] == Outcome.TRANSLATED
    assert "tmplparam" not in str(report.as_dict())


@pytest.mark.parametrize("go_template", [False, True])
def test_server_parameter_with_a_clusters_generator_becomes_the_cluster_name(
    go_template: bool,
) -> None:
    server, name = ("{{ .server }}", "{{ .name }}") if go_template else ("{{server}}", "{{name}}")
    doc = argo_set([CLUSTERS], goTemplate=go_template)
    doc["spec"]["template"]["spec"]["destination"] = {"server": server, "namespace": "web"}
    doc["spec"]["template"]["metadata"]["name"] = f"web-{name}"
    result = run(doc)
    (report,) = result.report.documents
    assert report.complete, report.as_dict()
    template = result.application_sets[0]["spec"]["template"]
    assert template["spec"]["destination"] == {"namespace": "web", "name": name}
    outcome, note = outcomes(report)["spec.template.spec.destination.server"]
    assert outcome == Outcome.TRANSLATED and f"destination.name: {name}" in note


@pytest.mark.parametrize(
    ("generators", "server"),
    [([GIT_DIRS], "{{server}}"), ([CLUSTERS], "https://{{host}}:6443")],
    ids=["no-clusters-generator", "not-the-server-parameter"],
)
def test_other_parameterised_servers_are_not_carried_and_the_set_not_written(
    generators: list[Any], server: str
) -> None:
    doc = argo_set(generators)
    doc["spec"]["template"]["spec"]["destination"]["server"] = server
    result = run(doc)
    (report,) = result.report.documents
    outcome, note = outcomes(report)["spec.template.spec.destination.server"]
    assert outcome == Outcome.NOT_CARRIED and "parameterised server" in note
    assert not report.written and result.application_sets == []


def test_a_parameterised_project_is_not_carried() -> None:
    doc = argo_set([GIT_DIRS])
    doc["spec"]["template"]["spec"]["project"] = "{{path.basename}}"
    result = run(doc)
    (report,) = result.report.documents
    outcome, note = outcomes(report)["spec.template.spec.project"]
    assert outcome == Outcome.NOT_CARRIED and "parameterised project" in note
    assert report.written and not report.complete


def test_a_template_field_gitsync_refuses_is_reported_under_spec_template() -> None:
    doc = argo_set([GIT_DIRS])
    doc["spec"]["template"]["spec"]["info"] = [{"name": "a", "value": "b"}]
    result = run(doc)
    (report,) = result.report.documents
    assert outcomes(report)["spec.template.spec.info"][0] == Outcome.NOT_CARRIED
    assert "info" not in result.application_sets[0]["spec"]["template"]["spec"]


EVERY_FIELD: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "ApplicationSet",
    "metadata": {
        "name": "fleet",
        "namespace": "argocd",
        "labels": {"team": "platform"},
        "annotations": {"owner": "platform", "argocd.argoproj.io/refresh": "normal"},
        "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        "uid": "1234",
        "resourceVersion": "5",
    },
    "spec": {
        "goTemplate": True,
        "goTemplateOptions": ["missingkey=error"],
        "generators": [
            {"list": {"elements": [{"cluster": "a"}], "elementsYaml": "", "template": {}}},
            {"clusters": {"selector": {}, "values": {"a": "b"}, "template": {}, "flatList": True}},
            {
                "git": {
                    "repoURL": REPO,
                    "revision": "HEAD",
                    "directories": [{"path": "apps/*"}, {"path": "apps/x", "exclude": True}],
                    "files": [],
                    "requeueAfterSeconds": 60,
                    "pathParamPrefix": "p",
                    "values": {"a": "b"},
                    "template": {},
                }
            },
            {"matrix": {"generators": [LIST, CLUSTERS], "template": {}}},
            {"merge": {"mergeKeys": ["a"], "generators": [LIST, LIST], "template": {}}},
            {"scmProvider": {"github": {"organization": "o"}}},
            {"clusterDecisionResource": {"configMapRef": "c", "name": "n"}},
            {"pullRequest": {"github": {"owner": "o", "repo": "r"}}},
            {"plugin": {"configMapRef": {"name": "p"}}},
            {**LIST, "selector": {"matchLabels": {"a": "b"}}},
        ],
        "template": {
            "metadata": {"name": "{{ .cluster }}", "labels": {"a": "b"}, "annotations": {}},
            "spec": {
                "project": "default",
                "source": {"repoURL": REPO, "path": "apps", "targetRevision": "HEAD"},
                "destination": {"server": LOCAL, "namespace": "{{ .cluster }}"},
                "syncPolicy": {"automated": {"prune": True}},
            },
        },
        "templatePatch": "spec: {}",
        "syncPolicy": {"applicationsSync": "sync", "preserveResourcesOnDeletion": False},
        "strategy": {
            "type": "RollingSync",
            "rollingSync": {
                "steps": [{"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}]
            },
        },
        "preservedFields": {"annotations": ["a"], "labels": ["b"]},
        "ignoreApplicationDifferences": [{"jsonPointers": ["/spec/source"]}],
        "applyNestedSelectors": True,
    },
    "status": {"conditions": []},
}


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _paths(item, (*prefix, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def test_every_field_of_argo_cds_application_set_spec_is_in_the_report() -> None:
    """Each field path of the fixture has an outcome, itself or through a reported ancestor."""
    result = run(copy.deepcopy(EVERY_FIELD))
    (report,) = result.report.documents
    reported = {f.path for f in report.fields}
    carried_parents = {("spec", "generators"), ("spec", "template"), ("metadata",), ("spec",)}
    for path in _paths(EVERY_FIELD):
        covered = any(path[:i] in reported for i in range(1, len(path) + 1))
        covered = covered or any(p[: len(path)] == path for p in reported)
        assert covered or path in carried_parents, format_path(path)
    seen = outcomes(report)
    for field in (
        "spec.templatePatch",
        "spec.preservedFields",
        "spec.ignoreApplicationDifferences",
        "spec.applyNestedSelectors",
        "metadata.finalizers",
        'metadata.annotations["argocd.argoproj.io/refresh"]',
        *(f"spec.generators[{i}]" for i in range(5, 10)),
    ):
        assert seen[field][0] == Outcome.NOT_CARRIED, field
    assert seen["status"][0] == Outcome.IGNORED
    # Argo CD's per-generator template override and its other extras are refused by gitsync.
    for i in range(5):
        assert seen[f"spec.generators[{i}]"][0] == Outcome.NOT_CARRIED, i
    assert not report.written  # no generator gitsync supports is left
    assert seen["spec.template.metadata.annotations"][0] == Outcome.TRANSLATED  # it was empty
