"""Plain-directory source: YAML and JSON files in a directory, like Argo CD's ``directory`` type.

Order is deterministic (files sorted by their path relative to the app directory) so two renders
of one commit are identical and error messages are reproducible. Hidden files and directories are
skipped (``.git``, editor droppings, CI config). Directory symlinks are checked but not followed:
following them invites cycles and duplicate objects, and a repository that wants shared manifests
has kustomize for that. File symlinks are followed only after their resolved target is proven
to be inside the checkout.

``*.jsonnet`` files are evaluated (``render.jsonnet``), as Argo CD does in every directory app;
``*.libsonnet`` files are only imported by them.

All sizes are summed from ``stat`` before the first byte is parsed, so a 50 MB file is refused
without being read.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from gitsync.render.confinement import Deadline, Repo, check_readable, read_bounded
from gitsync.render.errors import LimitExceededError, RenderError
from gitsync.render.jsonnet import JSONNET_SUFFIX, evaluate_jsonnet
from gitsync.render.manifest import RenderedManifest, to_manifests
from gitsync.render.options import DirectoryOptions, RenderLimits
from gitsync.render.safe_yaml import check_depth, load_yaml_with_lines

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json", JSONNET_SUFFIX)
_INCLUDE = "spec.source.directory.include"
_EXCLUDE = "spec.source.directory.exclude"


def _group_end(pattern: str, start: int) -> int:
    """The index of the ``}`` closing the ``{`` at ``start``, or -1 when it is unbalanced."""
    depth = 0
    for end in range(start, len(pattern)):
        if pattern[end] == "{":
            depth += 1
        elif pattern[end] == "}":
            depth -= 1
            if depth == 0:
                return end
    return -1


def _options(body: str) -> list[str]:
    """A group's body split at its top-level commas."""
    options: list[str] = []
    depth, last = 0, 0
    for i, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            options.append(body[last:i])
            last = i + 1
    options.append(body[last:])
    return options


def count_alternatives(pattern: str, *, limit: int) -> int:
    """How many patterns ``expand_braces(pattern)`` would give, without expanding them.

    The count follows the pattern's structure: a sequence multiplies the counts of its groups,
    a group adds the counts of its options. It stops at ``limit + 1``, so ``{a,b}`` repeated
    a thousand times costs a thousand steps, not 2**1000 patterns or a 300-digit integer.
    """
    total = 1
    position = 0
    while (start := pattern.find("{", position)) >= 0:
        end = _group_end(pattern, start)
        if end < 0:
            break  # unbalanced: the rest is literal, as in expand_braces
        group = sum(count_alternatives(o, limit=limit) for o in _options(pattern[start + 1 : end]))
        total = min(total * group, limit + 1)
        position = end + 1
    return total


def expand_braces(pattern: str) -> list[str]:
    """``{a,b}`` alternatives, as Argo CD's glob supports; fnmatch has no braces. Callers bound
    the result with ``count_alternatives`` first: the expansion is exponential in the groups."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    end = _group_end(pattern, start)
    if end < 0:
        return [pattern]  # unbalanced: treat literally
    prefix, rest = pattern[:start], pattern[end + 1 :]
    return [
        p for opt in _options(pattern[start + 1 : end]) for p in expand_braces(prefix + opt + rest)
    ]


_MAX_ALTERNATIVES = 256
_MAX_PATTERN_LENGTH = 1024
_MAX_NESTING = 16  # bounds the recursion of the count and of the expansion


def _nesting(pattern: str) -> int:
    deepest = depth = 0
    for ch in pattern:
        if ch == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "}" and depth:
            depth -= 1
    return deepest


class Glob:
    """An include/exclude pattern, brace-expanded once; matches the file name or the path
    relative to the app directory. The alternatives are counted before they are expanded."""

    def __init__(self, pattern: str, *, field: str) -> None:
        self.pattern = pattern
        if len(pattern) > _MAX_PATTERN_LENGTH:
            raise LimitExceededError(f"{field} is longer than {_MAX_PATTERN_LENGTH} characters")
        if _nesting(pattern) > _MAX_NESTING:
            raise LimitExceededError(f"{field} nests braces more than {_MAX_NESTING} deep")
        if count_alternatives(pattern, limit=_MAX_ALTERNATIVES) > _MAX_ALTERNATIVES:
            raise LimitExceededError(
                f"{field} {pattern[:80]!r} has more than {_MAX_ALTERNATIVES} brace alternatives"
            )
        self.alternatives = expand_braces(pattern)

    def matches(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        return any(fnmatchcase(name, p) or fnmatchcase(rel_path, p) for p in self.alternatives)


def _candidates(
    repo: Repo, app_dir: Path, options: DirectoryOptions, limits: RenderLimits, deadline: Deadline
) -> list[Path]:
    """Manifest files sorted by relative path; escaping symlinks in the walked scope are errors."""
    include = Glob(options.include, field=_INCLUDE) if options.include else None
    exclude = Glob(options.exclude, field=_EXCLUDE) if options.exclude else None
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(app_dir, followlinks=False):
        deadline.check("listing files")
        for dname in dirnames:
            full = Path(dirpath, dname)
            if full.is_symlink():
                repo.resolve(full, name=repo.rel(full))
        dirnames[:] = (
            sorted(d for d in dirnames if not d.startswith(".")) if options.recurse else []
        )
        for fname in sorted(filenames):
            full = Path(dirpath, fname)
            if full.is_symlink():
                repo.resolve(full, name=repo.rel(full))
            if fname.startswith(".") or not fname.endswith(MANIFEST_SUFFIXES):
                continue
            rel = Path(os.path.relpath(full, app_dir)).as_posix()
            if include is not None and not include.matches(rel):
                continue
            if exclude is not None and exclude.matches(rel):
                continue
            found.append((rel, full))
            if len(found) > limits.max_files:
                raise LimitExceededError(
                    f"more than {limits.max_files} manifest files", source=repo.rel(app_dir)
                )
    found.sort(key=lambda item: item[0])
    return [full for _, full in found]


def _parse_json(
    data: bytes, *, source: str, limits: RenderLimits
) -> list[tuple[int, int, dict[str, Any]]]:
    if not data.strip():
        return []
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise RenderError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from exc
    except (ValueError, RecursionError) as exc:
        raise RenderError(f"invalid JSON: {str(exc)[:200]}", source=source) from exc
    check_depth(doc, source=source, max_depth=limits.max_depth, what="JSON")
    if not isinstance(doc, dict):
        raise RenderError("document 1 is not a JSON object", source=source, line=1)
    return [(1, 1, doc)]


def _read(full: Path, name: str, limits: RenderLimits) -> bytes:
    return read_bounded(full, name=name, max_bytes=limits.max_bytes)


def render_directory(
    repo: Repo, app_dir: Path, options: DirectoryOptions, limits: RenderLimits, deadline: Deadline
) -> list[RenderedManifest]:
    files = _candidates(repo, app_dir, options, limits, deadline)
    total = 0
    for full in files:  # sizes first: nothing is read if the total is over the limit
        name = repo.rel(full)
        try:
            st = full.stat()
        except OSError as exc:
            raise RenderError(f"cannot stat file: {exc.strerror}", source=name) from exc
        if not stat.S_ISREG(st.st_mode):
            raise RenderError("not a regular file", source=name)
        check_readable(st, name)
        total += st.st_size
        if total > limits.max_bytes:
            raise LimitExceededError(
                f"manifests exceed the limit of {limits.max_bytes} bytes", source=name
            )
    programs = [full for full in files if full.name.endswith(JSONNET_SUFFIX)]
    evaluated = dict(
        zip(
            programs,
            evaluate_jsonnet(repo, programs, options.jsonnet, limits, deadline),
            strict=True,
        )
    )
    manifests: list[RenderedManifest] = []
    for full in files:
        deadline.check("parsing manifests")
        name = repo.rel(full)
        if full in evaluated:
            docs = evaluated[full]
        elif full.name.endswith(".json"):
            docs = _parse_json(_read(full, name, limits), source=name, limits=limits)
        else:
            docs = load_yaml_with_lines(_read(full, name, limits), source=name, limits=limits)
        manifests.extend(
            to_manifests(
                docs, source=name, max_documents=limits.max_documents, already=len(manifests)
            )
        )
    return manifests


def _files_by_suffix(app_dir: Path, *, max_files: int) -> tuple[Counter[str], Counter[str]]:
    """File counts by suffix in ``app_dir`` itself and below it (hidden entries skipped, at most
    ``max_files`` looked at, symlinks not followed)."""
    here: Counter[str] = Counter()
    below: Counter[str] = Counter()
    seen = 0
    for dirpath, dirnames, filenames in os.walk(app_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        counter = here if Path(dirpath) == app_dir else below
        for fname in filenames:
            if fname.startswith("."):
                continue
            counter[Path(fname).suffix or "(no suffix)"] += 1
            seen += 1
            if seen >= max_files:
                return here, below
    return here, below


def _counted(files: Counter[str]) -> str:
    return ", ".join(
        f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in sorted(files.items())[:8]
    )


def what_was_found(
    repo_root: Path, path: str, options: DirectoryOptions, limits: RenderLimits
) -> str:
    """Why a directory app rendered no objects, from what its directory holds instead: the
    message an empty render fails with, so that a user sees "3 .libsonnet files" rather than
    a quiet success."""
    app_dir = Repo.at(repo_root).app_dir(path)
    here, below = _files_by_suffix(app_dir, max_files=limits.max_files)
    name = path or "."
    if not here and not below:
        return f"no files in {name}"
    found = [f"{name} holds {_counted(here)}" if here else f"no files directly in {name}"]
    if any(suffix in MANIFEST_SUFFIXES for suffix in here):
        found.append(
            "the manifest files hold no objects or directory.include/exclude left none of them"
        )
    elif here[".libsonnet"]:
        found.append(".libsonnet files are only imported: add a .jsonnet file that imports them")
    else:
        found.append("no .yaml, .yml, .json or .jsonnet files")
    if below:
        found.append(f"subdirectories hold {_counted(below)}")
        if not options.recurse and any(suffix in MANIFEST_SUFFIXES for suffix in below):
            found.append("set directory.recurse to read them")
    return "; ".join(found)
