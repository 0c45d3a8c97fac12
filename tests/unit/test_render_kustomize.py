"""Kustomize rendering with the real ``kubectl kustomize``, and the fences around it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitsync.model import ResourceKey
from gitsync.render import (
    KustomizeOptions,
    LimitExceededError,
    PathEscapeError,
    RenderError,
    RenderLimits,
    RenderRequest,
    kustomize,
    render,
)
from gitsync.render.kustomize import is_remote_reference

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def make_repo(tmp_path: Path, kustomization: str) -> Path:
    """A checkout nested in tmp with ``app/kustomization.yaml`` and one local resource."""
    repo = tmp_path / "a" / "b" / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "kustomization.yaml").write_text(kustomization)
    (repo / "app" / "cm.yaml").write_text(CONFIGMAP.format(name="local"))
    return repo


def render_app(repo: Path, **kwargs: object) -> list[str]:
    req = RenderRequest(repo_root=repo, path="app", **kwargs)  # type: ignore[arg-type]
    return [str(m.key) for m in render(req)]


def render_app_at(path: str) -> list[str]:
    req = RenderRequest(repo_root=FIXTURES, path=path, kustomize=KustomizeOptions())
    return [str(m.key) for m in render(req)]


def test_overlay_on_base_renders_with_prefix_namespace_and_patch() -> None:
    rendered = render(RenderRequest(repo_root=FIXTURES, path="kustomize/overlays/prod"))
    by_key = {m.key: m for m in rendered}
    assert sorted(by_key) == [
        ResourceKey("", "ConfigMap", "prod", "prod-podinfo-settings"),
        ResourceKey("", "Service", "prod", "prod-podinfo"),
        ResourceKey("apps", "Deployment", "prod", "prod-podinfo"),
    ]
    deployment = by_key[ResourceKey("apps", "Deployment", "prod", "prod-podinfo")]
    assert deployment.obj["spec"]["replicas"] == 3
    assert deployment.obj["spec"]["selector"]["matchLabels"] == {"app": "podinfo"}
    assert {m.source for m in rendered} == {"kustomize"}


def test_base_renders_without_namespace() -> None:
    keys = render_app_at("kustomize/base")
    assert keys == ["Service/podinfo", "Deployment.apps/podinfo"]


def test_remote_base_is_refused_before_kustomize_runs() -> None:
    with pytest.raises(RenderError) as info:
        render(RenderRequest(repo_root=FIXTURES, path="kustomize/overlays/remote"))
    assert not isinstance(info.value, PathEscapeError)
    assert info.value.source == "kustomize/overlays/remote/kustomization.yaml"
    assert "remote reference" in str(info.value)


@pytest.mark.parametrize(
    "entry",
    [
        "git@github.com:org/repo.git//base",
        "ssh://git@example.com/org/repo//base",
        "github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v5.0.0",
        "http://example.com/manifest.yaml",
        # issue 13, finding 12: any user, any case, any scheme
        "deploy@example.com:org/repo//base",
        "Deploy@Example.COM:org/repo.git",
        "example.com:org/repo//base?ref=main",
        "GitHub.com/org/repo//base",
        "GITHUB.COM/org/repo",
        "www.GitLab.com/org/repo",
        "Bitbucket.org/org/repo?version=v1",
        "git::https://example.com/org/repo.git//base?ref=v1",
        "GIT::ssh://git@example.com/org/repo",
        "SSH://git@example.com/org/repo",
        "HTTPS://example.com/org/repo",
        "file:///var/run/secrets/kubernetes.io/serviceaccount",
        "base?timeout=2s&ref=main",
        "  https://example.com/with-leading-space.yaml",
    ],
)
def test_remote_reference_forms(tmp_path: Path, entry: str) -> None:
    repo = make_repo(tmp_path, f"resources:\n  - cm.yaml\n  - {entry}\n")
    with pytest.raises(RenderError, match=r"is a remote reference"):
        render_app(repo)


def test_local_looking_entry_that_does_not_exist_is_not_tried_remotely(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "resources:\n  - example.org/team/base\n")
    with pytest.raises(RenderError, match=r"does not exist"):
        render_app(repo)


@pytest.mark.parametrize("entry", ["../../../../etc/passwd", "../" * 30 + "etc/passwd"])
def test_resource_climbing_out_of_the_repo_is_a_path_escape(tmp_path: Path, entry: str) -> None:
    repo = make_repo(tmp_path, f"resources:\n  - cm.yaml\n  - {entry}\n")
    with pytest.raises(PathEscapeError) as info:
        render_app(repo)
    assert info.value.source == "app/kustomization.yaml"
    assert entry in str(info.value)


def test_base_in_another_checkout_next_door_is_refused(tmp_path: Path) -> None:
    # RootOnly alone would allow this: a *kustomization directory* outside the repo root.
    repo = make_repo(tmp_path, "resources:\n  - ../../other-tenant/secrets\n")
    other = repo.parent / "other-tenant" / "secrets"
    other.mkdir(parents=True)
    (other / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (other / "cm.yaml").write_text(CONFIGMAP.format(name="not-yours"))
    with pytest.raises(PathEscapeError, match=r"resolves outside the repository"):
        render_app(repo)


def test_generator_file_outside_the_repo_is_refused(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        "configMapGenerator:\n  - name: stolen\n    files: [passwd=../../../../../../etc/passwd]\n",
    )
    with pytest.raises(PathEscapeError, match=r"configMapGenerator.files"):
        render_app(repo)


def test_symlink_out_of_the_repo_in_a_base_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "resources: [cm.yaml, ../base]\n")
    (repo / "base").mkdir()
    (repo / "base" / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: x\n    files: [passwd]\n"
    )
    (repo / "base" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(PathEscapeError) as info:
        render_app(repo)
    assert info.value.source == "base/passwd"


def test_helm_charts_in_kustomize_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "helmCharts:\n  - name: x\n    repo: https://charts.example.com\n")
    with pytest.raises(RenderError, match=r"helmCharts needs kustomize --enable-helm"):
        render_app(repo)


def test_kustomize_failure_names_the_app(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "resources: [cm.yaml]\npatches:\n  - path: missing.yaml\n")
    with pytest.raises(RenderError) as info:
        render_app(repo)
    assert info.value.source == "app"
    assert "kustomize build failed" in str(info.value)
    assert str(repo) not in str(info.value)


def test_output_size_is_bounded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "resources: [cm.yaml]\n")
    with pytest.raises(LimitExceededError, match=r"kustomize build produced more than 30 bytes"):
        render_app(repo, limits=RenderLimits(max_bytes=30))


def test_kustomization_alias_bomb_is_refused_by_the_scan(tmp_path: Path) -> None:
    bomb = (FIXTURES / "plain" / "alias-bomb" / "bomb.yaml").read_text()
    repo = make_repo(tmp_path, bomb.replace("apiVersion: v1\n", "resources: [cm.yaml]\n", 1))
    with pytest.raises(LimitExceededError, match=r"app/kustomization.yaml"):
        render_app(repo)


# -- loops (hardening issue, item 7) ----------------------------------------------------------


def test_a_kustomization_including_itself_is_a_clear_render_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "resources: [., cm.yaml]\n")
    with pytest.raises(RenderError, match="cycle detected") as err:
        render_app(repo)
    assert err.value.source == "app"


def test_two_kustomizations_including_each_other_are_a_clear_render_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "resources: [../other]\n")
    (repo / "other").mkdir()
    (repo / "other" / "kustomization.yaml").write_text("resources: [../app]\n")
    with pytest.raises(RenderError, match="cycle detected"):
        render_app(repo)


def test_a_local_directory_spelled_like_a_remote_is_still_refused(tmp_path: Path) -> None:
    # kustomize asks "remote?" before it looks at the disk: it would clone, not read, this one.
    repo = make_repo(tmp_path, "resources:\n  - deploy@example.com:org/repo\n")
    spelled = repo / "app" / "deploy@example.com:org" / "repo"
    spelled.mkdir(parents=True)
    (spelled / "kustomization.yaml").write_text("resources: [../../cm.yaml]\n")
    with pytest.raises(RenderError, match=r"is a remote reference"):
        render_app(repo)


@pytest.mark.parametrize(
    "entry", ["base", "overlays/prod", "cm.yaml", "../app/cm.yaml", "sub/a@b", "dir/with:colon"]
)
def test_local_paths_are_not_remote_references(entry: str) -> None:
    assert not is_remote_reference(entry)


def test_kustomize_has_no_git_and_no_proxy_even_if_a_remote_slips_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Next to kubectl (often /usr/bin) there may be a git: here a stand-in that leaves a mark.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(kustomize.kubectl_path())
    mark = tmp_path / "git-was-run"
    git = tools / "git"
    git.write_text(f'#!/bin/sh\necho "$@" >> {mark}\nexit 1\n')
    git.chmod(0o755)
    monkeypatch.setattr(kustomize, "kubectl_path", lambda: os.fspath(tools / "kubectl"))
    monkeypatch.setattr(kustomize, "is_remote_reference", lambda entry: False)  # it slipped
    repo = make_repo(tmp_path, "resources:\n  - git@example.com:org/repo\n")
    spelled = repo / "app" / "git@example.com:org" / "repo"
    spelled.mkdir(parents=True)
    (spelled / "kustomization.yaml").write_text("resources: [../../cm.yaml]\n")
    with pytest.raises(RenderError, match=r"kustomize build failed") as info:
        render_app(repo)
    assert not mark.exists(), f"kustomize ran git: {mark.read_text()}"
    assert "git" in str(info.value)
