"""The deploy timeline and the diff between two history entries (gitsync.web.history,
gitsync.web.view's history fields, ``gitsync app history``): pure documents, error classes and the
API/page wiring through an in-memory ``ControllerView`` (the integration test renders real
commits)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest
from test_web_support import API_TOKEN, SHA1, SHA2, FakeController, application, bearer, make_app

from gitsync.appclient import format_duration, format_history
from gitsync.application_status import ApplicationStatus, HistoryEntry
from gitsync.errors import TerminalError, TransientError
from gitsync.model import ResourceKey
from gitsync.source import GitNotFoundError
from gitsync.web.history import classify, diff_document
from gitsync.web.view import detail, duration_seconds

AUTH = bearer(API_TOKEN)
PASSWORD_1 = "hunter2-first-password"
PASSWORD_2 = "correct-horse-battery"


@dataclass(frozen=True)
class Manifest:
    key: ResourceKey
    obj: dict[str, Any]


def manifest(obj: dict[str, Any]) -> Manifest:
    meta = obj["metadata"]
    group = obj["apiVersion"].rpartition("/")[0]
    return Manifest(ResourceKey(group, obj["kind"], meta.get("namespace", ""), meta["name"]), obj)


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"replicas": replicas},
    }


def secret(password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "team-a"},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def config(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "team-a"},
        "data": {"a": "1"},
    }


RENDERS = {
    SHA1: [manifest(deployment(1)), manifest(secret(PASSWORD_1)), manifest(config("old"))],
    SHA2: [manifest(deployment(3)), manifest(secret(PASSWORD_2)), manifest(config("new"))],
}
ENTRY_1 = HistoryEntry(1, "op1", SHA1, "first", "Ada", "2024-05-01T10:00:00Z", "Succeeded", "auto")
ENTRY_2 = HistoryEntry(2, "op2", SHA2, "second", "Ada", "2024-05-02T10:00:00Z", "Failed", "auto")


def test_the_diff_of_two_renders_names_each_change_and_masks_secrets() -> None:
    doc = diff_document(("team-a", "web"), ENTRY_1, ENTRY_2, RENDERS[SHA1], RENDERS[SHA2])
    changes = {r["id"]: r["change"] for r in doc["resources"]}
    assert changes == {
        "/ConfigMap/team-a/new": "Added",
        "/ConfigMap/team-a/old": "Removed",
        "/Secret/team-a/db": "Changed",
        "apps/Deployment/team-a/web": "Changed",
    }
    deploy = next(r for r in doc["resources"] if r["kind"] == "Deployment")
    assert "-  replicas: 1\n" in deploy["diff"] and "+  replicas: 3\n" in deploy["diff"]
    assert deploy["diff"].startswith("--- #1/Deployment.apps/team-a/web\n+++ #2/")
    assert deploy["changedPaths"] == ["/spec/replicas"]
    text = repr(doc)
    for value in (PASSWORD_1, PASSWORD_2):
        assert value not in text and base64.b64encode(value.encode()).decode() not in text
    assert (
        "/data/password"
        in next(r for r in doc["resources"] if r["kind"] == "Secret")["changedPaths"]
    )
    assert doc["unchanged"] == 0 and doc["truncated"] is False
    assert doc["from"]["id"] == 1 and doc["to"]["short"] == SHA2[:7]


def test_the_history_diff_masks_in_the_apps_context() -> None:
    """Two apps rendering the same Secret (namespace, name, value: a tenant's guess at another's)
    show different masks; one app's diff shows the same masks every time."""

    def secret_diff(app: tuple[str, str]) -> str:
        doc = diff_document(app, ENTRY_1, ENTRY_2, RENDERS[SHA1], RENDERS[SHA2])
        return str(next(r for r in doc["resources"] if r["kind"] == "Secret")["diff"])

    mine = secret_diff(("team-a", "web"))
    assert mine == secret_diff(("team-a", "web"))
    theirs = secret_diff(("team-b", "probe"))
    masks = {line for line in mine.splitlines() if "hmac-sha256" in line}
    assert len(masks) == 2 and not masks & set(theirs.splitlines())


def test_the_same_render_has_no_changes() -> None:
    doc = diff_document(("team-a", "web"), ENTRY_1, ENTRY_1, RENDERS[SHA1], RENDERS[SHA1])
    assert doc["resources"] == [] and doc["unchanged"] == 3


def test_a_huge_diff_is_cut_to_the_document_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import gitsync.web.history as history

    monkeypatch.setattr(history, "MAX_DIFF_DOCUMENT_CHARS", 300)
    doc = diff_document(("team-a", "web"), ENTRY_1, ENTRY_2, RENDERS[SHA1], RENDERS[SHA2])
    assert doc["truncated"] is True
    assert sum(len(r["diff"]) for r in doc["resources"]) <= 300
    assert len(doc["resources"]) == 4  # still listed, without their text


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (GitNotFoundError("revision 'abc' not found in https://git.example/x"), 404, "no longer"),
        (TransientError("connection reset"), 503, "retry later"),
        (TerminalError("render failed: bad yaml"), 502, "bad yaml"),
    ],
)
def test_render_failures_are_classified(error: Exception, status: int, text: str) -> None:
    class StageLike(TerminalError):  # the engine's StageError carries its cause the same way
        def __init__(self, cause: Exception):
            super().__init__(f"fetch failed: {cause}")
            self.cause = cause

    found = classify(StageLike(error), ENTRY_2)
    assert found.status == status and text in found.message
    assert found.message.startswith("history entry #2")


@pytest.mark.parametrize(
    ("started", "finished", "seconds"),
    [
        ("2024-05-02T09:59:58Z", "2024-05-02T10:00:00Z", 2),
        ("2024-05-02T10:00:00Z", "2024-05-02T10:00:00Z", 0),
        ("2024-05-02T09:58:00.750000Z", "2024-05-02T10:00:00Z", 119),
        ("", "2024-05-02T10:00:00Z", None),  # an entry written before deployStartedAt
        ("2024-05-02T10:00:01Z", "2024-05-02T10:00:00Z", None),  # a clock step
        ("yesterday", "2024-05-02T10:00:00Z", None),
    ],
)
def test_duration_of_a_deploy(started: str, finished: str, seconds: int | None) -> None:
    assert duration_seconds(started, finished) == seconds


def test_history_entries_carry_start_and_result_message_and_old_ones_still_read() -> None:
    entry = HistoryEntry(
        3,
        "op3",
        SHA2,
        "msg",
        "Ada",
        "2024-05-03T10:00:10Z",
        "Failed",
        "automated",
        deploy_started_at="2024-05-03T10:00:00Z",
        result_message="one or more objects failed to apply",
    )
    doc = ApplicationStatus(history=(entry,)).to_dict()
    assert doc["history"][0]["deployStartedAt"] == "2024-05-03T10:00:00Z"
    assert ApplicationStatus.from_dict(doc).history == (entry,)
    old = {"history": [{"id": 1, "revision": SHA1, "deployedAt": "2024-05-01T10:00:00Z"}]}
    (read,) = ApplicationStatus.from_dict(old).history or ()
    assert read.deploy_started_at == "" and read.result_message == ""
    assert "deployStartedAt" not in ApplicationStatus(history=(read,)).to_dict()["history"][0]

    obj = application("web", history=(ENTRY_1, entry))
    rows = detail(obj)["history"]
    assert [r["id"] for r in rows] == [3, 1]
    assert rows[0]["durationSeconds"] == 10 and rows[1]["durationSeconds"] is None
    assert rows[0]["resultMessage"] == "one or more objects failed to apply"
    table = format_history(rows, wide=True)
    header, first = table.splitlines()[:2]
    for column in ("AUTHOR", "DURATION", "RESULT", "RESULT MESSAGE"):
        assert column in header
    assert " 10s " in first and "Failed" in first and "failed to apply" in first


@pytest.mark.parametrize(
    ("seconds", "shown"), [(None, ""), (0, "0s"), (59, "59s"), (185, "3m 5s"), (True, "")]
)
def test_format_duration(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def revealed(text: str) -> list[str]:
    """The Secret values of ``RENDERS`` that ``text`` shows, plain or base64."""
    values = [PASSWORD_1, PASSWORD_2]
    return [v for v in values if v in text or base64.b64encode(v.encode()).decode() in text]


class RenderingController(FakeController):
    """The in-memory controller, answering ``application_manifests`` from ``RENDERS``."""

    rendered: list[str]

    def application_manifests(self, key: tuple[str, str], revision: str) -> Any:
        self.rendered = [*getattr(self, "rendered", []), revision]
        if key not in self.store.objs:
            return None
        if revision not in RENDERS:
            raise GitNotFoundError(f"revision {revision!r} not found in https://git.example/x")
        return type("Rendered", (), {"revision": None, "manifests": RENDERS[revision]})()


GONE = "9" * 40


def app_with_history() -> dict[str, Any]:
    gone = HistoryEntry(3, "op3", GONE, "gone", "Ada", "2024-05-03T10:00:00Z", "Succeeded", "x")
    return application("web", history=(ENTRY_1, ENTRY_2, gone))


def test_the_api_diffs_two_entries_and_explains_each_error() -> None:
    client = make_app(RenderingController([app_with_history()])).test_client()
    base = "/api/v1/applications/team-a/web/history/diff"
    answer = client.get(f"{base}?from=1&to=2", headers=AUTH)
    assert answer.status_code == 200, answer.get_json()
    doc = answer.get_json()
    assert {r["change"] for r in doc["resources"]} == {"Added", "Removed", "Changed"}
    assert not revealed(answer.get_data(as_text=True))
    for query, status, text in (
        ("from=1", 400, "to is required"),
        ("from=1&to=x", 400, "to must be a history entry's id"),
        ("from=0&to=1", 400, "1 or more"),
        ("from=1&to=2&all=1", 400, "unknown query parameters: all"),
        ("from=1&to=7", 404, "no history entry #7"),
        ("from=1&to=3", 404, "history entry #3: revision 9999999 is no longer in the repository"),
    ):
        answer = client.get(f"{base}?{query}", headers=AUTH)
        assert answer.status_code == status, query
        assert text in answer.get_json()["error"], answer.get_json()
    assert client.get(f"{base}?from=1&to=2").status_code == 401
    answer = client.get("/api/v1/applications/team-a/nope/history/diff?from=1&to=2", headers=AUTH)
    assert answer.status_code == 404


def test_the_page_shows_the_timeline_and_the_diff() -> None:
    client = make_app(RenderingController([app_with_history()]), anonymous_read=True).test_client()
    app_page = client.get("/apps/team-a/web").get_data(as_text=True)
    assert 'action="/apps/team-a/web/history/diff"' in app_page
    assert 'id="history-from"' in app_page and "<th>Duration</th>" in app_page
    page = client.get("/apps/team-a/web/history/diff?from=1&to=2")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "+  replicas: 3" in html and 'data-resource="apps/Deployment/team-a/web"' in html
    assert not revealed(html)
    gone = client.get("/apps/team-a/web/history/diff?from=3&to=2")
    assert gone.status_code == 404 and "no longer in the repository" in gone.get_data(as_text=True)
