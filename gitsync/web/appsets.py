"""The ApplicationSet pages (``/appsets``, ``/appsets/<ns>/<name>``) and their JSON API
(``/api/v1/applicationsets``), read-only, behind the same guard as the Application pages and
API (documented in docs/api.md).

The documents come from ``gitsync.web.appsetview``; the sets from
``ControllerView.application_set_objects``, shared for a second like the Applications (a
``Snapshot`` each), so polling tabs cost one read of the cache per second.
"""

from __future__ import annotations

from typing import Any

import flask

from gitsync.web.appsetview import find_set, list_sets, set_detail
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import Action
from gitsync.web.view import DEFAULT_PER_PAGE, ListQuery, Snapshot

APP_FILTERS = ("sync", "health", "namespace", "project", "repo", "label")  # not filters of sets


def appsets_blueprint(guard: Guard, sets: Snapshot, applications: Snapshot) -> flask.Blueprint:
    bp = flask.Blueprint("appsets", __name__)

    @bp.get("/api/v1/applicationsets")
    @guard.api_read
    def api_list() -> Any:
        unknown = [name for name in APP_FILTERS if name in flask.request.args]
        if unknown:
            return json_error(400, f"{unknown[0]} is not a filter of ApplicationSets")
        try:
            query = ListQuery.parse(flask.request.args, strict=True)
        except ValueError as exc:
            return json_error(400, str(exc))
        return flask.jsonify(list_sets(guard.visible(sets.get()), query).document())

    @bp.get("/api/v1/applicationsets/<namespace>/<name>")
    @guard.api_read
    @guard.allow(Action.GET)
    def api_detail(namespace: str, name: str) -> Any:
        obj = find_set(sets.get(), (namespace, name))
        if obj is None:
            return json_error(404, f"no ApplicationSet {namespace}/{name}")
        return flask.jsonify(set_detail(obj, guard.visible(applications.get())))

    @bp.get("/appsets")
    @guard.page
    def index() -> Any:
        query = ListQuery.parse(flask.request.args, strict=False)
        listing = list_sets(guard.visible(sets.get(fresh=True)), query)
        return flask.render_template(
            "appsets.html", listing=listing, query=query, default_per_page=DEFAULT_PER_PAGE
        )

    @bp.get("/appsets/<namespace>/<name>")
    @guard.page
    @guard.allow(Action.GET)
    def set_page(namespace: str, name: str) -> Any:
        obj = find_set(sets.get(fresh=True), (namespace, name))
        if obj is None:
            flask.abort(404)
        return flask.render_template(
            "appset.html", appset=set_detail(obj, guard.visible(applications.get(fresh=True)))
        )

    return bp
