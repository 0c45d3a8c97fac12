"""The ApplicationSet documents (``gitsync.web.appsetview``) and the set pages and API that show
them: generators described without running them, the generated apps with the Applications' own
sync/health, malformed status shown without raising, tenant text escaped, the same auth as apps."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from test_web_support import (
    API_TOKEN,
    READ_ONLY_TOKEN,
    FakeController,
    application,
    bearer,
    make_app,
)

from gitsync.appclient import format_set_detail, format_set_list
from gitsync.web.appsetview import describe_generator, list_sets, set_detail, set_summary
from gitsync.web.view import ListQuery

READ = bearer(READ_ONLY_TOKEN)


def appset(
    name: str,
    namespace: str = "team-a",
    *,
    generators: list[Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {
            "goTemplate": True,
            "generators": generators
            if generators is not None
            else [{"list": {"elements": [{"name": "web"}, {"name": "api"}]}}],
            "template": {
                "metadata": {"name": "{{ .name }}"},
                "spec": {
                    "source": {
                        "repoURL": "https://user:s3cret@git.example.com/org/deploy.git",
                        "path": "apps/{{ .name }}",
                        "targetRevision": "main",
                    }
                },
            },
            "syncPolicy": {"applicationsSync": "create-update"},
        },
        "status": status
        if status is not None
        else {
            "applicationCount": 2,
            "conditions": [
                {
                    "type": "ResourcesUpToDate",
                    "status": "True",
                    "reason": "ApplicationSetUpToDate",
                    "message": "All applications have been generated successfully",
                    "lastTransitionTime": "2024-05-02T10:00:00Z",
                },
                {"type": "ErrorOccurred", "status": "False", "reason": "ApplicationSetUpToDate"},
            ],
            "resources": [
                {
                    "name": "api",
                    "namespace": namespace,
                    "status": "Synced",
                    "health": {"status": "Healthy"},
                },
                {
                    "name": "web",
                    "namespace": namespace,
                    "status": "Unknown",
                    "health": {"status": "Unknown"},
                    "message": "kept: create-update does not delete",
                },
            ],
        },
    }


# -- documents ---------------------------------------------------------------------------------


def test_generators_are_described_with_their_inputs_and_nesting() -> None:
    git = {
        "git": {
            "repoURL": "https://tok:en@git.example.com/mono.git",
            "revision": "main",
            "directories": [{"path": "services/*"}, {"path": "services/old", "exclude": True}],
        }
    }
    assert describe_generator(git) == {
        "type": "git",
        "summary": "directories services/*, !services/old in https://***@git.example.com/mono.git "
        "at main",
    }
    files = describe_generator({"git": {"repoURL": "r", "files": [{"path": "envs/*.yaml"}]}})
    assert files["summary"] == "files envs/*.yaml in r at HEAD"
    clusters = {
        "clusters": {"selector": {"matchLabels": {"env": "prod"}, "matchExpressions": [{}]}}
    }
    assert describe_generator(clusters)["summary"] == (
        "registered clusters with env=prod; 1 expression"
    )
    matrix = describe_generator({"matrix": {"generators": [clusters, {"list": {"elements": []}}]}})
    assert matrix["summary"] == "clusters x list"
    assert [g["summary"] for g in matrix["generators"]] == [
        "registered clusters with env=prod; 1 expression",
        "0 elements",
    ]
    merge = describe_generator({"merge": {"mergeKeys": ["name"], "generators": [git, git]}})
    assert merge["summary"] == "git + git on name"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "list",
        [],
        {},
        {"list": "x"},
        {"git": {"directories": "x"}},
        {"matrix": {"generators": 3}},
        {"scmProvider": {}},
    ],
)
def test_a_malformed_generator_is_described_without_raising(value: object) -> None:
    described = describe_generator(value)
    assert isinstance(described["summary"], str) and described["type"]


def test_nesting_is_described_to_a_bounded_depth() -> None:
    deep: dict[str, Any] = {"list": {"elements": []}}
    for _ in range(50):
        deep = {"matrix": {"generators": [deep]}}
    described = describe_generator(deep)
    depth = 0
    while described.get("generators"):
        described = described["generators"][0]
        depth += 1
    assert depth == 3


def test_summary_counts_apps_and_names_the_state_from_the_conditions() -> None:
    row = set_summary(appset("fleet"))
    assert (row["namespace"], row["name"], row["applicationCount"], row["status"]) == (
        "team-a",
        "fleet",
        2,
        "UpToDate",
    )
    assert row["generators"] == [{"type": "list", "summary": "2 elements"}]
    failing = appset(
        "broken",
        status={
            "conditions": [
                {
                    "type": "ErrorOccurred",
                    "status": "True",
                    "message": "fetch https://u:pw@git.example.com/x failed",
                }
            ]
        },
    )
    row = set_summary(failing)
    assert row["status"] == "Error" and row["applicationCount"] == 0
    assert "pw" not in row["conditions"][0]["message"]
    assert set_summary(appset("new", status={}))["status"] == "Unknown"


def test_detail_lists_generated_apps_with_the_applications_own_status() -> None:
    live = [application("api", sync="OutOfSync", health="Progressing")]
    doc = set_detail(appset("fleet"), live)
    assert [(a["name"], a["exists"], a["sync"], a["health"]) for a in doc["applications"]] == [
        ("api", True, "OutOfSync", "Progressing"),
        ("web", False, "Unknown", "Unknown"),
    ]
    assert doc["applications"][0]["short"] and doc["applications"][1]["revision"] == ""
    assert doc["applications"][1]["message"] == "kept: create-update does not delete"
    assert doc["syncPolicy"] == {
        "applicationsSync": "create-update",
        "preserveResourcesOnDeletion": False,
    }
    assert doc["template"]["repoURL"] == "https://***@git.example.com/org/deploy.git"
    assert doc["rollingSync"] is None  # no strategy
    assert "s3cret" not in str(doc)


def test_malformed_status_is_shown_without_raising() -> None:
    obj = appset(
        "odd",
        status={
            "resources": "x",
            "conditions": [1, None, {"type": ["x"]}],
            "applicationCount": "7",
        },
    )
    doc = set_detail(obj, [])
    assert doc["applications"] == [] and doc["applicationCount"] == 0
    assert set_detail({"metadata": None, "spec": [], "status": 3}, [])["generators"] == []


def test_list_filters_by_text_sorts_and_pages() -> None:
    objs = [appset("b"), appset("a", "team-b"), appset("c")]
    listing = list_sets(objs, ListQuery(per_page=2))
    assert [(s["namespace"], s["name"]) for s in listing.items] == [
        ("team-a", "b"),
        ("team-a", "c"),
    ]
    assert (listing.total, listing.pages) == (3, 2)
    assert [s["name"] for s in list_sets(objs, ListQuery(text="TEAM-B/")).items] == ["a"]


# -- API and pages -----------------------------------------------------------------------------

EVIL = '<script>alert("x")</script>'


def fleet() -> dict[str, Any]:
    """A set whose status carries markup (a message quoting tenant text)."""
    obj = appset("fleet")
    obj["status"]["resources"][1]["message"] = EVIL
    return obj


@pytest.fixture
def client() -> FlaskClient:
    controller = FakeController(
        [application("api", sync="OutOfSync")], sets=[fleet(), appset("other", "team-b")]
    )
    return make_app(controller).test_client()


def test_api_list_and_detail(client: FlaskClient) -> None:
    listing = client.get("/api/v1/applicationsets", headers=READ).get_json()
    assert [(s["namespace"], s["name"]) for s in listing["items"]] == [
        ("team-a", "fleet"),
        ("team-b", "other"),
    ]
    assert listing["total"] == 2
    doc = client.get("/api/v1/applicationsets/team-a/fleet", headers=READ).get_json()
    assert doc == set_detail(fleet(), [application("api", sync="OutOfSync")])
    missing = client.get("/api/v1/applicationsets/team-a/nope", headers=READ)
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no ApplicationSet team-a/nope"}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("per_page=0", "per_page must be between 1 and 1000"),
        ("page=x", "page must be an integer"),
        ("health=healthy", "health is not a filter of ApplicationSets"),
    ],
)
def test_api_rejects_bad_query_parameters(client: FlaskClient, query: str, error: str) -> None:
    response = client.get(f"/api/v1/applicationsets?{query}", headers=READ)
    assert response.status_code == 400 and response.get_json() == {"error": error}


def test_api_and_pages_need_authentication(client: FlaskClient) -> None:
    assert client.get("/api/v1/applicationsets").status_code == 401
    assert client.get("/api/v1/applicationsets/team-a/fleet").status_code == 401
    assert client.get("/appsets").status_code in (302, 303)
    assert client.get("/appsets/team-a/fleet").status_code in (302, 303)
    admin = client.get("/api/v1/applicationsets", headers=bearer(API_TOKEN))
    assert admin.status_code == 200


def test_pages_render_the_sets_and_escape_tenant_text(client: FlaskClient) -> None:
    apps_page = client.get("/", headers=READ).get_data(as_text=True)
    assert 'href="/appsets"' in apps_page
    index = client.get("/appsets", headers=READ)
    html = index.get_data(as_text=True)
    assert index.status_code == 200
    assert 'href="/appsets/team-a/fleet"' in html and "2 elements" in html
    page = client.get("/appsets/team-a/fleet", headers=READ)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'href="/apps/team-a/api"' in html  # exists: linked
    assert "OutOfSync" in html and "<td>web</td>" in html  # not (yet) an Application: no link
    assert EVIL not in html and "&lt;script&gt;" in html
    assert client.get("/appsets/team-a/nope", headers=READ).status_code == 404


# -- gitsync appset: tables --------------------------------------------------------------------


def test_cli_tables_show_one_line_per_set_and_app() -> None:
    doc = set_detail(fleet(), [application("api", sync="OutOfSync")])
    listing = format_set_list([set_summary(fleet())]).splitlines()
    assert listing[0].split() == ["NAMESPACE", "NAME", "APPS", "STATUS", "GENERATORS"]
    assert listing[1].split() == ["team-a", "fleet", "2", "UpToDate", "list", "2", "elements"]
    lines = format_set_detail(doc).splitlines()
    assert ["Policy:", "create-update"] in [line.split() for line in lines]
    rows = [line.split()[:4] for line in lines if line.startswith("team-a ")]
    assert rows == [
        ["team-a", "api", "OutOfSync", "Healthy"],
        ["team-a", "web", "Unknown", "Unknown"],
    ]


def test_a_huge_status_is_cut_to_the_bounds() -> None:
    obj = appset("big")
    obj["status"]["resources"] = [
        {"name": f"app-{i}", "message": "m" * 100_000} for i in range(1500)
    ]
    doc = set_detail(obj, [])
    assert len(doc["applications"]) == 1000
    assert max(len(a["message"]) for a in doc["applications"]) <= 512


def with_parameters() -> dict[str, Any]:
    obj = appset("fleet")
    obj["status"]["resources"][0]["parameters"] = {
        "name": "api",
        "values.env": "prod",
        "note": '<script>alert("param")</script>',
    }
    return obj


def test_detail_shows_each_apps_parameters_bounded_again() -> None:
    doc = set_detail(with_parameters(), [])
    assert doc["applications"][0]["parameters"] == {
        "name": "api",
        "note": '<script>alert("param")</script>',
        "values.env": "prod",
    }
    assert doc["applications"][1]["parameters"] == {}
    obj = appset("big")
    obj["status"]["resources"][0]["parameters"] = {f"k{i:03}": "v" * 5000 for i in range(500)}
    obj["status"]["resources"][1]["parameters"] = ["not", "an", "object"]
    big, odd = set_detail(obj, [])["applications"]
    assert len(big["parameters"]) == 33 and max(map(len, big["parameters"].values())) == 256
    assert odd["parameters"] == {}


def test_the_page_shows_parameters_escaped() -> None:
    controller = FakeController([], sets=[with_parameters()])
    page = make_app(controller).test_client().get("/appsets/team-a/fleet", headers=READ)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<code>name=api</code>" in html and "<code>values.env=prod</code>" in html
    assert '<script>alert("param")' not in html
    assert "note=&lt;script&gt;alert(&#34;param&#34;)&lt;/script&gt;" in html


def test_appset_get_shows_one_parameter_line_per_app_cut_to_120() -> None:
    obj = with_parameters()
    obj["status"]["resources"][0]["parameters"]["note"] = "line\nbreak " + "z" * 300
    text = format_set_detail(set_detail(obj, []))
    lines = text.splitlines()
    first = lines[lines.index("PARAMETERS") + 1]
    assert first.startswith("api: name=api, note=line break zzz") and first.endswith("…")
    assert len(first) == 120
    assert lines[-1] == first  # web has no parameters: no line
    assert "PARAMETERS" not in format_set_detail(set_detail(appset("fleet"), []))


# -- the rolling-sync step -----------------------------------------------------------------------


ROLLING = {
    "revision": "b" * 40,
    "provenRevision": "a" * 40,
    "steps": [
        {"step": 1, "phase": "Stopped", "applications": ["web-staging"], "message": EVIL},
        {"step": 2, "phase": "Waiting", "applications": ["web-prod"]},
    ],
    "stoppedBy": ["web-staging"],
    "unmatched": ["web-dev"],
}


def test_detail_shows_the_rolling_sync_steps_and_what_stopped_them() -> None:
    obj = appset("fleet")
    obj["status"]["rollingSync"] = ROLLING
    rolling = set_detail(obj, [])["rollingSync"]
    assert (rolling["short"], rolling["provenShort"]) == ("b" * 7, "a" * 7)
    assert [(s["step"], s["phase"], s["applications"]) for s in rolling["steps"]] == [
        (1, "Stopped", ["web-staging"]),
        (2, "Waiting", ["web-prod"]),
    ]
    assert rolling["stoppedBy"] == ["web-staging"] and rolling["unmatched"] == ["web-dev"]
    odd = appset("odd")
    odd["status"]["rollingSync"] = {"steps": [None, {"step": True, "applications": "x"}]}
    assert [s["step"] for s in set_detail(odd, [])["rollingSync"]["steps"]] == [0, 0]


def test_the_page_shows_the_rolling_sync_escaped() -> None:
    obj = fleet()
    obj["status"]["rollingSync"] = ROLLING
    page = (
        make_app(FakeController([], sets=[obj]))
        .test_client()
        .get("/appsets/team-a/fleet", headers=READ)
    )
    html = page.get_data(as_text=True)
    assert 'id="rolling-sync"' in html and "Stopped by web-staging" in html
    assert '<tr data-step="2"><td>2</td><td>Waiting</td><td>web-prod</td>' in html
    assert EVIL not in html
