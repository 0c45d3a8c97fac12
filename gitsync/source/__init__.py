"""Where desired state comes from: Git repositories, fetched at a revision.

The first stage of the pipeline (source -> render -> diff -> sync). The package is the one place
in gitsync that imports gitpython (in ``gitsync.source.git``); everything above it sees plain
paths, SHAs, ``Revision``s and the errors re-exported here, each named by what the reconcile loop
should do next (see ``gitsync.errors``): credentials or host keys that are wrong, or a repository
too large to check out, are terminal; a server that is down, hangs or answers like a web page,
and a full or read-only local disk, are transient.

``SourceCache`` (``gitsync.source.cache``) is what the engine uses: cheap remote-head checks,
one mirror per repository and one read-only checkout per commit. ``ls_remote`` and ``clone`` are
the one-shot operations underneath; ``normalize_url`` and ``Revision`` live in the pure
``gitsync.source.revision``.

Owns: Git. The only importer of gitpython (``source.git``). May import: application, model, errors,
logs (import-linter: ``gitpython``, ``layers``).
"""

from __future__ import annotations

from gitsync.source.cache import Checkout, SourceCache
from gitsync.source.git import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MAX_OUTPUT_BYTES,
    GitAuthError,
    GitCommandFailedError,
    GitCredentials,
    GitHostKeyError,
    GitInvalidRevisionError,
    GitInvalidURLError,
    GitLocalRepositoryError,
    GitNotFoundError,
    GitOutputTooLargeError,
    GitRepositoryTooLargeError,
    GitSourceError,
    GitStorageError,
    GitTimeoutError,
    GitUnreachableError,
    clone,
    end_all_sessions,
    ls_remote,
    redact,
    redact_url,
)
from gitsync.source.revision import Revision, normalize_url, select_semver_tag

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "Checkout",
    "GitAuthError",
    "GitCommandFailedError",
    "GitCredentials",
    "GitHostKeyError",
    "GitInvalidRevisionError",
    "GitInvalidURLError",
    "GitLocalRepositoryError",
    "GitNotFoundError",
    "GitOutputTooLargeError",
    "GitRepositoryTooLargeError",
    "GitSourceError",
    "GitStorageError",
    "GitTimeoutError",
    "GitUnreachableError",
    "Revision",
    "SourceCache",
    "clone",
    "end_all_sessions",
    "ls_remote",
    "normalize_url",
    "redact",
    "redact_url",
    "select_semver_tag",
]
