"""The documents the UI and the API show (gitsync.web.view): pure functions, table tests."""

from __future__ import annotations

from typing import Any

import pytest
from test_web_support import SHA2, application
from werkzeug.datastructures import MultiDict

from gitsync.web.view import (
    ListQuery,
    detail,
    display_repo_url,
    http_link,
    list_applications,
    status_class,
    summary,
)


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://git.local:8080/repo", "http://git.local:8080/repo"),
        ("HTTPS://GitHub.com/org/repo", "HTTPS://GitHub.com/org/repo"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(document.cookie)", None),
        (" javascript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("file:///etc/passwd", None),
        ("ssh://git@github.com/org/repo.git", None),
        ("git@github.com:org/repo.git", None),
        ("https://user:token@github.com/org/repo", None),  # never link a credential
        ('https://x.example/"onmouseover="alert(1)', None),
        ("https:///nohost", None),
        ("https://[::1/x", None),
        ("", None),
    ],
)
def test_only_plain_http_urls_become_links(url: str, link: str | None) -> None:
    assert http_link(url) == link


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://ghp_abcdef123456@github.com/org/repo", "https://***@github.com/org/repo"),
        ("https://user:s3cret@git.example/x", "https://***@git.example/x"),
        ("ssh://git:s3cret@git.example/x", "ssh://git:***@git.example/x"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("javascript:alert(1)", "javascript:alert(1)"),
    ],
)
def test_repo_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert display_repo_url(url) == shown


def test_status_classes_are_css_safe() -> None:
    assert status_class("OutOfSync") == "outofsync"
    assert status_class('x" onclick="y') == "xonclicky"
    assert status_class("") == "unknown"


def test_summary_picks_the_fields_the_list_shows() -> None:
    row = summary(application("web", message="fix: bump image\n\nlong body"))
    assert row["namespace"] == "team-a" and row["name"] == "web"
    assert row["revision"]["short"] == SHA2[:7]
    assert row["revision"]["message"].startswith("fix: bump image")
    assert row["sync"]["status"] == "Synced" and row["health"]["status"] == "Healthy"
    assert row["lastSyncedAt"] == "2024-05-02T10:00:00Z"
    assert row["automation"] == "automated (prune, self-heal)"
    assert row["repoLink"] == "https://git.example.com/org/deploy.git"
    assert row["sourceType"] == "Directory"


def test_paused_and_manual_apps_say_so() -> None:
    paused = application("web", annotations={"gitsync.dev/automation-paused": "rollback to 1"})
    assert summary(paused)["automationPaused"] is True
    assert summary(paused)["automation"] == "automated sync paused"
    assert summary(application("web", automated=False))["automation"] == "manual sync"


def test_a_blocking_sync_window_is_shown_with_its_end() -> None:
    obj = application("web")
    window = {"until": "2026-12-08T00:00:00Z", "message": "blocked by the deny window"}
    obj["status"]["syncWindow"] = window
    row = summary(obj)
    assert row["automation"].endswith("; blocked by a sync window until 2026-12-08T00:00:00Z")
    assert row["syncWindow"] == window
    assert summary(application("web"))["syncWindow"] is None


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"metadata": None, "spec": "x", "status": []},
        {"metadata": {"name": "x", "namespace": "y"}, "status": {"sync": "Synced", "history": 3}},
        {
            "metadata": {"name": "x", "namespace": "y"},
            "status": {
                "history": [{"id": "not-a-number"}, None, {"id": 2, "revision": 7}],
                "resources": [None, {"kind": {"x": 1}}],
                "conditions": [None, {"type": "Ready", "message": ["a"]}],
                "operationState": {"resources": "x"},
            },
        },
    ],
)
def test_malformed_status_never_raises(broken: dict[str, Any]) -> None:
    doc = detail(broken)
    assert doc["sync"]["status"] == "Unknown" or isinstance(doc["sync"]["status"], str)
    assert isinstance(doc["history"], list) and isinstance(doc["resources"], list)


def test_detail_merges_the_last_operation_into_the_resource_tree() -> None:
    doc = detail(application("web"))
    config = next(r for r in doc["resources"] if r["kind"] == "ConfigMap")
    assert config["lastResult"] == {"status": "Synced", "message": "configured"}
    assert [h["id"] for h in doc["history"]] == [2, 1]  # newest first
    assert doc["operation"]["phase"] == "Succeeded"
    assert doc["operation"]["hooks"] == [
        {
            "group": "batch",
            "kind": "Job",
            "namespace": "team-a",
            "name": "migrate",
            "phase": "PreSync",
            "status": "Succeeded",
            "message": "done",
            "durationMs": 4200,
        }
    ]


def test_detail_never_shows_the_last_applied_configuration() -> None:
    app = application(
        "web",
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": '{"big": "blob"}',
            "team": "payments",
        },
    )
    assert detail(app)["annotations"] == {"team": "payments"}


def test_messages_with_credentials_in_urls_are_redacted() -> None:
    app = application("web")
    app["status"]["conditions"][0]["message"] = "fetch failed: https://bob:hunter2@git.example/x"
    assert "hunter2" not in str(detail(app))


def apps(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        sync = "OutOfSync" if i % 3 == 0 else "Synced"
        health = "Degraded" if i % 10 == 0 else "Healthy"
        out.append(application(f"app-{i:04d}", f"ns-{i % 4}", sync=sync, health=health))
    return out


def test_pagination_is_stable_and_counts_everything() -> None:
    objs = apps(120)
    pages = [list_applications(objs, ListQuery(page=p, per_page=50)) for p in (1, 2, 3, 4)]
    assert [len(p.items) for p in pages] == [50, 50, 20, 0]
    assert all(p.total == 120 and p.pages == 3 for p in pages)
    names = [(r["namespace"], r["name"]) for p in pages for r in p.items]
    assert names == sorted(names) and len(set(names)) == 120


def test_filters_combine() -> None:
    objs = apps(120)
    out_of_sync = list_applications(objs, ListQuery(sync=("outofsync",), per_page=1000))
    assert out_of_sync.total == 40
    assert {r["sync"]["status"] for r in out_of_sync.items} == {"OutOfSync"}
    both = list_applications(objs, ListQuery(sync=("outofsync",), health=("degraded",)))
    assert both.total == len([i for i in range(120) if i % 3 == 0 and i % 10 == 0])
    text = list_applications(objs, ListQuery(text="APP-001"))
    assert {r["name"] for r in text.items} == {f"app-{i:04d}" for i in range(10, 20)}
    by_namespace = list_applications(objs, ListQuery(text="ns-2/"))
    assert by_namespace.total == 30


def test_query_parsing_strict_for_the_api_lenient_for_pages() -> None:
    args = MultiDict({"page": "x", "per_page": "5000", "sync": "Synced,OutOfSync", "q": " web "})
    with pytest.raises(ValueError, match="page"):
        ListQuery.parse(args, strict=True)
    lenient = ListQuery.parse(args, strict=False)
    assert lenient.page == 1 and lenient.per_page == 1000
    assert lenient.sync == ("synced", "outofsync") and lenient.text == "web"
    assert lenient.params(page=2) == {
        "q": "web",
        "sync": "synced,outofsync",
        "per_page": 1000,
        "page": 2,
    }


def test_a_chart_revision_is_shown_whole_with_its_chart_and_digest() -> None:
    """Issue 15: ``chart@version`` is the revision of a chart source; cutting it to 7
    characters would hide the version."""
    obj = application("web", sha="web@1.12.3", message="")
    obj["spec"]["source"] = {"repoURL": "https://charts.example.com", "chart": "web"}
    obj["status"]["sourceRevision"]["digest"] = "sha256:" + "a" * 64
    row = summary(obj)
    assert row["revision"]["short"] == "web@1.12.3"
    assert row["revision"]["digest"] == "sha256:" + "a" * 64
    assert row["chart"] == "web"
    assert "web@1.12.3" in [h["short"] for h in detail(obj)["history"]]


@pytest.mark.parametrize(
    ("source", "chart"),
    [
        ({"repoURL": "oci://registry.example.com/charts", "chart": "web"}, "web"),
        # Helm's spelling: the registry URL ends with the chart's name, no chart field
        ({"repoURL": "oci://registry.example.com/charts/web"}, "web"),
        ({"repoURL": "https://git.example.com/org/deploy.git", "path": "apps/web"}, ""),
    ],
)
def test_the_api_names_the_chart_and_its_version(source: dict[str, str], chart: str) -> None:
    """Issue 15: the UI and API show the chart name, version and source type."""
    obj = application("web", sha="web@1.12.3" if chart else SHA2)
    obj["spec"]["source"] = {**source, "targetRevision": "1.x"}
    obj["status"]["sourceType"] = "OCI" if chart else "Directory"
    row = summary(obj)
    assert row["chart"] == chart
    assert row["chartVersion"] == ("1.12.3" if chart else "")
    assert row["sourceType"] == ("OCI" if chart else "Directory")


def test_an_app_waiting_for_its_dependencies_says_so_in_list_and_page() -> None:
    obj = application("api")
    obj["spec"]["dependsOn"] = [{"name": "db"}, {"name": "certs", "namespace": "platform"}]
    obj["status"]["waitingFor"] = [{"namespace": "team-a", "name": "db", "reason": "Progressing"}]
    row = summary(obj)
    assert row["automation"].endswith("; waiting for team-a/db (Progressing)")
    assert row["waitingFor"] == [{"namespace": "team-a", "name": "db", "reason": "Progressing"}]
    assert detail(obj)["dependsOn"] == [
        {"namespace": "team-a", "name": "db", "waitingFor": "Progressing"},
        {"namespace": "platform", "name": "certs", "waitingFor": ""},
    ]
    assert summary(application("web"))["waitingFor"] == []
    assert detail(application("web"))["dependsOn"] == []
