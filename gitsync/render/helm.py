"""Helm source: render a chart in the repository with the real Helm engine (``helm_python``).

Before Helm sees anything, the chart directory is walked (``TreeBudget``): a symlink that resolves
outside the repository - a ``values.yaml`` pointing at ``/etc/passwd`` - is a ``PathEscapeError``,
and the total size including the *decompressed* size of ``.tgz`` subcharts in ``charts/`` is
bounded, so a gzip bomb stops at the budget. Value files are resolved relative to the chart
directory and may climb with ``..`` (``../common/values.yaml`` is a common layout) as long as
their real path stays inside the repository; they are parsed with the gitsync safe YAML loader,
not Helm's, so alias bombs are refused here too. A ``$REF/path`` entry (``spec.sources``) is read
from that ref source's checkout (``HelmOptions.ref_roots``) and confined to it the same way: no
``..`` or symlink leads out of the ref's checkout, into the chart's or anywhere else.

Values are layered like Argo CD: value files in order (a glob expands in place, in lexical order,
each match checked like a literal entry), then the ``values`` string or the ``valuesObject``, then
``--set`` and ``--set-string`` expressions (Argo's ``parameters``); maps merge key by key, anything
else is replaced (Helm's own coalescing then layers the result over the chart's defaults, and a
``null`` removes a default). The ``values`` string is parsed by the same safe loader as files.

The render itself happens in a child process (``helm_worker``) so the deadline and output cap can
be enforced by killing it. The output keeps what ``helm template --include-crds`` would give:
CRDs from ``crds/`` (chart and subcharts) first, then templates in path order; ``NOTES.txt``,
partials and templates that render to nothing are skipped; hook objects (``helm.sh/hook``) are
kept and marked, because the sync layer decides what to do with them. ``.Release.Namespace`` is the
request namespace (Helm's ``default`` when empty); objects are not otherwise namespaced here.
``skipCrds`` leaves out ``crds/``; ``kubeVersion`` and ``apiVersions`` go to Helm as the render's
``.Capabilities`` (empty: Helm's built-in defaults).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python

from gitsync.render.chart_dependencies import CHART_FILE, assemble_chart
from gitsync.render.confinement import Deadline, Repo, TreeBudget, read_bounded
from gitsync.render.errors import LimitExceededError, PathEscapeError, RenderError
from gitsync.render.manifest import RenderedManifest, to_manifests
from gitsync.render.options import HelmOptions, RenderLimits
from gitsync.render.safe_yaml import check_depth, load_yaml_documents, load_yaml_with_lines
from gitsync.render.tool_process import run_worker

HELM_VALUES = "helm.values"
"""Where errors in Argo CD's ``values`` string point: it lives in the spec, not in a file."""
_SKIPPED_TEMPLATES = ("NOTES.txt",)
_GLOB_CHARS = "*?["
_HELM_LOCATION = re.compile(r"(?P<path>[\w.-]+/(?:[\w.-]+/)*[\w.-]+):(?P<line>\d+)(?::\d+)?")


def merge_values(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``: maps merge, other values replace."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = value
    return merged


def _is_glob(entry: str) -> bool:
    return any(c in entry for c in _GLOB_CHARS)


def _check_entry(entry: str, chart_name: str) -> None:
    """Refuse what a ``valueFiles`` entry, literal or glob, may never be: a URL or an absolute
    path (the checkout is the only place value files come from)."""
    if "://" in entry:
        raise RenderError(
            f"valueFiles entry {entry!r}: remote value files are not supported", source=chart_name
        )
    if os.path.isabs(entry):
        raise PathEscapeError(f"valueFiles entry {entry!r} is an absolute path", source=chart_name)


def _value_file(
    repo: Repo,
    chart_dir: Path,
    entry: str,
    chart_name: str,
    *,
    ignore_missing: bool,
    label: str = "",
) -> Path | None:
    """The real path of one literal ``valueFiles`` entry; ``None`` when it is missing and
    ``ignoreMissingValueFiles`` is set. ``label``: the entry as written, when ``entry`` is
    the part of a ``$REF/...`` entry below the ref's checkout."""
    _check_entry(entry, chart_name)
    label = label or entry
    real = os.path.realpath(chart_dir / entry)
    if not repo.contains(real):
        raise PathEscapeError(
            f"valueFiles entry {label!r} resolves outside the repository", source=chart_name
        )
    if not os.path.exists(real):
        if ignore_missing:
            return None
        raise RenderError(f"valueFiles entry {label!r} does not exist", source=chart_name)
    return Path(real)


def _ref_entry(entry: str, options: HelmOptions, chart_name: str) -> tuple[Repo, str] | None:
    """For a ``$REF/path`` entry (``spec.sources``), the ref's checkout and ``path`` below it;
    None for a plain entry. The spec refuses ``..`` in ``path``; the checkout is still the
    confinement root, so a symlink in the ref's repository cannot lead out of it either."""
    if not entry.startswith("$"):
        return None
    name, _, rest = entry[1:].partition("/")
    root = options.ref_roots.get(name)
    if root is None:
        raise RenderError(
            f"valueFiles entry {entry!r} names ${name}, but no source has ref: {name}",
            source=chart_name,
        )
    return Repo.at(root), rest or "."


def _display_name(repo: Repo, path: Path, options: HelmOptions) -> str:
    """How errors name a value file: repository-relative, or ``$REF/path`` for a ref's file."""
    if repo.contains(path):
        return repo.rel(path)
    for name, root in options.ref_roots.items():
        ref_repo = Repo.at(root)
        if ref_repo.contains(path):
            return f"${name}/{ref_repo.rel(path)}"
    return path.name


@dataclass
class _ValueFileGlob:
    """Expands one ``valueFiles`` glob like Argo CD (doublestar): ``*``, ``?`` and ``[...]``
    within one path segment, ``**`` for zero or more directories. Matches come in lexical order,
    and under ``**`` a directory's own files come before its subdirectories'. Every directory
    listed and every file matched must resolve inside the repository; ``**`` does not descend
    into symlinked directories (no cycles), and the directories listed count against
    ``max_files`` and the deadline, so a pattern over a huge tree stops at the budget."""

    repo: Repo
    entry: str
    chart_name: str
    limits: RenderLimits
    deadline: Deadline
    listed: int = 0
    label: str = ""
    """The entry as written, when ``entry`` is the part of a ``$REF/...`` entry below it."""

    def matches(self, chart_dir: Path) -> list[Path]:
        _check_entry(self.entry, self.chart_name)
        segments = [s for s in PurePosixPath(self.entry).parts if s != "."]
        return list(self._expand(chart_dir, segments))

    def _escape(self, path: Path) -> PathEscapeError:
        return PathEscapeError(
            f"valueFiles entry {self.label or self.entry!r} matches {self.repo.rel(path)!r}, "
            "which resolves "
            "outside the repository",
            source=self.chart_name,
        )

    def _names(self, directory: Path) -> list[str]:
        real = os.path.realpath(directory)
        if not self.repo.contains(real):
            raise self._escape(directory)
        self.deadline.check(f"expanding valueFiles entry {self.entry!r}")
        try:
            names = sorted(os.listdir(real))
        except OSError:
            return []  # not a directory, or gone: nothing matches below it
        self.listed += len(names)
        if self.listed > self.limits.max_files:
            raise LimitExceededError(
                f"valueFiles entry {self.entry!r} lists more than {self.limits.max_files} files",
                source=self.chart_name,
            )
        return names

    def _expand(self, directory: Path, segments: list[str]) -> Iterator[Path]:
        head, rest = segments[0], segments[1:]
        if head == "**":
            yield from self._expand(directory, rest or ["*"])  # a trailing ** matches files
            for name in self._names(directory):
                child = directory / name
                if child.is_dir() and not child.is_symlink() and name != ".git":
                    yield from self._expand(child, segments)
            return
        if not _is_glob(head):
            candidates = [directory / head]
        else:
            candidates = [
                directory / name
                for name in self._names(directory)
                if fnmatch.fnmatchcase(name, head) and name != ".git"
            ]
        for candidate in candidates:
            if rest:
                if candidate.is_dir():
                    yield from self._expand(candidate, rest)
            elif candidate.is_file():
                real = os.path.realpath(candidate)
                if not self.repo.contains(real):
                    raise self._escape(candidate)
                yield Path(real)


def resolve_value_files(
    repo: Repo, chart_dir: Path, options: HelmOptions, limits: RenderLimits, deadline: Deadline
) -> list[Path]:
    """The value files to layer, in order: literal entries where they are listed, globs
    expanded in place. As in Argo CD a file is used once: a literal entry takes it to its own
    position even when an earlier glob matched it, and a later glob skips what an earlier one
    took. A glob matching nothing, like a missing literal file, is an error naming the entry
    unless ``ignoreMissingValueFiles`` is set."""
    chart_name = repo.rel(chart_dir)
    ignore = options.ignore_missing_value_files
    resolved: list[Path | list[Path]] = []
    literal: set[Path] = set()
    for entry in options.value_files:
        at_ref = _ref_entry(entry, options, chart_name)
        # a $REF/path entry is read from the ref's checkout, and confined to it
        base_repo, base_dir, rel = (
            (at_ref[0], at_ref[0].root, at_ref[1])
            if at_ref
            else (
                repo,
                chart_dir,
                entry,
            )
        )
        if _is_glob(entry):
            found = _ValueFileGlob(
                base_repo, rel, chart_name, limits, deadline, label=entry
            ).matches(base_dir)
            if not found and not ignore:
                raise RenderError(f"valueFiles entry {entry!r} matched no files", source=chart_name)
            resolved.append(found)
        else:
            path = _value_file(
                base_repo, base_dir, rel, chart_name, ignore_missing=ignore, label=entry
            )
            if path is not None:
                literal.add(path)
                resolved.append(path)
    files: list[Path] = []
    taken: set[Path] = set()
    for item in resolved:
        if isinstance(item, Path):
            files.append(item)
            continue
        for path in item:
            if path not in literal and path not in taken:
                taken.add(path)
                files.append(path)
    return files


def _set_values(
    expressions: tuple[str, ...], parse: Callable[[str], dict[str, Any]], chart_name: str
) -> Iterator[dict[str, Any]]:
    for expression in expressions:
        try:
            yield parse(expression)
        except helm_python.HelmError as exc:
            raise RenderError(
                f"invalid set value {expression!r}: {exc}", source=chart_name
            ) from exc


def compose_values(
    repo: Repo,
    chart_dir: Path,
    options: HelmOptions,
    limits: RenderLimits,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    chart_name = repo.rel(chart_dir)
    values: dict[str, Any] = {}
    files = resolve_value_files(
        repo, chart_dir, options, limits, deadline or Deadline(limits.timeout_seconds)
    )
    for path in files:
        name = _display_name(repo, path, options)
        docs = load_yaml_documents(
            read_bounded(path, name=name, max_bytes=limits.max_bytes), source=name, limits=limits
        )
        if len(docs) > 1:
            raise RenderError("a values file must hold a single YAML document", source=name)
        if docs:
            values = merge_values(values, docs[0])
    if options.values_yaml:
        docs = load_yaml_documents(options.values_yaml, source=HELM_VALUES, limits=limits)
        if len(docs) > 1:
            raise RenderError("must hold a single YAML document", source=HELM_VALUES)
        if docs:
            values = merge_values(values, docs[0])
    if options.values:
        check_depth(options.values, source=chart_name, max_depth=limits.max_depth, what="values")
        try:
            inline = json.loads(json.dumps(dict(options.values)))
        except (TypeError, ValueError) as exc:
            raise RenderError(
                f"inline values are not JSON-compatible: {exc}", source=chart_name
            ) from exc
        values = merge_values(values, inline)
    # Helm applies --set before --set-string, so a forceString parameter wins a tie
    for parsed in (
        *_set_values(options.set_values, helm_python.parse_set_string, chart_name),
        *_set_values(options.set_string_values, helm_python.parse_set_string_values, chart_name),
    ):
        check_depth(parsed, source=chart_name, max_depth=limits.max_depth, what="set value")
        values = merge_values(values, parsed)
    return values


def _template_source(path: str) -> str:
    """``mychart/templates/x.yaml`` -> ``helm:templates/x.yaml`` (chart name dropped)."""
    parts = PurePosixPath(path).parts
    return "helm:" + "/".join(parts[1:] if len(parts) > 1 else parts)


def _error_location(message: str, chart_name: str) -> tuple[str, int | None]:
    """Helm reports ``web/templates/x.yaml:12:3``; point at the file in the repository."""
    match = _HELM_LOCATION.search(message)
    if match is None:
        return chart_name, None
    inside_chart = match["path"].split("/", 1)[1]
    return f"{chart_name}/{inside_chart}", int(match["line"])


def _run_worker(
    request: dict[str, Any], chart_name: str, limits: RenderLimits, deadline: Deadline
) -> dict[str, Any]:
    try:
        payload = json.dumps(request).encode()
    except (TypeError, ValueError) as exc:
        raise RenderError(f"values are not JSON-compatible: {exc}", source=chart_name) from exc
    return run_worker(
        "gitsync.render.helm_worker",
        payload,
        timeout=deadline.remaining(),
        max_output=2 * limits.max_bytes + 1024 * 1024,
        max_memory=limits.max_tool_memory_bytes,
        what="helm template",
        worker="helm",
        source=chart_name,
    )


def render_helm(
    repo: Repo,
    chart_dir: Path,
    options: HelmOptions,
    *,
    namespace: str,
    limits: RenderLimits,
    deadline: Deadline,
) -> list[RenderedManifest]:
    chart_name = repo.rel(chart_dir)
    if not (chart_dir / CHART_FILE).is_file():
        raise RenderError(f"no {CHART_FILE} in the directory", source=chart_name)
    try:
        helm_python.validate_release_name(options.release_name)
    except helm_python.HelmError as exc:
        raise RenderError(
            f"invalid release name {options.release_name!r}: {exc}", source=chart_name
        ) from exc
    TreeBudget(repo, limits, deadline).walk(chart_dir, measure_archives=True)
    values = compose_values(repo, chart_dir, options, limits, deadline)
    deadline.check("composing values")
    with tempfile.TemporaryDirectory(prefix="gitsync-chart-") as work:
        # the checkout is read-only and shared: dependencies go into a private copy
        rendered_dir = assemble_chart(
            repo, chart_dir, options.dependencies, Path(work), limits=limits, deadline=deadline
        )
        reply = _run_worker(
            {
                "chart_dir": os.fspath(rendered_dir),
                "values": values,
                "release_name": options.release_name,
                "namespace": namespace,
                "kube_version": options.kube_version,
                "api_versions": list(options.api_versions),
                "max_bytes": limits.max_bytes,
            },
            chart_name,
            limits,
            deadline,
        )
        if "error" in reply:  # paths in the private copy are shown as the chart's own
            reply["error"] = str(reply["error"]).replace(f"{work}{os.sep}", "")
    if "error" in reply:
        message = str(reply["error"]).replace(f"{repo.root}{os.sep}", "")
        if reply.get("limit"):
            raise LimitExceededError(message, source=chart_name)
        source, line = _error_location(message, chart_name)
        raise RenderError(f"helm template failed: {message}", source=source, line=line)
    manifests: list[RenderedManifest] = []
    rendered: list[tuple[str, str]] = [
        (_template_source(c["filename"]), c["data"]) for c in reply["crds"] if not options.skip_crds
    ]
    rendered += [
        (_template_source(path), text)
        for path, text in sorted(reply["templates"].items())
        if PurePosixPath(path).name not in _SKIPPED_TEMPLATES
        and not PurePosixPath(path).name.startswith("_")
        and text.strip()
    ]
    for source, text in rendered:
        deadline.check("parsing Helm output")
        docs = load_yaml_with_lines(text, source=source, limits=limits)
        manifests.extend(
            to_manifests(
                docs, source=source, max_documents=limits.max_documents, already=len(manifests)
            )
        )
    return manifests
