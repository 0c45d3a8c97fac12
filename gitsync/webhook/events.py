"""What a push webhook means to gitsync, whichever forge sent it.

Every provider's payload is boiled down to one ``PushEvent``: the repository (as normalized clone
URLs, so it compares equal to what Applications name), the ref that moved, the new commit and,
when the forge lists them, the files the push changed. The controller only needs that much to
pick the Applications to refresh (and which of them to reconcile first); everything else a forge
sends stays behind in ``gitsync.webhook.providers``.

The result names the HTTP adapter reports (for metrics) live here too, so code that counts them
does not have to import the web layer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

BRANCH_PREFIX: Final = "refs/heads/"
TAG_PREFIX: Final = "refs/tags/"


class Provider(enum.StrEnum):
    """The forges whose push webhooks gitsync understands; the values are the names used for
    per-provider secrets and metric labels."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"
    GOGS = "gogs"
    BITBUCKET = "bitbucket"  # Bitbucket Cloud (bitbucket.org)
    BITBUCKET_SERVER = "bitbucket-server"  # Bitbucket Server / Data Center
    GENERIC = "generic"  # gitsync's own minimal JSON form, for scripts and unlisted forges


class WebhookResult(enum.StrEnum):
    """How one delivery ended, as reported to ``on_result`` for metrics."""

    ACCEPTED = "accepted"  # a push; the controller was told
    IGNORED = "ignored"  # a ping or another event that moves no ref
    UNAUTHORIZED = "unauthorized"  # unsigned without --allow-unsigned-webhooks, or a bad signature
    REPLAYED = "replayed"  # the same delivery id or body arrived within the replay window
    MALFORMED = "malformed"  # the body is not a payload of the provider's shape
    TOO_LARGE = "too_large"  # the body is over the limit
    UNKNOWN_PROVIDER = "unknown_provider"  # no header names a provider we know
    ERROR = "error"  # the controller's push handler failed


class WebhookPayloadError(ValueError):
    """The body is not a push payload of the shape its provider sends.

    The message is short and names the field, never echoes the value: the input is untrusted and
    the message ends up in an HTTP answer and in logs.
    """


class PayloadTooLargeError(WebhookPayloadError):
    """The body is longer than the configured limit."""


class UnknownProviderError(WebhookPayloadError):
    """No header says which forge sent the request."""


@dataclass(frozen=True)
class PushEvent:
    """A ref moved in a repository.

    ``repo_urls`` are normalized clone URLs (``gitsync.source.revision.normalize_url``): the https
    and the ssh form when the payload gives both, so an Application may name either. ``ref`` is a
    full ref name (``refs/heads/main``, ``refs/tags/v1``); ``after`` is the new commit, or ``""``
    when the ref was deleted or the sender did not say.

    ``changed_paths`` are the repository-relative files the pushed commits added, modified or
    removed, as the sender listed them; ``None`` when it did not say (Bitbucket, a generic push
    without ``paths``, a list too long or malformed to use). They come from the untrusted body
    and forges cap how many commits they list, so they are a hint and never complete: the
    controller only uses them to reconcile the touched Applications first - every matching
    Application is still refreshed.
    """

    provider: str
    repo_urls: tuple[str, ...]
    ref: str
    after: str
    changed_paths: tuple[str, ...] | None = None

    @property
    def branch(self) -> str | None:
        """The branch name when a branch moved (``main`` for ``refs/heads/main``)."""
        return self.ref.removeprefix(BRANCH_PREFIX) if self.ref.startswith(BRANCH_PREFIX) else None

    @property
    def tag(self) -> str | None:
        """The tag name when a tag moved (``v1`` for ``refs/tags/v1``)."""
        return self.ref.removeprefix(TAG_PREFIX) if self.ref.startswith(TAG_PREFIX) else None
