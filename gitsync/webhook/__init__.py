"""Push webhooks from Git forges: which repository and ref moved, verified and parsed.

A webhook only makes the controller look sooner: the push is turned into a ``PushEvent`` and the
controller refreshes the Applications that follow that repository; the regular poll stays the
source of truth. The package is split so the parsing core stays pure:

* ``events``    - ``PushEvent``, the provider names, the errors and the result names;
* ``payload``   - reading an untrusted body (size, UTF-8, nesting depth, typed access);
* ``providers`` - detecting GitHub, GitLab, Gitea, Gogs, Bitbucket Cloud/Server or the generic
  form, verifying signatures, and reading each one's push payload;
* ``replay``    - the deliveries seen in the last minutes, so a replayed one is refused;
* ``http``      - the Flask blueprint; the only module here that imports flask, and deliberately
  not imported by this package, so ``import gitsync.webhook`` does not pull in the web stack.

Owns: reading push webhooks. May import: source (the pure ``normalize_url``), model, errors, logs;
flask only in ``webhook.http`` (import-linter: ``flask``).
"""

from __future__ import annotations

from gitsync.webhook.events import (
    PayloadTooLargeError,
    Provider,
    PushEvent,
    UnknownProviderError,
    WebhookPayloadError,
    WebhookResult,
)
from gitsync.webhook.payload import DEFAULT_MAX_BYTES, MAX_DEPTH, MAX_URL_LENGTH
from gitsync.webhook.providers import detect_provider, parse_push, verify

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_DEPTH",
    "MAX_URL_LENGTH",
    "PayloadTooLargeError",
    "Provider",
    "PushEvent",
    "UnknownProviderError",
    "WebhookPayloadError",
    "WebhookResult",
    "detect_provider",
    "parse_push",
    "verify",
]
