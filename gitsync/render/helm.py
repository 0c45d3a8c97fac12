"""Helm source: render a chart in the repository with the real Helm engine (``helm_python``).

Before Helm sees anything, the chart directory is walked (``TreeBudget``): a symlink that resolves
outside the repository - a ``values.yaml`` pointing at ``/etc/passwd`` - is a ``PathEscapeError``,
and the total size including the *decompressed* size of ``.tgz`` subcharts in ``charts/`` is
bounded, so a gzip bomb stops at the budget. Value files are resolved relative to the chart
directory and may climb with ``..`` (``../common/values.yaml`` is a common layout) as long as
their real path stays inside the repository; they are parsed with the gitsync safe YAML loader,
not Helm's, so alias bombs are refused here too.

Values are layered like Argo CD: value files in order, then inline ``values``, then ``--set``
expressions; maps merge key by key, anything else is replaced (Helm's own coalescing then layers
the result over the chart's defaults, and a ``null`` removes a default).

The render itself happens in a child process (``helm_worker``) so the deadline and output cap can
be enforced by killing it. The output keeps what ``helm template --include-crds`` would give:
CRDs from ``crds/`` (chart and subcharts) first, then templates in path order; ``NOTES.txt``,
partials and templates that render to nothing are skipped; hook objects (``helm.sh/hook``) are
kept and marked, because the sync layer decides what to do with them. ``.Release.Namespace`` is the
request namespace (Helm's ``default`` when empty); objects are not otherwise namespaced here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python

from gitsync.render.confinement import Deadline, Repo, TreeBudget, read_bounded
from gitsync.render.errors import LimitExceededError, PathEscapeError, RenderError
from gitsync.render.manifest import RenderedManifest, to_manifests
from gitsync.render.options import HelmOptions, RenderLimits
from gitsync.render.safe_yaml import check_depth, load_yaml_documents, load_yaml_with_lines
from gitsync.render.tool_process import run_tool, scrubbed_env

CHART_FILE = "Chart.yaml"
_SKIPPED_TEMPLATES = ("NOTES.txt",)
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


def _value_file(repo: Repo, chart_dir: Path, entry: str, chart_name: str) -> Path:
    if "://" in entry:
        raise RenderError(
            f"valueFiles entry {entry!r}: remote value files are not supported", source=chart_name
        )
    if os.path.isabs(entry):
        raise PathEscapeError(f"valueFiles entry {entry!r} is an absolute path", source=chart_name)
    real = os.path.realpath(chart_dir / entry)
    if not repo.contains(real):
        raise PathEscapeError(
            f"valueFiles entry {entry!r} resolves outside the repository", source=chart_name
        )
    if not os.path.exists(real):
        raise RenderError(f"valueFiles entry {entry!r} does not exist", source=chart_name)
    return Path(real)


def compose_values(
    repo: Repo, chart_dir: Path, options: HelmOptions, limits: RenderLimits
) -> dict[str, Any]:
    chart_name = repo.rel(chart_dir)
    values: dict[str, Any] = {}
    for entry in options.value_files:
        path = _value_file(repo, chart_dir, entry, chart_name)
        name = repo.rel(path)
        docs = load_yaml_documents(
            read_bounded(path, name=name, max_bytes=limits.max_bytes), source=name, limits=limits
        )
        if len(docs) > 1:
            raise RenderError("a values file must hold a single YAML document", source=name)
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
    for expression in options.set_values:
        try:
            parsed = helm_python.parse_set_string(expression)
        except helm_python.HelmError as exc:
            raise RenderError(
                f"invalid set value {expression!r}: {exc}", source=chart_name
            ) from exc
        check_depth(parsed, source=chart_name, max_depth=limits.max_depth, what="set value")
        values = merge_values(values, parsed)
    return values


def _worker_env_path() -> str:
    """PYTHONPATH for the worker: where this gitsync package is, whether installed or not."""
    return os.fspath(Path(__file__).resolve().parents[2])


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
    argv = [sys.executable, "-m", "gitsync.render.helm_worker"]
    extra = {"PYTHONPATH": _worker_env_path(), "PYTHONDONTWRITEBYTECODE": "1"}
    with scrubbed_env(extra) as env:
        result = run_tool(
            argv,
            env=env,
            cwd=env["HOME"],
            stdin=payload,
            timeout=deadline.remaining(),
            max_output=2 * limits.max_bytes + 1024 * 1024,
            max_memory=limits.max_tool_memory_bytes,
            what="helm template",
            source=chart_name,
        )
    if result.returncode != 0:
        raise RenderError(f"helm worker failed: {result.stderr.strip()[-2000:]}", source=chart_name)
    try:
        reply: dict[str, Any] = json.loads(result.stdout)
    except ValueError as exc:
        raise RenderError("helm worker returned malformed output", source=chart_name) from exc
    return reply


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
    values = compose_values(repo, chart_dir, options, limits)
    deadline.check("composing values")
    reply = _run_worker(
        {
            "chart_dir": os.fspath(chart_dir),
            "values": values,
            "release_name": options.release_name,
            "namespace": namespace,
            "max_bytes": limits.max_bytes,
        },
        chart_name,
        limits,
        deadline,
    )
    if "error" in reply:
        message = str(reply["error"]).replace(f"{repo.root}{os.sep}", "")
        if reply.get("limit"):
            raise LimitExceededError(message, source=chart_name)
        source, line = _error_location(message, chart_name)
        raise RenderError(f"helm template failed: {message}", source=source, line=line)
    manifests: list[RenderedManifest] = []
    rendered: list[tuple[str, str]] = [
        (_template_source(c["filename"]), c["data"]) for c in reply["crds"]
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
