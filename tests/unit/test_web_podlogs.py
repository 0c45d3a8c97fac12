"""The logs endpoints' wiring in the Flask app, over an in-memory ``ControllerView`` whose
destination client is the ``PodReader`` of ``test_podlogs`` (our interface, not the Kubernetes
API): the role gate, the 404 for Pods not the app's, the stream slots, the API server's refusals.
The same against the real API server: ``tests/integration/test_pod_logs_it.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask

from gitsync.application_status import HealthSummary, ResourceStatus
from gitsync.web.podlogs import LogLimits, LogsRole
from tests.unit.test_podlogs import DEPLOY, POD, RS, STRAY, Cluster
from tests.unit.test_web_support import (
    ADMIN_PASSWORD,
    API_TOKEN,
    READ_ONLY_TOKEN,
    FakeController,
    application,
    bearer,
    login,
    make_app,
)


class LogCluster(Cluster):
    def __init__(self, *objs: Any):
        super().__init__(*objs)
        self.queries: list[dict[str, str]] = []
        self.refusal: Exception | None = None

    def open_pod_log(
        self, namespace: str, pod: str, query: dict[str, str], *, timeout: float = 60.0
    ) -> tuple[Iterator[bytes], Callable[[], None]]:
        if self.refusal:
            raise self.refusal
        self.queries.append(query)
        return iter([f"log of {namespace}/{pod}\n".encode()]), lambda: None


class Controller(FakeController):
    cluster: LogCluster

    def cluster_client(self, name: str) -> Any:
        return self.cluster


def app_with(role: LogsRole = LogsRole.ADMIN, streams: int = 4) -> tuple[Flask, LogCluster]:
    controller = Controller()
    controller.cluster = LogCluster(DEPLOY, RS, POD, STRAY)
    shop = application(
        "shop",
        resources=[
            ResourceStatus(
                "apps", "Deployment", "team-a", "web", "Synced", HealthSummary("Healthy")
            )
        ],
    )
    controller.store.objs[("team-a", "shop")] = shop
    app = make_app(controller, logs=LogLimits(role=role, max_streams=streams))
    return app, controller.cluster


LOGS = "/api/v1/applications/team-a/shop/logs"


def test_the_role_decides_and_a_pod_not_the_apps_is_not_found() -> None:
    app, cluster = app_with()
    client = app.test_client()
    assert client.get(LOGS + "?pod=web-5d9-x").status_code == 401
    refused = client.get(LOGS + "?pod=web-5d9-x", headers=bearer(READ_ONLY_TOKEN))
    # the one refusal of the RBAC guard, naming the action and the project (issue 21)
    assert refused.status_code == 403 and refused.json["error"] == (
        "forbidden: logs is not allowed in project 'team-a'"
    )
    answer = client.get(LOGS + "?pod=web-5d9-x&tailLines=5", headers=bearer(API_TOKEN))
    assert (answer.status_code, answer.data) == (200, b"log of team-a/web-5d9-x\n")
    assert answer.mimetype == "text/plain"
    assert cluster.queries == [{"tailLines": "5", "limitBytes": str(10 * 1024 * 1024)}]
    for pod in ("stray", "nope"):
        missing = client.get(LOGS + f"?pod={pod}", headers=bearer(API_TOKEN))
        assert missing.status_code == 404
        assert missing.json == {"error": f"no Pod {pod} in Application team-a/shop"}
    listed = client.get("/api/v1/applications/team-a/shop/pods", headers=bearer(API_TOKEN))
    assert [p["name"] for p in listed.json["items"]] == ["web-5d9-x"]

    viewers, _ = app_with(LogsRole.VIEWER)
    answer = viewers.test_client().get(LOGS + "?pod=web-5d9-x", headers=bearer(READ_ONLY_TOKEN))
    assert answer.status_code == 200
    nobody, _ = app_with(LogsRole.NONE)
    assert (
        nobody.test_client().get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN)).status_code
        == 403
    )


def test_streams_beyond_the_limit_wait_their_turn() -> None:
    app, _ = app_with(streams=1)
    client = app.test_client()
    first = client.get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN), buffered=False)
    busy = client.get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN))
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
    first.close()  # the server closes the answer: the slot is free
    assert client.get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN)).status_code == 200
    assert client.get(LOGS + "?pod=stray", headers=bearer(API_TOKEN)).status_code == 404
    assert client.get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN)).status_code == 200


def test_the_api_servers_refusal_is_passed_on_and_other_failures_are_502() -> None:
    from gitsync.kube import ApiError

    app, cluster = app_with()
    client = app.test_client()
    cluster.refusal = ApiError(400, "BadRequest", 'previous terminated container "main" not found')
    answer = client.get(LOGS + "?pod=web-5d9-x&previous=true", headers=bearer(API_TOKEN))
    assert answer.status_code == 400
    assert answer.json["error"] == 'previous terminated container "main" not found'
    cluster.refusal = ApiError(0, "Unreachable", "MaxRetryError")
    assert client.get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN)).status_code == 502
    cluster.refusal = None
    assert client.get(LOGS + "?pod=web-5d9-x", headers=bearer(API_TOKEN)).status_code == 200


def test_the_page_shows_the_panel_only_to_whom_may_read_logs() -> None:
    app, cluster = app_with()
    for password, shown in ((ADMIN_PASSWORD, True), (READ_ONLY_TOKEN, False)):
        client = app.test_client()
        login(client, password)
        html = client.get("/apps/team-a/shop").get_data(as_text=True)
        assert ('id="logs-panel"' in html) is shown, password
        assert ("/static/logs.js" in html) is shown
    assert cluster.reads == []  # the page itself lists no Pods: the panel does, once opened
