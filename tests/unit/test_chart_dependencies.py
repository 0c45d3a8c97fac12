"""Dependencies of charts kept in Git: what ``Chart.yaml`` and ``Chart.lock`` declare, how
``file://`` dependencies are confined, and that a dependency nothing provided is an error naming
it instead of a render without it (before, Helm silently rendered the chart alone).

Charts are rendered by the real Helm engine; the lock digests are checked against the ones
Helm's own ``dependency update`` writes for a real chart repository on loopback.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from gitsync.render import (
    HelmOptions,
    LimitExceededError,
    PathEscapeError,
    RenderCache,
    RenderError,
    RenderLimits,
    RenderRequest,
    render,
)
from gitsync.render.chart_dependencies import (
    MAX_DEPENDENCIES,
    ChartDependency,
    lock_digest,
    read_dependencies,
)
from gitsync.render.confinement import Repo
from gitsync.render.options import FetchedDependency
from tests.support.chartrepo import ChartRepoServer, configmap_chart_templates


@pytest.fixture(scope="module")
def plain_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepoServer]:
    """A real chart repository (plain HTTP, no auth) with ``web`` 1.0.0/1.2.0/2.0.0."""
    with ChartRepoServer(tmp_path_factory.mktemp("chartrepo"), tls=False) as repo:
        for version in ("1.0.0", "1.2.0", "2.0.0"):
            repo.publish("web", version)
        yield repo


def write_chart(
    directory: Path,
    dependencies: list[dict[str, Any]],
    *,
    name: str = "app",
    templates: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Path:
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    chart = {"apiVersion": "v2", "name": name, "version": "0.1.0", "dependencies": dependencies}
    (directory / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (directory / "values.yaml").write_text(yaml.safe_dump(values or {}))
    for file, text in (templates or {}).items():
        (directory / "templates" / file).write_text(text)
    return directory


def unpacked(tmp_path: Path, archive: Path) -> Path:
    """A chart archive unpacked the way the chart store keeps it."""
    target = tmp_path / "store" / archive.stem
    target.mkdir(parents=True)
    shutil.unpack_archive(archive, target)
    (chart,) = target.iterdir()
    return chart


def render_app(repo: Path, path: str = "app", **helm: Any) -> list[str]:
    options = HelmOptions(release_name="rel", **helm)
    manifests = render(RenderRequest(repo_root=repo, path=path, namespace="ns", helm=options))
    return sorted(str(m.key) for m in manifests)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"alias": "front", "condition": "front.enabled", "tags": ["edge", "web"]},
        {"import-values": ["data"]},
    ],
)
@pytest.mark.parametrize("version", ["1.2.0", ">=1.0.0 <2.0.0", "~1"])
def test_the_lock_digest_is_the_one_helm_writes(
    tmp_path: Path, plain_repo: ChartRepoServer, version: str, extra: dict[str, Any]
) -> None:
    declared = [{"name": "web", "version": version, "repository": plain_repo.url, **extra}]
    chart = write_chart(tmp_path / "app", declared)
    helm_python.dependency_update(chart, plain_http=True)
    lock = yaml.safe_load((chart / "Chart.lock").read_text())
    assert lock_digest(declared, lock["dependencies"]) == lock["digest"]
    # and so a chart with Helm's own lock reads without complaint, at the locked version
    shutil.rmtree(chart / "charts")
    assert read_dependencies(Repo.at(tmp_path), chart, RenderLimits()) == [
        ChartDependency("web", plain_repo.url, "1.2.0", locked=True)
    ]


def test_without_a_lock_the_declared_range_is_what_the_engine_resolves(tmp_path: Path) -> None:
    url = "https://charts.example.com/stable"
    chart = write_chart(
        tmp_path / "app",
        [
            {"name": "web", "version": ">=1.0.0 <2.0.0", "repository": url},
            {"name": "lib", "version": "0.1.0", "repository": "file://../lib"},
            {"name": "db", "version": "3.0.0", "repository": "oci://registry.example.com/c"},
        ],
    )
    found = read_dependencies(Repo.at(tmp_path), chart, RenderLimits())
    assert found == [
        ChartDependency("web", url, ">=1.0.0 <2.0.0"),
        ChartDependency("lib", "file://../lib", "0.1.0"),
        ChartDependency("db", "oci://registry.example.com/c", "3.0.0"),
    ]
    assert [(d.is_remote, d.is_local) for d in found] == [
        (True, False),
        (False, True),
        (True, False),
    ]


def test_a_lock_out_of_sync_with_chart_yaml_is_an_error_naming_the_lock(tmp_path: Path) -> None:
    url = "https://charts.example.com"
    chart = write_chart(tmp_path / "app", [{"name": "web", "version": "~2", "repository": url}])
    locked = [{"name": "web", "version": "1.2.0", "repository": url}]
    stale = lock_digest([{"name": "web", "version": "~1", "repository": url}], locked)
    (chart / "Chart.lock").write_text(yaml.safe_dump({"dependencies": locked, "digest": stale}))
    with pytest.raises(RenderError, match=r"app/Chart.lock.*out of sync with Chart.yaml"):
        read_dependencies(Repo.at(tmp_path), chart, RenderLimits())


def test_vendored_dependencies_are_not_fetched(tmp_path: Path) -> None:
    url = "https://charts.example.com"
    chart = write_chart(
        tmp_path / "app",
        [
            {"name": "web", "version": "1.2.0", "repository": url},
            {"name": "db", "version": "1.0.0", "repository": url},
            {"name": "cache", "version": "1.0.0", "repository": url},
        ],
    )
    write_chart(chart / "charts" / "web", [], name="web")
    (chart / "charts" / "db-1.0.0.tgz").write_bytes(b"")
    (chart / "charts" / "cache-extra-1.0.0.tgz").write_bytes(b"")  # another chart's archive
    found = read_dependencies(Repo.at(tmp_path), chart, RenderLimits())
    assert [d.name for d in found] == ["cache"]


def test_a_stale_lock_does_not_matter_when_charts_holds_everything(tmp_path: Path) -> None:
    """Helm's render never reads the lock; only fetching does (``helm dependency build``)."""
    url = "https://charts.example.com"
    chart = write_chart(tmp_path / "app", [{"name": "web", "version": "~2", "repository": url}])
    write_chart(chart / "charts" / "web", [], name="web")
    (chart / "Chart.lock").write_text(yaml.safe_dump({"dependencies": [], "digest": "sha256:0"}))
    assert read_dependencies(Repo.at(tmp_path), chart, RenderLimits()) == []


@pytest.mark.parametrize(
    ("dependencies", "error", "message"),
    [
        (
            [{"name": f"d{i}", "repository": "https://h"} for i in range(MAX_DEPENDENCIES + 1)],
            LimitExceededError,
            "over the limit of 64",
        ),
        ([{"name": "../etc", "repository": "https://h"}], RenderError, "not a chart name"),
        ([{"name": "web", "repository": ["https://h"]}], RenderError, "must be a string"),
        ("web", RenderError, "must be a list of mappings"),
    ],
)
def test_malformed_dependencies_are_errors_naming_the_field(
    tmp_path: Path, dependencies: Any, error: type[Exception], message: str
) -> None:
    chart = write_chart(tmp_path / "app", dependencies)
    with pytest.raises(error, match=message):
        read_dependencies(Repo.at(tmp_path), chart, RenderLimits())


def test_a_remote_dependency_nothing_fetched_is_an_error_not_an_empty_render(
    tmp_path: Path,
) -> None:
    """The silent case of issue 15: a wrapper chart whose objects all come from its
    dependency rendered nothing, and the sync reported success."""
    write_chart(
        tmp_path / "app",
        [{"name": "web", "version": "1.2.0", "repository": "https://user:pw@charts.example.com"}],
    )
    with pytest.raises(RenderError, match=r"dependency 'web' \(https://\*\*\*@charts.example.com"):
        render_app(tmp_path)


def test_a_named_repository_cannot_be_fetched_and_says_so(tmp_path: Path) -> None:
    write_chart(tmp_path / "app", [{"name": "web", "version": "1", "repository": "@stable"}])
    with pytest.raises(RenderError, match=r"dependency 'web' \(@stable\).*https://, http://"):
        render_app(tmp_path)


def test_a_fetched_dependency_renders_with_alias_and_condition(
    tmp_path: Path, plain_repo: ChartRepoServer
) -> None:
    chart_dir = unpacked(tmp_path, plain_repo.charts_dir / "web-1.2.0.tgz")
    repo = tmp_path / "repo"
    write_chart(
        repo / "app",
        [
            {"name": "web", "version": "~1", "repository": plain_repo.url, "alias": "front"},
            {
                "name": "web",
                "version": "~1",
                "repository": plain_repo.url,
                "alias": "back",
                "condition": "back.enabled",
            },
        ],
        templates=configmap_chart_templates("app"),
        values={"greeting": "hi", "back": {"enabled": False}},
    )
    fetched = (FetchedDependency("web", plain_repo.url, "1.2.0", "sha256:x", str(chart_dir)),)
    assert render_app(repo, dependencies=fetched) == ["ConfigMap/rel-cm", "ConfigMap/rel-cm"]
    rendered = render(
        RenderRequest(
            repo_root=repo,
            path="app",
            helm=HelmOptions(
                release_name="rel", dependencies=fetched, set_values=("back.enabled=true",)
            ),
        )
    )
    assert len(rendered) == 3  # the condition turned the second alias on
    # the checkout was not written to: the dependency went into a private copy
    assert not (repo / "app" / "charts").exists()


def test_file_dependencies_inside_the_repository_render(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_chart(repo / "lib", [], name="lib", templates=configmap_chart_templates("lib"))
    (repo / "lib" / "values.yaml").write_text("greeting: from-lib\n")
    write_chart(repo / "app", [{"name": "lib", "version": "0.1.0", "repository": "file://../lib"}])
    assert render_app(repo) == ["ConfigMap/rel-cm"]


@pytest.mark.parametrize("where", ["file://../../outside", "file:///etc", "file://../link"])
def test_file_dependencies_outside_the_repository_are_refused(tmp_path: Path, where: str) -> None:
    outside = write_chart(tmp_path / "outside", [], name="outside")
    repo = tmp_path / "repo"
    write_chart(repo / "app", [{"name": "outside", "version": "0.1.0", "repository": where}])
    (repo / "link").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="dependency 'outside'"):
        render_app(repo)


def test_the_render_cache_key_includes_the_dependency_digests(tmp_path: Path) -> None:
    def key(digest: str) -> tuple[str, str, str]:
        fetched = (FetchedDependency("web", "https://h", "1.2.0", digest, "/store/web"),)
        options = HelmOptions(release_name="rel", dependencies=fetched)
        return RenderCache.key(
            "c0ffee", RenderRequest(repo_root=tmp_path, path="app", helm=options)
        )

    assert key("sha256:aa") == key("sha256:aa")
    assert key("sha256:aa") != key("sha256:bb")  # same commit, a new dependency: a new render
