"""An Application's ``kustomize`` overrides, built by the real ``kubectl kustomize`` through the
generated overlay: each field changes the output as kustomize would, what Argo CD's ``kustomize
edit`` would do differently is matched or refused, and the repository fences hold for the
directories and files the overrides name (components, patch files)."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from gitsync.application import KustomizeSource, SpecFields, parse_kustomize
from gitsync.render import (
    KustomizeOptions,
    LimitExceededError,
    PathEscapeError,
    RenderCache,
    RenderError,
    RenderLimits,
    RenderRequest,
    render,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"
REPO = "kustomize-overrides"
DIGEST = "sha256:" + "0123456789abcdef" * 4
DEPLOYMENT = "Deployment.apps/web"


def overrides(**fields: Any) -> KustomizeSource:
    return parse_kustomize(SpecFields(fields, "spec.source.kustomize"))


def request(root: Path, path: str, **fields: Any) -> RenderRequest:
    return RenderRequest(repo_root=root, path=path, kustomize=KustomizeOptions(overrides(**fields)))


def build(path: str = "app", *, root: Path = FIXTURES / REPO, **fields: Any) -> dict[str, Any]:
    """The app's objects by key (``Kind.group/[namespace/]name``)."""
    return {str(m.key): m.obj for m in render(request(root, path, **fields))}


def images(obj: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}


def test_without_overrides_the_app_renders_as_its_kustomization_says() -> None:
    objs = build()
    assert sorted(objs) == [DEPLOYMENT, "Service/web"]
    assert images(objs[DEPLOYMENT]) == {
        "web": "registry.example.com/team/web:1.0",
        "sidecar": "busybox:1.36",
    }
    assert objs[DEPLOYMENT]["spec"]["replicas"] == 1


# -- each field, as kustomize would apply it ---------------------------------------------------


def test_images_set_tags_names_and_digests() -> None:
    objs = build(images=["busybox=mirror.example.com/busybox:1.37"])
    assert images(objs[DEPLOYMENT])["sidecar"] == "mirror.example.com/busybox:1.37"
    objs = build(images=[f"busybox@{DIGEST}"])
    assert images(objs[DEPLOYMENT])["sidecar"] == f"busybox@{DIGEST}"


def test_an_image_the_kustomization_renames_is_matched_by_its_old_name_as_argo_cd_does() -> None:
    # Argo CD's `kustomize edit set image web:2.0` changes the kustomization's own entry for
    # web (newName registry.example.com/team/web), so the renamed image gets the new tag
    objs = build(images=["web:2.0"])
    assert images(objs[DEPLOYMENT]) == {
        "web": "registry.example.com/team/web:2.0",
        "sidecar": "busybox:1.36",
    }


def test_name_prefix_and_suffix_rename_every_object_and_keep_references() -> None:
    objs = build(namePrefix="blue-", nameSuffix="-v2")
    assert sorted(objs) == ["Deployment.apps/blue-web-v2", "Service/blue-web-v2"]


def test_common_labels_reach_metadata_selectors_and_templates() -> None:
    deployment = build(commonLabels={"team": "web"})[DEPLOYMENT]
    assert deployment["metadata"]["labels"] == {"app": "web", "tier": "front", "team": "web"}
    assert deployment["spec"]["selector"]["matchLabels"]["team"] == "web"
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "web"


def test_label_without_selector_leaves_selectors_and_templates_alone() -> None:
    deployment = build(commonLabels={"team": "web"}, labelWithoutSelector=True)[DEPLOYMENT]
    assert deployment["metadata"]["labels"]["team"] == "web"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    assert "team" not in deployment["spec"]["template"]["metadata"]["labels"]


def test_label_include_templates_labels_templates_but_not_selectors() -> None:
    deployment = build(
        commonLabels={"team": "web"}, labelWithoutSelector=True, labelIncludeTemplates=True
    )[DEPLOYMENT]
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "web"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]


def test_common_annotations_are_added_as_written() -> None:
    objs = build(commonAnnotations={"example.com/cost": "$5"})
    for obj in objs.values():
        assert obj["metadata"]["annotations"] == {"owner": "app", "example.com/cost": "$5"}


def test_namespace_moves_every_object() -> None:
    assert sorted(build(namespace="web-prod")) == [
        "Deployment.apps/web-prod/web",
        "Service/web-prod/web",
    ]


def test_replicas_match_the_workload_even_under_a_new_prefix() -> None:
    objs = build(namePrefix="blue-", replicas=[{"name": "web", "count": 4}])
    assert objs["Deployment.apps/blue-web"]["spec"]["replicas"] == 4


def test_inline_json_patch_with_a_target() -> None:
    patch = '[{"op": "replace", "path": "/spec/ports/0/port", "value": 8080}]'
    objs = build(patches=[{"patch": patch, "target": {"kind": "Service", "name": "web"}}])
    assert objs["Service/web"]["spec"]["ports"] == [{"port": 8080}]


def test_patch_file_in_the_app_directory() -> None:
    deployment = build(patches=[{"path": "patches/memory.yaml"}])[DEPLOYMENT]
    [web] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "web"]
    assert web["resources"] == {"limits": {"memory": "128Mi"}}


def test_components_add_their_objects_and_patches() -> None:
    objs = build(components=["../components/monitoring"])
    assert sorted(objs) == ["ConfigMap/monitoring", DEPLOYMENT, "Service/web"]
    assert objs[DEPLOYMENT]["metadata"]["annotations"]["monitoring"] == "on"


def test_missing_components_are_an_error_unless_ignored() -> None:
    with pytest.raises(RenderError, match=r"components\[0\] entry '../components/nope'"):
        build(components=["../components/nope"])
    objs = build(
        components=["../components/nope", "../components/monitoring"],
        ignoreMissingComponents=True,
    )
    assert "ConfigMap/monitoring" in objs


def test_every_field_at_once() -> None:
    objs = build(
        images=["web:3.1"],
        namePrefix="p-",
        commonLabels={"team": "web"},
        commonAnnotations={"note": "x"},
        namespace="ns",
        replicas=[{"name": "web", "count": "2"}],
        patches=[{"path": "patches/memory.yaml"}],
        components=["../components/monitoring"],
    )
    deployment = objs["Deployment.apps/ns/p-web"]
    assert images(deployment)["web"] == "registry.example.com/team/web:3.1"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"]["team"] == "web"
    assert deployment["metadata"]["annotations"]["note"] == "x"
    assert sorted(objs) == [
        "ConfigMap/ns/p-monitoring",
        "Deployment.apps/ns/p-web",
        "Service/ns/p-web",
    ]


# -- where a layer on top would differ from Argo CD's kustomize edit ----------------------------


@pytest.mark.parametrize(("field", "value"), [("namePrefix", "x-"), ("nameSuffix", "-x")])
def test_a_prefix_or_suffix_the_kustomization_sets_itself_is_refused(
    field: str, value: str
) -> None:
    # Argo CD's override replaces the kustomization's own; a layer would add to it
    with pytest.raises(RenderError, match=f"sets {field} '-?own-?' itself") as info:
        build("with-own-settings", **{field: value})
    assert info.value.source == "spec.source.kustomize"


@pytest.mark.parametrize(
    ("field", "force"),
    [("commonLabels", "forceCommonLabels"), ("commonAnnotations", "forceCommonAnnotations")],
)
def test_a_label_or_annotation_the_kustomization_sets_needs_force(field: str, force: str) -> None:
    key = "tier" if field == "commonLabels" else "owner"
    with pytest.raises(RenderError, match=f"{field}.{key} is already set .* set {force}: true"):
        build("with-own-settings", **{field: {key: "mine"}})
    objs = build("with-own-settings", **{field: {key: "mine"}, force: True})
    where = "labels" if field == "commonLabels" else "annotations"
    assert objs["Deployment.apps/own-web-own"]["metadata"][where][key] == "mine"
    if field == "commonLabels":  # and the selector follows, as with Argo CD's --force
        selector = objs["Deployment.apps/own-web-own"]["spec"]["selector"]["matchLabels"]
        assert selector["tier"] == "mine"


def test_overrides_on_a_directory_without_a_kustomization_are_refused() -> None:
    with pytest.raises(RenderError, match="kustomize overrides need a kustomization file"):
        build("plain", namePrefix="x-")
    with pytest.raises(RenderError, match=r"no kustomization\.yaml in the directory"):
        build("plain")


def test_a_kustomize_failure_in_the_overlay_names_the_overrides_not_a_temporary_path() -> None:
    with pytest.raises(RenderError, match="kustomize build failed") as info:
        build(patches=[{"patch": '[{"op": "replace", "path": "/spec/nope", "value": 1}]'}])
    assert "gitsync-render-" not in str(info.value)
    assert str(FIXTURES) not in str(info.value)


def test_changing_an_override_changes_the_render_cache_key() -> None:
    def key(**fields: Any) -> tuple[str, str, str]:
        return RenderCache.key("a" * 40, request(FIXTURES / REPO, "app", **fields))

    variants = [
        {},
        {"images": ["web:2.0"]},
        {"images": ["web:2.1"]},
        {"namePrefix": "x-"},
        {"replicas": [{"name": "web", "count": 2}]},
        {"commonLabels": {"a": "b"}},
        {"commonLabels": {"a": "b"}, "labelWithoutSelector": True},
        {"patches": [{"path": "patches/memory.yaml"}]},
        {"components": ["../components/monitoring"]},
    ]
    assert len({key(**fields) for fields in variants}) == len(variants)
    assert key(images=["web:2.0"]) == key(images=["web:2.0"])


def test_same_commit_new_image_renders_again_and_gives_the_new_image() -> None:
    cache = RenderCache()
    first = cache.get_or_render("a" * 40, request(FIXTURES / REPO, "app", images=["web:1.1"]))
    second = cache.get_or_render("a" * 40, request(FIXTURES / REPO, "app", images=["web:1.2"]))
    assert cache.misses == 2
    [old] = [m.obj for m in first if str(m.key) == DEPLOYMENT]
    [new] = [m.obj for m in second if str(m.key) == DEPLOYMENT]
    assert (images(old)["web"], images(new)["web"]) == (
        "registry.example.com/team/web:1.1",
        "registry.example.com/team/web:1.2",
    )


# -- the fences, for what the overrides name -----------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A stand-in service-account token next to (outside) the repository."""
    path = tmp_path / "node" / "token"
    path.parent.mkdir()
    path.write_text("eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(24))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the fixture repository nested in tmp, so that links can point out of it."""
    root = tmp_path / "checkouts" / "repo"
    shutil.copytree(FIXTURES / REPO, root)
    return root


def refused(root: Path, error: type[RenderError], secret: Path, **fields: Any) -> str:
    with pytest.raises(error) as info:
        build(root=root, **fields)
    text = f"{info.value} {info.value.__cause__} {info.value.__context__}"
    assert secret.read_text() not in text
    return text


def next_door_component(secret: Path) -> Path:
    """A component in another checkout next door: only an inline patch, so nothing in it names
    a file the repository scan would catch - the component entry itself must be refused."""
    outside = secret.parent / "component"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n"
        "  - patch: |-\n      apiVersion: v1\n      kind: Service\n      metadata:\n"
        "        name: web\n        annotations: {next-door: 'yes'}\n"
    )
    return outside


def test_a_component_climbing_out_of_the_repository_is_refused(repo: Path, secret: Path) -> None:
    entry = os.path.relpath(next_door_component(secret), repo / "app")
    text = refused(repo, PathEscapeError, secret, components=[entry])
    assert f"components[0] entry '{entry}' resolves outside the repository" in text


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_a_symlinked_component_pointing_out_of_the_repository_is_refused(
    repo: Path, secret: Path, absolute: bool
) -> None:
    outside = next_door_component(secret)
    link = repo / "components" / "linked"
    link.symlink_to(outside if absolute else os.path.relpath(outside, link.parent))
    text = refused(repo, PathEscapeError, secret, components=["../components/linked"])
    assert "'../components/linked' resolves outside the repository" in text


def test_a_component_holding_a_symlink_to_the_token_is_refused(repo: Path, secret: Path) -> None:
    component = repo / "components" / "monitoring"
    (component / "token").symlink_to(secret)
    (component / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "configMapGenerator:\n  - name: stolen\n    files: [token]\n"
    )
    text = refused(repo, PathEscapeError, secret, components=["../components/monitoring"])
    assert "components/monitoring/token" in text


def test_a_component_whose_resources_climb_out_is_refused(repo: Path, secret: Path) -> None:
    (repo / "components" / "monitoring" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        f"resources: [{os.path.relpath(secret.parent, repo / 'components' / 'monitoring')}]\n"
    )
    refused(repo, PathEscapeError, secret, components=["../components/monitoring"])


@pytest.mark.parametrize(
    "entry",
    [
        "github.com/org/repo//components/monitoring?ref=main",
        "https://example.com/org/repo.git//components/monitoring",
        "git@github.com:org/repo.git//components",
    ],
)
def test_a_remote_component_is_refused(repo: Path, secret: Path, entry: str) -> None:
    text = refused(repo, RenderError, secret, components=[entry])
    assert "is a remote reference" in text


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_a_patch_file_linking_to_the_token_is_refused(
    repo: Path, secret: Path, absolute: bool
) -> None:
    link = repo / "app" / "patches" / "stolen.yaml"
    link.symlink_to(secret if absolute else os.path.relpath(secret, link.parent))
    text = refused(repo, PathEscapeError, secret, patches=[{"path": "patches/stolen.yaml"}])
    # the repository scan walks the app's directory first; the patch's own check is the second
    # fence, and the only one for a link that stays in the repository (the next test)
    assert "patches/stolen.yaml" in text and "resolves outside" in text


def test_a_patch_file_elsewhere_in_the_repository_is_refused_as_kustomize_would(
    repo: Path, secret: Path
) -> None:
    # kustomize's RootOnly: the app's kustomization loads files from its own directory only
    (repo / "app" / "patches" / "base.yaml").symlink_to(repo / "base" / "deployment.yaml")
    text = refused(repo, PathEscapeError, secret, patches=[{"path": "patches/base.yaml"}])
    assert "'patches/base.yaml' resolves outside the app's directory" in text


def test_a_patch_file_over_the_size_limit_is_refused_from_its_size(repo: Path) -> None:
    (repo / "app" / "patches" / "big.yaml").write_text("a: " + "x" * 2048 + "\n")
    req = RenderRequest(
        repo_root=repo,
        path="app",
        kustomize=KustomizeOptions(overrides(patches=[{"path": "patches/big.yaml"}])),
        limits=RenderLimits(max_bytes=1024),
    )
    with pytest.raises(LimitExceededError, match="over the limit of 1024 bytes"):
        render(req)


def test_an_alias_bomb_in_an_inline_patch_is_refused_before_kustomize_reads_it() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    with pytest.raises(LimitExceededError, match="alias bomb") as info:
        build(patches=[{"patch": bomb}])
    assert info.value.source == "spec.source.kustomize.patches[0]"
