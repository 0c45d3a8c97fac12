"""The pure parts of the OCI chart source: challenges, Link pages, tag <-> version mapping, the
repository URL and chart name checks, the streaming entry count and the manifest's chart layer.
The protocol itself is tested against a real registry in tests/integration/test_source_oci_it.py."""

from __future__ import annotations

import pytest

from gitsync.source.charts import ChartCredential, ChartLimits, ChartSourceTerminalError
from gitsync.source.oci import (
    CHART_LAYER_MEDIA_TYPE,
    Challenge,
    OciChartRepository,
    _chart_layer,
    _EntryCounter,
    _tags_of,
    next_page,
    origin,
    parse_challenge,
    tag_version,
    version_tag,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry Realm"', Challenge("basic", {"realm": "Registry Realm"})),
        (
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:charts/a:pull,push"',
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.example/token",
                    "service": "registry.example",
                    "scope": "repository:charts/a:pull,push",
                },
            ),
        ),
        (
            'bearer realm="https://h/t", error="invalid_token"',
            Challenge("bearer", {"realm": "https://h/t", "error": "invalid_token"}),
        ),
        ('Bearer realm="a\\"b"', Challenge("bearer", {"realm": 'a"b'})),
        ("Bearer realm=https://h/t,service=h",
         Challenge("bearer", {"realm": "https://h/t", "service": "h"})),
        ("", None),
        ('"quoted" realm=x', None),
    ],
)  # fmt: skip
def test_parse_challenge(header: str, expected: Challenge | None) -> None:
    assert parse_challenge(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('</v2/c/tags/list?last=b&n=100>; rel="next"', "/v2/c/tags/list?last=b&n=100"),
        ('<https://r/v2/x?last=1>; rel=next', "https://r/v2/x?last=1"),
        ('</prev>; rel="prev", </next>; rel="next"', "/next"),
        ('</a>; rel="prev next"', "/a"),
        ('</prev>; rel="prev"', None),
        ("", None),
    ],
)  # fmt: skip
def test_next_page(header: str, expected: str | None) -> None:
    assert next_page(header) == expected


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("1.2.3", "1.2.3"),
        ("1.2.3_build.1", "1.2.3+build.1"),
        ("2.0.0-rc.1", "2.0.0-rc.1"),
        ("latest", None),
        ("v1.2.3", None),  # Helm reads tags as strict semver: no "v"
        ("1.2", None),
        ("sha256-" + "ab" * 32 + ".sig", None),
    ],
)
def test_tag_version_keeps_strict_semver_and_maps_underscore_back(
    tag: str, version: str | None
) -> None:
    assert tag_version(tag) == version
    if version is not None:
        assert version_tag(version) == tag


def test_origin_is_scheme_host_and_port_with_defaults() -> None:
    assert origin("https://Registry.Example/v2/") == ("https", "registry.example", 443)
    assert origin("https://registry.example:443/token") == origin("https://registry.example/")
    assert origin("https://registry.example:5000/") != origin("https://registry.example/")
    assert origin("http://registry.example/") != origin("https://registry.example/")
    assert origin("https://user:pw@evil.example/") == ("https", "evil.example", 443)
    assert origin("https://registry.example:99999999/") == ("https", "registry.example", -1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://registry.example/charts", "oci://host"),
        ("oci:///charts", "oci://host"),
        ("oci://user:s3cret@registry.example/charts", "not in the URL"),
        ("oci://registry.example/charts?x=1", "no query"),
        ("oci://registry.example/charts/../other", "OCI name component"),
        ("oci://registry.example/a//b", "OCI name component"),
        ("oci://registry.example/Charts", "OCI name component"),
        ("oci://registry.example/a%2e%2e", "OCI name component"),
        ("oci://registry.example:http/charts", "port is not a number"),
    ],
)
def test_repository_url_is_checked(url: str, message: str) -> None:
    with pytest.raises(ChartSourceTerminalError, match=message) as caught:
        OciChartRepository(url, ChartCredential(), ChartLimits())
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("chart", ["../x", "a/b", "A", "a?n=1", "", "-a"])
def test_a_chart_name_that_is_not_one_is_refused_before_any_request(chart: str) -> None:
    repository = OciChartRepository("oci://127.0.0.1:9/charts", ChartCredential(), ChartLimits())
    with pytest.raises(ChartSourceTerminalError, match="is not a chart name"):
        repository.versions(chart)


def test_credentials_are_not_in_the_repositorys_repr() -> None:
    credential = ChartCredential("user", "pa55word", "CA-PEM")
    repository = OciChartRepository("oci://registry.example/charts", credential, ChartLimits())
    assert "pa55word" not in repr(vars(repository))
    assert repository.shown == "oci://registry.example/charts"


def test_the_entry_counter_stops_the_stream_past_the_limit() -> None:
    counter = _EntryCounter(3, "listing")
    counter.new_page()
    counter.count(b'{"name":"c","tags":["1.0.0","1.0.1",')  # 3 commas: 2 tags so far
    counter.count(b'"1.0.2"]}')
    counter.new_page()
    with pytest.raises(ChartSourceTerminalError, match="more than 3 tags"):
        counter.count(b'{"name":"c","tags":["1.0.3","1.0.4","1.0.5"]}')


@pytest.mark.parametrize(
    ("body", "tags"),
    [
        (b'{"name":"c","tags":["1.0.0"]}', ["1.0.0"]),
        (b'{"name":"c","tags":null}', []),
    ],
)
def test_tags_of(body: bytes, tags: list[str]) -> None:
    assert _tags_of(body, "listing") == tags


@pytest.mark.parametrize("body", [b"not json", b'{"tags":[1,2]}', b'{"tags":"1.0.0"}'])
def test_a_malformed_tag_list_is_terminal(body: bytes) -> None:
    with pytest.raises(ChartSourceTerminalError, match=r"tag list|list of strings"):
        _tags_of(body, "listing")


def _layer(**overrides: object) -> dict[str, object]:
    return {"mediaType": CHART_LAYER_MEDIA_TYPE, "digest": DIGEST, "size": 10, **overrides}


def test_the_chart_layer_is_found_by_media_type() -> None:
    other = {"mediaType": "application/vnd.cncf.helm.chart.provenance.v1.prov", "digest": DIGEST}
    assert _chart_layer({"layers": [other, _layer()]}, "x") == (DIGEST, 10)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({}, "no layers"),
        ({"layers": []}, "0 layers"),
        ({"layers": [_layer(), _layer()]}, "2 layers"),
        ({"layers": [_layer(digest="sha256:../../etc")]}, "digest"),
        ({"layers": [_layer(digest="md5:" + "a" * 32)]}, "digest"),
        ({"layers": [_layer(size=-1)]}, "size"),
        ({"layers": [_layer(size="10")]}, "size"),
        ({"layers": [_layer(size=True)]}, "size"),
    ],
)
def test_a_manifest_without_one_sound_chart_layer_is_terminal(
    manifest: dict[str, object], message: str
) -> None:
    with pytest.raises(ChartSourceTerminalError, match=message):
        _chart_layer(manifest, "x")


def test_a_next_page_on_another_host_is_refused() -> None:
    repository = OciChartRepository(
        "oci://registry.example/charts", ChartCredential(), ChartLimits()
    )
    here = "https://registry.example/v2/charts/a/tags/list"
    assert repository._next_url(here, '</v2/charts/a/tags/list?last=b>; rel="next"', "x") == (
        "https://registry.example/v2/charts/a/tags/list?last=b"
    )
    assert repository._next_url(here, "", "x") is None
    with pytest.raises(ChartSourceTerminalError, match="another host"):
        repository._next_url(here, '<https://elsewhere.example/v2/x>; rel="next"', "x")
