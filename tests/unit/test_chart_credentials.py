"""Repository-credential entries for chart repositories (issue 15): ``oci://`` prefixes and
Argo CD's ``insecure`` key, the pure parts."""

from __future__ import annotations

import pytest

from gitsync.source.credentials import CredentialsError, credentials_for, parse_entry, select

EVERYWHERE = {"namespaces": "*"}


def test_an_oci_prefix_matches_registries_under_it_only() -> None:
    entry = parse_entry(
        "Secret gitsync/oci",
        {
            "url": "oci://Registry.example.com/charts/",
            "username": "u",
            "password": "p",
            **EVERYWHERE,
        },
    )
    assert entry.url == "oci://registry.example.com/charts"
    assert select([entry], "oci://registry.example.com/charts", "team") is entry
    assert select([entry], "oci://registry.example.com/charts/web", "team") is entry
    assert select([entry], "oci://registry.example.com/chartsx", "team") is None
    assert select([entry], "https://registry.example.com/charts", "team") is None
    assert credentials_for(entry, "oci://registry.example.com/charts", "team").password == "p"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"url": "oci://u:p@registry.example.com/charts"}, "must not carry credentials"),
        ({"url": "oci://registry.example.com/a/../b"}, "plain prefix"),
        ({"url": "https://charts.example.com", "insecure": "yes"}, 'insecure must be "true"'),
    ],
)
def test_bad_chart_entries_are_refused_naming_the_key(data: dict[str, str], problem: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        parse_entry("Secret gitsync/bad", {**data, **EVERYWHERE})
    assert problem in str(caught.value)
    assert "u:p" not in str(caught.value)


def test_insecure_is_read_with_argo_cd_s_meaning() -> None:
    data = {"url": "https://charts.example.com", **EVERYWHERE}
    assert parse_entry("Secret gitsync/a", {**data, "insecure": "true"}).insecure
    assert not parse_entry("Secret gitsync/a", {**data, "insecure": "false"}).insecure
    assert not parse_entry("Secret gitsync/a", data).insecure
