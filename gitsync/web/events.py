"""The Kubernetes Events of an Application: ``GET /api/v1/applications/<ns>/<name>/events``
(documented in docs/api.md), read behind the same guard as the rest of the read API.

The Events come from ``ControllerView.application_events`` - the controller's bounded per-app
index fed by a watch (``gitsync.controller.events``), never a request to the API server per page
view. The app page's Events section (``_events.html``, ``web/static/events.js``) reads this
endpoint; ``gitsync app events`` does too.

A namespace's first list of Events can take seconds on a busy cluster. That is a normal state,
not an error: the answer is a 200 with ``"loading": true`` and the Events known so far, so a
browser logs no failed request and the page says "loading". Only a stream that fails (listing
Events forbidden, the API server erroring) is an error: 503 with the reason and ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

import flask

from gitsync.controller.interface import ControllerView, EventQuery, EventsUnavailableError
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import Action


def events_blueprint(controller: ControllerView, guard: Guard) -> flask.Blueprint:
    bp = flask.Blueprint("events", __name__, url_prefix="/api/v1")

    @bp.get("/applications/<namespace>/<name>/events")
    @guard.api_read
    @guard.allow(Action.GET)
    def application_events(namespace: str, name: str) -> Any:
        try:
            query = EventQuery.parse(flask.request.args)
        except ValueError as exc:
            return json_error(400, str(exc))
        try:
            found = controller.application_events((namespace, name), query)
        except EventsUnavailableError as exc:
            return json_error(503, str(exc), **{"Retry-After": "2"})
        if found is None:
            return json_error(404, f"no Application {namespace}/{name}")
        doc: dict[str, Any] = {"items": found.items, "loading": bool(found.loading)}
        if found.loading:
            doc["message"] = "still loading the Events of " + ", ".join(found.loading)
        return flask.jsonify(doc)

    return bp
