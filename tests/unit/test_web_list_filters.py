"""The Application list's filters and counters (gitsync.web.view, gitsync.web.selector): label
selectors, namespace/project/repo filters, the counting rule, the URL round trip, the API's 400s
and the page's counter links; and ``gitsync app list``'s filter flags reaching the API."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from test_appclient import listener, url_of  # noqa: F401 - the fixture
from test_web_support import API_TOKEN, FakeController, application, bearer, make_app
from werkzeug.datastructures import MultiDict

from gitsync.cli import build_parser
from gitsync.web.selector import (
    LabelOperator,
    LabelRequirement,
    SelectorError,
    format_selector,
    parse_selector,
)
from gitsync.web.view import ListQuery, list_applications, normalized_repo

AUTH = bearer(API_TOKEN)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", ()),
        ("tier=front", (LabelRequirement("tier", LabelOperator.EQUALS, "front"),)),
        ("tier==front", (LabelRequirement("tier", LabelOperator.EQUALS, "front"),)),
        ("tier!=front", (LabelRequirement("tier", LabelOperator.NOT_EQUALS, "front"),)),
        ("tier", (LabelRequirement("tier", LabelOperator.EXISTS),)),
        ("!legacy", (LabelRequirement("legacy", LabelOperator.NOT_EXISTS),)),
        (
            " app.kubernetes.io/part-of = shop , !legacy",
            (
                LabelRequirement("app.kubernetes.io/part-of", LabelOperator.EQUALS, "shop"),
                LabelRequirement("legacy", LabelOperator.NOT_EXISTS),
            ),
        ),
        ("tier=", (LabelRequirement("tier", LabelOperator.EQUALS, ""),)),
    ],
)
def test_label_selectors_parse(text: str, parsed: tuple[LabelRequirement, ...]) -> None:
    assert parse_selector(text) == parsed
    assert parse_selector(format_selector(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("tier=front,", "'' is not one of key=value"),
        ("=front", "is not one of key=value"),
        ("!tier=front", "is not one of key=value"),
        ("tier in (a,b)", "is not a label key"),
        ("-tier=x", "'-tier' is not a label key"),
        ("tier=front end", "'front end' is not a label value"),
        ("tier=" + "v" * 64, "is not a label value"),
        ("Bad_Prefix.io/x=1", "is not a label key"),
        (",".join(f"k{i}" for i in range(17)), "more than 16 terms"),
        ("k=" + "v" * 2000, "longer than 1024"),
    ],
)
def test_bad_label_selectors_are_named_errors(text: str, match: str) -> None:
    with pytest.raises(SelectorError, match=match):
        parse_selector(text)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("tier=front", {"tier": "front"}, True),
        ("tier=front", {"tier": "back"}, False),
        ("tier=front", {}, False),
        ("tier!=front", {}, True),  # like kubectl: no label is not front
        ("tier!=front", {"tier": "front"}, False),
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": ""}, False),
        ("tier=front,env=prod", {"tier": "front", "env": "dev"}, False),
    ],
)
def test_label_requirements_match(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert all(r.matches(labels) for r in parse_selector(selector)) is matches


def fleet() -> list[dict[str, Any]]:
    """Six apps in two namespaces, two repos, with labels."""
    specs = [
        ("web", "team-a", "https://git.example.com/org/shop.git", "Synced", "Healthy", "front"),
        ("api", "team-a", "https://git.example.com/org/shop.git", "OutOfSync", "Degraded", "back"),
        ("cart", "team-a", "https://git.example.com/org/cart", "Synced", "Degraded", "back"),
        ("web", "team-b", "https://git.example.com/org/shop.git", "Synced", "Healthy", "front"),
        ("db", "team-b", "https://git.example.com/org/db.git", "OutOfSync", "Progressing", ""),
        ("queue", "team-b", "https://git.example.com/org/db.git", "Synced", "Degraded", ""),
    ]
    out = []
    for name, ns, repo, sync, health, tier in specs:
        obj = application(name, ns, repo=repo, sync=sync, health=health)
        if tier:
            obj["metadata"]["labels"] = {"tier": tier, "app.kubernetes.io/part-of": "shop"}
        out.append(obj)
    return out


def names(query: ListQuery) -> list[str]:
    return [f"{r['namespace']}/{r['name']}" for r in list_applications(fleet(), query).items]


def parse(**args: str) -> ListQuery:
    return ListQuery.parse(MultiDict(args), strict=True)


def test_each_filter_selects_its_field() -> None:
    assert names(parse(namespace="team-b")) == ["team-b/db", "team-b/queue", "team-b/web"]
    assert names(parse(project="team-a,team-x")) == ["team-a/api", "team-a/cart", "team-a/web"]
    assert names(parse(repo="HTTPS://git.example.com/org/cart.git/")) == ["team-a/cart"]
    assert names(parse(label="tier=back")) == ["team-a/api", "team-a/cart"]
    assert names(parse(label="!tier")) == ["team-b/db", "team-b/queue"]
    assert names(parse(label="tier!=front")) == [
        "team-a/api",
        "team-a/cart",
        "team-b/db",
        "team-b/queue",
    ]
    assert names(parse(q="QUEUE")) == ["team-b/queue"]
    assert names(parse(q="org/shop")) == ["team-a/api", "team-a/web", "team-b/web"]
    assert names(parse(health="degraded", namespace="team-a", label="tier")) == [
        "team-a/api",
        "team-a/cart",
    ]


def test_repo_filters_compare_without_credentials_case_or_suffix() -> None:
    assert normalized_repo("https://tok@Git.Example.com/org/Shop.git/") == (
        "https://***@git.example.com/org/shop"
    )
    assert normalized_repo("https://git.example.com/org/shop") == normalized_repo(
        "https://git.example.com/org/shop.git"
    )


def test_counters_count_every_other_filter_but_not_their_own() -> None:
    unfiltered = list_applications(fleet(), ListQuery())
    assert unfiltered.counts is not None
    assert unfiltered.counts.health == {"Degraded": 3, "Healthy": 2, "Progressing": 1}
    assert unfiltered.counts.sync == {"OutOfSync": 2, "Synced": 4}

    listing = list_applications(fleet(), parse(health="degraded", namespace="team-a"))
    assert listing.total == 2
    assert listing.counts is not None
    # health counters: team-a's apps by health (the health filter left out) ...
    assert listing.counts.health == {"Degraded": 2, "Healthy": 1}
    # ... sync counters: team-a's *degraded* apps by sync status
    assert listing.counts.sync == {"OutOfSync": 1, "Synced": 1}
    # every counter is what choosing it lists
    for health, count in listing.counts.health.items():
        assert list_applications(fleet(), parse(health=health, namespace="team-a")).total == count


def test_the_query_round_trips_through_the_url() -> None:
    query = ListQuery.parse(
        MultiDict(
            [
                ("q", "web"),
                ("health", "Degraded"),
                ("namespace", "team-a"),
                ("repo", "https://git.example.com/org/shop.git"),
                ("label", "tier=front"),
                ("label", "!legacy"),
                ("page", "2"),
            ]
        ),
        strict=True,
    )
    params = query.params()
    assert params == {
        "q": "web",
        "health": "degraded",
        "namespace": "team-a",
        "repo": "https://git.example.com/org/shop",
        "label": "tier=front,!legacy",
        "page": 2,
    }
    assert ListQuery.parse(MultiDict({k: str(v) for k, v in params.items()}), strict=True) == query
    assert query.params(health="", page=None) == {
        k: v for k, v in params.items() if k not in ("health", "page")
    }


def test_the_api_filters_counts_and_refuses_unknown_parameters() -> None:
    client = make_app(FakeController(fleet())).test_client()
    answer = client.get(
        "/api/v1/applications?health=degraded&namespace=team-a&label=tier%3Dback", headers=AUTH
    )
    assert answer.status_code == 200
    doc = answer.get_json()
    assert [i["name"] for i in doc["items"]] == ["api", "cart"]
    assert doc["items"][0]["labels"] == {"app.kubernetes.io/part-of": "shop", "tier": "back"}
    assert doc["counts"] == {
        "sync": {"OutOfSync": 1, "Synced": 1},
        "health": {"Degraded": 2},
    }
    for query, error in (
        ("ns=team-a&color=red", "unknown query parameters: color, ns"),
        ("label=tier%20in%20(a)", "is not a label key"),
        ("per_page=0", "per_page must be between"),
        ("health=degrade", "health 'degrade' is not one of Healthy, Suspended"),
        ("sync=synced,missing", "sync 'missing' is not one of Synced, OutOfSync, Unknown"),
    ):
        answer = client.get(f"/api/v1/applications?{query}", headers=AUTH)
        assert answer.status_code == 400, query
        assert error in answer.get_json()["error"]
    # the sets' list does not take the app list's filters silently either
    answer = client.get("/api/v1/applicationsets?label=tier", headers=AUTH)
    assert answer.status_code == 400 and "label" in answer.get_json()["error"]


def test_the_page_links_each_counter_to_its_filter() -> None:
    client = make_app(FakeController(fleet()), anonymous_read=True).test_client()
    page = client.get("/?namespace=team-a&q=a")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'data-count="health:Degraded">2<' in html
    assert 'data-count="health:Suspended">0<' in html  # every known status, zero or not
    degraded = html.index('data-counter="health:Degraded"')
    href = html.rindex('href="', 0, degraded)
    link = html[href + 6 : html.index('"', href + 6)].replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query) == {
        "namespace": ["team-a"],
        "q": ["a"],
        "health": ["degraded"],
    }
    filtered = client.get(link).get_data(as_text=True)
    assert 'data-app="team-a/api"' in filtered and 'data-app="team-a/cart"' in filtered
    assert 'data-app="team-a/web"' not in filtered
    assert 'aria-current="true"' in filtered  # the active counter; its link drops the filter


def test_the_page_names_a_bad_selector_and_lists_without_it() -> None:
    client = make_app(FakeController(fleet()), anonymous_read=True).test_client()
    page = client.get("/?label=tier%3D%3D%3Dx")
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert 'id="list-error"' in html and "is not a label value" in html
    assert html.count("data-app=") == 6
    # the sets' page reads the same query leniently: no error page for it either
    assert client.get("/appsets?label=tier%3D%3D%3Dx").status_code == 200


def test_app_list_passes_its_filters_to_the_api(
    listener: Any,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"items": [], "page": 1, "perPage": 1000, "total": 0, "pages": 1}
    server = listener(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
    monkeypatch.setenv("GITSYNC_TOKEN", "t" * 24)
    argv = [
        "app",
        "list",
        f"--server={url_of(server)}",
        "-n",
        "team-a",
        "-l",
        "tier=front,!legacy",
        "--sync=OutOfSync",
        "--health",
        "Degraded",
        "--repo=https://git.example.com/org/shop.git",
    ]
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    (seen,) = server.seen
    assert parse_qs(urlsplit(seen["path"]).query) == {
        "page": ["1"],
        "per_page": ["1000"],
        "namespace": ["team-a"],
        "label": ["tier=front,!legacy"],
        "sync": ["OutOfSync"],
        "health": ["Degraded"],
        "repo": ["https://git.example.com/org/shop.git"],
    }
