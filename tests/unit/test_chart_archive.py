"""Unpacking chart archives from repositories: limits and refusals (issue 15)."""

from __future__ import annotations

import copy
import gzip
import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from gitsync.source.chart_archive import unpack_chart
from gitsync.source.charts import ChartLimits, ChartSourceTerminalError

CHART_YAML = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n"


def tgz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return raw.getvalue()


def file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def chart(*extra: tuple[tarfile.TarInfo, bytes]) -> bytes:
    return tgz([file("demo/Chart.yaml", CHART_YAML), file("demo/templates/a.yaml"), *extra])


def test_a_chart_unpacks_into_its_directory(tmp_path: Path) -> None:
    chart_dir = unpack_chart(chart(), tmp_path / "out", ChartLimits(), source="demo@1.0.0")
    assert chart_dir == tmp_path / "out" / "demo"
    assert (chart_dir / "Chart.yaml").read_bytes() == CHART_YAML
    assert (chart_dir / "templates" / "a.yaml").stat().st_mode & 0o777 == 0o644


def link(name: str, kind: bytes, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (file("{tmp}/evil"), "absolute"),
        (file("demo/../../evil"), "'..'"),
        (link("demo/templates/l.yaml", tarfile.SYMTYPE, "/etc/passwd"), "link or special"),
        (link("demo/templates/h.yaml", tarfile.LNKTYPE, "demo/Chart.yaml"), "link or special"),
        (link("demo/dev", tarfile.CHRTYPE, ""), "link or special"),
        (link("demo/fifo", tarfile.FIFOTYPE, ""), "link or special"),
    ],
    ids=["absolute", "dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_unsafe_members_are_refused_and_nothing_is_left(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], problem: str
) -> None:
    # an absolute name points into tmp_path, so a broken check writes nowhere else
    info = copy.copy(member[0])
    info.name = info.name.format(tmp=tmp_path)
    with pytest.raises(ChartSourceTerminalError, match="refused") as caught:
        unpack_chart(chart((info, member[1])), tmp_path / "out", ChartLimits(), source="d@1")
    assert problem in str(caught.value) and "d@1" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_gzip_bomb_stops_at_the_unpacked_limit_in_bounded_memory(tmp_path: Path) -> None:
    """64 MiB of zeros compress to ~64 KiB; unpacking stops at max_unpacked_bytes (16 MiB)
    without holding the stream in memory."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
        header = tarfile.TarInfo("demo/templates/zeros.yaml")
        header.size = 64 * 1024 * 1024
        gz.write(header.tobuf(format=tarfile.GNU_FORMAT))
        block = b"\0" * (1024 * 1024)
        for _ in range(64):
            gz.write(block)
    bomb = raw.getvalue()
    assert len(bomb) < 1024 * 1024
    limits = ChartLimits(max_unpacked_bytes=16 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ChartSourceTerminalError, match="decompresses to more than"):
            unpack_chart(bomb, tmp_path / "out", limits, source="bomb@1.0.0")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak
    assert not (tmp_path / "out").exists()


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    many = [file(f"demo/templates/{i}.yaml") for i in range(20)]
    with pytest.raises(ChartSourceTerminalError, match="more than 10 entries"):
        unpack_chart(
            chart(*many), tmp_path / "out", ChartLimits(max_archive_files=10), source="demo"
        )


def test_a_truncated_archive_is_a_clear_terminal_error(tmp_path: Path) -> None:
    whole = chart(file("demo/templates/big.yaml", bytes(range(256)) * 4096))
    with pytest.raises(ChartSourceTerminalError, match="truncated or not a gzipped tar"):
        unpack_chart(whole[: len(whole) // 2], tmp_path / "out", ChartLimits(), source="demo")
    with pytest.raises(ChartSourceTerminalError, match="truncated or not a gzipped tar"):
        unpack_chart(b"<html>not found</html>", tmp_path / "out", ChartLimits(), source="demo")


def test_an_archive_over_the_download_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChartSourceTerminalError, match="exceeds 10 bytes"):
        unpack_chart(chart(), tmp_path / "out", ChartLimits(max_archive_bytes=10), source="d")


@pytest.mark.parametrize(
    "members",
    [
        [file("demo/templates/a.yaml")],
        [file("demo/Chart.yaml", CHART_YAML), file("other/Chart.yaml", CHART_YAML)],
    ],
    ids=["no-chart-yaml", "two-top-level-directories"],
)
def test_an_archive_that_is_not_one_chart_is_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    with pytest.raises(ChartSourceTerminalError, match=r"Chart\.yaml|one top-level"):
        unpack_chart(tgz(members), tmp_path / "out", ChartLimits(), source="demo")
