"""The dependencies a chart in Git declares, and the chart directory Helm renders with them.

A chart whose ``Chart.yaml`` lists a dependency from a chart repository usually keeps no copy of
it: ``helm dependency build`` fetches it into ``charts/`` before ``helm template``. Helm's render
itself ignores a dependency that is not in ``charts/``, so without that step the chart renders
without its subchart - for a wrapper chart, nothing at all - and the sync reports success. So:

* ``read_dependencies`` parses ``Chart.yaml`` (and ``Chart.lock`` when present: its exact
  versions, after Helm's own check that the lock's ``digest`` matches the declared dependencies)
  and says, for each dependency not already vendored in ``charts/``, where it comes from. The
  engine fetches the remote ones (``https://``, ``http://``, ``oci://``) through its chart
  adapters and hands them back as ``FetchedDependency`` in ``HelmOptions.dependencies``; their
  digests are then part of the render cache key like every other option.
* ``assemble_chart`` builds a render-private copy of the chart (the checkout and the chart store
  are read-only and shared) with every dependency placed in its ``charts/``: fetched ones from
  the store, ``file://`` ones from the repository (their real path must stay inside it, like a
  value file's). A dependency that is neither vendored, fetched nor local is a ``RenderError``
  naming it: never a silent render without it. ``alias``, ``condition`` and ``tags`` are left to
  Helm, which applies them once the subchart is present.

Pure apart from reading the checkout and copying files; bounded by ``RenderLimits`` (the copy is
walked by ``TreeBudget`` again, archives measured decompressed) and ``MAX_DEPENDENCIES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitsync.render.confinement import Deadline, Repo, TreeBudget, read_bounded
from gitsync.render.errors import LimitExceededError, PathEscapeError, RenderError
from gitsync.render.options import FetchedDependency, RenderLimits
from gitsync.render.safe_yaml import load_yaml_documents

CHART_FILE = "Chart.yaml"
LOCK_FILE = "Chart.lock"
MAX_DEPENDENCIES = 64
REMOTE_SCHEMES = ("https://", "http://", "oci://")
LOCAL_SCHEME = "file://"
_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def shown_repository(url: str) -> str:
    """A dependency's repository fit for an error message: any ``user:password@`` goes (the
    render layer sits below the source layer's ``redact_url``; same spelling)."""
    return _USERINFO.sub("***@", url)


@dataclass(frozen=True)
class ChartDependency:
    """One ``dependencies`` entry of ``Chart.yaml``; ``version`` is the lock's exact version
    when ``Chart.lock`` lists it, else the declared version or range."""

    name: str
    repository: str
    version: str
    locked: bool = False

    @property
    def is_remote(self) -> bool:
        return self.repository.lower().startswith(REMOTE_SCHEMES)

    @property
    def is_local(self) -> bool:
        return self.repository.lower().startswith(LOCAL_SCHEME)


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise RenderError(f"{where}: {key} must be a string", source=CHART_FILE)
    return str(value)


def _entries(document: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise RenderError("must be a YAML mapping", source=source)
    raw = document.get("dependencies") or []
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise RenderError("dependencies must be a list of mappings", source=source)
    if len(raw) > MAX_DEPENDENCIES:
        raise LimitExceededError(
            f"{len(raw)} dependencies, over the limit of {MAX_DEPENDENCIES}", source=source
        )
    return raw


def _load(path: Path, name: str, limits: RenderLimits) -> Any:
    docs = load_yaml_documents(
        read_bounded(path, name=name, max_bytes=limits.max_bytes), source=name, limits=limits
    )
    return docs[0] if docs else {}


def _go_json(value: Any) -> str:
    """JSON as Go's ``encoding/json`` writes it: compact, ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _helm_dependency(entry: dict[str, Any]) -> dict[str, Any]:
    """One dependency as Helm's ``chart.Dependency`` marshals it (field order, omitempty)."""
    out: dict[str, Any] = {"name": entry.get("name") or ""}
    if entry.get("version"):
        out["version"] = entry["version"]
    out["repository"] = entry.get("repository") or ""
    for key in ("condition", "tags", "enabled", "import-values", "alias"):
        if entry.get(key):
            out[key] = entry[key]
    return out


def lock_digest(declared: list[dict[str, Any]], locked: list[dict[str, Any]]) -> str:
    """Helm's ``HashReq``: the digest ``Chart.lock`` records for the dependencies it locked,
    so a ``Chart.yaml`` edited after ``helm dependency update`` is noticed."""
    data = _go_json(
        [[_helm_dependency(e) for e in declared], [_helm_dependency(e) for e in locked]]
    )
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def _digest_checkable(declared: list[dict[str, Any]]) -> bool:
    """Whether ``lock_digest`` reproduces Helm's: not when an ``import-values`` entry is a
    mapping (``child``/``parent``), whose encoding in Helm's hash is not reproduced here; the
    lock's versions are used all the same."""
    return not any(
        isinstance(value, dict) for e in declared for value in (e.get("import-values") or [])
    )


def read_dependencies(repo: Repo, chart_dir: Path, limits: RenderLimits) -> list[ChartDependency]:
    """The dependencies of the chart in ``chart_dir`` that are not vendored in its ``charts/``,
    with the lock's exact versions when ``Chart.lock`` is present. The lock is read (and its
    digest checked, as ``helm dependency build`` does) only when a remote dependency has to be
    fetched: a chart whose ``charts/`` holds everything renders as Helm renders it."""
    chart_name = repo.rel(chart_dir)
    chart_file = f"{chart_name}/{CHART_FILE}"
    declared = _entries(_load(chart_dir / CHART_FILE, chart_file, limits), chart_file)
    missing: list[ChartDependency] = []
    for index, entry in enumerate(declared):
        where = f"dependencies[{index}]"
        name = _text(entry, "name", where)
        if not _CHART_NAME.match(name):
            raise RenderError(f"{where}: name {name!r} is not a chart name", source=chart_file)
        if not vendored(chart_dir, name):
            missing.append(
                ChartDependency(
                    name, _text(entry, "repository", where), _text(entry, "version", where)
                )
            )
    if not any(d.is_remote for d in missing) or not (chart_dir / LOCK_FILE).is_file():
        return missing
    locked = _locked_versions(chart_dir, f"{chart_name}/{LOCK_FILE}", declared, limits)
    return [
        dataclasses.replace(d, version=locked[(d.name, d.repository)], locked=True)
        if (d.name, d.repository) in locked
        else d
        for d in missing
    ]


def _locked_versions(
    chart_dir: Path, lock_file: str, declared: list[dict[str, Any]], limits: RenderLimits
) -> dict[tuple[str, str], str]:
    """(name, repository) -> the exact version ``Chart.lock`` pinned, once its digest says it
    was made for these ``declared`` dependencies."""
    lock = _load(chart_dir / LOCK_FILE, lock_file, limits)
    locked = _entries(lock, lock_file)
    if _digest_checkable(declared) and lock.get("digest") != lock_digest(declared, locked):
        raise RenderError(
            f"{LOCK_FILE} is out of sync with {CHART_FILE} (its digest does not match the "
            "declared dependencies); run helm dependency update and commit both",
            source=lock_file,
        )
    return {
        (_text(e, "name", lock_file), _text(e, "repository", lock_file)): _text(
            e, "version", lock_file
        )
        for e in locked
    }


def vendored(chart_dir: Path, name: str) -> bool:
    """Whether ``charts/`` already holds ``name``: a directory of that name or an archive
    ``name-<version>.tgz`` (what ``helm dependency build`` writes, and what people commit)."""
    charts = chart_dir / "charts"
    if (charts / name / CHART_FILE).is_file():
        return True
    if not charts.is_dir():
        return False
    version_start = re.compile(re.escape(name) + r"-v?\d")
    return any(p.name.endswith(".tgz") and version_start.match(p.name) for p in charts.iterdir())


def _local_dependency(repo: Repo, chart_dir: Path, dependency: ChartDependency) -> Path:
    """The real directory of a ``file://`` dependency, which must stay inside the repository."""
    where = f"{repo.rel(chart_dir)}/{CHART_FILE}"
    relative = dependency.repository[len(LOCAL_SCHEME) :]
    if os.path.isabs(relative):
        raise PathEscapeError(
            f"dependency {dependency.name!r}: {dependency.repository!r} is an absolute path",
            source=where,
        )
    real = os.path.realpath(chart_dir / relative)
    if not repo.contains(real):
        raise PathEscapeError(
            f"dependency {dependency.name!r}: {dependency.repository!r} resolves outside the "
            "repository",
            source=where,
        )
    if not (Path(real) / CHART_FILE).is_file():
        raise RenderError(
            f"dependency {dependency.name!r}: {dependency.repository!r} holds no {CHART_FILE}",
            source=where,
        )
    return Path(real)


def missing_dependency(dependency: ChartDependency, chart_file: str) -> RenderError:
    """The error for a dependency nothing provided: it would silently be left out."""
    if dependency.is_remote:
        why = "was not fetched"
    elif dependency.repository:
        why = (
            "comes from a repository gitsync cannot fetch (use an https://, http:// or oci:// URL)"
        )
    else:
        why = "names no repository and is not in charts/"
    where = shown_repository(dependency.repository) or "no repository"
    return RenderError(
        f"dependency {dependency.name!r} ({where}) {why}",
        source=chart_file,
    )


def assemble_chart(
    repo: Repo,
    chart_dir: Path,
    fetched: tuple[FetchedDependency, ...],
    work: Path,
    *,
    limits: RenderLimits,
    deadline: Deadline,
) -> Path:
    """``chart_dir`` copied under ``work`` with its missing dependencies in ``charts/``; the
    chart directory itself when nothing is missing. ``chart_dir`` was walked (confined,
    bounded) by the caller, so the copy follows its symlinks; the result is walked again."""
    chart_file = f"{repo.rel(chart_dir)}/{CHART_FILE}"
    missing = read_dependencies(repo, chart_dir, limits)
    if not missing:
        return chart_dir
    by_name = {(f.name, f.repository): f for f in fetched}
    copy = work / chart_dir.name
    shutil.copytree(
        chart_dir,
        copy,
        symlinks=False,
        ignore=shutil.ignore_patterns(".git"),
        copy_function=shutil.copyfile,
    )
    charts = copy / "charts"
    charts.mkdir(exist_ok=True)
    placed: set[str] = set()
    for dependency in missing:
        deadline.check(f"placing dependency {dependency.name!r}")
        if dependency.is_local:
            source = _local_dependency(repo, chart_dir, dependency)
            TreeBudget(repo, limits, deadline).walk(source, measure_archives=True)
            target = f"{dependency.name}-local"
        else:
            found = by_name.get((dependency.name, dependency.repository))
            if found is None:
                raise missing_dependency(dependency, chart_file)
            source = Path(found.path)
            target = f"{dependency.name}-{found.version}"
        if target not in placed:  # two aliases of one chart and version need one copy
            placed.add(target)
            shutil.copytree(source, charts / target, copy_function=shutil.copyfile)
    TreeBudget(Repo.at(work), limits, deadline).walk(copy, measure_archives=True)
    for dirpath, _, _ in os.walk(copy):  # the store's copies are read-only: let them be removed
        Path(dirpath).chmod(0o700)
    return copy
