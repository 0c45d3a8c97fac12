"""The live tree in the web layer: ``GET /api/v1/applications/<ns>/<name>/tree`` (the read guard,
``?orphans``, errors) and the app page's two views of it (list and graph) - from a tree built by
the real ``build_tree`` - and ``gitsync app get``'s text of the same document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from test_resource_tree import DEPLOYMENT, PODS, RS, managed, obj, pod
from test_web_support import API_TOKEN, FakeController, application, bearer, login, make_app

from gitsync.apptree import format_tree
from gitsync.controller.tree import build_tree
from gitsync.errors import TransientError
from gitsync.model import ResourceKey

NS = "team-a"
URL = f"/api/v1/applications/{NS}/web/tree"
NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def sample_tree() -> dict[str, Any]:
    crashing = pod(
        "web-7f9-c",
        "p-3",
        "rs-1",
        status={
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": False,
                    "restartCount": 7,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ],
        },
        labels={"rollouts.gitsync.dev/role": "canary"},
    )
    service = obj("v1", "Service", "web", "s-1")
    doc = build_tree(
        [
            managed(DEPLOYMENT, ResourceKey("apps", "Deployment", "shop", "web")),
            managed(service, ResourceKey("", "Service", "shop", "web"), sync="OutOfSync"),
        ],
        [RS, *PODS, crashing],
        app=f"{NS}/web",
        now=NOW,
    )
    doc["warnings"] = []
    return doc


@pytest.fixture
def controller() -> FakeController:
    fake = FakeController([application("web")])
    fake.trees[(NS, "web")] = sample_tree()
    return fake


def test_the_api_returns_the_controller_s_tree(controller: FakeController) -> None:
    client = make_app(controller).test_client()
    response = client.get(URL, headers=bearer(API_TOKEN))
    assert response.status_code == 200, response.get_data(as_text=True)
    doc = response.get_json()
    assert (doc["namespace"], doc["name"]) == (NS, "web")
    assert doc["nodes"] == sample_tree()["nodes"]
    assert controller.tree_calls == [((NS, "web"), False)]
    assert client.get(URL + "?orphans=true", headers=bearer(API_TOKEN)).status_code == 200
    assert controller.tree_calls[-1] == ((NS, "web"), True)


@pytest.mark.parametrize(
    ("url", "status", "error"),
    [
        (URL + "?orphans=maybe", 400, "orphans must be true or false"),
        (f"/api/v1/applications/{NS}/nope/tree", 404, f"no Application {NS}/nope"),
    ],
)
def test_bad_requests(controller: FakeController, url: str, status: int, error: str) -> None:
    response = make_app(controller).test_client().get(url, headers=bearer(API_TOKEN))
    assert response.status_code == status
    assert response.get_json() == {"error": error}


def test_the_tree_needs_the_read_guard(controller: FakeController) -> None:
    assert make_app(controller).test_client().get(URL).status_code == 401
    assert controller.tree_calls == []


def test_an_unreachable_cluster_is_a_502_with_the_reason(
    controller: FakeController, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(key: Any, *, orphans: bool = False) -> None:
        raise TransientError("cluster 'edge' unreachable at https://u:secret@edge.example/")

    monkeypatch.setattr(controller, "application_tree", fail)
    client = make_app(controller).test_client()
    response = client.get(URL, headers=bearer(API_TOKEN))
    assert response.status_code == 502
    assert "unreachable" in response.get_json()["error"]
    assert "secret" not in response.get_json()["error"]
    login(client)
    page = client.get(f"/apps/{NS}/web").get_data(as_text=True)
    assert 'id="tree-error"' in page and "unreachable" in page and "secret" not in page


def test_the_page_shows_the_tree_as_a_list_and_as_a_graph(controller: FakeController) -> None:
    client = make_app(controller).test_client()
    login(client)
    page = client.get(f"/apps/{NS}/web").get_data(as_text=True)
    tree_list = page[page.index('id="tree-list"') : page.index('id="tree-graph"')]
    graph = page[page.index('id="tree-graph"') :]
    for view in (tree_list, graph):
        assert 'data-node="apps/Deployment/shop/web"' in view
        assert 'data-node="apps/ReplicaSet/shop/web-7f9"' in view
        assert 'data-node="/Pod/shop/web-7f9-a"' in view
        assert 'data-role="canary"' in view
        assert "CrashLoopBackOff" in view
    assert "<details open><summary>" in tree_list  # collapsible without JavaScript
    assert "7 restarts" in tree_list and "0/1" in tree_list
    assert 'id="tree-view-list" value="list" checked' in page
    assert f'href="/apps/{NS}/web?orphans=true#tree-panel"' in page
    assert "style=" not in page[page.index('id="tree-panel"') :]  # the CSP: no inline styles


def test_app_get_prints_the_tree_indented() -> None:
    text = format_tree({"name": "web", **sample_tree()})
    lines = text.splitlines()
    assert lines[0] == "Application/web"
    assert lines[1].startswith("  Deployment/web  Synced  Progressing  (Waiting for rollout")
    assert lines[2].startswith("    ReplicaSet/web-7f9  Progressing")
    assert "      Pod/web-7f9-c  Degraded  [canary]  Running 0/1 ready  7 restarts" in text
    assert "CrashLoopBackOff" in text
    assert any(line.startswith("  Service/web  OutOfSync") for line in lines)
