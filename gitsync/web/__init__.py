"""The HTTP face of ``gitsync serve`` (Flask, served by waitress): push webhooks, health probes,
Prometheus metrics, the status pages and the JSON API (``/api/v1``, see docs/api.md).

``create_app`` receives what it serves (an app factory, no globals), so tests build one app per
test. Flask is imported only in this package and the webhook's HTTP adapter. Modules, bottom up:
``view`` (the documents shown, pure), ``auth`` (credentials, sessions, rate limit; no Flask),
``actions``, ``diff`` and ``rollouts`` (what the buttons, the diff view and the rollout panel ask
of the controller and the cluster), ``guard`` (authentication and CSRF over HTTP, the login
page), ``pages`` and ``api`` (the routes), ``app``.

Owns: the HTTP face. The only importer of flask/werkzeug/jinja2 (with ``webhook.http``) and waitress
(``web.server``). May import: the controller's public interface only (``controller.interface``:
``ControllerView`` and the request annotations - never the controller's internals), engine,
rollout, sync, webhook, diff, health, render, source, kube, policy, application,
application_status, model, kinds, errors, logs (import-linter: ``flask``, ``waitress``,
``layers``, ``web-controller-interface``).
"""

from gitsync.controller.interface import ControllerView
from gitsync.web.app import create_app, create_metrics_app, web_dir
from gitsync.web.auth import AuthConfigError, AuthSettings, LoginLimits

__all__ = [
    "AuthConfigError",
    "AuthSettings",
    "ControllerView",
    "LoginLimits",
    "create_app",
    "create_metrics_app",
    "web_dir",
]
