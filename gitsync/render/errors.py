"""Render failures, all terminal: the same commit and parameters will fail the same way.

A render error is a property of what is in Git (a broken file, a path that climbs out of the
repository, a chart too large to trust), so retrying the same revision cannot help; the controller
marks the Application stalled until a new commit or spec arrives. Every error names the
repo-relative file and, where the YAML parser knows it, the line, because the person reading the
message is the one who has to go and fix that file.
"""

from __future__ import annotations

from gitsync.errors import TerminalError


class RenderError(TerminalError):
    """The manifests at a path could not be produced. ``source`` and ``line`` locate the cause."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        where = ""
        if source:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")


class PathEscapeError(RenderError):
    """A path, symlink or reference resolves outside the repository checkout."""


class LimitExceededError(RenderError):
    """A size, count, nesting, alias-expansion or time bound was exceeded."""
