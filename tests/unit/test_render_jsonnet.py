"""Jsonnet in directory apps: Argo CD's ``directory.jsonnet`` (tlas, extVars, libs), imports
confined to the checkout, a looping or oversized program stopped by the render's limits, and the
message an empty render fails with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gitsync.application import DirectoryJsonnet, JsonnetVariable, SpecError, parse_application
from gitsync.render import (
    DirectoryOptions,
    JsonnetOptions,
    JsonnetVar,
    LimitExceededError,
    RenderError,
    RenderLimits,
    RenderRequest,
    render,
    what_was_found,
)
from gitsync.render.cache import parameters_hash

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"
GUESTBOOK = JsonnetOptions(
    tlas=(JsonnetVar("replicas", "2", code=True), JsonnetVar("env", "prod")),
    ext_vars=(JsonnetVar("team", "web"),),
    libs=("jsonnet/vendor",),
)


def render_dir(
    root: Path, path: str, jsonnet: JsonnetOptions, limits: RenderLimits | None = None
) -> list[Any]:
    req = RenderRequest(
        repo_root=root,
        path=path,
        directory=DirectoryOptions(jsonnet=jsonnet),
        limits=limits or RenderLimits(),
    )
    return render(req)


def jsonnet_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "checkouts" / "repo"
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return repo


def test_guestbook_with_tlas_ext_vars_and_libs_renders_argo_cds_objects() -> None:
    manifests = render_dir(FIXTURES, "jsonnet/guestbook", GUESTBOOK)
    assert [(m.source, str(m.key)) for m in manifests] == [
        ("jsonnet/guestbook/guestbook-ui.jsonnet", "Service/jsonnet-guestbook-ui"),
        ("jsonnet/guestbook/guestbook-ui.jsonnet", "Deployment.apps/jsonnet-guestbook-ui"),
        ("jsonnet/guestbook/settings.jsonnet", "ConfigMap/guestbook-settings"),
    ]
    deployment = manifests[1].obj
    assert deployment["spec"]["replicas"] == 2  # a code TLA is a number, not "2"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "ENV", "value": "prod"}, {"name": "TEAM", "value": "web"}]
    assert manifests[0].obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gitsync"
    assert manifests[2].obj["data"] == {"team": "web"}


def test_a_missing_ext_var_is_a_render_error_naming_the_file() -> None:
    with pytest.raises(RenderError, match=r"guestbook-ui\.jsonnet") as err:
        render_dir(FIXTURES, "jsonnet/guestbook", JsonnetOptions(libs=("jsonnet/vendor",)))
    assert "replicas" in str(err.value) or "team" in str(err.value)


def test_a_single_object_is_one_manifest_and_a_scalar_is_refused(tmp_path: Path) -> None:
    repo = jsonnet_repo(
        tmp_path,
        {"app/cm.jsonnet": "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'one'}}"},
    )
    assert [str(m.key) for m in render_dir(repo, "app", JsonnetOptions())] == ["ConfigMap/one"]
    (repo / "app" / "cm.jsonnet").write_text("[1]")
    with pytest.raises(RenderError, match="item 1 is a int, not an object"):
        render_dir(repo, "app", JsonnetOptions())


ESCAPES = {
    "absolute": "import '/etc/passwd'",
    "dot-dot": "importstr '../../../../../../../../etc/hostname'",
    "sibling-checkout": "importstr '../../other/secret.txt'",
}


@pytest.mark.parametrize("program", ESCAPES.values(), ids=ESCAPES.keys())
def test_imports_that_leave_the_checkout_are_refused(tmp_path: Path, program: str) -> None:
    repo = jsonnet_repo(tmp_path, {"app/main.jsonnet": program})
    other = tmp_path / "checkouts" / "other"
    other.mkdir()
    (other / "secret.txt").write_text("another tenant's secret")
    with pytest.raises(RenderError, match=r"absolute paths are not allowed|outside the repository"):
        render_dir(repo, "app", JsonnetOptions())


def test_a_symlink_leading_out_of_the_checkout_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.libsonnet"
    outside.write_text("{token: 'not for tenants'}")
    repo = jsonnet_repo(tmp_path, {"app/main.jsonnet": "(import 's.libsonnet').token"})
    (repo / "lib").mkdir()
    os.symlink(outside, repo / "lib" / "s.libsonnet")
    with pytest.raises(RenderError, match="outside the repository") as err:
        render_dir(repo, "app", JsonnetOptions(libs=("lib",)))
    assert "not for tenants" not in str(err.value)


def test_imports_inside_the_checkout_may_use_dot_dot(tmp_path: Path) -> None:
    repo = jsonnet_repo(
        tmp_path,
        {
            "common/cm.libsonnet": "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'c'}}",
            "app/main.jsonnet": "import '../common/cm.libsonnet'",
        },
    )
    assert [str(m.key) for m in render_dir(repo, "app", JsonnetOptions())] == ["ConfigMap/c"]


def test_a_looping_program_is_killed_at_the_deadline(tmp_path: Path) -> None:
    repo = jsonnet_repo(
        tmp_path,
        {"app/loop.jsonnet": "local f(n) = if n < 0 then 0 else f(n + 1) tailstrict; f(0)"},
    )
    with pytest.raises(
        LimitExceededError, match="jsonnet did not finish before the render deadline"
    ):
        render_dir(repo, "app", JsonnetOptions(), RenderLimits(timeout_seconds=3))


def test_output_over_the_byte_limit_is_refused(tmp_path: Path) -> None:
    repo = jsonnet_repo(
        tmp_path,
        {
            "app/big.jsonnet": "[{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'c' + i},"
            " data: {x: std.repeat('x', 1000)}} for i in std.range(1, 200)]"
        },
    )
    with pytest.raises(LimitExceededError, match="exceeds the limit of 50000 bytes"):
        render_dir(repo, "app", JsonnetOptions(), RenderLimits(max_bytes=50_000))


def test_output_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    repo = jsonnet_repo(
        tmp_path,
        {"app/deep.jsonnet": "local d(n) = if n == 0 then {} else {a: d(n - 1)}; [d(200)]"},
    )
    with pytest.raises(LimitExceededError, match="Jsonnet output"):
        render_dir(repo, "app", JsonnetOptions(), RenderLimits(max_depth=64))


FOUND = {
    "only-libsonnet": (
        {"app/a.libsonnet": "{}", "app/b.libsonnet": "{}"},
        "app holds 2 .libsonnet files; .libsonnet files are only imported",
    ),
    "readme-only": ({"app/README.md": "x"}, "app holds 1 .md file; no .yaml, .yml, .json"),
    "manifests-below": (
        {"app/README.md": "x", "app/prod/cm.yaml": "x"},
        "subdirectories hold 1 .yaml file; set directory.recurse",
    ),
    "empty-yaml": ({"app/cm.yaml": "# nothing\n"}, "the manifest files hold no objects"),
}


@pytest.mark.parametrize(("files", "expected"), FOUND.values(), ids=FOUND.keys())
def test_an_empty_render_says_what_the_directory_holds(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    repo = jsonnet_repo(tmp_path, files)
    assert render_dir(repo, "app", JsonnetOptions()) == []
    found = what_was_found(repo, "app", DirectoryOptions(), RenderLimits())
    assert expected in found, found


def _app(directory: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "web", "namespace": "gitsync"},
        "spec": {
            "source": {
                "repoURL": "https://git.example/r.git",
                "path": "app",
                "directory": directory,
            },
            "destination": {"namespace": "web"},
        },
    }


def test_the_spec_takes_argo_cds_jsonnet_shape() -> None:
    app = parse_application(
        _app(
            {
                "jsonnet": {
                    "tlas": [{"name": "replicas", "value": "2", "code": True}],
                    "extVars": [{"name": "team", "value": "web"}],
                    "libs": ["vendor"],
                }
            }
        )
    )
    assert app.source.directory is not None
    assert app.source.directory.jsonnet == DirectoryJsonnet(
        tlas=(JsonnetVariable("replicas", "2", code=True),),
        ext_vars=(JsonnetVariable("team", "web"),),
        libs=("vendor",),
    )


BAD_SPECS = {
    "unknown-field": ({"jsonnet": {"tla": []}}, "spec.source.directory.jsonnet.tla"),
    "lib-escapes": ({"jsonnet": {"libs": ["../x"]}}, "spec.source.directory.jsonnet.libs[0]"),
    "nameless-var": ({"jsonnet": {"extVars": [{"value": "x"}]}}, "extVars[0].name"),
    "twice": (
        {"jsonnet": {"tlas": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}},
        "tlas[1].name",
    ),
    "argo-build-env": (
        {"jsonnet": {"extVars": [{"name": "app", "value": "${ARGOCD_APP_NAME}"}]}},
        "extVars[0].value",
    ),
    "unknown-var-field": (
        {"jsonnet": {"tlas": [{"name": "a", "value": "1", "type": "x"}]}},
        "tlas[0].type",
    ),
}


@pytest.mark.parametrize(("directory", "field"), BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_jsonnet_specs_name_the_field(directory: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_application(_app(directory))


def test_jsonnet_options_are_part_of_the_render_cache_key() -> None:
    """A changed TLA, extVar or lib must render anew, never be served the old commit's render."""

    def key(jsonnet: JsonnetOptions) -> str:
        return parameters_hash(
            RenderRequest(
                repo_root=FIXTURES,
                path="jsonnet/guestbook",
                directory=DirectoryOptions(jsonnet=jsonnet),
            )
        )

    changed = [
        JsonnetOptions(tlas=(JsonnetVar("replicas", "3", code=True),)),
        JsonnetOptions(tlas=(JsonnetVar("replicas", "3"),)),
        JsonnetOptions(ext_vars=(JsonnetVar("replicas", "3"),)),
        JsonnetOptions(libs=("jsonnet/vendor",)),
        JsonnetOptions(),
    ]
    assert len({key(options) for options in changed}) == len(changed)
