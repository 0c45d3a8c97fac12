"""The JSON API (/api/v1) as a client sees it: documents, pagination, the diff, and what each
action records on the Application (bearer token: no CSRF, JSON only)."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from test_web_support import (
    API_TOKEN,
    SHA2,
    FakeController,
    application,
    bearer,
    make_app,
)

from gitsync.application import SpecError
from gitsync.diff import ResourceDiff, diff_resource
from gitsync.model import ResourceKey, SyncStatus

AUTH = bearer(API_TOKEN)


@pytest.fixture
def controller() -> FakeController:
    return FakeController(
        [
            application("web"),
            application("api", sync="OutOfSync", health="Progressing"),
            application("jobs", "team-b", health="Degraded"),
        ]
    )


@pytest.fixture
def client(controller: FakeController) -> FlaskClient:
    return make_app(controller).test_client()


def get(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url, headers=AUTH)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def post(client: FlaskClient, url: str, body: Any = None, status: int = 202) -> Any:
    response = client.post(url, json={} if body is None else body, headers=AUTH)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_list_with_filters_and_pages(client: FlaskClient) -> None:
    doc = get(client, "/api/v1/applications")
    assert (doc["total"], doc["page"], doc["perPage"], doc["pages"]) == (3, 1, 50, 1)
    assert [(a["namespace"], a["name"]) for a in doc["items"]] == [
        ("team-a", "api"),
        ("team-a", "web"),
        ("team-b", "jobs"),
    ]
    item = doc["items"][1]
    assert item["revision"]["sha"] == SHA2 and item["sync"]["status"] == "Synced"
    assert "resources" not in item and "spec" not in item  # rows are summaries
    assert get(client, "/api/v1/applications?sync=OutOfSync")["total"] == 1
    assert get(client, "/api/v1/applications?health=degraded,progressing")["total"] == 2
    assert get(client, "/api/v1/applications?q=team-b")["items"][0]["name"] == "jobs"
    second = get(client, "/api/v1/applications?per_page=2&page=2")
    assert [a["name"] for a in second["items"]] == ["jobs"] and second["pages"] == 2


@pytest.mark.parametrize("query", ["page=0", "page=x", "per_page=0", "per_page=100000"])
def test_bad_paging_is_a_400(client: FlaskClient, query: str) -> None:
    assert "error" in get(client, f"/api/v1/applications?{query}", status=400)


def test_one_application_in_full(client: FlaskClient) -> None:
    doc = get(client, "/api/v1/applications/team-a/web")
    assert {"resources", "history", "operation", "conditions", "syncPolicy"} <= set(doc)
    assert doc["syncPolicy"] == {"automated": True, "prune": True, "selfHeal": True}
    assert doc["history"][0]["id"] == 2
    assert get(client, "/api/v1/applications/team-a/nope", status=404)["error"]


def secret(value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "team-a"},
        "type": "Opaque",
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


def test_diff_lists_what_differs_with_secret_values_masked(
    client: FlaskClient, controller: FakeController
) -> None:
    key = ResourceKey("", "Secret", "team-a", "db")
    controller.diffs[("team-a", "api")] = [
        diff_resource(
            key,
            secret("s3cr3t-new"),
            secret("s3cr3t-old"),
            desired_is_dry_run=False,
            mask_scope="team-a/api",
        ),
        ResourceDiff(ResourceKey("", "ConfigMap", "team-a", "config"), SyncStatus.SYNCED),
        ResourceDiff(ResourceKey("apps", "Deployment", "team-a", "old"), SyncStatus.EXTRANEOUS),
    ]
    doc = get(client, "/api/v1/applications/team-a/api/diff")
    assert doc["inSync"] is False and doc["revision"]["sha"] == SHA2
    assert [(r["kind"], r["status"]) for r in doc["resources"]] == [
        ("Secret", "OutOfSync"),
        ("Deployment", "Extraneous"),
    ]
    text = str(doc)
    assert "++++++++ (hmac-sha256:" in doc["resources"][0]["diff"]
    for value in ("s3cr3t-new", "s3cr3t-old"):
        assert value not in text and base64.b64encode(value.encode()).decode() not in text
    everything = get(client, "/api/v1/applications/team-a/api/diff?all=true")
    assert len(everything["resources"]) == 3


def test_diff_errors_are_reported_not_raised(
    client: FlaskClient, controller: FakeController
) -> None:
    def broken(key: Any) -> Any:
        raise SpecError("spec.source.repoURL", "is required")

    controller.application_diff = broken  # type: ignore[method-assign]
    assert get(client, "/api/v1/applications/team-a/web/diff", status=409)["error"].startswith(
        "the Application's spec is invalid"
    )


def test_diff_concurrency_is_bounded(client: FlaskClient, controller: FakeController) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)
    original = controller.application_diff

    def slow(key: Any) -> Any:
        entered.release()
        release.wait(10)
        return original(key)

    controller.application_diff = slow  # type: ignore[method-assign]
    app = client.application
    results: list[int] = []

    def call() -> None:
        results.append(
            app.test_client().get("/api/v1/applications/team-a/web/diff", headers=AUTH).status_code
        )

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
    busy = client.get("/api/v1/applications/team-a/web/diff", headers=AUTH)
    assert busy.status_code == 503 and busy.headers["Retry-After"]
    release.set()
    for t in threads:
        t.join(10)
    assert results == [200, 200]


def annotations_of(controller: FakeController, key: tuple[str, str]) -> dict[str, str]:
    return dict(controller.store.objs[key]["metadata"]["annotations"])


def test_sync_and_refresh_write_new_request_nonces(
    client: FlaskClient, controller: FakeController
) -> None:
    first = post(client, "/api/v1/applications/team-a/web/sync")
    second = post(client, "/api/v1/applications/team-a/web/sync", {"prune": True})
    assert first["request"] != second["request"]
    sync_request = annotations_of(controller, ("team-a", "web"))["gitsync.dev/sync-request"]
    assert sync_request == second["request"] + ";prune"
    refresh = post(client, "/api/v1/applications/team-a/web/refresh")
    assert (
        annotations_of(controller, ("team-a", "web"))["gitsync.dev/refresh"] == refresh["request"]
    )
    assert [r for _, r in controller.refreshed] == ["web:sync", "web:sync", "web:refresh"]
    assert post(client, "/api/v1/applications/team-a/web/sync", {"prune": "yes"}, 400)["error"]


def test_rollback_pause_and_resume(client: FlaskClient, controller: FakeController) -> None:
    key = ("team-a", "web")
    post(client, "/api/v1/applications/team-a/web/rollback", {"id": 1})
    assert annotations_of(controller, key)["gitsync.dev/rollback-to"] == "1"
    assert post(client, "/api/v1/applications/team-a/web/rollback", {"id": 7}, 404)["error"]
    assert post(client, "/api/v1/applications/team-a/web/rollback", {}, 400)["error"]
    assert post(client, "/api/v1/applications/team-a/web/rollback", {"id": True}, 400)["error"]
    controller.store.objs[key]["status"]["lastHandledRollback"] = "1"
    repeat = post(client, "/api/v1/applications/team-a/web/rollback", {"id": 1}, 409)
    assert "newer entry" in repeat["error"]
    post(client, "/api/v1/applications/team-a/web/pause")
    assert "gitsync.dev/automation-paused" in annotations_of(controller, key)
    assert get(client, "/api/v1/applications/team-a/web")["automationPaused"] is True
    post(client, "/api/v1/applications/team-a/web/resume")
    remaining = annotations_of(controller, key)
    assert "gitsync.dev/automation-paused" not in remaining
    assert "gitsync.dev/rollback-to" not in remaining
    assert get(client, "/api/v1/applications/team-a/web")["automationPaused"] is False


def test_actions_on_unknown_apps_and_actions(client: FlaskClient) -> None:
    assert post(client, "/api/v1/applications/team-a/nope/sync", status=404)["error"]
    assert post(client, "/api/v1/applications/team-a/web/delete", status=404)["error"]


def test_bodies_must_be_json_objects(client: FlaskClient) -> None:
    url = "/api/v1/applications/team-a/web/sync"
    for raw in ("[1]", '"x"', "{not json"):
        response = client.post(url, data=raw, content_type="application/json", headers=AUTH)
        assert response.status_code == 400, raw
    empty = client.post(url, data="", content_type="application/json", headers=AUTH)
    assert empty.status_code == 202


def test_a_store_failure_is_reported_without_details(
    client: FlaskClient, controller: FakeController
) -> None:
    controller.store.fail = RuntimeError("apiserver said: token=abc123 is forbidden")
    doc = post(client, "/api/v1/applications/team-a/web/sync", status=502)
    assert "abc123" not in doc["error"]


def test_a_recent_diff_is_reused_for_two_seconds(controller: FakeController) -> None:
    now = [100.0]
    client = make_app(controller, clock=lambda: now[0]).test_client()
    url = "/api/v1/applications/team-a/api/diff"
    get(client, url)
    get(client, url + "?all=true")
    assert controller.diff_calls == 1
    now[0] += 2.0
    get(client, url)
    assert controller.diff_calls == 2
