"""The JSON API, ``/api/v1`` (documented in docs/api.md).

Reads return the documents ``gitsync.web.view`` and ``gitsync.web.rollouts`` build - the same
the pages render. Actions answer 202: they record a request on the Application (or, for promote /
abort / retry, on one of its Rollouts) and the controller carries it out; poll to see the result.
Every error is ``{"error": "<message>"}``.
"""

from __future__ import annotations

from typing import Any

import flask

from gitsync.controller.interface import ControllerView
from gitsync.web.actions import ActionError, parse_body, request_action
from gitsync.web.diff import Differ, DiffError, manages_secrets
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import APP_ACTIONS, Action
from gitsync.web.rollouts import (
    RolloutError,
    Rollouts,
    parse_rollout_body,
    split_rollout_action,
)
from gitsync.web.tree import TreeError, application_tree, parse_orphans
from gitsync.web.view import (
    ListQuery,
    Snapshot,
    Summaries,
    detail,
    find,
    list_applications,
    unknown_parameters,
)

MAX_JSON_BYTES = 16 * 1024


def _json_body() -> dict[str, Any] | flask.Response:
    """The request's JSON object (``{}`` when empty), or the error response to send."""
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
    return body


def api_blueprint(
    controller: ControllerView,
    guard: Guard,
    snapshot: Snapshot,
    differ: Differ,
    rollouts: Rollouts,
    *,
    summaries: Summaries,
) -> flask.Blueprint:
    bp = flask.Blueprint("api", __name__, url_prefix="/api/v1")

    @bp.get("/applications")
    @guard.api_read
    def applications() -> Any:
        unknown = unknown_parameters(flask.request.args)
        if unknown:
            return json_error(400, f"unknown query parameters: {', '.join(unknown)[:512]}")
        try:
            query = ListQuery.parse(flask.request.args, strict=True)
        except ValueError as exc:
            return json_error(400, str(exc))
        listing = list_applications(guard.visible(snapshot.get()), query, summaries)
        rollouts.annotate_rows(listing.items, listing.objects)
        return flask.jsonify(listing.document())

    @bp.get("/applications/<namespace>/<name>")
    @guard.api_read
    @guard.allow(Action.GET)
    def application(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(), (namespace, name))
        if obj is None:
            return json_error(404, f"no Application {namespace}/{name}")
        return flask.jsonify(detail(obj))

    @bp.get("/applications/<namespace>/<name>/diff")
    @guard.api_read
    @guard.allow(Action.GET)
    def diff(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(), (namespace, name))
        if (
            obj is not None
            and manages_secrets(obj)
            and not guard.allows(Action.DIFF_SECRETS, namespace)
        ):
            return guard.forbidden(Action.DIFF_SECRETS, namespace)
        include_synced = flask.request.args.get("all", "").lower() in ("1", "true", "yes")
        try:
            doc = differ.diff((namespace, name), include_synced=include_synced)
        except DiffError as exc:
            headers = {"Retry-After": "2"} if exc.status == 503 else {}
            return json_error(exc.status, exc.message, **headers)
        return flask.jsonify(doc)

    @bp.get("/applications/<namespace>/<name>/tree")
    @guard.api_read
    @guard.allow(Action.GET)
    def tree(namespace: str, name: str) -> Any:
        try:
            orphans = parse_orphans(flask.request.args)
        except ValueError as exc:
            return json_error(400, str(exc))
        if find(snapshot.get(), (namespace, name)) is None:
            return json_error(404, f"no Application {namespace}/{name}")
        try:
            return flask.jsonify(application_tree(controller, (namespace, name), orphans=orphans))
        except TreeError as exc:
            return json_error(exc.status, exc.message)

    @bp.get("/applications/<namespace>/<name>/rollouts")
    @guard.api_read
    @guard.allow(Action.GET)
    def application_rollouts(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(), (namespace, name))
        if obj is None:
            return json_error(404, f"no Application {namespace}/{name}")
        return flask.jsonify(rollouts.of_application(obj))

    # ``.../rollouts/<rollout>/<verb>``: one path variable ``action`` holds "<rollout>/<verb>",
    # so the route has the same parameters as the Application's actions.
    @bp.post("/applications/<namespace>/<name>/rollouts/<path:action>")
    @guard.api_action
    @guard.allow(Action.ROLLOUT)
    def rollout_action(namespace: str, name: str, action: str) -> Any:
        rollout, verb = split_rollout_action(action)
        body = _json_body()
        if isinstance(body, flask.Response):
            return body
        obj = find(snapshot.get(fresh=True), (namespace, name))
        if obj is None:
            return json_error(404, f"no Application {namespace}/{name}")
        try:
            result = rollouts.request(
                obj,
                rollout,
                verb,
                full=parse_rollout_body(verb, body),
                actor=guard.principal().name,
            )
        except RolloutError as exc:
            return json_error(exc.status, exc.message)
        controller.refresh((namespace, name), f"web:rollout-{verb}")
        return flask.jsonify(result), 202

    @bp.post("/applications/<namespace>/<name>/<action>")
    @guard.api_action
    @guard.allow(lambda route: APP_ACTIONS.get(route["action"]))
    def act(namespace: str, name: str, action: str) -> Any:
        body = _json_body()
        if isinstance(body, flask.Response):
            return body
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
