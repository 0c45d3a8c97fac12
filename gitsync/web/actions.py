"""The actions the UI and the API offer, as request annotations on the Application.

The web layer never syncs anything itself: it writes the same annotations ``gitsync sync APP`` /
``rollback`` / ``resume`` write, and the controller's reconciler acts on them. That keeps one code
path for every trigger, works on a follower replica (the leader sees the annotation through its
watch) and leaves an audit trail on the object. ``refresh`` is also queued locally, so with
``--config`` (no CRD, annotations kept in memory) the request is seen at once.

* ``sync``: ``gitsync.dev/sync-request: <nonce>[;prune]`` - a new nonce per request.
* ``refresh``: ``gitsync.dev/refresh: <nonce>`` - compare with Git now, no sync.
* ``rollback``: ``gitsync.dev/rollback-to: <history id>`` - redeploy that entry; the controller
  then pauses automated sync.
* ``pause`` / ``resume``: set / remove ``gitsync.dev/automation-paused`` (resume also drops the
  rollback request, like ``gitsync resume``). ``spec.suspend`` lives in the spec, which belongs to
  Git, so the UI does not offer it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import structlog

from gitsync.application_status import ApplicationStatus
from gitsync.controller.interface import (
    AUTOMATION_PAUSED,
    REFRESH_REQUEST,
    ROLLBACK_REQUEST,
    SYNC_REQUEST,
    ControllerView,
)
from gitsync.web.view import AppKey

log = structlog.get_logger(__name__)

ACTIONS = ("sync", "refresh", "rollback", "pause", "resume")


class ActionError(Exception):
    """An action refused: ``status`` is the HTTP status, the message is safe to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _history_ids(obj: Mapping[str, Any]) -> set[str]:
    status = ApplicationStatus.from_dict(obj.get("status"))
    return {str(h.id) for h in status.history or ()}


def _last_handled_rollback(obj: Mapping[str, Any]) -> str:
    return ApplicationStatus.from_dict(obj.get("status")).last_handled_rollback or ""


def parse_body(action: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an action's parameters: ``sync {prune: bool}``, ``rollback {id: int}``."""
    if action == "sync":
        prune = body.get("prune", False)
        if not isinstance(prune, bool):
            raise ActionError(400, "prune must be true or false")
        return {"prune": prune}
    if action == "rollback":
        raw = body.get("id")
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ActionError(400, "rollback needs the history entry's id")
        try:
            hid = int(raw)
        except ValueError:
            raise ActionError(400, "id must be an integer") from None
        if hid < 1:
            raise ActionError(400, "id must be a positive integer")
        return {"id": hid}
    return {}


def request_action(
    controller: ControllerView,
    key: AppKey,
    action: str,
    params: Mapping[str, Any],
    *,
    actor: str,
) -> dict[str, Any]:
    """Record ``action`` on the Application ``key``; returns what was requested (for the 202).

    Raises ``ActionError`` for an unknown action or app, a history id that does not exist, and
    when the store refuses the write.
    """
    if action not in ACTIONS:
        raise ActionError(404, f"unknown action {action!r}")
    obj = controller.store.get(key)
    if obj is None:
        raise ActionError(404, f"no Application {key[0]}/{key[1]}")
    nonce = secrets.token_hex(6)
    annotations: dict[str, str | None]
    message: str
    if action == "sync":
        prune = bool(params.get("prune"))
        annotations = {SYNC_REQUEST: nonce + (";prune" if prune else "")}
        message = "sync requested" + (" (with prune)" if prune else "")
    elif action == "refresh":
        annotations = {REFRESH_REQUEST: nonce}
        message = "refresh requested"
    elif action == "rollback":
        hid = str(params["id"])
        if hid not in _history_ids(obj):
            raise ActionError(404, f"no history entry {hid}")
        if hid == _last_handled_rollback(obj):
            raise ActionError(
                409,
                f"history entry {hid} was the last rollback; roll back to the newer entry "
                "that rollback recorded instead",
            )
        annotations = {ROLLBACK_REQUEST: hid}
        message = f"rollback to history entry {hid} requested (automated sync will pause)"
    elif action == "pause":
        annotations = {AUTOMATION_PAUSED: f"paused by {actor} in the web UI"[:256]}
        message = "automated sync paused"
    else:
        annotations = {AUTOMATION_PAUSED: None, ROLLBACK_REQUEST: None}
        message = "automated sync resumed"
    try:
        controller.store.patch_annotations(key, annotations)
    except Exception as exc:  # the store's own errors (ApiError, OSError): report, do not crash
        log.warning(
            "action not recorded",
            app=f"{key[0]}/{key[1]}",
            action=action,
            error=str(exc)[:300],
        )
        raise ActionError(502, "the request could not be recorded on the Application") from exc
    controller.refresh(key, f"web:{action}")
    log.info("action requested", app=f"{key[0]}/{key[1]}", action=action, actor=actor)
    return {
        "application": f"{key[0]}/{key[1]}",
        "action": action,
        "message": message,
        **({"request": nonce} if action in ("sync", "refresh") else {}),
    }
