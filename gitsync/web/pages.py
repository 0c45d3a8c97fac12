"""The server-rendered pages: the Application list, one Application (with its rollout panel),
its diff, and the form fallback for actions (the page's JavaScript calls the JSON API instead;
without JavaScript the same buttons post these forms).

Templates live in the top-level ``web/templates`` and escape everything (Jinja autoescape); the
documents they render come from ``gitsync.web.view``, the same the JSON API returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import flask
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from gitsync.controller.interface import ControllerView
from gitsync.web.actions import ACTIONS, ActionError, parse_body, request_action
from gitsync.web.auth import NOBODY
from gitsync.web.diff import Differ, DiffError, manages_secrets
from gitsync.web.guard import CSRF_FIELD, CSRF_HEADER, Guard
from gitsync.web.rbac import APP_ACTIONS, Action
from gitsync.web.rollouts import (
    RolloutError,
    Rollouts,
    chart,
    remaining,
    split_rollout_action,
)
from gitsync.web.tree import TreeError, application_tree
from gitsync.web.view import (
    APP_SYNC_STATUSES,
    DEFAULT_PER_PAGE,
    Listing,
    ListQuery,
    Snapshot,
    StatusCounts,
    Summaries,
    detail,
    find,
    list_applications,
    short_revision,
    status_class,
)

SYNC_STATUSES = APP_SYNC_STATUSES
HEALTH_STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")


def counters(listing: Listing, query: ListQuery) -> list[dict[str, Any]]:
    """The list's counters, a group per dimension (sync, health): each status known to gitsync
    (and any other found) with its count, whether it is the active filter, and the link that
    applies it - or, when it is active, the link that drops it."""
    counts = listing.counts or StatusCounts({}, {})
    groups = []
    for dimension, known, found in (
        ("sync", SYNC_STATUSES, counts.sync),
        ("health", HEALTH_STATUSES, counts.health),
    ):
        active: tuple[str, ...] = getattr(query, dimension)
        names = list(known) + sorted(n for n in found if n not in known)
        items = []
        for name in names:
            on = name.lower() in active
            items.append(
                {
                    "status": name,
                    "count": found.get(name, 0),
                    "active": on,
                    "params": query.params(**{dimension: "" if on else name.lower(), "page": None}),
                }
            )
        groups.append({"dimension": dimension, "items": items})
    return groups


def when(value: str) -> str:
    """An RFC 3339 UTC timestamp as ``2024-05-01 12:00:00 UTC`` (anything else as it is)."""
    if len(value) >= 20 and value[10] == "T" and value.endswith("Z"):
        return value[:10] + " " + value[11:-1] + " UTC"
    return value


def first_line(value: str) -> str:
    return value.strip().splitlines()[0] if value.strip() else ""


def diff_lines(text: str) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff."""
    out = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def pages_blueprint(
    controller: ControllerView,
    guard: Guard,
    snapshot: Snapshot,
    differ: Differ,
    rollouts: Rollouts,
    *,
    summaries: Summaries,
) -> flask.Blueprint:
    """The pages and their form actions, with the template filters and context they use."""
    bp = flask.Blueprint("ui", __name__)
    _add_filters(bp)
    _add_context(bp, guard)
    _add_pages(bp, guard, snapshot, differ, rollouts, summaries=summaries, controller=controller)
    _add_form_actions(bp, controller, guard, snapshot, rollouts)
    return bp


def _add_filters(bp: flask.Blueprint) -> None:
    """Template filters: how times, statuses, diffs and rollout charts are shown."""
    bp.add_app_template_filter(chart, "rollout_chart")

    @bp.app_template_filter("remaining")
    def _remaining(until: str) -> str:
        return remaining(until, datetime.now(UTC))

    @bp.app_template_filter("status_class")
    def _status_class(value: str) -> str:
        return status_class(value or "")

    bp.add_app_template_filter(when, "when")
    bp.add_app_template_filter(first_line, "first_line")
    bp.add_app_template_filter(short_revision, "short_revision")
    bp.add_app_template_filter(diff_lines, "diff_lines")


def _add_context(bp: flask.Blueprint, guard: Guard) -> None:
    """What every template sees: who is signed in, the CSRF token, pending flash messages."""

    @bp.app_context_processor
    def context() -> dict[str, Any]:
        try:
            principal = guard.principal()
        except HTTPException:  # a bad token, while an error page is rendered
            principal = NOBODY
        session = principal.session
        flashes: list[tuple[str, str]] = []
        if session is not None:
            flashes, session.flashes = session.flashes, []
        return {
            "principal": principal,
            "csrf_token": session.csrf if session else "",
            "csrf_field": CSRF_FIELD,
            "csrf_header": CSRF_HEADER,
            "can_act": principal.via == "session" and guard.authorizer.may_act_somewhere(principal),
            "flashes": flashes,
            "login_enabled": guard.settings.login_enabled,
            "may_act": guard.authorizer.may_act_somewhere(principal),
            "no_grant": principal.authenticated and not guard.authorizer.has_any_grant(principal),
        }


def _add_pages(
    bp: flask.Blueprint,
    guard: Guard,
    snapshot: Snapshot,
    differ: Differ,
    rollouts: Rollouts,
    *,
    summaries: Summaries,
    controller: ControllerView,
) -> None:
    """The read-only pages: the list, one Application (with its live tree), its diff."""

    @bp.get("/")
    @guard.page
    def index() -> Any:
        query = ListQuery.parse(flask.request.args, strict=False)
        listing = list_applications(guard.visible(snapshot.get(fresh=True)), query, summaries)
        rollouts.annotate_rows(listing.items, listing.objects)
        return flask.render_template(
            "apps.html",
            listing=listing,
            query=query,
            error=query.problem,  # a bad label selector: said, and listed without it
            label_text=flask.request.args.get("label", ""),
            counters=counters(listing, query),
            default_per_page=DEFAULT_PER_PAGE,
            sync_statuses=SYNC_STATUSES,
            health_statuses=HEALTH_STATUSES,
        ), (400 if query.problem else 200)

    @bp.get("/apps/<namespace>/<name>")
    @guard.page
    @guard.allow(Action.GET)
    def app_detail(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(fresh=True), (namespace, name))
        if obj is None:
            flask.abort(404)
        orphans = flask.request.args.get("orphans", "").lower() in ("1", "true", "yes")
        try:
            tree, tree_error = application_tree(controller, (namespace, name), orphans=orphans), ""
        except TreeError as exc:
            tree, tree_error = None, exc.message
        return flask.render_template(
            "app.html",
            app=detail(obj),
            rollouts=rollouts.of_application(obj, fresh=True),
            tree=tree,
            tree_error=tree_error,
            can_act=guard.principal().via == "session" and guard.allows(Action.SYNC, namespace),
        )

    @bp.get("/apps/<namespace>/<name>/diff")
    @guard.page
    @guard.allow(Action.GET)
    def app_diff(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(fresh=True), (namespace, name))
        if obj is None:
            flask.abort(404)
        if manages_secrets(obj) and not guard.allows(Action.DIFF_SECRETS, namespace):
            return guard.forbidden(Action.DIFF_SECRETS, namespace)
        error = ""
        doc: dict[str, Any] | None = None
        status = 200
        try:
            doc = differ.diff((namespace, name))
        except DiffError as exc:
            error, status = exc.message, exc.status
        return flask.render_template("diff.html", app=detail(obj), diff=doc, error=error), status


def _add_form_actions(
    bp: flask.Blueprint,
    controller: ControllerView,
    guard: Guard,
    snapshot: Snapshot,
    rollouts: Rollouts,
) -> None:
    """The form fallback for the actions (without JavaScript): each posts, flashes the outcome
    and redirects back to the Application (303, so a reload does not post again)."""

    @bp.post("/apps/<namespace>/<name>/rollouts/<path:action>")  # "<rollout>/<verb>", as the API
    @guard.form_action
    @guard.allow(Action.ROLLOUT)
    def rollout_action(namespace: str, name: str, action: str) -> WerkzeugResponse:
        rollout, verb = split_rollout_action(action)
        principal = guard.principal()
        obj = find(snapshot.get(fresh=True), (namespace, name))
        if obj is None:
            flask.abort(404)
        try:
            result = rollouts.request(
                obj,
                rollout,
                verb,
                full=flask.request.form.get("full") in ("on", "true", "1"),
                actor=principal.name,
            )
            category, message = "ok", str(result["message"])
            controller.refresh((namespace, name), f"web:rollout-{verb}")
        except RolloutError as exc:
            category, message = "error", exc.message
        if principal.session is not None:
            principal.session.flashes.append((category, message))
        return flask.redirect(flask.url_for("ui.app_detail", namespace=namespace, name=name), 303)

    @bp.post("/apps/<namespace>/<name>/<action>")
    @guard.form_action
    @guard.allow(lambda route: APP_ACTIONS.get(route["action"]))
    def app_action(namespace: str, name: str, action: str) -> WerkzeugResponse:
        if action not in ACTIONS:
            flask.abort(404)
        principal = guard.principal()
        form = flask.request.form
        body: dict[str, Any] = {}
        if action == "sync":
            body["prune"] = form.get("prune") in ("on", "true", "1")
        if action == "rollback":
            body["id"] = form.get("id", "")
        try:
            result = request_action(
                controller,
                (namespace, name),
                action,
                parse_body(action, body),
                actor=principal.name,
            )
            category, message = "ok", str(result["message"])
        except ActionError as exc:
            category, message = "error", exc.message
        if principal.session is not None:
            principal.session.flashes.append((category, message))
        snapshot.invalidate()
        return flask.redirect(flask.url_for("ui.app_detail", namespace=namespace, name=name), 303)
