"""Hardening (issue 8, items 1-9): a hostile repository against the renderers, at render level.

These fill the gaps left by the renderer tests (``test_render_*.py``); ``tests/HARDENING.md`` maps
every sub-case of items 1-9 to its defence and test. The recurring attacker goal is reading the
controller's service-account token: a stand-in token file with a secret-looking value sits
*outside* the repository, at a path the test controls, and every test asserts both that the render
is refused with a clear error and that the value appears nowhere in what the render produced (the
error, its cause chain) - a refused read that echoes the secret is still a leak.

Symlinks are tried both ways (relative ``../../..`` and absolute), because confinement works on
resolved paths and each form takes a different route there.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync.render import (
    DirectoryOptions,
    HelmOptions,
    KustomizeOptions,
    LimitExceededError,
    PathEscapeError,
    RenderError,
    RenderLimits,
    RenderRequest,
    render,
    tool_process,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"
CHART = "helm/charts/web"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
MIB = 1024 * 1024


class Token:
    """A stand-in service-account token outside the repository."""

    def __init__(self, root: Path) -> None:
        self.path = root / SA_TOKEN_PATH.lstrip("/")
        self.path.parent.mkdir(parents=True)
        self.value = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(24)
        self.path.write_text(self.value)

    def relative_from(self, directory: Path) -> str:
        return os.path.relpath(self.path, directory)

    def link(self, at: Path, *, absolute: bool) -> None:
        at.symlink_to(self.path if absolute else self.relative_from(at.parent))


@pytest.fixture
def token(tmp_path: Path) -> Token:
    return Token(tmp_path / "node")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout nested in tmp holding the fixture chart and an empty ``app`` directory."""
    root = tmp_path / "cache" / "checkouts" / "repo"
    shutil.copytree(FIXTURES / "helm", root / "helm")
    (root / "app").mkdir()
    return root


def refused(req: RenderRequest, error: type[RenderError], token: Token | None = None) -> str:
    """Render, expect ``error``; return its text after checking no secret is in the chain."""
    with pytest.raises(error) as info:
        render(req)
    text = "\n".join(_chain(info.value))
    if token is not None:
        assert token.value not in text
        assert token.value not in repr(info.value.__dict__)
    return text


def _chain(exc: BaseException | None) -> Iterator[str]:
    while exc is not None:
        yield f"{type(exc).__name__}: {exc}"
        exc = exc.__cause__ or exc.__context__


def helm_req(repo: Path, limits: RenderLimits | None = None, **helm: Any) -> RenderRequest:
    return RenderRequest(
        repo_root=repo,
        path=CHART,
        helm=HelmOptions(release_name="shop", **helm),
        limits=limits or RenderLimits(),
    )


def kustomize_req(repo: Path, kustomization: str, **kwargs: Any) -> RenderRequest:
    (repo / "app" / "kustomization.yaml").write_text(kustomization)
    (repo / "app" / "cm.yaml").write_text(CONFIGMAP.format(name="local"))
    return RenderRequest(repo_root=repo, path="app", kustomize=KustomizeOptions(), **kwargs)


def plain_req(repo: Path, **options: Any) -> RenderRequest:
    return RenderRequest(repo_root=repo, path="app", directory=DirectoryOptions(**options))


# -- 1. Helm value files ------------------------------------------------------------------------


def test_1_value_file_climbing_to_etc_passwd_is_refused(repo: Path) -> None:
    text = refused(helm_req(repo, value_files=("../../../../etc/passwd",)), PathEscapeError)
    assert "'../../../../etc/passwd' resolves outside the repository" in text
    assert "root:" not in text


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_1_value_file_naming_the_token_is_refused(repo: Path, token: Token, form: str) -> None:
    entry = token.relative_from(repo / CHART) if form == "relative" else SA_TOKEN_PATH
    refused(helm_req(repo, value_files=(entry,)), PathEscapeError, token)


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
@pytest.mark.parametrize("where", ["values.yaml", "env/prod.yaml"])
def test_1_values_file_that_is_a_symlink_to_the_token_is_refused(
    repo: Path, token: Token, where: str, absolute: bool
) -> None:
    # values.yaml is read by Helm itself; env/prod.yaml is a valueFiles entry read by gitsync.
    target = repo / CHART / where
    target.unlink()
    token.link(target, absolute=absolute)
    value_files = ("env/prod.yaml",) if where != "values.yaml" else ()
    text = refused(helm_req(repo, value_files=value_files), PathEscapeError, token)
    assert f"{CHART}/{where}" in text


# -- 2. symlinks in a chart's templates/ and in a plain directory -------------------------------


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_2_template_symlink_out_of_the_repo_is_refused(
    repo: Path, token: Token, absolute: bool
) -> None:
    token.link(repo / CHART / "templates" / "token.yaml", absolute=absolute)
    text = refused(helm_req(repo), PathEscapeError, token)
    assert f"{CHART}/templates/token.yaml" in text


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_2_templates_directory_symlink_out_of_the_repo_is_refused(
    repo: Path, token: Token, absolute: bool
) -> None:
    outside = token.path.parent / "templates"
    outside.mkdir()
    (outside / "cm.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\ndata:\n  t: {{ .Files.Get "x" }}\n'
    )
    shutil.rmtree(repo / CHART / "templates")
    link = repo / CHART / "templates"
    link.symlink_to(outside if absolute else os.path.relpath(outside, link.parent))
    text = refused(helm_req(repo), PathEscapeError, token)
    assert f"{CHART}/templates" in text


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
@pytest.mark.parametrize("kind", ["file", "directory"])
def test_2_plain_directory_symlink_out_of_the_repo_is_refused(
    repo: Path, token: Token, kind: str, absolute: bool
) -> None:
    (repo / "app" / "cm.yaml").write_text(CONFIGMAP.format(name="inside"))
    if kind == "file":
        token.link(repo / "app" / "token.yaml", absolute=absolute)
        where = "app/token.yaml"
    else:
        link = repo / "app" / "secrets"
        target = token.path.parent
        link.symlink_to(target if absolute else os.path.relpath(target, link.parent))
        where = "app/secrets"
    text = refused(plain_req(repo, recurse=True), PathEscapeError, token)
    assert where in text


# -- 3. Application path ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../../", "..", "/", "/var/run/secrets/kubernetes.io"])
def test_3_application_path_outside_the_repo_is_refused(repo: Path, path: str) -> None:
    text = refused(RenderRequest(repo_root=repo, path=path), PathEscapeError)
    assert path in text


# -- 4. concurrent renders do not share working files -------------------------------------------


def test_4_concurrent_renders_get_private_working_directories(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tool run gets its own random HOME/TMPDIR (mode 0700), removed afterwards; both renders
    are held inside their tool environment at the same time, so a shared directory would show."""
    real = tool_process.scrubbed_env
    both_inside = threading.Barrier(2, timeout=30)
    seen: list[tuple[str, int]] = []

    def recording(extra: Any = None) -> Any:
        cm = real(extra)
        env = cm.__enter__()
        seen.append((env["HOME"], stat.S_IMODE(os.stat(env["HOME"]).st_mode)))
        both_inside.wait()

        class Wrapped:
            def __enter__(self) -> dict[str, str]:
                return env

            def __exit__(self, *exc: object) -> None:
                cm.__exit__(None, None, None)

        return Wrapped()

    monkeypatch.setattr(tool_process, "scrubbed_env", recording)  # the Helm worker runs in it
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(len(render(helm_req(repo))))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(results) == 2
    homes = [home for home, _ in seen]
    assert len(set(homes)) == 2, f"renders shared a working directory: {homes}"
    assert all(mode == 0o700 for _, mode in seen), seen
    assert not any(os.path.exists(home) for home in homes), "working directories were left behind"


def test_4_a_render_cannot_reach_into_a_checkout_next_door(repo: Path, token: Token) -> None:
    neighbour = repo.parent / "other-commit"
    (neighbour / "app").mkdir(parents=True)
    (neighbour / "app" / "token").write_text(token.value)
    req = kustomize_req(
        repo,
        "configMapGenerator:\n  - name: stolen\n    files: [../../other-commit/app/token]\n",
    )
    refused(req, PathEscapeError, token)


# -- 5. size, count, archive and mode bounds ----------------------------------------------------


def sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes on paper and a few on disk."""
    with path.open("wb") as fh:
        fh.write(CONFIGMAP.format(name="big").encode())
        fh.truncate(size)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("renderer", ["helm", "kustomize"])
def test_5_fifty_megabyte_file_is_refused_by_helm_and_kustomize(repo: Path, renderer: str) -> None:
    # The plain directory is covered in test_render_plain (fifty_megabyte_manifest ...).
    if renderer == "helm":
        sparse(repo / CHART / "templates" / "big.yaml", 50 * MIB)
        text = refused(helm_req(repo), LimitExceededError)
        assert f"{CHART}/templates/big.yaml" in text
    else:
        req = kustomize_req(repo, "resources: [cm.yaml, big.yaml]\n")
        sparse(repo / "app" / "big.yaml", 50 * MIB + 1)
        text = refused(req, LimitExceededError)
        assert "app/big.yaml" in text
    assert "input exceeds the limit" in text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("renderer", ["plain", "helm", "kustomize"])
def test_5_ten_thousand_small_files_are_refused(repo: Path, renderer: str) -> None:
    """10,000 files next to the app's own: one over the default ``max_files``."""
    folder = {"plain": repo / "app", "helm": repo / CHART / "templates", "kustomize": repo / "app"}
    for i in range(10_000):
        (folder[renderer] / f"cm-{i:05}.yaml").write_text(CONFIGMAP.format(name=f"cm-{i}"))
    if renderer == "plain":
        (repo / "app" / "cm.yaml").write_text(CONFIGMAP.format(name="local"))
        req = plain_req(repo)
    elif renderer == "helm":
        req = helm_req(repo)
    else:
        req = kustomize_req(repo, "resources: [cm.yaml]\n")
    text = refused(req, LimitExceededError)
    # the file count, not the later object count (max_documents), must be what stops it
    assert re.search(r"more than 10000 (manifest )?files", text), text


@pytest.mark.timeout(60)
def test_5_gzip_bomb_at_default_limits_stops_at_the_input_budget(repo: Path) -> None:
    """A 64 MiB archive member that compresses to about 64 KiB: over the default 50 MiB."""
    import io
    import tarfile

    archive = repo / CHART / "charts" / "bomb-0.1.0.tgz"
    zeros = b"\0" * (64 * MIB)
    with tarfile.open(archive, "w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("bomb/templates/zeros.yaml")
        info.size = len(zeros)
        tar.addfile(info, io.BytesIO(zeros))
    del zeros
    assert archive.stat().st_size < MIB
    text = refused(helm_req(repo), LimitExceededError)
    assert f"{CHART}/charts/bomb-0.1.0.tgz" in text


@pytest.mark.parametrize("renderer", ["helm-template", "kustomize-resource"])
def test_5_mode_000_file_is_refused_even_for_root(repo: Path, renderer: str) -> None:
    # Plain files and Helm value files: test_render_plain / test_render_helm (unreadable ...).
    if renderer == "helm-template":
        locked = repo / CHART / "templates" / "locked.yaml"
        locked.write_text(CONFIGMAP.format(name="locked"))
        req = helm_req(repo)
    else:
        req = kustomize_req(repo, "resources: [cm.yaml, locked.yaml]\n")
        locked = repo / "app" / "locked.yaml"
        locked.write_text(CONFIGMAP.format(name="locked"))
    locked.chmod(0)
    try:
        text = refused(req, RenderError)
    finally:
        locked.chmod(0o644)
    assert "not readable (mode ----------)" in text
    assert locked.name in text


# -- 7. kustomize -------------------------------------------------------------------------------


@pytest.mark.parametrize("generator", ["configMapGenerator", "secretGenerator"])
@pytest.mark.parametrize("key", ["files", "envs"])
@pytest.mark.parametrize("form", ["absolute", "relative", "symlink"])
def test_7_generator_cannot_read_the_token(
    repo: Path, token: Token, generator: str, key: str, form: str
) -> None:
    if form == "absolute":
        entry = SA_TOKEN_PATH
    elif form == "relative":
        entry = token.relative_from(repo / "app")
    else:
        token.link(repo / "app" / "token", absolute=True)
        entry = "token"
    req = kustomize_req(repo, f"{generator}:\n  - name: stolen\n    {key}: [{entry}]\n")
    text = refused(req, PathEscapeError, token)
    assert "app/" in text  # names the kustomization or the link


def test_7_resource_symlink_to_the_token_is_refused(repo: Path, token: Token) -> None:
    token.link(repo / "app" / "token.yaml", absolute=False)
    refused(kustomize_req(repo, "resources: [cm.yaml, token.yaml]\n"), PathEscapeError, token)


# -- 8. Helm: huge nested values, long and hungry templates -------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_8_deeply_nested_inline_values_are_a_limit_error(repo: Path) -> None:
    text = refused(helm_req(repo, values=nested(10_000)), LimitExceededError)
    assert "values nesting deeper than 128 levels" in text


def test_8_huge_value_file_is_refused_from_its_size(repo: Path) -> None:
    sparse(repo / CHART / "env" / "huge.yaml", 20 * MIB)
    text = refused(helm_req(repo, value_files=("env/huge.yaml",)), LimitExceededError)
    assert f"{CHART}/env/huge.yaml: file is {20 * MIB} bytes, over the limit" in text


def test_8_deeply_nested_value_file_is_a_limit_error(repo: Path) -> None:
    (repo / CHART / "env" / "deep.yaml").write_text("deep: " + "[" * 500 + "]" * 500 + "\n")
    text = refused(helm_req(repo, value_files=("env/deep.yaml",)), LimitExceededError)
    assert "nesting deeper than 128 levels" in text


@pytest.mark.parametrize(
    "values_yaml",
    [
        "deep: " + "[" * 20_000 + "]" * 20_000 + "\n",
        (FIXTURES / "plain" / "alias-bomb" / "bomb.yaml").read_text().split("\ndata:\n")[1],
    ],
    ids=["deep-nesting", "alias-bomb"],
)
def test_8_hostile_chart_values_yaml_fails_inside_helm(repo: Path, values_yaml: str) -> None:
    """The chart's own values.yaml is parsed by Helm (in the worker), which has its own depth and
    alias limits; the render still ends in a RenderError naming the chart."""
    (repo / CHART / "values.yaml").write_text(values_yaml)
    (repo / CHART / "templates" / "dump.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dump\n"
        "data:\n  all: {{ toJson .Values | quote }}\n"
    )
    text = refused(helm_req(repo, limits=RenderLimits(timeout_seconds=30)), RenderError)
    assert "cannot load values.yaml" in text


@pytest.mark.timeout(60)
def test_8_template_allocating_without_bound_is_stopped_by_the_memory_limit(repo: Path) -> None:
    """``until 100000000`` builds an 800 MB slice before the loop starts; without a memory bound the
    worker reaches several GB. The deadline is far away, so only the memory limit can stop it."""
    (repo / CHART / "templates" / "hungry.yaml").write_text(
        "{{- range $i := until 100000000 }}{{- end }}\n"
    )
    limits = RenderLimits(timeout_seconds=50, max_tool_memory_bytes=512 * MIB)
    text = refused(helm_req(repo, limits=limits), LimitExceededError)
    assert "helm template ran out of memory" in text


@pytest.mark.timeout(60)
def test_8_long_loop_is_killed_at_the_deadline_with_a_clear_error(repo: Path) -> None:
    # Ten billion empty iterations and no allocation: only the deadline stops this one.
    (repo / CHART / "templates" / "slow.yaml").write_text(
        "{{- range $i := until 100000 }}{{- range $j := until 100000 }}{{- end }}{{- end }}\n"
    )
    text = refused(helm_req(repo, limits=RenderLimits(timeout_seconds=2)), LimitExceededError)
    assert "helm template did not finish before the render deadline" in text
    assert f"{CHART}: " in text
