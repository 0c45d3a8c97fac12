"""Unpacking a chart archive (``.tgz``) from a repository into a directory, safely.

A chart archive is tenant input from a server gitsync does not control, so unpacking it is
bounded the same way a Git checkout is: the *decompressed* stream is counted as it is read (a
gzip bomb of a few KiB that inflates to gigabytes stops at ``max_unpacked_bytes``, never held in
memory), members are counted (``max_archive_files``), and only regular files and directories
with relative names that stay inside the chart are written: absolute names, ``..``, symbolic
and hard links, devices and FIFOs are refused, not skipped, because a chart that carries them
is not one Helm would produce. A truncated or corrupt archive is a terminal error that says so.
HTTP and OCI chart sources both unpack through here.

Files are written with fixed modes (0644, directories 0755) whatever the archive says, into a
temporary directory that is renamed into place once complete: a chart directory is either whole
or absent.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Final, Protocol

from gitsync.source.charts import ChartLimits, ChartSourceTerminalError

_CHUNK: Final = 64 * 1024


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader(io.RawIOBase):
    """The decompressed stream, refusing to yield more than ``limit`` bytes in total."""

    def __init__(self, inner: _Readable, limit: int, source: str) -> None:
        self._inner = inner
        self._limit = limit
        self._source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), _CHUNK))
        self.count += len(data)
        if self.count > self._limit:
            raise ChartSourceTerminalError(
                f"{self._source}: archive decompresses to more than {self._limit} bytes "
                "(max_unpacked_bytes); refused"
            )
        buffer[: len(data)] = data
        return len(data)


def _member_path(name: str, source: str) -> PurePosixPath:
    if "\x00" in name or "\\" in name:
        raise ChartSourceTerminalError(f"{source}: archive member name {name!r} is not allowed")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ChartSourceTerminalError(
            f"{source}: archive member {name!r} is absolute or climbs out with '..'; refused"
        )
    return path


def unpack_chart(archive: bytes, destination: Path, limits: ChartLimits, *, source: str) -> Path:
    """Unpack ``archive`` into ``destination`` (created; must not exist) and return the chart's
    directory in it (the archive's one top-level directory, which must hold ``Chart.yaml``).

    ``source`` names the chart in errors (``chart@version from <repository>``)."""
    if len(archive) > limits.max_archive_bytes:
        raise ChartSourceTerminalError(
            f"{source}: archive of {len(archive)} bytes exceeds {limits.max_archive_bytes} bytes"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=destination.parent))
    try:
        top = _extract(archive, staging, limits, source)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination / top


def _extract(archive: bytes, staging: Path, limits: ChartLimits, source: str) -> str:
    gz = gzip.GzipFile(fileobj=io.BytesIO(archive), mode="rb")
    counted = io.BufferedReader(_CountingReader(gz, limits.max_unpacked_bytes, source), _CHUNK)
    tops: set[str] = set()
    files = 0
    try:
        with tarfile.open(fileobj=counted, mode="r|") as tar:
            for member in tar:
                files += 1
                if files > limits.max_archive_files:
                    raise ChartSourceTerminalError(
                        f"{source}: archive has more than {limits.max_archive_files} entries "
                        "(max_archive_files); refused"
                    )
                path = _member_path(member.name, source)
                tops.add(path.parts[0])
                target = staging.joinpath(*path.parts)
                if member.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise ChartSourceTerminalError(
                        f"{source}: archive member {member.name!r} is a link or special file; "
                        "refused"
                    )
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                reader = tar.extractfile(member)
                assert reader is not None  # a regular file always has one
                with reader, open(target, "xb") as out:
                    shutil.copyfileobj(reader, out, _CHUNK)
                target.chmod(0o644)
    except ChartSourceTerminalError:
        raise
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise ChartSourceTerminalError(
            f"{source}: archive is truncated or not a gzipped tar ({type(exc).__name__})"
        ) from None
    if len(tops) != 1:
        raise ChartSourceTerminalError(
            f"{source}: archive must hold one top-level chart directory, found {len(tops)}"
        )
    top = tops.pop()
    if not (staging / top / "Chart.yaml").is_file():
        raise ChartSourceTerminalError(f"{source}: archive has no {top}/Chart.yaml")
    return top
