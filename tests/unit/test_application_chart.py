"""``spec.source.chart``: a chart from a Helm repository or an OCI registry (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.application import SpecError, parse_application, split_oci_chart_url


def doc(**source: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"source": source, "destination": {"namespace": "team"}},
    }


def test_a_chart_from_a_helm_repository() -> None:
    app = parse_application(
        doc(
            repoURL="https://charts.example.com/stable/",
            chart="ingress-nginx",
            targetRevision=">=4.0.0 <5.0.0",
            helm={"releaseName": "edge", "values": {"a": 1}},
        )
    )
    src = app.source
    assert (src.repo_url, src.chart, src.target_revision) == (
        "https://charts.example.com/stable",
        "ingress-nginx",
        ">=4.0.0 <5.0.0",
    )
    assert src.is_chart and not src.is_oci
    assert src.helm is not None and src.helm.release_name == "edge"


def test_an_oci_url_ending_with_the_chart_name_needs_no_chart_field() -> None:
    src = parse_application(
        doc(repoURL="oci://registry.example.com/charts/web", targetRevision="1.x")
    ).source
    assert (src.repo_url, src.chart, src.is_oci) == (
        "oci://registry.example.com/charts",
        "web",
        True,
    )
    src = parse_application(
        doc(repoURL="oci://registry.example.com/charts", chart="web", targetRevision="1.2.3")
    ).source
    assert (src.repo_url, src.chart) == ("oci://registry.example.com/charts", "web")


def test_a_git_source_is_unchanged() -> None:
    src = parse_application(doc(repoURL="https://git.example.com/org/repo.git")).source
    assert not src.is_chart and src.chart == "" and src.target_revision == "HEAD"


@pytest.mark.parametrize(
    ("source", "field", "problem"),
    [
        (
            {"repoURL": "https://c.example.com", "chart": "web"},
            "spec.source.targetRevision",
            "required with chart",
        ),
        (
            {"repoURL": "https://c.example.com", "chart": "web", "targetRevision": "main"},
            "spec.source.targetRevision",
            "semver range",
        ),
        (
            {
                "repoURL": "https://c.example.com",
                "chart": "web",
                "targetRevision": "1",
                "path": "x",
            },
            "spec.source.path",
            "must not be set with chart",
        ),
        (
            {
                "repoURL": "https://c.example.com",
                "chart": "w",
                "targetRevision": "1",
                "kustomize": {},
            },
            "spec.source.kustomize",
            "cannot be used with chart",
        ),
        (
            {
                "repoURL": "https://c.example.com",
                "chart": "w",
                "targetRevision": "1",
                "directory": {},
            },
            "spec.source.directory",
            "cannot be used with chart",
        ),
        (
            {"repoURL": "ssh://git@c.example.com/x", "chart": "web", "targetRevision": "1"},
            "spec.source.repoURL",
            "oci:// registry",
        ),
        (
            {"repoURL": "https://u:p@c.example.com", "chart": "web", "targetRevision": "1"},
            "spec.source.repoURL",
            "must not carry credentials",
        ),
        (
            {"repoURL": "https://c.example.com", "chart": "../web", "targetRevision": "1"},
            "spec.source.chart",
            "not a chart name",
        ),
        (
            {"repoURL": "oci://registry.example.com", "targetRevision": "1"},
            "spec.source.repoURL",
            "names no chart",
        ),
        (
            {"repoURL": "https://c.example.com", "chart": "", "targetRevision": "1"},
            "spec.source.chart",
            "must not be empty",
        ),
    ],
)
def test_chart_spec_errors_name_the_field(source: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_application(doc(**source))
    assert caught.value.field == field and problem in caught.value.problem, str(caught.value)
    assert "u:p" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oci://registry.example.com/charts/web", ("oci://registry.example.com/charts", "web")),
        ("OCI://registry.example.com/web/", ("OCI://registry.example.com", "web")),
        ("oci://registry.example.com", ("oci://registry.example.com", "")),
        ("oci://registry.example.com/", ("oci://registry.example.com/", "")),
        ("https://charts.example.com/web", ("https://charts.example.com/web", "")),
    ],
)
def test_helm_s_oci_spelling_splits_off_the_chart_name(url: str, expected: tuple[str, str]) -> None:
    """The one reading of ``oci://host/path/NAME`` the spec, ``render --repo`` and the UI share."""
    assert split_oci_chart_url(url) == expected
