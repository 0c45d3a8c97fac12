"""``GET /api/v1/applications/<ns>/<name>/events`` as a client sees it (the Flask app over an
in-memory ``ControllerView``): who may read it, the query's checks, and its answers."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from test_web_support import READ_ONLY_TOKEN, FakeController, application, bearer, make_app

from gitsync.controller.interface import EventQuery

URL = "/api/v1/applications/team-a/web/events"
WARNING = {"type": "Warning", "reason": "Unhealthy", "message": "probe failed", "name": "p.1"}


@pytest.fixture
def controller() -> FakeController:
    fake = FakeController([application("web")])
    fake.events[("team-a", "web")] = [WARNING]
    return fake


@pytest.fixture
def client(controller: FakeController) -> FlaskClient:
    return make_app(controller).test_client()


def test_reading_events_needs_a_token_or_session(
    client: FlaskClient, controller: FakeController
) -> None:
    response = client.get(URL)
    assert response.status_code == 401
    assert controller.event_queries == []  # refused before the controller was asked


def test_a_read_only_token_reads_them_with_the_query_passed_on(
    client: FlaskClient, controller: FakeController
) -> None:
    response = client.get(
        URL + "?kind=Pod&name=web-1&namespace=team-a&type=Warning&limit=5",
        headers=bearer(READ_ONLY_TOKEN),
    )
    assert response.status_code == 200
    assert response.get_json() == {"items": [WARNING], "loading": False}
    assert controller.event_queries == [
        (
            ("team-a", "web"),
            EventQuery(kind="Pod", name="web-1", namespace="team-a", type="Warning", limit=5),
        )
    ]


@pytest.mark.parametrize(
    ("query", "named"),
    [("type=Error", "type"), ("limit=0", "limit"), ("limit=-1", "limit"), ("order=asc", "order")],
)
def test_a_bad_query_is_a_400_naming_the_parameter(
    client: FlaskClient, controller: FakeController, query: str, named: str
) -> None:
    response = client.get(f"{URL}?{query}", headers=bearer(READ_ONLY_TOKEN))
    assert response.status_code == 400
    assert named in response.get_json()["error"]
    assert controller.event_queries == []


def test_an_unknown_app_is_a_404(client: FlaskClient) -> None:
    missing = client.get("/api/v1/applications/team-a/nope/events", headers=bearer(READ_ONLY_TOKEN))
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no Application team-a/nope"}


def test_loading_is_a_200_with_the_events_known_so_far(
    client: FlaskClient, controller: FakeController
) -> None:
    done = client.get(URL, headers=bearer(READ_ONLY_TOKEN))
    assert done.status_code == 200 and done.get_json() == {"items": [WARNING], "loading": False}
    controller.events_loading = True
    loading = client.get(URL, headers=bearer(READ_ONLY_TOKEN))
    assert loading.status_code == 200  # a browser logs no failed request for a normal state
    assert "Retry-After" not in loading.headers
    assert loading.get_json() == {
        "items": [WARNING],
        "loading": True,
        "message": "still loading the Events of team-a",
    }


def test_a_failing_stream_is_a_503_with_its_reason(
    client: FlaskClient, controller: FakeController
) -> None:
    controller.events_failing = True
    failing = client.get(URL, headers=bearer(READ_ONLY_TOKEN))
    assert failing.status_code == 503
    assert failing.headers["Retry-After"] == "2"
    assert failing.get_json() == {
        "error": "the Events of namespace team-a cannot be listed: 403 Forbidden"
    }


def test_the_app_page_has_the_events_section_and_its_script(client: FlaskClient) -> None:
    from test_web_support import login

    login(client)
    html = client.get("/apps/team-a/web").get_data(as_text=True)
    assert f'data-api="{URL}"' in html
    assert '<script src="/static/events.js" defer></script>' in html
