"""Which Applications a push's changed files touch: path prefixes by whole directory segments,
the repository root touching everything, Helm value files counted relative to the chart."""

from __future__ import annotations

import pytest

from gitsync.application import HelmSource, Source
from gitsync.controller.push_paths import normalize_path, touched, watched_paths

REPO = "https://git.example.com/team/monorepo"


def source(path: str, *value_files: str) -> Source:
    helm = HelmSource(value_files=value_files) if value_files else None
    return Source(REPO, path=path, helm=helm)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("apps/a", "apps/a"),
        ("./apps/a/", "apps/a"),
        ("apps//a/./", "apps/a"),
        ("/apps/a", "apps/a"),
        ("", ""),
        (".", ""),
        ("./", ""),
        ("apps/b/../a", "apps/a"),
    ],
)
def test_normalize_path(raw: str, normal: str) -> None:
    assert normalize_path(raw) == normal


@pytest.mark.parametrize(
    ("app_path", "changed", "hit"),
    [
        ("apps/a", "apps/a/deploy.yaml", True),
        ("apps/a", "apps/a/nested/deep/values.yaml", True),
        ("apps/a", "apps/ab/deploy.yaml", False),  # a sibling that shares a prefix
        ("apps/a", "apps/a", True),  # the directory replaced by a file, or a submodule
        ("apps/a", "apps", False),
        ("apps/a", "apps/deploy.yaml", False),
        ("apps/a", "other/apps/a/deploy.yaml", False),
        ("./apps/a/", "apps/a/deploy.yaml", True),
        ("apps/a", "./apps/a/deploy.yaml", True),
        ("", "anything/at/all.yaml", True),
        (".", "README.md", True),
    ],
)
def test_a_change_touches_the_app_whose_path_holds_it(
    app_path: str, changed: str, hit: bool
) -> None:
    watched = {"app": watched_paths(source(app_path))}

    assert touched(watched, [changed]) == ({"app"} if hit else set())


def test_no_changed_files_touch_nothing_not_even_the_root() -> None:
    assert touched({"root": watched_paths(source("."))}, []) == set()


def test_only_the_apps_under_a_changed_path_are_touched() -> None:
    watched = {f"app-{i:04}": watched_paths(source(f"apps/app-{i:04}")) for i in range(1000)}
    watched["shallow"] = watched_paths(source("platform"))

    hits = touched(watched, ["apps/app-0042/deploy.yaml", "platform/ns.yaml", "docs/x.md"])

    assert hits == {"app-0042", "shallow"}


def test_helm_value_files_count_relative_to_the_chart() -> None:
    app = source("charts/web", "values-prod.yaml", "../../env/prod/values.yaml")

    assert watched_paths(app) == (
        "charts/web",
        "charts/web/values-prod.yaml",
        "env/prod/values.yaml",
    )
    assert touched({"web": watched_paths(app)}, ["env/prod/values.yaml"]) == {"web"}
    assert touched({"web": watched_paths(app)}, ["env/prod/other.yaml"]) == set()


def test_a_value_file_glob_watches_the_directory_above_its_first_wildcard() -> None:
    app = source("charts/web", "../../env/*/values.yaml", "overrides/**/*.yaml")
    assert watched_paths(app) == ("charts/web", "env", "charts/web/overrides")
    assert touched({"web": watched_paths(app)}, ["env/prod/values.yaml"]) == {"web"}
    assert touched({"web": watched_paths(app)}, ["docs/readme.md"]) == set()


@pytest.mark.parametrize(
    "value_file", ["../../../outside.yaml", "https://example.com/values.yaml", "/etc/values.yaml"]
)
def test_value_files_outside_the_repository_are_not_watched(value_file: str) -> None:
    assert watched_paths(source("charts/web", value_file)) == ("charts/web",)


def test_deep_hostile_paths_are_cut_at_the_depth_that_matters() -> None:
    deep = "/".join(["d"] * 2000)  # 2000 segments; only the first two are looked at
    watched = {"a": watched_paths(source("d/d")), "b": watched_paths(source("d/e"))}

    assert touched(watched, [deep] * 100) == {"a"}
