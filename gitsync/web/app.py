"""``create_app``: the Flask application for one controller."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from flask import Flask, Response

from gitsync.webhook import DEFAULT_MAX_BYTES, PushEvent
from gitsync.webhook.http import webhook_blueprint


class ControllerView(Protocol):
    """What the web layer needs from the controller."""

    @property
    def ready(self) -> bool: ...

    def on_push(self, event: PushEvent) -> int: ...


def create_app(
    controller: ControllerView,
    *,
    metrics_exposition: Callable[[], bytes],
    webhook_secrets: Callable[[str], Sequence[str]],
    on_webhook_result: Callable[[str, str], None] | None = None,
    max_webhook_bytes: int = DEFAULT_MAX_BYTES,
) -> Flask:
    app = Flask("gitsync")
    app.config["MAX_CONTENT_LENGTH"] = max(max_webhook_bytes, 64 * 1024) + 1
    app.register_blueprint(
        webhook_blueprint(
            controller.on_push,
            webhook_secrets,
            max_bytes=max_webhook_bytes,
            on_result=on_webhook_result,
        )
    )

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        if controller.ready:
            return Response("ok\n", mimetype="text/plain")
        return Response("not ready\n", status=503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(metrics_exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8")

    return app
