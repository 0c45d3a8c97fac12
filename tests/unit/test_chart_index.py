"""Helm repository index parsing and chart version choice (issue 15): pure parts."""

from __future__ import annotations

import pytest

from gitsync.engine.chart_sources import choose_version, parse_index_yaml
from gitsync.source.charts import ChartLimits, ChartSourceTerminalError, ChartVersion
from gitsync.source.helmrepo import parse_index_document

BASE = "https://charts.example.com/stable/"
DIGEST = "a" * 64


def index(*versions: dict[str, object], name: str = "web") -> dict[str, object]:
    return {"apiVersion": "v1", "entries": {name: list(versions)}}


def entry(version: str, url: str = "", digest: str = DIGEST) -> dict[str, object]:
    return {"version": version, "urls": [url or f"web-{version}.tgz"], "digest": digest}


def test_relative_and_absolute_archive_urls() -> None:
    charts = parse_index_document(
        index(entry("1.0.0"), entry("2.0.0", "https://cdn.example.net/web-2.0.0.tgz")),
        BASE,
        ChartLimits(),
        "index",
    )
    assert charts["web"] == (
        ChartVersion("web", "1.0.0", f"sha256:{DIGEST}", f"{BASE}web-1.0.0.tgz"),
        ChartVersion("web", "2.0.0", f"sha256:{DIGEST}", "https://cdn.example.net/web-2.0.0.tgz"),
    )


def test_entries_without_a_version_or_an_http_url_are_skipped_and_bad_digests_dropped() -> None:
    charts = parse_index_document(
        index(
            {"version": "1.0.0"},
            entry("1.1.0", "file:///etc/passwd"),
            entry("1.2.0", digest="not-hex"),
            "not a mapping",
        ),
        BASE,
        ChartLimits(),
        "index",
    )
    assert [(v.version, v.digest) for v in charts["web"]] == [("1.2.0", "")]


def test_more_versions_than_the_entries_cap_are_refused() -> None:
    doc = index(*(entry(f"1.0.{i}") for i in range(11)))
    with pytest.raises(ChartSourceTerminalError, match="more than 10 chart versions"):
        parse_index_document(doc, BASE, ChartLimits(max_index_entries=10), "index")


@pytest.mark.parametrize("doc", [[1, 2], {"entries": [1]}], ids=["list", "entries-list"])
def test_a_document_that_is_not_an_index_is_refused(doc: object) -> None:
    with pytest.raises(ChartSourceTerminalError, match="index"):
        parse_index_document(doc, BASE, ChartLimits(), "index")


def test_the_index_goes_through_the_safe_yaml_loader() -> None:
    bomb = b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for level in "bcdefghij":
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n".encode()
    parse = parse_index_yaml(ChartLimits())
    with pytest.raises(ChartSourceTerminalError, match="alias"):
        parse(bomb, "index of https://charts.example.com")
    with pytest.raises(ChartSourceTerminalError, match="exceeds the limit"):
        parse_index_yaml(ChartLimits(max_index_bytes=10))(b"entries: {}\n" * 2, "index")
    assert parse(b"apiVersion: v1\nentries: {}\n", "index") == {"apiVersion": "v1", "entries": {}}


VERSIONS = [
    ChartVersion("web", v, "", f"{BASE}web-{v}.tgz")
    for v in ("1.0.0", "1.2.0", "1.10.0", "2.0.0", "2.1.0-rc.1", "v3.0.0", "latest")
]


@pytest.mark.parametrize(
    ("target", "chosen"),
    [
        ("1.2.0", "1.2.0"),
        (">=1.0.0 <2.0.0", "1.10.0"),
        ("^1.0.0", "1.10.0"),
        ("1.x", "1.10.0"),
        ("*", "v3.0.0"),
        (">=2.1.0-rc.0 <3.0.0", "2.1.0-rc.1"),
        ("~2.0.0", "2.0.0"),
    ],
)
def test_the_highest_matching_version_wins_by_the_git_tag_rules(target: str, chosen: str) -> None:
    assert choose_version(VERSIONS, "web", target).version == chosen


def test_no_match_names_the_chart_the_range_and_the_newest_versions() -> None:
    with pytest.raises(ChartSourceTerminalError) as caught:
        choose_version(VERSIONS, "web", ">=5.0.0")
    message = str(caught.value)
    assert "'web'" in message and "'>=5.0.0'" in message
    assert "newest published: v3.0.0, 2.1.0-rc.1, 2.0.0, 1.10.0, 1.2.0" in message
