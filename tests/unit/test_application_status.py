"""The Application status types keep the wire format the UI, kubectl and older controllers read:
camelCase keys, unwritten fields absent, and tolerant reading of whatever is stored."""

from __future__ import annotations

from typing import Any

from gitsync.application_status import (
    ApplicationStatus,
    HealthSummary,
    OperationState,
    ResourceStatus,
)
from gitsync.controller.reconciler import Reconciler

SHA = "a" * 40

STORED: dict[str, Any] = {
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Synced",
            "message": f"synced to {SHA[:12]} and healthy",
            "observedGeneration": 3,
            "lastTransitionTime": "2024-05-02T10:00:00Z",
        }
    ],
    "sync": {"status": "Synced", "revision": SHA},
    "health": {"status": "Healthy"},
    "sourceRevision": {
        "sha": SHA,
        "ref": "refs/heads/main",
        "message": "set replicas to 3",
        "author": "Ada <ada@example.com>",
        "date": "2024-05-02T09:59:00+00:00",
    },
    "resources": [
        {
            "group": "apps",
            "kind": "Deployment",
            "namespace": "team-a",
            "name": "web",
            "status": "Synced",
            "health": {"status": "Progressing", "message": "1 of 3 updated"},
        }
    ],
    "operationState": {
        "id": "0123456789ab",
        "phase": "Succeeded",
        "revision": SHA,
        "initiatedBy": "automated",
        "startedAt": "2024-05-02T09:59:58Z",
        "finishedAt": "2024-05-02T10:00:00Z",
        "message": "succeeded at revision " + SHA[:12],
        "resources": [],
    },
    "history": [
        {
            "id": 7,
            "operation": "0123456789ab",
            "revision": SHA,
            "message": "set replicas to 3",
            "author": "Ada <ada@example.com>",
            "deployedAt": "2024-05-02T10:00:00Z",
            "result": "Succeeded",
            "initiatedBy": "automated",
        }
    ],
    "lastAppliedRevision": SHA,
    "lastAttemptedRevision": SHA,
    "lastHandledSyncRequest": "n1;prune",
    "lastHandledRollback": "6",
    "automationPaused": False,
    "waitingFor": [{"namespace": "team-a", "name": "db", "reason": "Progressing"}],
}


def test_a_stored_status_round_trips_unchanged() -> None:
    status = ApplicationStatus.from_dict(STORED)
    assert status.to_dict() == STORED
    assert status.history is not None and status.history[0].deployed_at == "2024-05-02T10:00:00Z"
    assert status.operation_state is not None and status.operation_state.resources == ()


def test_unwritten_fields_stay_absent() -> None:
    assert ApplicationStatus().to_dict() == {}
    running = OperationState(id="x", phase="Running", revision=SHA)
    assert (
        "finishedAt" not in ApplicationStatus(operation_state=running).to_dict()["operationState"]
    )
    assert "resources" not in ApplicationStatus(operation_state=running).to_dict()["operationState"]
    row = ResourceStatus("", "ConfigMap", "a", "b", "Synced", HealthSummary(""))
    assert ApplicationStatus(resources=(row,)).to_dict()["resources"][0]["health"] == {"status": ""}


def test_values_of_the_wrong_type_read_as_absent() -> None:
    tampered = {
        "observedGeneration": True,
        "sync": "Synced",
        "history": [{"id": "7", "revision": 5}, "junk", {"id": 8, "revision": SHA}],
        "automationPaused": "yes",
        "conditions": {"type": "Ready"},
        "unknownField": 1,
    }
    status = ApplicationStatus.from_dict(tampered)
    assert status.observed_generation is None and status.sync is None
    assert status.automation_paused is None and status.conditions is None
    assert status.history is not None and [(h.id, h.revision) for h in status.history] == [
        (0, ""),
        (8, SHA),
    ]
    assert ApplicationStatus.from_dict(None) == ApplicationStatus()
    assert ApplicationStatus.from_dict(["not", "a", "map"]) == ApplicationStatus()


def test_copy_is_independent() -> None:
    status = ApplicationStatus.from_dict(STORED)
    copied = status.copy()
    copied.last_applied_revision = "b" * 40
    assert status.last_applied_revision == SHA and copied != status


def test_an_empty_string_the_api_server_stored_as_null_is_no_change() -> None:
    """The reconciler writes only when the next status differs from the stored one; "" comes
    back from the API server as null (nullable in the CRD), which must not count as a change."""
    stored = {**STORED, "sourceRevision": {**STORED["sourceRevision"], "ref": None}}
    written = {**STORED, "sourceRevision": {**STORED["sourceRevision"], "ref": ""}}
    assert ApplicationStatus.from_dict(stored) == ApplicationStatus.from_dict(written)


class RecordingStore:
    """The controller's own ``ApplicationStore`` interface, recording status writes."""

    def __init__(self) -> None:
        self.writes: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def app_keys(self) -> list[tuple[str, str]]:
        return []

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return None

    def write_status(
        self, key: tuple[str, str], status: dict[str, Any], previous: dict[str, Any]
    ) -> None:
        self.writes.append((status, previous))

    def patch_annotations(self, key: tuple[str, str], annotations: dict[str, str | None]) -> None:
        pass

    def record_event(
        self, key: tuple[str, str], reason: str, message: str, *, warning: bool = False
    ) -> None:
        pass


def test_the_reconciler_writes_status_only_when_it_changed() -> None:
    store = RecordingStore()
    reconciler = Reconciler(store, engine_for=lambda app: None)  # type: ignore[arg-type,return-value]
    stored = ApplicationStatus.from_dict(STORED)
    reconciler._write(("team-a", "web"), stored.copy(), stored)
    assert store.writes == []
    changed = stored.copy()
    changed.automation_paused = True
    reconciler._write(("team-a", "web"), changed, stored)
    assert store.writes == [({**STORED, "automationPaused": True}, STORED)]
