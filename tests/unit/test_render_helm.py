"""Helm rendering with the real Helm engine, value layering and the fences around charts."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from gitsync.model import ResourceKey
from gitsync.render import (
    HelmOptions,
    LimitExceededError,
    PathEscapeError,
    RenderError,
    RenderLimits,
    RenderRequest,
    render,
)
from gitsync.render.manifest import RenderedManifest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"
WEB = "helm/charts/web"


def render_web(namespace: str = "shop", **helm: Any) -> list[RenderedManifest]:
    options = HelmOptions(release_name=helm.pop("release_name", "shop"), **helm)
    return render(RenderRequest(repo_root=FIXTURES, path=WEB, namespace=namespace, helm=options))


def by_key(manifests: list[RenderedManifest]) -> dict[ResourceKey, RenderedManifest]:
    return {m.key: m for m in manifests}


def copy_chart(tmp_path: Path) -> Path:
    """The fixture repository's helm tree, copied into a repo nested in tmp."""
    repo = tmp_path / "srv" / "repo"
    shutil.copytree(FIXTURES / "helm", repo / "helm")
    return repo


def render_copy(
    repo: Path, limits: RenderLimits | None = None, **helm: Any
) -> list[RenderedManifest]:
    options = HelmOptions(release_name="shop", **helm)
    req = RenderRequest(repo_root=repo, path=WEB, helm=options, limits=limits or RenderLimits())
    return render(req)


def test_chart_renders_crds_first_then_templates_with_subchart_and_hooks() -> None:
    rendered = render_web()
    assert [(m.source, str(m.key), m.hook) for m in rendered] == [
        (
            "helm:crds/widgets.yaml",
            "CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com",
            None,
        ),
        ("helm:charts/cache/templates/statefulset.yaml", "StatefulSet.apps/shop-cache", None),
        ("helm:templates/configmap.yaml", "ConfigMap/shop/shop-web-settings", None),
        ("helm:templates/configmap.yaml", "Job.batch/shop-web-migrate", "pre-install,pre-upgrade"),
        ("helm:templates/deployment.yaml", "Deployment.apps/shop-web", None),
        ("helm:templates/tests/test-connection.yaml", "Pod/shop-web-test", "test"),
    ]
    # NOTES.txt, _helpers.tpl and the template that renders to nothing are not manifests.
    assert not any("NOTES" in m.source or "optional" in m.source for m in rendered)


def test_release_namespace_is_helms_only_namespace_injection() -> None:
    rendered = by_key(render_web(namespace="other"))
    assert ResourceKey("", "ConfigMap", "other", "shop-web-settings") in rendered
    deployment = rendered[ResourceKey("apps", "Deployment", "", "shop-web")]
    assert "namespace" not in deployment.obj["metadata"]


def test_chart_defaults_and_subchart_values() -> None:
    rendered = by_key(render_web())
    deployment = rendered[ResourceKey("apps", "Deployment", "", "shop-web")].obj
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["labels"] == {"team": "unknown"}
    cache = rendered[ResourceKey("apps", "StatefulSet", "", "shop-cache")].obj
    # the parent's values.yaml overrides the subchart's default under the subchart's name
    assert cache["spec"]["template"]["spec"]["containers"][0]["args"] == ["--maxmemory", "64Mi"]


def test_value_files_in_order_then_inline_values_then_set_values() -> None:
    rendered = by_key(
        render_web(
            value_files=("../../common/values.yaml", "env/prod.yaml"),
            values={"greeting": "inline", "image": {"repository": "registry.local/nginx"}},
            set_values=("greeting=from-set", "cache.size=128Mi"),
        )
    )
    deployment = rendered[ResourceKey("apps", "Deployment", "", "shop-web")].obj
    assert deployment["spec"]["replicas"] == 5  # env/prod.yaml after common/values.yaml
    assert deployment["metadata"]["labels"] == {"team": "platform"}  # from ../../common
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.local/nginx:1.27-prod"  # maps merge key by key
    settings = rendered[ResourceKey("", "ConfigMap", "shop", "shop-web-settings")].obj
    assert settings["data"] == {"greeting": "from-set"}
    cache = rendered[ResourceKey("apps", "StatefulSet", "", "shop-cache")].obj
    assert cache["spec"]["template"]["spec"]["containers"][0]["args"][1] == "128Mi"


def test_value_file_climbing_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    (tmp_path / "srv" / "outside.yaml").write_text("greeting: stolen\n")
    with pytest.raises(PathEscapeError) as info:
        render_copy(repo, value_files=("../../../../outside.yaml",))
    assert info.value.source == WEB
    assert "../../../../outside.yaml" in str(info.value)


def test_value_file_symlinked_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    (tmp_path / "outside.yaml").write_text("greeting: stolen\n")
    (repo / "helm" / "common" / "linked.yaml").symlink_to(tmp_path / "outside.yaml")
    with pytest.raises(PathEscapeError, match=r"'../../common/linked.yaml' resolves outside"):
        render_copy(repo, value_files=("../../common/linked.yaml",))


def test_chart_values_yaml_symlinked_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    values = repo / WEB / "values.yaml"
    values.unlink()
    values.symlink_to("/etc/passwd")
    with pytest.raises(PathEscapeError) as info:
        render_copy(repo)
    assert info.value.source == f"{WEB}/values.yaml"


def test_value_file_symlink_inside_the_repo_is_allowed(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    (repo / WEB / "env" / "common.yaml").symlink_to("../../../common/values.yaml")
    rendered = by_key(render_copy(repo, value_files=("env/common.yaml",)))
    deployment = rendered[ResourceKey("apps", "Deployment", "", "shop-web")].obj
    assert deployment["spec"]["replicas"] == 2


def test_absolute_and_missing_value_files(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    with pytest.raises(PathEscapeError, match=r"absolute path"):
        render_copy(repo, value_files=(str(repo / "helm" / "common" / "values.yaml"),))
    with pytest.raises(RenderError, match=r"'env/missing.yaml' does not exist"):
        render_copy(repo, value_files=("env/missing.yaml",))


def test_unreadable_value_file_is_a_render_error_even_for_root(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    prod = repo / WEB / "env" / "prod.yaml"
    prod.chmod(0)
    try:
        with pytest.raises(RenderError) as info:
            render_copy(repo, value_files=("env/prod.yaml",))
    finally:
        prod.chmod(0o644)
    assert info.value.source == f"{WEB}/env/prod.yaml"
    assert "not readable" in str(info.value)


def test_alias_bomb_in_a_value_file_is_refused(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    shutil.copy(FIXTURES / "plain" / "alias-bomb" / "bomb.yaml", repo / WEB / "env" / "bomb.yaml")
    with pytest.raises(LimitExceededError, match=f"^{WEB}/env/bomb.yaml:"):
        render_copy(repo, value_files=("env/bomb.yaml",))


@pytest.mark.timeout(20)
def test_gzip_bomb_subchart_is_stopped_at_the_input_budget(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    archive = repo / WEB / "charts" / "bomb-0.1.0.tgz"
    zeros = b"\0" * (8 * 1024 * 1024)
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("bomb/templates/zeros.yaml")
        info.size = len(zeros)
        tar.addfile(info, io.BytesIO(zeros))
    assert archive.stat().st_size < 100_000
    with pytest.raises(LimitExceededError) as error:
        render_copy(repo, limits=RenderLimits(max_input_bytes=2 * 1024 * 1024))
    assert error.value.source == f"{WEB}/charts/bomb-0.1.0.tgz"


def test_template_error_names_the_chart(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    (repo / WEB / "templates" / "broken.yaml").write_text("{{ .Values.nope.deeper }}\n")
    with pytest.raises(RenderError) as info:
        render_copy(repo)
    assert info.value.source == f"{WEB}/templates/broken.yaml"
    assert info.value.line == 1
    assert "nil pointer evaluating" in str(info.value)


def test_invalid_rendered_document_names_the_template(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    (repo / WEB / "templates" / "nameless.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(RenderError, match=r"^helm:templates/nameless.yaml:1: document 1 has no"):
        render_copy(repo)


def test_invalid_release_name() -> None:
    with pytest.raises(RenderError, match=r"invalid release name"):
        render_web(release_name="Not_A_Valid_Name")


@pytest.mark.timeout(30)
def test_slow_template_is_killed_at_the_deadline(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    (repo / WEB / "templates" / "slow.yaml").write_text(
        "{{- range $i := until 100000 }}{{- range $j := until 100000 }}{{- end }}{{- end }}\n"
    )
    with pytest.raises(LimitExceededError, match=r"helm template did not finish"):
        render_copy(repo, limits=RenderLimits(timeout_seconds=1.0))


def test_rendered_output_is_bounded(tmp_path: Path) -> None:
    repo = copy_chart(tmp_path)
    with pytest.raises(LimitExceededError, match=r"over the limit of 500"):
        render_copy(repo, limits=RenderLimits(max_bytes=500))
