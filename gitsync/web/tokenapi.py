"""``/api/v1/tokens``: scoped API tokens for global admins (``gitsync token ...`` calls these).

* ``GET /api/v1/tokens`` - the tokens, without digests, with ``expired`` flags.
* ``POST /api/v1/tokens`` ``{"name", "role", "projects": [glob], "expires": "24h"}`` - 201 with
  ``token`` (shown once, never stored or logged).
* ``POST /api/v1/tokens/<name>/revoke`` - 200; the token stops working on this replica at once
  and on the others within the store's refresh (``gitsync.web.tokens``).

Without a token store (no Kubernetes, e.g. unit tests) the routes answer 501.
"""

from __future__ import annotations

from typing import Any

import flask

from gitsync.errors import GitsyncError
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import Action
from gitsync.web.tokens import TokenError, TokenStore, parse_lifetime

MAX_JSON_BYTES = 4096


def tokens_blueprint(guard: Guard, store: TokenStore | None) -> flask.Blueprint:
    bp = flask.Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")

    def missing() -> flask.Response | None:
        if store is None:
            return json_error(501, "API tokens need the Kubernetes API (no token store)")
        return None

    @bp.get("")
    @guard.api_read
    @guard.allow_global(Action.ADMIN)
    def list_tokens() -> Any:
        refused = missing()
        if refused is not None or store is None:
            return refused
        now = store.clock()
        return flask.jsonify({"items": [t.document(now) for t in store.tokens()]})

    @bp.post("")
    @guard.api_action
    @guard.allow_global(Action.ADMIN)
    def create() -> Any:
        refused = missing()
        if refused is not None or store is None:
            return refused
        body = _body()
        if isinstance(body, flask.Response):
            return body
        name, role, expires = body.get("name"), body.get("role"), body.get("expires")
        projects = body.get("projects")
        if not isinstance(name, str) or not isinstance(role, str):
            return json_error(400, "name and role are required strings")
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            return json_error(400, "projects must be a list of namespace globs")
        unknown = sorted(set(body) - {"name", "role", "projects", "expires"})
        if unknown:
            return json_error(400, f"unknown field {unknown[0]!r}")
        try:
            lifetime = parse_lifetime(expires) if isinstance(expires, str) else -1.0
        except ValueError as exc:
            return json_error(400, f"expires: {exc}")
        principal = guard.principal()
        try:
            token, secret = store.create(name, role, projects, lifetime, created_by=principal.name)
        except TokenError as exc:
            return json_error(exc.status, exc.message)
        except GitsyncError as exc:
            return json_error(502, f"the token could not be stored: {str(exc)[:300]}")
        guard.audit_global(Action.ADMIN, f"token create {name}", "requested", 201)
        return flask.jsonify({**token.document(store.clock()), "token": secret}), 201

    @bp.post("/<name>/revoke")
    @guard.api_action
    @guard.allow_global(Action.ADMIN)
    def revoke(name: str) -> Any:
        refused = missing()
        if refused is not None or store is None:
            return refused
        try:
            store.revoke(name)
        except TokenError as exc:
            return json_error(exc.status, exc.message)
        except GitsyncError as exc:
            return json_error(502, f"the token could not be revoked: {str(exc)[:300]}")
        guard.audit_global(Action.ADMIN, f"token revoke {name}", "requested", 200)
        return flask.jsonify({"name": name, "revoked": True})

    return bp


def _body() -> dict[str, Any] | flask.Response:
    if (flask.request.content_length or 0) > MAX_JSON_BYTES:
        return json_error(413, "request body too large")
    try:
        body = flask.json.loads(flask.request.get_data(cache=False) or b"{}")
    except ValueError:
        return json_error(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        return json_error(400, "the body must be a JSON object")
    return body
