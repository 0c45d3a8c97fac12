"""Jsonnet files of a directory app, evaluated in a bounded child process like Argo CD does.

Argo CD treats every ``*.jsonnet`` file of a directory app as Jsonnet and accepts what it evaluates
to: one object, an array of objects, or a ``kind: List``. ``*.libsonnet`` files are only ever
imported. Evaluation runs in ``jsonnet_worker`` under the render's deadline, an output cap of
``max_bytes`` and the tool memory limit, because a Jsonnet program can loop or allocate without
end; imports are confined to the checkout there. The output is then held to the same depth and
object-count limits as YAML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitsync.render.confinement import Deadline, Repo
from gitsync.render.errors import LimitExceededError, RenderError
from gitsync.render.options import JsonnetOptions, JsonnetVar, RenderLimits
from gitsync.render.safe_yaml import check_depth
from gitsync.render.tool_process import run_worker

JSONNET_SUFFIX = ".jsonnet"
_LIBS = "spec.source.directory.jsonnet.libs"


def _split(entries: tuple[JsonnetVar, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Argo's ``{name, value, code}`` list as jsonnet's string and code maps."""
    strings = {v.name: v.value for v in entries if not v.code}
    codes = {v.name: v.value for v in entries if v.code}
    return strings, codes


def _libs(repo: Repo, options: JsonnetOptions) -> list[str]:
    """The ``libs`` directories, each repository-relative and resolved inside the checkout."""
    return [str(repo.app_dir(lib)) for lib in options.libs]


def evaluate_jsonnet(
    repo: Repo,
    files: list[Path],
    options: JsonnetOptions,
    limits: RenderLimits,
    deadline: Deadline,
) -> list[list[tuple[int, int, dict[str, Any]]]]:
    """Each file's objects as ``(document, line, object)`` triples, in the order of ``files``."""
    if not files:
        return []
    ext_vars, ext_codes = _split(options.ext_vars)
    tla_vars, tla_codes = _split(options.tlas)
    request = {
        "root": str(repo.root),
        "files": [str(f) for f in files],
        "libs": _libs(repo, options),
        "ext_vars": ext_vars,
        "ext_codes": ext_codes,
        "tla_vars": tla_vars,
        "tla_codes": tla_codes,
        "max_bytes": limits.max_bytes,
        "max_input_bytes": limits.max_input_bytes,
    }
    source = repo.rel(files[0].parent)
    reply = run_worker(
        "gitsync.render.jsonnet_worker",
        json.dumps(request).encode(),
        timeout=deadline.remaining(),
        max_output=2 * limits.max_bytes + 1024 * 1024,
        max_memory=limits.max_tool_memory_bytes,
        what="jsonnet",
        worker="jsonnet",
        source=source,
    )
    if "error" in reply:
        error = LimitExceededError if reply["limit"] else RenderError
        raise error(f"jsonnet: {reply['error']}", source=repo.rel(reply["file"]))
    return [
        _documents(text, source=repo.rel(path), limits=limits)
        for path, text in zip(files, reply["outputs"], strict=True)
    ]


def _documents(
    text: str, *, source: str, limits: RenderLimits
) -> list[tuple[int, int, dict[str, Any]]]:
    """One object, or an array of objects, as ``to_manifests`` input (Lists it flattens)."""
    value = json.loads(text)
    check_depth(value, source=source, max_depth=limits.max_depth, what="Jsonnet output")
    items = value if isinstance(value, list) else [value]
    documents: list[tuple[int, int, dict[str, Any]]] = []
    for index, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise RenderError(
                f"Jsonnet output item {index} is a {type(item).__name__}, not an object",
                source=source,
            )
        documents.append((index, 1, item))
    return documents
