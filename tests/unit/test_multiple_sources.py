"""Argo CD's multiple sources (``spec.sources``, issue 15): the spec's rules, ``$REF/...`` value
files read from a ref source's checkout and confined to it (the real Helm renderer), and the
app's revision as the tuple of its sources' revisions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gitsync.application import MAX_SOURCES, SpecError, parse_application
from gitsync.engine.pipeline import combined_revision
from gitsync.model import REVISION_SEPARATOR, short_revision
from gitsync.render import HelmOptions, PathEscapeError, RenderError, RenderRequest, render
from gitsync.source import Checkout, Revision
from gitsync.web.view import short_revision as page_short_revision

FIXTURE = Path(__file__).parents[1] / "fixtures" / "render" / "helm-options" / "chart"
CHART_REPO = {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.x"}
VALUES_REPO = {"repoURL": "https://git.example.com/team/values.git", "ref": "values"}


def doc(*sources: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"sources": list(sources), "destination": {"namespace": "team"}, **spec},
    }


def chart_with(*value_files: str) -> dict[str, Any]:
    return {**CHART_REPO, "helm": {"valueFiles": list(value_files)}}


# -- spec ------------------------------------------------------------------------------------


def test_a_chart_with_values_from_a_git_ref() -> None:
    app = parse_application(doc(chart_with("$values/env/prod.yaml"), VALUES_REPO))
    chart, values = app.sources
    assert app.source == chart and app.all_sources == app.sources
    assert chart.chart == "web" and chart.helm is not None
    assert chart.helm.value_files == ("$values/env/prod.yaml",)
    assert (values.ref, values.ref_only, values.target_revision) == ("values", True, "HEAD")


def test_a_ref_source_with_a_path_also_renders() -> None:
    app = parse_application(doc(chart_with(), {**VALUES_REPO, "path": "extra"}))
    assert not app.sources[1].ref_only and app.sources[1].path == "extra"


def test_a_single_source_app_has_no_sources() -> None:
    app = parse_application(
        {**doc(), "spec": {"source": {"repoURL": "https://git.example.com/a.git"}}}
    )
    assert app.sources == () and app.all_sources == (app.source,)


@pytest.mark.parametrize(
    ("spec", "field", "problem"),
    [
        (
            {"source": VALUES_REPO, "sources": [CHART_REPO]},
            "spec.sources",
            "set only one of source, sources",
        ),
        ({"sources": []}, "spec.sources", f"1 to {MAX_SOURCES} sources"),
        ({"sources": [CHART_REPO] * (MAX_SOURCES + 1)}, "spec.sources", "1 to 20"),
        ({"sources": {"a": 1}}, "spec.sources", "expected a list"),
        (
            {"sources": [chart_with("$values/a.yaml"), VALUES_REPO, VALUES_REPO]},
            "spec.sources[2].ref",
            "'values' is already the ref of spec.sources[1]",
        ),
        (
            {"sources": [chart_with("$vals/a.yaml"), VALUES_REPO]},
            "spec.sources[0].helm.valueFiles[0]",
            "names $vals, but no source has ref: vals",
        ),
        (
            {"sources": [chart_with("$values/../../etc/passwd"), VALUES_REPO]},
            "spec.sources[0].helm.valueFiles[0]",
            "no '..' in PATH",
        ),
        (
            {"sources": [chart_with("$values"), VALUES_REPO]},
            "spec.sources[0].helm.valueFiles[0]",
            "expected $values/PATH",
        ),
        (
            {"sources": [{**CHART_REPO, "ref": "chart"}]},
            "spec.sources[0].ref",
            "must be on a Git source",
        ),
        (
            {"sources": [CHART_REPO, {**VALUES_REPO, "ref": "$x"}]},
            "spec.sources[1].ref",
            "expected a name of letters",
        ),
        (
            {"sources": [CHART_REPO, {**VALUES_REPO, "helm": {}}]},
            "spec.sources[1]",
            "renders nothing: set path",
        ),
        ({"sources": [VALUES_REPO]}, "spec.sources", "nothing renders"),
        (
            {"sources": [CHART_REPO, {**VALUES_REPO, "targetRevision": "a..b"}]},
            "spec.sources[1].targetRevision",
            "not a valid branch",
        ),
        ({"source": VALUES_REPO}, "spec.source.ref", "only read in spec.sources entries"),
        (
            {"source": chart_with("$values/a.yaml")},
            "spec.source.helm.valueFiles[0]",
            "only spec.sources entries can declare",
        ),
        ({}, "spec.source", "is required (or spec.sources)"),
    ],
)
def test_sources_spec_errors_name_the_field(spec: dict[str, Any], field: str, problem: str) -> None:
    document = doc()
    document["spec"] = {**spec, "destination": {"namespace": "team"}}
    with pytest.raises(SpecError) as info:
        parse_application(document)
    assert info.value.field == field
    assert problem in info.value.problem


# -- $REF/... value files ----------------------------------------------------------------------


@pytest.fixture
def chart_repo(tmp_path: Path) -> Path:
    root = tmp_path / "srv" / "chart"
    shutil.copytree(FIXTURE, root / "web")
    return root


@pytest.fixture
def values_repo(tmp_path: Path) -> Path:
    root = tmp_path / "srv" / "values"
    (root / "env").mkdir(parents=True)
    (root / "env" / "prod.yaml").write_text("greeting: from-git\nreplicas: 3\n")
    (root / "env" / "extra.yaml").write_text("replicas: 4\n")
    return root


def rendered_values(chart_repo: Path, **helm: Any) -> dict[str, Any]:
    request = RenderRequest(
        repo_root=chart_repo, path="web", helm=HelmOptions(release_name="web", **helm)
    )
    [config] = [m.obj for m in render(request) if m.key.kind == "ConfigMap"]
    values: dict[str, Any] = json.loads(config["data"]["values"])
    return values


def test_a_ref_value_file_is_read_from_the_ref_checkout_in_order(
    chart_repo: Path, values_repo: Path
) -> None:
    values = rendered_values(
        chart_repo,
        value_files=("$values/env/prod.yaml", "$values/env/extra.yaml"),
        ref_roots={"values": values_repo},
    )
    assert values["greeting"] == "from-git" and values["replicas"] == 4


def test_a_ref_glob_expands_inside_the_ref_checkout(chart_repo: Path, values_repo: Path) -> None:
    values = rendered_values(
        chart_repo, value_files=("$values/env/*.yaml",), ref_roots={"values": values_repo}
    )
    assert values["replicas"] == 3  # extra.yaml, then prod.yaml: lexical order


def test_a_missing_ref_file_is_an_error_naming_the_entry(
    chart_repo: Path, values_repo: Path
) -> None:
    with pytest.raises(RenderError, match=r"'\$values/env/gone.yaml' does not exist"):
        rendered_values(
            chart_repo, value_files=("$values/env/gone.yaml",), ref_roots={"values": values_repo}
        )


def test_a_ref_without_a_checkout_is_an_error_naming_it(chart_repo: Path) -> None:
    with pytest.raises(RenderError, match=r"names \$values, but no source has ref: values"):
        rendered_values(chart_repo, value_files=("$values/env/prod.yaml",))


def test_dot_dot_out_of_the_ref_checkout_is_refused(
    chart_repo: Path, values_repo: Path, tmp_path: Path
) -> None:
    # the spec refuses '..' already; the renderer confines on its own (a request built otherwise)
    (tmp_path / "secret.yaml").write_text("token: s3cr3t\n")
    with pytest.raises(PathEscapeError, match="resolves outside the repository"):
        rendered_values(
            chart_repo,
            value_files=("$values/../../secret.yaml",),
            ref_roots={"values": values_repo},
        )
    # nor into the chart's own checkout, next door
    with pytest.raises(PathEscapeError):
        rendered_values(
            chart_repo,
            value_files=("$values/../chart/web/values.yaml",),
            ref_roots={"values": values_repo},
        )


def test_a_symlink_in_the_ref_repository_pointing_outside_is_refused(
    chart_repo: Path, values_repo: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.yaml").write_text("token: s3cr3t\n")
    os.symlink(tmp_path / "secret.yaml", values_repo / "env" / "leak.yaml")
    os.symlink(tmp_path, values_repo / "up")
    for entry in ("$values/env/leak.yaml", "$values/env/*.yaml", "$values/up/secret.yaml"):
        with pytest.raises(PathEscapeError, match="outside the repository"):
            rendered_values(chart_repo, value_files=(entry,), ref_roots={"values": values_repo})


# -- the revision ------------------------------------------------------------------------------


def test_the_revision_is_the_sources_revisions_joined() -> None:
    app = parse_application(doc(chart_with("$values/env/prod.yaml"), VALUES_REPO))
    chart = Revision("web@1.2.0", "", "", "", "", "sha256:abc")
    git = Revision("a" * 40, "refs/heads/main", "bump", "Dev <d@example.com>", "2026-12-06")
    revision = combined_revision(app, [Checkout(Path("/c"), chart), Checkout(Path("/g"), git)])
    assert revision.sha == f"web@1.2.0{REVISION_SEPARATOR}{'a' * 40}"
    assert revision.sources == (chart, git)
    assert revision.digest == "sha256:abc"  # the first rendering source's
    assert short_revision(revision.sha) == f"web@1.2.0,{'a' * 12}"


def test_pages_shorten_each_part_of_a_sources_revision() -> None:
    # pages once cut the joined revision as a whole ("aaaaaaa" for two sources, no chart version)
    joined = f"{'a' * 40}{REVISION_SEPARATOR}web@1.2.0{REVISION_SEPARATOR}{'b' * 40}"
    assert page_short_revision(joined) == "aaaaaaa,web@1.2.0,bbbbbbb"
    assert page_short_revision("c" * 40) == "ccccccc"
