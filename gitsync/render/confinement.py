"""Keeping every read inside the repository checkout, within bounded time, size and file count.

A repository is untrusted input. Whatever renders it - our YAML reader, kustomize, Helm - must not
read outside the checkout (``/etc/passwd``, the controller's service-account token, another
tenant's checkout next door), so every path is checked on its *resolved* form: ``os.path.realpath``
follows relative and absolute symlinks, then ``os.path.commonpath`` with the resolved repo root
decides. Checking the resolved path rather than scanning for ``..`` is what catches a harmless
looking ``values.yaml`` that is a symlink to ``/var/run/secrets``.

``TreeBudget`` walks a directory once before a tool sees it: it rejects escaping symlinks, counts
files against ``max_files``, adds up sizes from ``stat`` (never reading a file to learn it is too
big) and measures ``.tgz`` archives by streaming decompression so a gzip bomb is stopped at the
budget, not at the end of the archive.

Readability is judged from the mode bits, not from ``os.access`` or a failed ``open``: the
controller often runs as root, for which both say "readable" even for mode 000. A file whose mode
grants read to nobody cannot come from a Git checkout (Git records only 644/755), so it is a
broken checkout and is reported rather than read because root happens to be allowed to.
"""

from __future__ import annotations

import gzip
import os
import stat
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from gitsync.render.errors import LimitExceededError, PathEscapeError, RenderError
from gitsync.render.options import RenderLimits

_READ_BITS = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_ARCHIVE_SUFFIXES = (".tgz", ".tar.gz")
_CHUNK = 64 * 1024


class Deadline:
    """A point in time a render must finish by; checked between steps and passed to tools."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def check(self, doing: str) -> None:
        if time.monotonic() >= self._end:
            raise LimitExceededError(f"render took longer than {self.seconds:g}s ({doing})")


@dataclass(frozen=True)
class Repo:
    """A checkout root, resolved once, and the helpers that keep paths inside it."""

    root: Path  # resolved (realpath) root

    @classmethod
    def at(cls, repo_root: Path) -> Repo:
        return cls(Path(os.path.realpath(repo_root)))

    def contains(self, real: str | Path) -> bool:
        real_str = os.fspath(real)
        root = os.fspath(self.root)
        try:
            return os.path.commonpath([root, real_str]) == root
        except ValueError:  # different drives / mix of absolute and relative
            return False

    def rel(self, path: str | Path) -> str:
        """A repo-relative display name for ``path`` (unresolved), for error messages."""
        try:
            rel = os.path.relpath(os.path.abspath(path), self.root)
        except ValueError:
            return os.fspath(path)
        return "." if rel == "" else rel

    def resolve(self, path: str | Path, *, name: str) -> Path:
        """The real path of ``path``; ``PathEscapeError`` naming ``name`` if it leaves the repo."""
        real = os.path.realpath(path)
        if not self.contains(real):
            raise PathEscapeError(f"resolves outside the repository (to {real})", source=name)
        return Path(real)

    def app_dir(self, rel_path: str) -> Path:
        """Resolve the requested repo-relative ``path``: no absolute paths, no ``..``, no escape.

        ``..`` is refused outright even when it would stay inside: an Application path is a
        plain location in the repo, and refusing the syntax keeps the rule easy to state.
        """
        name = rel_path or "."
        if os.path.isabs(rel_path):
            raise PathEscapeError("path must be relative to the repository root", source=name)
        if ".." in rel_path.replace("\\", "/").split("/"):
            raise PathEscapeError("path must not contain '..'", source=name)
        target = self.resolve(self.root / rel_path, name=name)
        if not target.exists():
            raise RenderError("path does not exist in the repository", source=name)
        if not target.is_dir():
            raise RenderError("path is not a directory", source=name)
        return target


def check_readable(st: os.stat_result, name: str) -> None:
    """Refuse files whose mode grants read to nobody (see module docstring for why not access())."""
    if stat.S_ISREG(st.st_mode) and not st.st_mode & _READ_BITS:
        raise RenderError(f"file is not readable (mode {stat.filemode(st.st_mode)})", source=name)


def read_bounded(path: Path, *, name: str, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes`` (checked by ``stat`` before reading)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise RenderError(f"cannot stat file: {exc.strerror}", source=name) from exc
    if not stat.S_ISREG(st.st_mode):
        raise RenderError("not a regular file", source=name)
    check_readable(st, name)
    if st.st_size > max_bytes:
        raise LimitExceededError(
            f"file is {st.st_size} bytes, over the limit of {max_bytes} bytes", source=name
        )
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise RenderError(f"cannot read file: {exc.strerror}", source=name) from exc
    if len(data) > max_bytes:  # grew after stat
        raise LimitExceededError(f"file exceeds the limit of {max_bytes} bytes", source=name)
    return data


@dataclass
class TreeBudget:
    """Walk trees before handing them to a tool; shared across trees so overlaps count once."""

    repo: Repo
    limits: RenderLimits
    deadline: Deadline
    files: int = 0
    bytes: int = 0
    _seen: set[str] = field(default_factory=set)

    def walk(self, top: Path, *, measure_archives: bool = False) -> None:
        """Check every entry below ``top`` (hidden ones too, except ``.git``)."""
        real_top = os.path.realpath(top)
        if real_top in self._seen:
            return
        self._seen.add(real_top)
        for dirpath, dirnames, filenames in os.walk(real_top, followlinks=False):
            self.deadline.check("checking files")
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for dname in list(dirnames):
                full = Path(dirpath, dname)
                if full.is_symlink():
                    # Tools follow directory links, so the target tree is checked too; the
                    # ``_seen`` set of real paths ends link cycles.
                    self.walk(
                        self.repo.resolve(full, name=self.repo.rel(full)),
                        measure_archives=measure_archives,
                    )
            for fname in sorted(filenames):
                self._file(Path(dirpath, fname), measure_archives=measure_archives)

    def _file(self, full: Path, *, measure_archives: bool) -> None:
        name = self.repo.rel(full)
        real = self.repo.resolve(full, name=name) if full.is_symlink() else full
        key = os.fspath(real)
        if key in self._seen:
            return
        self._seen.add(key)
        self.files += 1
        if self.files > self.limits.max_files:
            raise LimitExceededError(f"more than {self.limits.max_files} files", source=name)
        try:
            st = os.stat(real)
        except OSError:
            return  # dangling symlink inside the repo: the tool reports it if it matters
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                return
            raise RenderError("not a regular file", source=name)
        check_readable(st, name)
        self.add_bytes(st.st_size, name)
        if measure_archives and key.endswith(_ARCHIVE_SUFFIXES):
            self._archive(real, name)

    def add_bytes(self, size: int, name: str) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_input_bytes:
            raise LimitExceededError(
                f"input exceeds the limit of {self.limits.max_input_bytes} bytes", source=name
            )

    def _archive(self, real: Path, name: str) -> None:
        """Count the *decompressed* size of a gzip archive, stopping as soon as it is too big."""
        try:
            with gzip.open(real, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    self.add_bytes(len(chunk), name)
        except (OSError, EOFError, zlib.error) as exc:
            raise RenderError(f"corrupt archive: {exc}", source=name) from exc
