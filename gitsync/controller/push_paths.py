"""Which Applications a push's changed files touch, so the controller reconciles those first.

In a monorepo one push refreshes every Application that follows the repository, but usually
changes the files of one. An Application is *touched* when a changed file lies under its
``source.path`` (the repository root, ``""``, holds everything) or is one of its Helm
``valueFiles`` (relative to the chart directory, so ``../shared/values.yaml`` counts too).

This is a hint for ordering only - never for skipping: the paths come from an untrusted payload,
and files outside ``source.path`` can still change what an app renders (a Kustomize base in
``../base``, a chart dependency). So a miss costs a head start, never a refresh.

Pure and linear in the size of the changed-file list: each changed path is cut into its first few
directory prefixes (as many segments as the deepest watched path has), so a hostile payload of
very deep paths costs no more than reading it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from gitsync.application import Source

K = TypeVar("K")


def normalize_path(path: str) -> str:
    """A repository-relative path in one spelling: ``./apps/a/`` is ``apps/a``, the root is
    ``""``."""
    normal = posixpath.normpath(path.strip("/") or ".")
    return "" if normal == "." else normal.lstrip("/")


def watched_paths(source: Source) -> tuple[str, ...]:
    """The repository paths whose change touches an app: its ``source.path`` and its Helm value
    files (for a glob, the directory above its first wildcard). A value file that climbs out of the
    repository or names a URL is left out (the renderer refuses it anyway)."""
    root = normalize_path(source.path)
    watched = [root]
    for entry in source.helm.value_files if source.helm is not None else ():
        if "://" in entry or posixpath.isabs(entry):
            continue
        wildcards = [entry.find(c) for c in "*?[" if c in entry]
        # a glob: watch the directory above its first wildcard
        literal = posixpath.dirname(entry[: min(wildcards)]) if wildcards else entry
        joined = normalize_path(posixpath.join(root, literal))
        if joined != ".." and not joined.startswith("../") and joined not in watched:
            watched.append(joined)
    return tuple(watched)


def touched(watched: Mapping[K, Sequence[str]], changed: Iterable[str]) -> set[K]:
    """The keys of ``watched`` (key -> normalized watched paths) that a change to any of
    ``changed`` touches: a changed file equal to a watched path or below it."""
    depth = max((p.count("/") + 1 for paths in watched.values() for p in paths if p), default=0)
    prefixes: set[str] = set()
    anything = False
    for path in changed:
        anything = True
        parts = normalize_path(path).split("/", depth)
        for n in range(1, min(len(parts), depth) + 1):
            prefixes.add("/".join(parts[:n]))
    return {
        key
        for key, paths in watched.items()
        if any((p in prefixes) if p else anything for p in paths)
    }
