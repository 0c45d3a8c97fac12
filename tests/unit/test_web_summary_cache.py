"""The list's summary cache (``gitsync.web.view.Summaries``): a row is reused only while the
Application's ``(uid, resourceVersion)`` is the same, so the list never shows a stale row, and the
rows a request gets are its own to annotate."""

from __future__ import annotations

from typing import Any

import pytest
from test_web_support import API_TOKEN, FakeController, application, bearer, make_app

from gitsync.web.view import ListQuery, Summaries, list_applications, summary


def stored(name: str, namespace: str = "team-a", *, version: int = 1, **kw: Any) -> dict[str, Any]:
    """An Application as the watch cache holds it: with a uid and a resourceVersion."""
    obj = application(name, namespace, **kw)
    obj["metadata"].update(uid=f"uid-{namespace}-{name}", resourceVersion=str(version))
    return obj


def test_a_new_resource_version_is_summarised_again() -> None:
    summaries = Summaries()
    before = stored("web", sync="Synced")
    assert summaries.get(before)["sync"]["status"] == "Synced"
    assert summaries.get(before) is summaries.get(before)  # unchanged: the same row
    after = stored("web", version=2, sync="OutOfSync", health="Degraded")
    row = summaries.get(after)
    assert (row["sync"]["status"], row["health"]["status"]) == ("OutOfSync", "Degraded")
    assert row == summary(after)
    assert len(summaries) == 1  # the old version's row is gone


def test_a_recreated_application_is_summarised_again() -> None:
    summaries = Summaries()
    summaries.get(stored("web", path="apps/old"))
    recreated = stored("web", path="apps/new")  # same name and version number, new uid
    recreated["metadata"]["uid"] = "uid-recreated"
    assert summaries.get(recreated)["path"] == "apps/new"


@pytest.mark.parametrize("missing", ["uid", "resourceVersion"])
def test_objects_without_uid_and_version_are_summarised_every_time(missing: str) -> None:
    # ``--config`` Applications: their status lives in a ConfigMap, nothing versions the whole
    summaries = Summaries()
    obj = stored("web", sync="Synced")
    del obj["metadata"][missing]
    assert summaries.get(obj)["sync"]["status"] == "Synced"
    obj["status"]["sync"]["status"] = "OutOfSync"
    assert summaries.get(obj)["sync"]["status"] == "OutOfSync"
    assert len(summaries) == 0


def test_the_cache_forgets_the_oldest_rows_past_its_limit() -> None:
    summaries = Summaries(limit=4)
    objs = [stored(f"app-{i}") for i in range(10)]
    for obj in objs:
        summaries.get(obj)
    assert len(summaries) <= 4
    assert [summaries.get(o) for o in objs] == [summary(o) for o in objs]


def workload(n: int) -> list[dict[str, Any]]:
    return [
        stored(
            f"app-{i:03d}",
            f"ns-{i % 3}",
            sync="OutOfSync" if i % 4 == 0 else "Synced",
            health="Degraded" if i % 5 == 0 else "Healthy",
        )
        for i in reversed(range(n))
    ]


@pytest.mark.parametrize(
    "query",
    [
        ListQuery(),
        ListQuery(page=2, per_page=7),
        ListQuery(page=99),
        ListQuery(sync=("outofsync",), per_page=5, page=2),
        ListQuery(health=("degraded",), sync=("outofsync",)),
        ListQuery(text="ns-1/app-0"),
    ],
)
def test_listing_with_the_cache_equals_listing_without(query: ListQuery) -> None:
    objs = workload(60)
    summaries = Summaries()
    list_applications(objs, ListQuery(per_page=1000), summaries)  # warm every row
    cached = list_applications(objs, query, summaries)
    plain = list_applications(objs, query)
    assert (cached.items, cached.total, cached.pages) == (plain.items, plain.total, plain.pages)
    # the objects behind the page, in the page's order (``annotate_rows`` reads them)
    keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in cached.objects]
    assert keys == [(r["namespace"], r["name"]) for r in cached.items]


def test_rows_of_a_listing_are_the_callers_own() -> None:
    objs = workload(5)
    summaries = Summaries()
    first = list_applications(objs, ListQuery(), summaries)
    for row in first.items:
        row["rollouts"] = ["annotated by the first request"]
    second = list_applications(objs, ListQuery(), summaries)
    assert all("rollouts" not in row for row in second.items)


def test_an_unfiltered_page_summarises_only_its_rows() -> None:
    summaries = Summaries()
    list_applications(workload(60), ListQuery(page=2, per_page=10), summaries)
    assert len(summaries) == 10


def test_the_api_shows_a_status_change_at_once() -> None:
    controller = FakeController([stored("web", sync="Synced"), stored("api", sync="Synced")])
    client = make_app(controller).test_client()

    def statuses() -> dict[str, str]:
        answer = client.get("/api/v1/applications", headers=bearer(API_TOKEN))
        assert answer.status_code == 200
        return {r["name"]: r["sync"]["status"] for r in answer.get_json()["items"]}

    assert statuses() == {"api": "Synced", "web": "Synced"}
    controller.store.objs[("team-a", "web")] = stored("web", version=2, sync="OutOfSync")
    assert statuses() == {"api": "Synced", "web": "OutOfSync"}
