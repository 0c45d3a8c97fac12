"""``create_app``: the Flask application for one controller.

It serves push webhooks, probes and metrics (no session: ``/healthz``, ``/readyz``,
``/metrics``, ``/api/webhook`` - the webhook is authenticated by its signature, ``/metrics`` by
its own bearer token when ``--metrics-token-file`` is given), and the status UI and JSON API
behind ``gitsync.web.guard``. With ``serve_metrics=False`` (``--metrics-listen``) ``/metrics``
is not served here at all but by ``create_metrics_app`` on its own address. Every response
carries the security headers (a strict Content-Security-Policy: scripts and styles only from
``/static``, nothing inline).

Templates and static files come from the top-level ``web/`` directory of the source tree;
``GITSYNC_WEB_DIR`` (or ``web_dir``) points elsewhere, e.g. for an installed package.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flask
import structlog
from flask import Flask, Response
from jinja2 import TemplateNotFound
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from gitsync.controller.interface import ControllerView
from gitsync.web.api import api_blueprint
from gitsync.web.appsets import appsets_blueprint
from gitsync.web.auth import Authenticator, AuthSettings
from gitsync.web.diff import Differ
from gitsync.web.events import events_blueprint
from gitsync.web.guard import Guard, RecordEvent, auth_blueprint
from gitsync.web.history import history_blueprint
from gitsync.web.live import LiveHub, live_blueprint
from gitsync.web.oidc import OidcClient, OidcSettings
from gitsync.web.pages import pages_blueprint
from gitsync.web.podlogs import LogLimits, logs_blueprint
from gitsync.web.rbac import Authorizer
from gitsync.web.rollouts import Rollouts
from gitsync.web.sessions import Revocations
from gitsync.web.sso import sso_blueprint
from gitsync.web.tokenapi import tokens_blueprint
from gitsync.web.tokens import TokenStore
from gitsync.web.view import Snapshot, Summaries
from gitsync.webhook import DEFAULT_MAX_BYTES
from gitsync.webhook.http import webhook_blueprint

log = structlog.get_logger(__name__)

WEB_DIR_ENV = "GITSYNC_WEB_DIR"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

__all__ = ["ControllerView", "create_app", "create_metrics_app", "web_dir"]


def web_dir(explicit: str | Path | None = None) -> Path:
    """Where the UI's ``templates/`` and ``static/`` are: ``explicit``, ``$GITSYNC_WEB_DIR``,
    ``web/`` next to the ``gitsync`` package (a source checkout or an editable install), or
    ``<prefix>/share/gitsync/web`` (where an image or a package may install it)."""
    if explicit:
        return Path(explicit).resolve()
    env = os.environ.get(WEB_DIR_ENV)
    if env:
        return Path(env).resolve()
    source_tree = Path(__file__).resolve().parents[2] / "web"
    installed = Path(sys.prefix) / "share" / "gitsync" / "web"
    if not (source_tree / "templates").is_dir() and (installed / "templates").is_dir():
        return installed
    return source_tree


def _add_probes(app: Flask, controller: ControllerView) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (the controller is ready) and the
    favicon: the routes that need no session."""

    @app.get("/favicon.ico")
    def favicon() -> WerkzeugResponse:
        return flask.redirect(flask.url_for("static", filename="favicon.svg"), 301)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        if controller.ready:
            return Response("ok\n", mimetype="text/plain")
        return Response("not ready\n", status=503, mimetype="text/plain")


def create_app(
    controller: ControllerView,
    *,
    metrics_exposition: Callable[[], bytes],
    webhook_secrets: Callable[[str], Sequence[str]],
    on_webhook_result: Callable[[str, str], None] | None = None,
    max_webhook_bytes: int = DEFAULT_MAX_BYTES,
    allow_unsigned_webhooks: bool = False,
    serve_metrics: bool = True,
    auth: AuthSettings | None = None,
    ui_dir: str | Path | None = None,
    snapshot_ttl: float = 1.0,
    diff_concurrency: int = 2,
    clock: Callable[[], float] | None = None,
    logs: LogLimits | None = None,
    live: LiveHub | None = None,
    authorizer: Authorizer | None = None,
    tokens: TokenStore | None = None,
    record_event: RecordEvent | None = None,
    oidc: OidcSettings | None = None,
    revocations: Revocations | None = None,
) -> Flask:
    """The app. Without ``auth`` nobody can log in and nothing can be read: the UI and API
    answer 401 / redirect to a login page that explains which ``gitsync serve`` flags to use.
    With ``live`` (fed by the controller's Application events) the pages get live updates by
    server-sent events; without it they poll. ``authorizer`` holds the RBAC policy (none: the
    credentials' global roles), ``tokens`` the scoped API tokens, ``record_event`` writes the
    audit Events on Applications. ``oidc`` adds single sign-on (``gitsync.web.sso``);
    ``revocations`` is the session revocation list shared with other replicas (default: this
    process's own)."""
    root = web_dir(ui_dir)
    if not (root / "templates").is_dir():
        log.warning("web UI templates not found; set " + WEB_DIR_ENV, path=str(root))
    app = Flask(
        "gitsync",
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
        static_url_path="/static",
    )
    app.config["MAX_CONTENT_LENGTH"] = max(max_webhook_bytes, 64 * 1024) + 1
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 300
    app.jinja_env.autoescape = True
    app.register_blueprint(
        webhook_blueprint(
            controller.on_push,
            webhook_secrets,
            max_bytes=max_webhook_bytes,
            on_result=on_webhook_result,
            allow_unsigned=allow_unsigned_webhooks,
        )
    )

    settings = auth or AuthSettings()
    guard = _guard(
        settings,
        clock=clock,
        authorizer=authorizer,
        tokens=tokens,
        record_event=record_event,
        revocations=revocations,
    )
    policy = _single_sign_on(app, guard, oidc)
    snapshot = Snapshot(controller.application_objects, ttl=snapshot_ttl)
    differ = Differ(controller, concurrency=diff_concurrency, clock=clock or time.monotonic)
    rollouts = Rollouts(controller, ttl=snapshot_ttl, clock=clock or time.monotonic)
    app.extensions["gitsync_guard"] = guard  # for login front-ends added beside (OIDC)
    app.register_blueprint(auth_blueprint(guard))
    app.register_blueprint(tokens_blueprint(guard, tokens))
    summaries = Summaries()  # one per app: the page and the API list the same rows
    for blueprint in (pages_blueprint, api_blueprint):
        app.register_blueprint(
            blueprint(controller, guard, snapshot, differ, rollouts, summaries=summaries)
        )
    app.register_blueprint(
        history_blueprint(controller, guard, snapshot, concurrency=diff_concurrency)
    )
    if live is not None:
        app.register_blueprint(live_blueprint(guard, live, controller.store.get))
        app.jinja_env.globals["live_streams"] = True  # the pages name their stream
    app.register_blueprint(events_blueprint(controller, guard))
    set_snapshot = Snapshot(controller.application_set_objects, ttl=snapshot_ttl)
    app.register_blueprint(appsets_blueprint(guard, set_snapshot, snapshot))
    app.register_blueprint(logs_blueprint(controller, guard, snapshot, logs or LogLimits()))

    _add_probes(app, controller)
    if serve_metrics:
        _add_metrics(app, metrics_exposition, Authenticator(settings))

    @app.after_request
    def security_headers(response: Response) -> Response:
        guard.renew_session(response)
        response.headers.setdefault("Content-Security-Policy", policy)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.secure_cookie:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not flask.request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if exc.response is not None:  # abort(response): already the answer
            return exc.response
        status = exc.code or 500
        message = exc.description or exc.name
        if flask.request.path.startswith("/api/v1/") or flask.request.path == "/api/v1":
            response = flask.jsonify({"error": exc.name.lower()})
            response.status_code = status
            return response
        try:
            return flask.render_template("error.html", status=status, title=exc.name), status
        except TemplateNotFound:
            return Response(f"{status} {message}\n", status=status, mimetype="text/plain")

    @app.errorhandler(TemplateNotFound)
    def no_templates(exc: TemplateNotFound) -> Response:
        log.error("web UI template missing; set " + WEB_DIR_ENV, template=str(exc), path=str(root))
        return Response(
            f"the web UI's templates are not installed; set {WEB_DIR_ENV}\n",
            status=503,
            mimetype="text/plain",
        )

    return app


def create_metrics_app(
    metrics_exposition: Callable[[], bytes], auth: AuthSettings | None = None
) -> Flask:
    """``/metrics`` alone, for ``--metrics-listen``: a scraper can be allowed to that address
    without reaching the UI, the API or the webhook."""
    app = Flask("gitsync-metrics")
    _add_metrics(app, metrics_exposition, Authenticator(auth or AuthSettings()))
    return app


def _add_metrics(
    app: Flask, metrics_exposition: Callable[[], bytes], authenticator: Authenticator
) -> None:
    @app.get("/metrics")
    def metrics() -> Response:
        if not authenticator.check_metrics_bearer(flask.request.headers.get("Authorization")):
            return Response(
                "metrics need a bearer token\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="gitsync-metrics"'},
            )
        return Response(metrics_exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8")


def _guard(
    settings: AuthSettings,
    *,
    clock: Callable[[], float] | None,
    authorizer: Authorizer | None,
    tokens: TokenStore | None,
    record_event: RecordEvent | None,
    revocations: Revocations | None,
) -> Guard:
    if (
        not settings.login_enabled
        and not settings.api_tokens_sha256
        and not settings.anonymous_read
    ):
        log.warning(
            "the status UI and API are closed: no admin password, token or --anonymous-read"
        )
    return Guard(
        settings,
        clock=clock,
        authorizer=authorizer,
        tokens=tokens,
        record_event=record_event,
        revocations=revocations,
    )


def _single_sign_on(app: Flask, guard: Guard, oidc: OidcSettings | None) -> str:
    """Registers the SSO routes when ``oidc`` is given; the Content-Security-Policy to send."""
    if oidc is None:
        return CONTENT_SECURITY_POLICY
    app.register_blueprint(sso_blueprint(guard, OidcClient(oidc)))
    # logout is a form post that ends on the provider's end-session page
    return CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {oidc.issuer_origin}"
    )
