"""Plain-directory rendering, path confinement and limits, from fixture repos and tmp repos."""

from __future__ import annotations

import os
import stat
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitsync.model import ResourceKey
from gitsync.render import (
    DirectoryOptions,
    KustomizeOptions,
    LimitExceededError,
    PathEscapeError,
    RenderError,
    RenderLimits,
    RenderRequest,
    detect,
    render,
    source_type,
)
from gitsync.render.directory import count_alternatives, expand_braces

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def render_plain(path: str, **options: object) -> list[tuple[str, str]]:
    req = RenderRequest(
        repo_root=FIXTURES,
        path=path,
        directory=DirectoryOptions(**options),  # type: ignore[arg-type]
    )
    return [(m.source, str(m.key)) for m in render(req)]


def make_repo(tmp_path: Path) -> Path:
    """A checkout nested a few levels into tmp, with an ``app`` directory holding one manifest."""
    repo = tmp_path / "srv" / "checkouts" / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "cm.yaml").write_text(CONFIGMAP.format(name="inside"))
    return repo


def test_plain_directory_multi_doc_list_and_json_in_sorted_order() -> None:
    assert render_plain("plain/guestbook") == [
        ("plain/guestbook/configmaps.yaml", "ConfigMap/from-configmaplist"),
        ("plain/guestbook/deployment.yaml", "Deployment.apps/guestbook-ui"),
        ("plain/guestbook/deployment.yaml", "ServiceAccount/guestbook"),
        ("plain/guestbook/list.yml", "ConfigMap/guestbook/settings"),
        ("plain/guestbook/list.yml", "ClusterRole.rbac.authorization.k8s.io/guestbook-reader"),
        ("plain/guestbook/service.json", "Service/guestbook-ui"),
    ]


def test_recurse_walks_subdirectories_but_not_hidden_ones() -> None:
    rendered = render_plain("plain/guestbook", recurse=True)
    assert [src for src, _ in rendered][-3:] == [
        "plain/guestbook/sub/deeper/deepest.yaml",
        "plain/guestbook/sub/extra.yaml",
        "plain/guestbook/sub/notes.json",
    ]
    names = " ".join(key for _, key in rendered)
    assert "hidden" not in names


@pytest.mark.parametrize(
    ("options", "expected_sources"),
    [
        ({"include": "*.json", "recurse": True}, ["service.json", "sub/notes.json"]),
        ({"include": "{list.yml,service.json}"}, ["list.yml", "service.json"]),
        (
            {"include": "sub/*", "recurse": True},
            ["sub/deeper/deepest.yaml", "sub/extra.yaml", "sub/notes.json"],
        ),
        ({"exclude": "*.yaml"}, ["list.yml", "service.json"]),
        (
            {"include": "*.yaml", "exclude": "{deployment.yaml,deeper/*}", "recurse": True},
            ["configmaps.yaml", "sub/deeper/deepest.yaml", "sub/extra.yaml"],
        ),
    ],
)
def test_include_and_exclude_globs(options: dict[str, object], expected_sources: list[str]) -> None:
    sources = sorted({src for src, _ in render_plain("plain/guestbook", **options)})
    assert sources == [f"plain/guestbook/{s}" for s in expected_sources]


def test_a_name_glob_matches_in_any_subdirectory() -> None:
    sources = {src for src, _ in render_plain("plain/guestbook", recurse=True, exclude="deepest.*")}
    assert "plain/guestbook/sub/deeper/deepest.yaml" not in sources


def test_rendered_manifest_carries_key_object_and_no_injected_namespace() -> None:
    req = RenderRequest(repo_root=FIXTURES, path="plain/guestbook", namespace="team-a")
    by_key = {m.key: m for m in render(req)}
    deployment = by_key[ResourceKey("apps", "Deployment", "", "guestbook-ui")]
    assert deployment.obj["spec"]["replicas"] == 1
    assert "namespace" not in deployment.obj["metadata"]
    assert deployment.hook is None
    assert ResourceKey("", "ConfigMap", "guestbook", "settings") in by_key


def test_document_without_name_names_file_document_and_line() -> None:
    with pytest.raises(RenderError) as info:
        render(RenderRequest(repo_root=FIXTURES, path="plain/invalid"))
    assert info.value.source == "plain/invalid/missing-name.yaml"
    assert info.value.line == 6
    assert "document 2 has no metadata.name" in str(info.value)


def test_non_mapping_document_is_an_error() -> None:
    with pytest.raises(RenderError, match=r"plain/not-a-mapping/list.yaml:1: document 1 is a list"):
        render(RenderRequest(repo_root=FIXTURES, path="plain/not-a-mapping"))


def test_alias_bomb_in_a_repository_names_the_file() -> None:
    with pytest.raises(LimitExceededError, match=r"^plain/alias-bomb/bomb.yaml:\d+: YAML aliases"):
        render(RenderRequest(repo_root=FIXTURES, path="plain/alias-bomb"))


def test_detect() -> None:
    assert detect(FIXTURES, "plain/guestbook") == "plain"
    assert detect(FIXTURES, "kustomize/overlays/prod") == "kustomize"
    assert detect(FIXTURES, "helm/charts/web") == "helm"


def test_source_type_is_what_the_spec_says_else_what_is_detected() -> None:
    chart = RenderRequest(repo_root=FIXTURES, path="helm/charts/web")
    assert source_type(chart) == "helm"
    assert source_type(RenderRequest(repo_root=FIXTURES, path="plain/guestbook")) == "plain"
    forced = RenderRequest(repo_root=FIXTURES, path="helm/charts/web", directory=DirectoryOptions())
    assert source_type(forced) == "plain"
    kustomized = RenderRequest(
        repo_root=FIXTURES, path="plain/guestbook", kustomize=KustomizeOptions()
    )
    assert source_type(kustomized) == "kustomize"


@pytest.mark.parametrize("path", ["../render", "/etc", "plain/../..", "plain/../plain/guestbook"])
def test_requested_path_must_not_escape(path: str) -> None:
    with pytest.raises(PathEscapeError) as info:
        render(RenderRequest(repo_root=FIXTURES, path=path))
    assert info.value.source == path


def test_missing_path_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"nope: path does not exist"):
        render(RenderRequest(repo_root=FIXTURES, path="nope"))


def test_app_path_symlinked_out_of_the_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (repo / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PathEscapeError, match=r"^linked: resolves outside"):
        render(RenderRequest(repo_root=repo, path="linked"))


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_file_symlink_out_of_the_repo_is_refused(tmp_path: Path, absolute: bool) -> None:
    repo = make_repo(tmp_path)
    secret = tmp_path / "secret.yaml"
    secret.write_text(CONFIGMAP.format(name="stolen"))
    target = secret if absolute else Path(os.path.relpath(secret, repo / "app"))
    (repo / "app" / "link.yaml").symlink_to(target)
    with pytest.raises(PathEscapeError) as info:
        render(RenderRequest(repo_root=repo, path="app"))
    assert info.value.source == "app/link.yaml"
    assert "stolen" not in str(info.value)


def test_symlink_to_etc_passwd_even_with_a_non_manifest_name(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "app" / "passwd.txt").symlink_to("/etc/passwd")
    with pytest.raises(PathEscapeError, match=r"app/passwd.txt"):
        render(RenderRequest(repo_root=repo, path="app"))


def test_directory_symlink_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "app" / "etc").symlink_to("/etc")
    with pytest.raises(PathEscapeError, match=r"app/etc"):
        render(RenderRequest(repo_root=repo, path="app", directory=DirectoryOptions(recurse=True)))


def test_symlink_inside_the_repo_is_followed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "shared").mkdir()
    (repo / "shared" / "cm.yaml").write_text(CONFIGMAP.format(name="shared"))
    (repo / "app" / "shared.yaml").symlink_to("../shared/cm.yaml")
    rendered = render(RenderRequest(repo_root=repo, path="app"))
    assert [(m.source, m.key.name) for m in rendered] == [
        ("app/cm.yaml", "inside"),
        ("app/shared.yaml", "shared"),
    ]


@pytest.mark.timeout(10)
def test_fifty_megabyte_manifest_is_refused_from_its_size(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    big = repo / "app" / "big.yaml"
    with big.open("wb") as fh:  # sparse: 50 MB on paper, a few bytes on disk
        fh.write(CONFIGMAP.format(name="big").encode())
        fh.truncate(50 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError) as info:
            render(RenderRequest(repo_root=repo, path="app"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.source == "app/big.yaml"
    assert "limit of 10485760 bytes" in str(info.value)
    assert peak < 5 * 1024 * 1024, f"the file was read: peak Python allocation {peak} bytes"


def test_total_bytes_and_document_count_limits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(3):
        (repo / "app" / f"more-{i}.yaml").write_text(CONFIGMAP.format(name=f"more-{i}"))
    with pytest.raises(LimitExceededError, match=r"manifests exceed the limit of 150 bytes"):
        render(RenderRequest(repo_root=repo, path="app", limits=RenderLimits(max_bytes=150)))
    with pytest.raises(LimitExceededError, match=r"more than 3 objects"):
        render(RenderRequest(repo_root=repo, path="app", limits=RenderLimits(max_documents=3)))


def test_unreadable_file_is_a_render_error_even_for_root(tmp_path: Path) -> None:
    # Root can open a mode-000 file, so the check must come from the mode bits; it is asserted
    # unconditionally because the loader never relies on open() failing.
    repo = make_repo(tmp_path)
    locked = repo / "app" / "locked.yaml"
    locked.write_text(CONFIGMAP.format(name="locked"))
    locked.chmod(0)
    try:
        with pytest.raises(RenderError) as info:
            render(RenderRequest(repo_root=repo, path="app"))
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert info.value.source == "app/locked.yaml"
    assert "not readable" in str(info.value)


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "app" / "bad.json").write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')
    with pytest.raises(RenderError, match=r"^app/bad.json:4: invalid JSON"):
        render(RenderRequest(repo_root=repo, path="app"))


def test_list_item_without_name_names_the_item(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "app" / "list.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
        "  - {apiVersion: v1, kind: ConfigMap, metadata: {}}\n"
    )
    with pytest.raises(
        RenderError, match=r"^app/list.yaml:1: document 1 item 2 has no metadata.name"
    ):
        render(RenderRequest(repo_root=repo, path="app"))


# -- brace patterns: counted from their structure, never expanded over the limit (issue 13, 5) --


def test_twenty_two_brace_groups_are_refused_without_expanding_them(tmp_path: Path) -> None:
    # 2**22 alternatives: expanded first, this took the controller from 132 MB to 640 MB.
    pattern = "{a,b}" * 22 + ".yaml"
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError) as info:
            render(
                RenderRequest(
                    repo_root=make_repo(tmp_path),
                    path="app",
                    directory=DirectoryOptions(include=pattern),
                )
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "spec.source.directory.include" in str(info.value)
    assert "more than 256 brace alternatives" in str(info.value)
    assert peak < 1024 * 1024, f"the pattern was expanded: peak Python allocation {peak} bytes"


@pytest.mark.parametrize(
    ("pattern", "count"),
    [
        ("plain.yaml", 1),
        ("{a,b}{c,d,e}", 6),  # a sequence multiplies
        ("{a,{b,c},{d,{e,f}}}", 6),  # options add, nested groups too
        ("{a,b}{", 2),  # an unbalanced brace is literal
        ("{a,b}" * 1000, 257),  # stops at the limit + 1
        ("{" + ",".join("x" * 300) + "}", 257),
        ("{{a,b}{c,d},e}" * 3, 125),
    ],
)
def test_brace_alternatives_are_counted_from_the_structure(pattern: str, count: int) -> None:
    assert count_alternatives(pattern, limit=256) == count


@given(st.text(alphabet="{},ab", max_size=14))
def test_the_count_is_the_number_the_expansion_gives(pattern: str) -> None:
    assert count_alternatives(pattern, limit=10**6) == len(expand_braces(pattern))


@pytest.mark.parametrize(
    ("field", "pattern", "reason"),
    [
        ("exclude", "{a,b}" * 9, "more than 256 brace alternatives"),
        ("include", "{" * 17 + "a" + "}" * 17, "nests braces more than 16 deep"),
        ("include", "a" * 1025, "longer than 1024 characters"),
    ],
)
def test_oversized_brace_patterns_name_the_field(
    tmp_path: Path, field: str, pattern: str, reason: str
) -> None:
    options = DirectoryOptions(**{field: pattern})  # type: ignore[arg-type]
    with pytest.raises(LimitExceededError, match=reason) as info:
        render(RenderRequest(repo_root=make_repo(tmp_path), path="app", directory=options))
    assert f"spec.source.directory.{field}" in str(info.value)


def test_a_pattern_at_the_limit_still_matches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    pattern = "{" + ",".join("n" * 255) + ",cm}.yaml"  # 256 alternatives
    options = DirectoryOptions(include=pattern)
    assert [m.source for m in render(RenderRequest(repo_root=repo, path="app", directory=options))]
