"""The JSON API, ``/api/v1`` (documented in docs/api.md).

Reads return the documents ``gitsync.web.view`` builds - the same the pages render. Actions
answer 202: they record a request on the Application and the controller carries it out; poll the
Application to see the result. Every error is ``{"error": "<message>"}``.
"""

from __future__ import annotations

from typing import Any

import flask

from gitsync.web.actions import ActionError, parse_body, request_action
from gitsync.web.diff import Differ, DiffError
from gitsync.web.guard import Guard, json_error
from gitsync.web.view import ControllerView, ListQuery, Snapshot, detail, find, list_applications

MAX_JSON_BYTES = 16 * 1024


def api_blueprint(
    controller: ControllerView, guard: Guard, snapshot: Snapshot, differ: Differ
) -> flask.Blueprint:
    bp = flask.Blueprint("api", __name__, url_prefix="/api/v1")

    @bp.get("/applications")
    @guard.api_read
    def applications() -> Any:
        try:
            query = ListQuery.parse(flask.request.args, strict=True)
        except ValueError as exc:
            return json_error(400, str(exc))
        return flask.jsonify(list_applications(snapshot.get(), query).document())

    @bp.get("/applications/<namespace>/<name>")
    @guard.api_read
    def application(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(), (namespace, name))
        if obj is None:
            return json_error(404, f"no Application {namespace}/{name}")
        return flask.jsonify(detail(obj))

    @bp.get("/applications/<namespace>/<name>/diff")
    @guard.api_read
    def diff(namespace: str, name: str) -> Any:
        include_synced = flask.request.args.get("all", "").lower() in ("1", "true", "yes")
        try:
            doc = differ.diff((namespace, name), include_synced=include_synced)
        except DiffError as exc:
            headers = {"Retry-After": "2"} if exc.status == 503 else {}
            return json_error(exc.status, exc.message, **headers)
        return flask.jsonify(doc)

    @bp.post("/applications/<namespace>/<name>/<action>")
    @guard.api_action
    def act(namespace: str, name: str, action: str) -> Any:
        if (flask.request.content_length or 0) > MAX_JSON_BYTES:
            return json_error(413, "request body too large")
        raw = flask.request.get_data(cache=False)
        body: Any = {}
        if raw.strip():
            try:
                body = flask.json.loads(raw)
            except ValueError:
                return json_error(400, "the body is not valid JSON")
        if not isinstance(body, dict):
            return json_error(400, "the body must be a JSON object")
        principal = guard.principal()
        try:
            result = request_action(
                controller,
                (namespace, name),
                action,
                parse_body(action, body),
                actor=principal.name,
            )
        except ActionError as exc:
            return json_error(exc.status, exc.message)
        snapshot.invalidate()
        return flask.jsonify(result), 202

    return bp
