"""The Argo CD importer's translation (``gitsync.argocd``), table-tested without a cluster.

The acceptance item first: a fixture holding every field of Argo CD's Application spec, and
every one of its field paths must appear in the report - carried, translated, ignored as state,
or not carried with a reason. Then the rules one by one: what is carried as written, what is
translated (destination.server, project, finalizers), what is not carried and why, when a whole
document is not written, and AppProject -> the destination policy's project entry.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.application import parse_application
from gitsync.argocd import (
    DocumentReport,
    ImportOptions,
    ImportResult,
    Outcome,
    SourceDocument,
    translate,
)
from gitsync.argocd.application import RESOURCE_ANNOTATIONS, RESOURCES_FINALIZERS
from gitsync.argocd.report import FieldDecisions, format_path, parse_path
from gitsync.policy import Policy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "argocd"
LOCAL = "https://kubernetes.default.svc"


def argo_app(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "guestbook", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
                "targetRevision": "HEAD",
                "path": "guestbook",
            },
            "destination": {"server": LOCAL, "namespace": "guestbook"},
        },
    }
    base["spec"].update(spec)
    return base


def run(*docs: Mapping[str, Any], **options: Any) -> ImportResult:
    return translate(
        [SourceDocument(f"doc{i}", d) for i, d in enumerate(docs, start=1)],
        ImportOptions(**options),
    )


def only(result: ImportResult) -> DocumentReport:
    (report,) = result.report.documents
    return report


def outcome(report: DocumentReport, path: str) -> tuple[Outcome, str]:
    for f in report.fields:
        if format_path(f.path) == path:
            return f.outcome, f.note
    raise AssertionError(
        f"{path} is not in the report: {[format_path(f.path) for f in report.fields]}"
    )


def leaf_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from leaf_paths(item, (*path, str(key)))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from leaf_paths(item, (*path, i))
    else:
        yield path


# -- the acceptance item: every field of the spec is in the report ----------------------------


def every_field_documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((FIXTURES / "application-every-field.yaml").read_text()))


def test_every_field_of_argo_cds_application_spec_appears_in_the_report() -> None:
    docs = every_field_documents()
    result = run(*docs)
    assert len(result.report.documents) == len(docs) == 5
    missing = []
    for doc, report in zip(docs, result.report.documents, strict=True):
        decided = [f.path for f in report.fields]
        for leaf in leaf_paths(doc):
            if not any(leaf[: len(p)] == p for p in decided):
                missing.append(f"{report.name}: {format_path(leaf)}")
    assert missing == []
    # and the fixture does hold the whole spec: each top-level part and renderer is there
    spec_keys = {k for d in docs for k in d["spec"]}
    assert spec_keys >= {
        "project", "source", "sources", "destination", "syncPolicy", "ignoreDifferences",
        "info", "revisionHistoryLimit", "sourceHydrator",
    }  # fmt: skip
    source_keys = {k for d in docs for k in (d["spec"].get("source") or {})}
    assert source_keys >= {"helm", "kustomize", "directory", "plugin"}
    assert {"chart", "ref"} <= {k for s in docs[4]["spec"]["sources"] for k in s}


EVERY_FIELD_NOT_CARRIED = {
    "every-field": [
        'metadata.annotations["notifications.argoproj.io/subscribe.on-sync-succeeded.slack"]',
        "operation",
        "spec.ignoreDifferences[0].jqPathExpressions",
        "spec.info",
        "spec.revisionHistoryLimit",
        "spec.source.helm.fileParameters",
        "spec.source.helm.values",
        "spec.source.helm.version",
        "spec.source.name",
        "spec.sourceHydrator",
        "spec.syncPolicy.managedNamespaceMetadata",
        "spec.syncPolicy.retry.refresh",
        "spec.syncPolicy.syncOptions[8]",
    ],
    "every-directory-field": [],
    "every-plugin-field": ["spec.source.plugin"],
    "every-sources-field": ["spec.sources[0].name"],
}


def test_the_fields_gitsync_lacks_are_each_reported_not_carried_with_a_reason() -> None:
    result = run(*every_field_documents())
    for report in result.report.documents:
        if report.name == "every-kustomize-field":
            continue  # below: what gitsync's parser accepts there is changing
        got = sorted(format_path(f.path) for f in report.not_carried)
        assert got == EVERY_FIELD_NOT_CARRIED[report.name], report.name
        assert all(f.note for f in report.not_carried)
    assert not result.report.complete


def test_every_kustomize_field_is_carried_or_reported_with_gitsyncs_parser_as_judge() -> None:
    docs = every_field_documents()
    report = run(docs[1]).report.documents[0]
    for key in docs[1]["spec"]["source"]["kustomize"]:
        got, note = outcome(report, f"spec.source.kustomize.{key}")
        assert got in (Outcome.CARRIED, Outcome.NOT_CARRIED) and (got == Outcome.CARRIED or note)


def test_what_is_written_parses_as_a_gitsync_application() -> None:
    result = run(*every_field_documents())
    assert len(result.applications) == 4  # the plugin app is not written
    for app in result.applications:
        parsed = parse_application(app)
        assert parsed.namespace == "argocd"


def test_a_field_nobody_wrote_a_rule_for_is_not_carried_never_dropped_silently() -> None:
    doc = argo_app(futureField={"nested": {"deep": 1}})
    doc["metadata"]["futureMeta"] = "x"
    doc["brandNewTopLevel"] = [1, 2]
    report = only(run(doc))
    assert outcome(report, "spec.futureField")[0] == Outcome.NOT_CARRIED
    assert outcome(report, "metadata.futureMeta")[0] == Outcome.NOT_CARRIED
    assert outcome(report, "brandNewTopLevel") == (
        Outcome.NOT_CARRIED,
        "gitsync has no rule for this field",
    )


def test_cover_reports_the_shallowest_undecided_path_once() -> None:
    d = FieldDecisions()
    d.carry(("spec", "a"))
    d.cover({"spec": {"a": 1, "b": {"c": {"d": 1}, "e": 2}}, "top": [1]})
    assert [(format_path(r.path), r.outcome) for r in d.reports()] == [
        ("spec.a", Outcome.CARRIED),
        ("spec.b", Outcome.NOT_CARRIED),
        ("top", Outcome.NOT_CARRIED),
    ]


@pytest.mark.parametrize(
    "path",
    ["spec.sources[0].helm.valueFiles[2]", 'metadata.annotations["argocd.argoproj.io/hook"]', "a"],
)
def test_paths_read_back_as_they_are_written(path: str) -> None:
    assert format_path(parse_path(path)) == path


# -- carried and translated ---------------------------------------------------------------------


def test_a_plain_app_is_carried_whole_and_the_report_is_complete() -> None:
    doc = argo_app(syncPolicy={"automated": {"prune": True, "selfHeal": True}})
    result = run(doc)
    assert result.report.complete
    (app,) = result.applications
    assert app["apiVersion"] == "gitsync.dev/v1alpha1"
    assert app["spec"]["source"] == doc["spec"]["source"]
    assert app["spec"]["destination"] == {"namespace": "guestbook"}
    assert app["spec"]["syncPolicy"] == {"automated": {"prune": True, "selfHeal": True}}
    assert "project" not in app["spec"]
    parsed = parse_application(app)
    assert parsed.sync_policy.prune and parsed.sync_policy.self_heal


@pytest.mark.parametrize(
    ("server", "clusters", "name"),
    [
        (LOCAL, {}, None),
        (LOCAL + "/", {}, None),
        ("https://10.0.0.1:6443", {"https://10.0.0.1:6443": "prod"}, "prod"),
        ("https://10.0.0.1:6443/", {"https://10.0.0.1:6443": "prod"}, "prod"),
        ("https://127.0.0.1:6443", {"https://127.0.0.1:6443": ""}, None),  # -f: this cluster
    ],
)
def test_destination_server_becomes_the_registered_clusters_name(
    server: str, clusters: dict[str, str], name: str | None
) -> None:
    result = run(argo_app(destination={"server": server, "namespace": "web"}), clusters=clusters)
    (app,) = result.applications
    assert app["spec"]["destination"].get("name") == name
    assert outcome(only(result), "spec.destination.server")[0] == Outcome.TRANSLATED


def test_an_unregistered_server_means_the_app_is_not_written_rather_than_sent_elsewhere() -> None:
    result = run(
        argo_app(destination={"server": "https://user:pw@10.9.9.9:6443", "namespace": "web"})
    )
    report = only(result)
    assert result.applications == [] and not report.written
    assert "--cluster NAME=https://10.9.9.9:6443" in report.problem
    assert "pw" not in result.report.as_text()  # userinfo in a URL is never repeated


def test_server_and_name_together_are_refused_as_argo_cd_refuses_them() -> None:
    result = run(argo_app(destination={"server": LOCAL, "name": "in-cluster", "namespace": "a"}))
    assert not only(result).written and "only one of server, name" in only(result).problem


def test_namespace_flag_moves_the_app_and_names_its_project() -> None:
    report = only(run(argo_app(project="team-a"), namespace="team-a"))
    assert outcome(report, "metadata.namespace") == (
        Outcome.TRANSLATED,
        "argocd -> team-a (--namespace)",
    )
    got, note = outcome(report, "spec.project")
    assert got == Outcome.TRANSLATED and "projects.team-a" in note
    assert report.output == "Application team-a/guestbook"


def test_argo_cds_resources_finalizers_become_gitsyncs_with_the_same_propagation() -> None:
    from gitsync.sync.deletion import RESOURCES_FINALIZERS as HONOURED

    for argo, ours in RESOURCES_FINALIZERS.items():
        assert HONOURED[argo] == HONOURED[ours]
    doc = argo_app()
    doc["metadata"]["finalizers"] = [
        "resources-finalizer.argocd.argoproj.io/background",
        "example.com/other",
    ]
    result = run(doc)
    (app,) = result.applications
    assert app["metadata"]["finalizers"] == ["gitsync.dev/resources-finalizer-background"]
    assert outcome(only(result), "metadata.finalizers[1]")[0] == Outcome.NOT_CARRIED


def test_the_resource_annotations_carried_are_the_ones_gitsync_honours() -> None:
    from gitsync.render.hooks import HOOK_ANNOTATIONS, WAVE_ANNOTATIONS
    from gitsync.sync.tracking import ARGO_TRACKING_ANNOTATION
    from gitsync.sync_options import COMPARE_ANNOTATIONS
    from gitsync.sync_options import RESOURCE_ANNOTATIONS as SYNC_OPTION_ANNOTATIONS

    honoured = {
        *HOOK_ANNOTATIONS,
        *WAVE_ANNOTATIONS,
        *COMPARE_ANNOTATIONS,
        *SYNC_OPTION_ANNOTATIONS,
        ARGO_TRACKING_ANNOTATION,
        "argocd.argoproj.io/hook-delete-policy",
    }
    assert set(RESOURCE_ANNOTATIONS) <= honoured


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        ("argocd.argoproj.io/sync-wave", "3", Outcome.CARRIED),
        ("example.com/owner", "web", Outcome.CARRIED),
        ("argocd.argoproj.io/skip-reconcile", "true", Outcome.TRANSLATED),
        ("argocd.argoproj.io/manifest-generate-paths", ".", Outcome.TRANSLATED),
        ("argocd.argoproj.io/refresh", "hard", Outcome.IGNORED),
        ("notifications.argoproj.io/subscribe.on-deployed.slack", "x", Outcome.NOT_CARRIED),
        ("argocd.argoproj.io/something-new", "x", Outcome.NOT_CARRIED),
    ],
)
def test_annotations(annotation: str, value: str, expected: Outcome) -> None:
    doc = argo_app()
    doc["metadata"]["annotations"] = {annotation: value}
    result = run(doc)
    assert outcome(only(result), f'metadata.annotations["{annotation}"]')[0] == expected
    (app,) = result.applications
    kept = (app["metadata"].get("annotations") or {}).get(annotation)
    assert (kept == value) == (expected == Outcome.CARRIED)


def test_skip_reconcile_suspends_the_app() -> None:
    doc = argo_app()
    doc["metadata"]["annotations"] = {"argocd.argoproj.io/skip-reconcile": "true"}
    (app,) = run(doc).applications
    assert parse_application(app).suspend


def test_sync_options_are_judged_one_by_one_by_gitsyncs_table() -> None:
    options = ["CreateNamespace=true", "Prune=confirm", "ServerSideApply=false", "Replace=true"]
    result = run(argo_app(syncPolicy={"syncOptions": options}))
    (app,) = result.applications
    assert app["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true", "Replace=true"]
    report = only(result)
    assert outcome(report, "spec.syncPolicy.syncOptions[1]")[0] == Outcome.NOT_CARRIED
    assert "always applies server-side" in outcome(report, "spec.syncPolicy.syncOptions[2]")[1]
    assert outcome(report, "spec.syncPolicy.syncOptions[3]")[0] == Outcome.TRANSLATED


def test_automated_enabled_false_means_no_automated_sync() -> None:
    result = run(argo_app(syncPolicy={"automated": {"enabled": False, "prune": True}}))
    (app,) = result.applications
    assert not parse_application(app).sync_policy.automated
    assert result.report.complete


@pytest.mark.parametrize(
    ("helm", "complete"),
    [
        ({"passCredentials": False, "skipTests": True, "skipSchemaValidation": False}, True),
        ({"passCredentials": True}, False),
        ({"values": "replicas: 2\n", "valuesObject": {"replicas": 3}}, False),
        ({"values": "replicas: 2\n", "releaseName": "web"}, True),
    ],
)
def test_helm_fields(helm: dict[str, Any], complete: bool) -> None:
    result = run(argo_app(source={"repoURL": "https://git.example.com/a.git", "helm": helm}))
    assert result.report.complete is complete
    (app,) = result.applications
    parse_application(app)


def test_a_value_gitsync_refuses_is_not_repeated_in_the_report() -> None:
    helm = {"parameters": [{"name": "db.password", "value": 918273645}]}  # not a string
    result = run(argo_app(source={"repoURL": "https://git.example.com/a.git", "helm": helm}))
    got, note = outcome(only(result), "spec.source.helm.parameters")
    assert got == Outcome.NOT_CARRIED and "expected a string" in note
    assert "918273645" not in result.report.as_text()
    assert "918273645" not in str(result.report.as_dict())


def test_an_essential_field_gitsync_refuses_means_the_app_is_not_written() -> None:
    result = run(argo_app(source={"repoURL": "-oops", "path": "a"}))
    report = only(result)
    assert not report.written and report.problem.startswith("spec.source.repoURL:")
    assert outcome(report, "spec.source.repoURL")[0] == Outcome.NOT_CARRIED
    assert result.applications == []


def test_a_spec_that_is_not_an_object_is_not_written() -> None:
    doc = argo_app()
    doc["spec"] = "nope"
    assert not only(run(doc)).written


def test_two_apps_imported_to_one_name_the_second_is_not_written() -> None:
    result = run(argo_app(), copy.deepcopy(argo_app()))
    first, second = result.report.documents
    assert first.written and not second.written and "doc1" in second.problem
    assert len(result.applications) == 1


def test_an_application_set_that_cannot_be_written_makes_the_import_incomplete() -> None:
    appset = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd"},
        "spec": {"generators": [{"list": {"elements": []}}], "template": {}},
    }
    result = run(appset, argo_app())
    fleet = result.report.documents[0]
    assert not fleet.written and "spec.template" in fleet.problem
    assert not result.report.complete and not result.report.all_written
    assert len(result.applications) == 1


def test_other_kinds_are_reported_not_written() -> None:
    result = run({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}})
    assert not only(result).written and "not an Argo CD" in only(result).problem


# -- AppProject -> the policy's project entry ------------------------------------------------


def app_project(name: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": spec,
    }


def test_an_app_project_becomes_the_policy_entry_of_its_apps_namespace() -> None:
    project = app_project(
        sourceRepos=["https://github.com/argoproj/*", "!https://github.com/argoproj/secret"],
        destinations=[
            {"server": LOCAL, "namespace": "guestbook"},
            {"name": "in-cluster", "namespace": "guestbook-*"},
        ],
        clusterResourceWhitelist=[{"group": "", "kind": "Namespace"}],
        clusterResourceBlacklist=[{"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"}],
        namespaceResourceBlacklist=[{"group": "", "kind": "ResourceQuota"}],
        syncWindows=[{"kind": "deny", "schedule": "0 22 * * *", "duration": "1h"}],
    )
    result = run(argo_app(project="team-a"), project, namespace="team-a")
    assert result.policy is not None
    policy = Policy.from_dict(result.policy)
    rules = policy.projects["team-a"]
    assert rules.source_repos == ("https://github.com/argoproj/*",)
    assert rules.namespaces == ("guestbook", "guestbook-*")
    assert [str(g) for g in rules.cluster_resources] == ["Namespace"]
    assert [str(g) for g in rules.denied_kinds] == [
        "ClusterRole.rbac.authorization.k8s.io",
        "ResourceQuota",
    ]
    assert len(rules.sync_windows) == 1
    report = result.report.documents[1]
    assert [format_path(f.path) for f in report.not_carried] == ["spec.sourceRepos[1]"]
    assert report.output.startswith("projects.team-a ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (
            "roles",
            [{"name": "ci", "policies": ["p, proj:team-a:ci, applications, sync, *, allow"]}],
        ),
        ("signatureKeys", [{"keyID": "4AEE18F83AFDEB23"}]),
        ("orphanedResources", {"warn": True}),
        ("namespaceResourceWhitelist", [{"group": "apps", "kind": "Deployment"}]),
        ("sourceNamespaces", ["team-a-*"]),
        (
            "destinationServiceAccounts",
            [{"server": LOCAL, "namespace": "a", "defaultServiceAccount": "x"}],
        ),
        ("clusterResourceBlacklist", [{"group": "*", "kind": "*"}]),
        ("destinations", [{"server": "https://10.0.0.1:6443", "namespace": "a"}]),
        ("destinations", [{"server": LOCAL, "namespace": "!kube-system"}]),
        ("description", "the web team"),
    ],
)
def test_project_restrictions_the_policy_cannot_express_are_not_carried(
    field: str, value: Any
) -> None:
    result = run(app_project(**{field: value}))
    report = only(result)
    assert report.not_carried, report.fields
    assert all(f.note for f in report.not_carried)
    assert not result.report.complete


def test_two_projects_for_one_namespace_are_neither_written() -> None:
    result = run(
        argo_app(project="a"),
        {**argo_app(project="b"), "metadata": {"name": "other", "namespace": "argocd"}},
        app_project("a", sourceRepos=["*"]),
        app_project("b", sourceRepos=["https://x/*"]),
        namespace="shared",
    )
    projects = result.report.documents[2:]
    assert [p.written for p in projects] == [False, False]
    assert "namespace shared" in projects[0].problem
    assert result.policy is None


def test_a_project_without_imported_apps_is_keyed_by_its_name_and_says_so() -> None:
    result = run(app_project("team-b", sourceRepos=["*"]))
    assert result.policy is not None and list(result.policy["projects"]) == ["team-b"]
    assert "no Application of it was imported" in only(result).output


def test_an_app_of_a_project_that_was_not_imported_says_the_defaults_apply() -> None:
    got, note = outcome(only(run(argo_app(project="team-z"))), "spec.project")
    assert got == Outcome.TRANSLATED and "no AppProject team-z was imported" in note


# -- the report's forms ----------------------------------------------------------------------


def test_the_json_report_lists_every_field_with_its_outcome() -> None:
    data = run(argo_app(info=[{"name": "a", "value": "b"}])).report.as_dict()
    assert data["complete"] is False
    (doc,) = data["documents"]
    assert {"path": "spec.info", "outcome": "not carried"}.items() <= next(
        f for f in doc["fields"] if f["path"] == "spec.info"
    ).items()
    assert data["counts"]["not carried"] == 1


def test_hostile_shapes_are_reported_not_crashed_on() -> None:
    for spec in (
        {"source": [1, 2]},
        {"source": {"helm": [1]}},
        {"sources": "x"},
        {"destination": None},
        {"syncPolicy": {"automated": [True], "syncOptions": [None, {"a": 1}]}},
        {"ignoreDifferences": [1, {"jsonPointers": "x"}]},
    ):
        doc = argo_app()
        doc["spec"].update(spec)
        result = run(doc)
        assert result.report.documents[0].fields
        for app in result.applications:
            parse_application(app)
