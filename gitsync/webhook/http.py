"""The Flask adapter for push webhooks: ``POST /api/webhook``.

A blueprint factory (no globals, the app factory mounts it) that does the HTTP parts and leaves
meaning to the pure core in ``gitsync.webhook.providers``:

1. read at most ``max_bytes + 1`` bytes of the body from the stream, in chunks, whatever
   ``Content-Length`` says, so a chunked multi-gigabyte body is cut off at the limit rather than
   buffered (413). A declared ``Content-Length`` over the limit is refused before reading.
   When serving with waitress, also set its ``max_request_body_size``: waitress de-chunks and
   spools a body itself before the application sees it;
2. name the provider from the headers (400 when none matches);
3. verify the signature against the provider's secrets *before* parsing (401, and ``on_push`` is
   not called); a provider without a secret is refused unless ``allow_unsigned``;
4. refuse a delivery whose id or body was seen within the replay window (409,
   ``gitsync.webhook.replay``);
5. parse (400 with a short ``{"error": ...}`` when malformed); a ping or another event that moves
   no ref is answered 200 and nothing else happens;
6. hand the ``PushEvent`` to ``on_push``, which must return quickly (the controller queues the
   refreshes) with the number of Applications it will refresh: 202 ``{"refreshed": n}``. If it
   raises, the answer is a bare 500 - the details go to the log, not to the sender.

Every delivery ends in one ``WebhookResult`` passed to ``on_result(provider, result)`` for metrics
(provider ``"unknown"`` when none was recognized).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO

import flask
import structlog
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from gitsync.webhook.events import PayloadTooLargeError, PushEvent, WebhookPayloadError
from gitsync.webhook.events import WebhookResult as Result
from gitsync.webhook.payload import DEFAULT_MAX_BYTES
from gitsync.webhook.providers import delivery_id, detect_provider, parse_push, verify
from gitsync.webhook.replay import DeliveryLog

WEBHOOK_PATH = "/api/webhook"
UNKNOWN_PROVIDER = "unknown"
_CHUNK = 64 * 1024

log = structlog.get_logger(__name__)

_Answer = tuple[dict[str, object], int]


def webhook_blueprint(
    on_push: Callable[[PushEvent], int],
    secrets_for: Callable[[str], Sequence[str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_result: Callable[[str, str], None] | None = None,
    allow_unsigned: bool = False,
    deliveries: DeliveryLog | None = None,
) -> flask.Blueprint:
    """A blueprint serving ``POST /api/webhook``.

    ``secrets_for(provider)`` gives the secrets configured for a provider (``Provider`` values;
    several during a rotation). A provider with none is refused unless ``allow_unsigned``.
    ``deliveries`` remembers what arrived, to refuse replays (a fresh one per blueprint when
    not given).
    """
    blueprint = flask.Blueprint("webhook", __name__)
    seen = deliveries if deliveries is not None else DeliveryLog()

    def finish(provider: str, result: Result, answer: _Answer) -> _Answer:
        if on_result is not None:
            on_result(provider, result.value)
        return answer

    @blueprint.post(WEBHOOK_PATH)
    def receive() -> _Answer:
        request = flask.request
        headers = dict(request.headers.items())
        provider = detect_provider(headers)
        label = provider or UNKNOWN_PROVIDER

        try:
            body = _read_at_most(request.stream, max_bytes, request.content_length)
        except RequestEntityTooLarge:  # the app's MAX_CONTENT_LENGTH, if set, is lower
            body = None
        except ClientDisconnected:
            return finish(label, Result.MALFORMED, ({"error": "body ended early"}, 400))
        if body is None:
            return finish(label, Result.TOO_LARGE, ({"error": "body too large"}, 413))

        if provider is None:
            return finish(label, Result.UNKNOWN_PROVIDER, ({"error": "unknown provider"}, 400))

        secrets = secrets_for(provider)
        if not verify(provider, headers, body, secrets, allow_unsigned=allow_unsigned):
            if not any(secrets):
                log.warning(
                    "unsigned webhook refused: no secret for its provider", provider=provider
                )
                answer: _Answer = (
                    {"error": f"no webhook secret is configured for {provider}"},
                    401,
                )
            else:
                log.warning("webhook signature mismatch", provider=provider)
                answer = ({"error": "bad signature"}, 401)
            return finish(provider, Result.UNAUTHORIZED, answer)

        if seen.is_replay(provider, body, delivery_id(provider, headers)):
            log.warning("webhook delivery replayed", provider=provider)
            return finish(provider, Result.REPLAYED, ({"error": "delivery already received"}, 409))

        try:
            event = parse_push(headers, body, max_bytes=max_bytes)
        except PayloadTooLargeError:
            return finish(provider, Result.TOO_LARGE, ({"error": "body too large"}, 413))
        except WebhookPayloadError as exc:
            log.info("webhook payload refused", provider=provider, reason=str(exc))
            return finish(provider, Result.MALFORMED, ({"error": str(exc)}, 400))

        if event is None:
            return finish(provider, Result.IGNORED, ({"refreshed": 0, "ignored": True}, 200))

        try:
            refreshed = on_push(event)
        except Exception:
            log.exception("webhook push handler failed", provider=provider, ref=event.ref)
            return finish(provider, Result.ERROR, ({"error": "internal error"}, 500))
        log.info(
            "webhook push", provider=provider, ref=event.ref, after=event.after, refreshed=refreshed
        )
        return finish(provider, Result.ACCEPTED, ({"refreshed": refreshed}, 202))

    return blueprint


def _read_at_most(stream: IO[bytes], limit: int, declared: int | None) -> bytes | None:
    """The body, or None as soon as it is known to be longer than ``limit``.

    ``Content-Length`` is only trusted to refuse early: a body without one (chunked) or one that
    lies is still cut off after ``limit + 1`` bytes.
    """
    if declared is not None and declared > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)
