"""Argo CD's Helm options, rendered with the real Helm engine: the values string, parameters
(``--set``/``--set-string``), valueFiles globs and ``ignoreMissingValueFiles``, ``skipCrds`` and
the ``.Capabilities`` a chart sees (``kubeVersion``/``apiVersions``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gitsync.render import (
    HelmOptions,
    LimitExceededError,
    PathEscapeError,
    RenderError,
    RenderLimits,
    RenderRequest,
    helm_set_expression,
    render,
)
from gitsync.render.manifest import RenderedManifest

FIXTURE = Path(__file__).parents[1] / "fixtures" / "render" / "helm-options" / "chart"
CHART = "apps/chart"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout nested in tmp holding the fixture chart at ``apps/chart``."""
    root = tmp_path / "srv" / "repo"
    shutil.copytree(FIXTURE, root / CHART)
    return root


def render_chart(
    repo: Path, *, namespace: str = "shop", limits: RenderLimits | None = None, **helm: Any
) -> list[RenderedManifest]:
    options = HelmOptions(release_name="shop", **helm)
    request = RenderRequest(
        repo_root=repo,
        path=CHART,
        namespace=namespace,
        helm=options,
        limits=limits or RenderLimits(),
    )
    return render(request)


def report(manifests: list[RenderedManifest]) -> dict[str, Any]:
    [config] = [m.obj for m in manifests if m.key.kind == "ConfigMap"]
    data: dict[str, Any] = dict(config["data"])
    data["values"] = json.loads(data["values"])
    return data


def kinds(manifests: list[RenderedManifest]) -> list[str]:
    return [m.key.kind for m in manifests]


# -- values: files < values string / object < parameters (--set < --set-string) ----------------


def test_values_string_layers_over_value_files_and_under_parameters(repo: Path) -> None:
    values = report(
        render_chart(
            repo,
            value_files=("env/base.yaml",),
            values_yaml="greeting: from-values-string\nfrom: values-string\nport: 1\n",
            set_values=(helm_set_expression("port", "9090"),),
        )
    )["values"]
    assert values == {"greeting": "from-values-string", "from": "values-string", "port": 9090}


def test_values_object_layers_over_the_values_string(repo: Path) -> None:
    values = report(
        render_chart(repo, values_yaml="greeting: string\nport: 1\n", values={"greeting": "object"})
    )["values"]
    assert values == {"greeting": "object", "port": 1}


def test_force_string_parameters_stay_strings_and_win_over_set(repo: Path) -> None:
    values = report(
        render_chart(
            repo,
            set_values=(helm_set_expression("port", "80"), helm_set_expression("flag", "true")),
            set_string_values=(helm_set_expression("flag", "true"),),
        )
    )["values"]
    assert values["port"] == 80  # --set types the value
    assert values["flag"] == "true"  # --set-string keeps it a string, and comes after --set


def test_a_parameter_value_with_commas_is_one_string_and_a_list_is_a_list(repo: Path) -> None:
    values = report(
        render_chart(
            repo,
            set_values=(
                helm_set_expression("hosts", "a.example.com,b.example.com"),
                helm_set_expression("ports", "{80,443}"),
            ),
        )
    )["values"]
    assert values["hosts"] == "a.example.com,b.example.com"
    assert values["ports"] == [80, 443]


def test_helm_set_expression_escapes_like_argo_cd() -> None:
    assert helm_set_expression("a.b", "x,y") == "a.b=x\\,y"
    assert helm_set_expression("a.b", "x\\,y") == "a.b=x\\,y"  # already escaped: unchanged
    assert helm_set_expression("a", "{1,2}") == "a={1,2}"


def test_values_string_is_parsed_by_the_safe_loader(repo: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    with pytest.raises(LimitExceededError) as info:
        render_chart(repo, values_yaml=bomb)
    assert info.value.source == "helm.values"
    with pytest.raises(RenderError, match=r"^helm.values: must hold a single YAML document"):
        render_chart(repo, values_yaml="a: 1\n---\nb: 2\n")
    with pytest.raises(RenderError) as invalid:
        render_chart(repo, values_yaml="a: [unclosed\n")
    assert invalid.value.source == "helm.values"


# -- valueFiles globs and ignoreMissingValueFiles ------------------------------------------------


def test_a_glob_expands_in_lexical_order_in_place(repo: Path) -> None:
    values = report(render_chart(repo, value_files=("env/*.yaml",)))["values"]
    # a.yaml, base.yaml, z.yaml: z is last and wins; notes.txt is not matched
    assert (values["from"], values["a"], values["z"]) == ("z", True, True)
    assert "nested" not in values


def test_double_star_takes_a_directorys_files_before_its_subdirectories(repo: Path) -> None:
    values = report(render_chart(repo, value_files=("env/**/*.yaml",)))["values"]
    # env/a, env/base, env/z, then env/nested/c: nested comes last although 'n' < 'z'
    assert values["from"] == "nested"
    assert values["z"] is True


def test_a_literal_entry_takes_a_file_to_its_own_position(repo: Path) -> None:
    values = report(render_chart(repo, value_files=("env/base.yaml", "env/*.yaml")))["values"]
    assert values["from"] == "z"
    values = report(render_chart(repo, value_files=("env/*.yaml", "env/a.yaml")))["values"]
    assert values["from"] == "a"  # the glob skipped a.yaml; the literal entry placed it last


def test_a_glob_matching_nothing_is_an_error_naming_it_unless_missing_files_are_ignored(
    repo: Path,
) -> None:
    with pytest.raises(RenderError, match=r"valueFiles entry 'prod/\*.yaml' matched no files"):
        render_chart(repo, value_files=("prod/*.yaml",))
    with pytest.raises(RenderError, match=r"valueFiles entry 'env/prod.yaml' does not exist"):
        render_chart(repo, value_files=("env/prod.yaml",))
    values = report(
        render_chart(
            repo,
            value_files=("env/base.yaml", "prod/*.yaml", "env/prod.yaml"),
            ignore_missing_value_files=True,
        )
    )["values"]
    assert values["from"] == "base"


def test_a_glob_may_climb_inside_the_repository(repo: Path) -> None:
    (repo / "shared").mkdir()
    (repo / "shared" / "team.yaml").write_text("from: shared\n")
    values = report(render_chart(repo, value_files=("../../shared/*.yaml",)))["values"]
    assert values["from"] == "shared"


def test_a_glob_climbing_out_of_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "srv" / "stolen.yaml").write_text("greeting: stolen\n")
    with pytest.raises(PathEscapeError, match=r"'../../../\*.yaml'"):
        render_chart(repo, value_files=("../../../*.yaml",))


def test_a_glob_match_symlinked_out_of_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    # outside the chart directory, which Helm loads (and the tree walk checks) as a whole
    (tmp_path / "secret.yaml").write_text("greeting: stolen\n")
    (repo / "values").mkdir()
    (repo / "values" / "a.yaml").write_text("from: a\n")
    (repo / "values" / "m-link.yaml").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(PathEscapeError, match=r"matches 'values/m-link.yaml', which resolves"):
        render_chart(repo, value_files=("../../values/*.yaml",), ignore_missing_value_files=True)


def test_a_glob_through_a_directory_symlinked_out_of_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "values.yaml").write_text("greeting: stolen\n")
    (repo / "envs").mkdir()
    (repo / "envs" / "linked").symlink_to(outside)
    with pytest.raises(PathEscapeError, match=r"'../../envs/\*/values.yaml' matches 'envs/linked"):
        render_chart(repo, value_files=("../../envs/*/values.yaml",))
    # ** does not walk into directory links at all, so it never lists the outside directory
    values = report(
        render_chart(
            repo, value_files=("../../envs/**/values.yaml",), ignore_missing_value_files=True
        )
    )
    assert values["values"]["greeting"] == "chart-default"


def test_a_glob_over_a_huge_tree_stops_at_the_file_budget(repo: Path) -> None:
    crowd = repo / "crowd"
    for i in range(30):
        (crowd / f"d{i:02}").mkdir(parents=True)
        for j in range(5):
            (crowd / f"d{i:02}" / f"f{j}.txt").write_text("")
    with pytest.raises(LimitExceededError, match=r"'../../crowd/\*\*/\*.yaml' lists more than 100"):
        render_chart(
            repo, value_files=("../../crowd/**/*.yaml",), limits=RenderLimits(max_files=100)
        )


# -- skipCrds, namespace and .Capabilities --------------------------------------------------------


def test_skip_crds_leaves_out_the_crds_directory(repo: Path) -> None:
    assert "CustomResourceDefinition" in kinds(render_chart(repo))
    assert "CustomResourceDefinition" not in kinds(render_chart(repo, skip_crds=True))


def test_release_namespace_is_the_request_namespace(repo: Path) -> None:
    assert report(render_chart(repo, namespace="templated"))["namespace"] == "templated"


def test_capabilities_default_to_helms_built_in_set(repo: Path) -> None:
    rendered = render_chart(repo)
    data = report(rendered)
    assert data["hasWidgets"] == "false"
    assert data["kubeVersion"].startswith("v1.")
    assert "Widget" not in kinds(rendered)


def test_kube_version_and_api_versions_become_capabilities(repo: Path) -> None:
    rendered = render_chart(
        repo, kube_version="v1.29.3", api_versions=("example.com/v1", "example.com/v1/Widget")
    )
    data = report(rendered)
    assert (data["kubeVersion"], data["hasWidgets"]) == ("v1.29.3", "true")
    assert "Widget" in kinds(rendered)


def test_an_unparsable_kube_version_is_a_render_error(repo: Path) -> None:
    with pytest.raises(RenderError, match=r"illegal version string"):
        render_chart(repo, kube_version="1")


def test_a_glob_ignores_unreadable_directories_it_cannot_list(repo: Path) -> None:
    # a file where a directory is expected just matches nothing below it
    os.remove(repo / CHART / "env" / "notes.txt")
    (repo / CHART / "env" / "notes.txt").write_text("x")
    with pytest.raises(RenderError, match=r"matched no files"):
        render_chart(repo, value_files=("env/notes.txt/*.yaml",))
