"""Which forge sent a webhook, whether it was signed with our secret, and what it says moved.

One table row per provider (``_SPECS``) says where its event name and signature travel and how
its push payload is read. The shapes, as the forges document them:

* GitHub - ``X-GitHub-Event: push`` (``ping`` when a hook is created), ``X-Hub-Signature-256:
  sha256=<hex HMAC-SHA256 of the body>``; ``repository.clone_url`` / ``ssh_url`` / ``html_url``.
* GitLab - ``X-Gitlab-Event: Push Hook`` or ``Tag Push Hook``; no HMAC: ``X-Gitlab-Token`` carries
  the secret itself. ``project.git_http_url`` / ``git_ssh_url`` / ``web_url`` (and the older
  ``repository`` block, which real payloads still include). ``checkout_sha`` is the commit even
  for an annotated tag, so it wins over ``after`` when present.
* Gitea and Gogs - ``X-Gitea-Event`` / ``X-Gogs-Event: push``, ``X-Gitea-Signature`` /
  ``X-Gogs-Signature``: the bare hex HMAC-SHA256. Gitea also sends Gogs' and GitHub's headers for
  compatibility, so it is detected first.
* Bitbucket Cloud - ``X-Event-Key: repo:push`` (and ``X-Hook-UUID``, which Server never sends).
  The payload has no clone URL: ``repository.links.html.href`` is the https form and the ssh form
  (``git@bitbucket.org:ws/repo``) is derived from it. A push may move several refs
  (``push.changes[]``); the first change that has a ``new`` side is reported. Classic Bitbucket
  Cloud webhooks were unsigned; since 2023 a hook with a secret sends ``X-Hub-Signature:
  sha256=<hex>``, which is what is verified.
* Bitbucket Server / Data Center - ``X-Event-Key: repo:refs_changed`` (``diagnostics:ping`` for
  "Test connection"), ``X-Hub-Signature: sha256=<hex>``; ``repository.links.clone[]`` lists
  ``{href, name}`` for http and ssh, ``changes[]`` has ``refId`` and ``toHash``.
* Generic - gitsync's own form for anything else: ``X-Gitsync-Event: push`` (or just an
  ``X-Signature`` header), ``X-Signature: sha256=<hex>``, body ``{"repository": {"url": ...},
  "ref": "refs/heads/main", "after": "<sha>", "paths": ["apps/web/deploy.yaml"]}`` (``after``
  and ``paths`` optional; ``paths``, when present, must be a list of file paths).

The files a push changed (``PushEvent.changed_paths``) come from ``commits[].added / modified /
removed`` for GitHub, Gitea, Gogs and GitLab, and from ``paths`` in the generic form; Bitbucket's
payloads do not list files. They only decide which Applications are reconciled first, so a
forge's file lists are read leniently: a list of the wrong shape, or longer than
``MAX_CHANGED_PATHS``, makes them "unknown" (None) rather than refusing a push that is otherwise
fine - the refresh itself must not depend on them. The generic form is gitsync's own, so a
``paths`` of the wrong type is refused like a bad ``after``, to tell the script's author.

Verification compares in constant time against every configured secret (several during a
rotation); a missing or wrong signature is refused. A provider with no secret of its own is
refused too - secrets for other providers leave it no more open (issue 13, finding 6) - unless
the operator accepts unsigned deliveries explicitly (``--allow-unsigned-webhooks``). Empty
strings do not count as secrets.

``delivery_id`` reads the header in which each forge names a delivery (a redelivery keeps it),
for ``gitsync.webhook.replay``.

Everything here is pure (stdlib only, headers and bytes in, values out) so it is table-tested
without a web server; ``gitsync.webhook.http`` is the Flask adapter.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from gitsync.source.revision import normalize_url
from gitsync.webhook.events import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    PayloadTooLargeError,
    Provider,
    PushEvent,
    UnknownProviderError,
    WebhookPayloadError,
)
from gitsync.webhook.payload import DEFAULT_MAX_BYTES, JsonNode, check_ref, load_json

_HMAC_HEX_LENGTH: Final = 64  # sha256
MAX_CHANGED_PATHS: Final = 10_000  # more files than that: no Application goes first
MAX_PATH_LENGTH: Final = 4096  # Linux's PATH_MAX; no repository file is longer

# What a push payload says moved: normalized repository URLs, the full ref, the new commit or "",
# and the files changed (None: not said).
_Moved = tuple[tuple[str, ...], str, str, tuple[str, ...] | None]


@dataclass(frozen=True)
class _Spec:
    """How one provider sends its event name and signature, and reads its push payload."""

    event_header: str  # lowercase
    push_events: frozenset[str]
    signature_header: str  # lowercase
    signature_prefix: str | None  # "sha256=" or "" for an HMAC; None: the header is the secret
    read_push: Callable[[JsonNode], _Moved]
    default_event: str = ""  # when the event header is absent


def detect_provider(headers: Mapping[str, str]) -> str | None:
    """The provider (a ``Provider`` value) whose headers the request carries, or None."""
    return _detect(_lowercase(headers))


def verify(
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    allow_unsigned: bool = False,
) -> bool:
    """Whether the delivery is authentic for ``provider`` under any of ``secrets``.

    With no (non-empty) secret for the provider: ``allow_unsigned``, without looking. Otherwise
    the provider's signature header must be present and match one secret. An unknown provider
    is refused.
    """
    configured = [secret for secret in secrets if secret]
    if not configured:
        return allow_unsigned
    spec = _SPECS.get(provider)
    if spec is None:
        return False
    received = _lowercase(headers).get(spec.signature_header)
    if received is None:
        return False
    if spec.signature_prefix is None:
        return _token_matches(received, configured)
    return _hmac_matches(received, spec.signature_prefix, body, configured)


# The header each forge names a delivery with; a redelivery from the forge's UI keeps it.
_DELIVERY_HEADERS: Final[Mapping[str, str]] = {
    Provider.GITHUB: "x-github-delivery",
    Provider.GITLAB: "x-gitlab-event-uuid",
    Provider.GITEA: "x-gitea-delivery",
    Provider.GOGS: "x-gogs-delivery",
    Provider.BITBUCKET: "x-request-uuid",
    Provider.BITBUCKET_SERVER: "x-request-id",
    Provider.GENERIC: "x-gitsync-delivery",
}
MAX_DELIVERY_ID_LENGTH: Final = 256


def delivery_id(provider: str, headers: Mapping[str, str]) -> str | None:
    """The delivery id the provider's header carries, or None when absent, empty or longer than
    ``MAX_DELIVERY_ID_LENGTH`` (an untrusted value: it is only hashed, never shown)."""
    header = _DELIVERY_HEADERS.get(provider)
    value = _lowercase(headers).get(header, "").strip() if header else ""
    return value if 0 < len(value) <= MAX_DELIVERY_ID_LENGTH else None


def parse_push(
    headers: Mapping[str, str], body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> PushEvent | None:
    """The push the delivery reports, or None for an event that moves no ref (ping, PRs...).

    Does not verify the signature (see ``verify``). Raises ``WebhookPayloadError`` - and only
    that - for an unknown provider, a body over ``max_bytes`` or one not of the provider's shape.
    """
    if len(body) > max_bytes:
        raise PayloadTooLargeError(f"body is larger than {max_bytes} bytes")
    lowered = _lowercase(headers)
    provider = _detect(lowered)
    if provider is None:
        raise UnknownProviderError("no header names a known webhook provider")
    spec = _SPECS[provider]
    event = lowered.get(spec.event_header, spec.default_event).strip()
    if event not in spec.push_events:
        return None
    content_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    root = load_json(
        body, max_bytes=max_bytes, form=content_type == "application/x-www-form-urlencoded"
    )
    urls, ref, after, paths = spec.read_push(JsonNode(root))
    return PushEvent(
        provider=provider.value, repo_urls=urls, ref=ref, after=after, changed_paths=paths
    )


def _lowercase(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(name).lower(): value for name, value in headers.items() if isinstance(value, str)}


def _detect(headers: Mapping[str, str]) -> Provider | None:
    # Order matters: Gitea also sends X-Gogs-Event and X-GitHub-Event.
    if "x-gitea-event" in headers:
        return Provider.GITEA
    if "x-gogs-event" in headers:
        return Provider.GOGS
    if "x-gitlab-event" in headers:
        return Provider.GITLAB
    if "x-github-event" in headers:
        return Provider.GITHUB
    if "x-event-key" in headers:
        cloud = headers["x-event-key"].strip() == "repo:push" or "x-hook-uuid" in headers
        return Provider.BITBUCKET if cloud else Provider.BITBUCKET_SERVER
    if "x-gitsync-event" in headers or "x-signature" in headers:
        return Provider.GENERIC
    return None


def _hmac_matches(received: str, prefix: str, body: bytes, secrets: Sequence[str]) -> bool:
    candidate = received.strip().lower()
    if not candidate.startswith(prefix):
        return False
    digest = candidate[len(prefix) :]
    if len(digest) != _HMAC_HEX_LENGTH or not digest.isascii():
        return False
    got = digest.encode("ascii")
    matched = False
    for secret in secrets:  # no early exit: the time taken does not say which secret matched
        want = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().encode("ascii")
        matched |= hmac.compare_digest(want, got)
    return matched


def _token_matches(received: str, secrets: Sequence[str]) -> bool:
    try:
        got = received.strip().encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: cannot be anyone's secret
        return False
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret.encode("utf-8"), got)
    return matched


def _urls(*nodes: JsonNode | None) -> tuple[str, ...]:
    """Normalized URLs from the nodes that are present, without repeats, in order."""
    urls: list[str] = []
    for node in nodes:
        if node is not None:
            url = node.url()
            if url not in urls:
                urls.append(url)
    return tuple(urls)


def _require(urls: tuple[str, ...], where: JsonNode) -> tuple[str, ...]:
    if not urls:
        raise WebhookPayloadError(f"{where.path}: no repository URL")
    return urls


def _read_github_like(root: JsonNode) -> _Moved:
    """GitHub, Gitea and Gogs share the push payload shape GitHub defined."""
    repo = root["repository"]
    urls = _urls(repo.get("clone_url"), repo.get("ssh_url"), repo.get("html_url"))
    return _require(urls, repo), root["ref"].ref(), root["after"].sha(), _commit_files(root)


def _read_gitlab(root: JsonNode) -> _Moved:
    project = root["project"]
    repo = root["repository"]
    urls = _urls(
        project.get("git_http_url"),
        project.get("git_ssh_url"),
        project.get("web_url"),
        repo.get("git_http_url"),
        repo.get("git_ssh_url"),
        repo.get("homepage"),
    )
    checkout = root.get("checkout_sha")
    after = checkout.sha() if checkout is not None else root["after"].sha()
    return _require(urls, project), root["ref"].ref(), after, _commit_files(root)


def _is_path(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_PATH_LENGTH and "\x00" not in value


def _commit_files(root: JsonNode) -> tuple[str, ...] | None:
    """The files ``commits[].added / modified / removed`` name, in order without repeats; None
    when ``commits`` is absent, not of that shape, or names more than ``MAX_CHANGED_PATHS``.

    Lenient (see the module docstring): nothing here can turn a push into an error.
    """
    commits = root.get("commits")
    if commits is None or not isinstance(commits.value, list):
        return None
    files: dict[str, None] = {}  # an ordered set
    count = 0
    for commit in commits.value:
        if not isinstance(commit, dict):
            return None
        for kind in ("added", "modified", "removed"):
            names = commit.get(kind)
            if names is None:
                continue
            if not isinstance(names, list):
                return None
            for name in names:
                count += 1
                if count > MAX_CHANGED_PATHS or not _is_path(name):
                    return None
                files[name] = None
    return tuple(files)


def _read_bitbucket_cloud(root: JsonNode) -> _Moved:
    https = root["repository"]["links"]["html"]["href"].url()
    urls = (https, *_bitbucket_cloud_ssh(https))
    changes = root["push"]["changes"].items()
    # A deleted ref has no "new" side; report a ref that moved when there is one.
    change = next((c for c in changes if c.get("new") is not None), changes[0])
    new = change.get("new")
    side = new if new is not None else change["old"]
    prefix = {"branch": BRANCH_PREFIX, "tag": TAG_PREFIX}.get(side["type"].text())
    if prefix is None:
        raise WebhookPayloadError(f"{side.path}.type: not a branch or tag")
    ref = check_ref(prefix + side["name"].text(), f"{side.path}.name")
    after = side["target"]["hash"].sha() if new is not None else ""
    return urls, ref, after, None


def _bitbucket_cloud_ssh(https: str) -> tuple[str, ...]:
    """The ssh form of a Bitbucket Cloud repository (``git@bitbucket.org:ws/repo``), which its
    payloads do not carry; none when the https form is not a plain http(s) URL."""
    try:
        parts = urlsplit(https)
        hostname = parts.hostname
    except ValueError:
        return ()
    if parts.scheme not in ("http", "https") or not hostname or len(parts.path) < 2:
        return ()
    host = f"[{hostname}]" if ":" in hostname else hostname
    return (normalize_url(f"ssh://git@{host}{parts.path}"),)


def _read_bitbucket_server(root: JsonNode) -> _Moved:
    clone = root["repository"]["links"]["clone"].items()
    urls = _urls(*(entry["href"] for entry in clone))
    changes = root["changes"].items()
    # Report a ref that moved rather than one that was deleted, when there is one.
    change = next((c for c in changes if not _is_delete(c)), changes[0])
    return urls, change["refId"].ref(), change["toHash"].sha(), None


def _is_delete(change: JsonNode) -> bool:
    kind = change.get("type")
    return kind is not None and kind.text() == "DELETE"


def _read_generic(root: JsonNode) -> _Moved:
    after = root.get("after")
    return (
        (root["repository"]["url"].url(),),
        root["ref"].ref(),
        after.sha() if after is not None else "",
        _generic_paths(root.get("paths")),
    )


def _generic_paths(node: JsonNode | None) -> tuple[str, ...] | None:
    """The generic form's optional ``paths``: a list of file paths, refused when present and of
    another shape; None (unknown) when absent or longer than ``MAX_CHANGED_PATHS``."""
    if node is None:
        return None
    if not isinstance(node.value, list):
        raise WebhookPayloadError(f"{node.path}: expected an array of file paths")
    if len(node.value) > MAX_CHANGED_PATHS:
        return None
    for index, name in enumerate(node.value):
        if not _is_path(name):
            raise WebhookPayloadError(f"{node.path}[{index}]: is not a file path")
    return tuple(dict.fromkeys(node.value))


_SPECS: Final[Mapping[str, _Spec]] = {
    Provider.GITHUB: _Spec(
        event_header="x-github-event",
        push_events=frozenset({"push"}),
        signature_header="x-hub-signature-256",
        signature_prefix="sha256=",
        read_push=_read_github_like,
    ),
    Provider.GITLAB: _Spec(
        event_header="x-gitlab-event",
        push_events=frozenset({"Push Hook", "Tag Push Hook"}),
        signature_header="x-gitlab-token",
        signature_prefix=None,
        read_push=_read_gitlab,
    ),
    Provider.GITEA: _Spec(
        event_header="x-gitea-event",
        push_events=frozenset({"push"}),
        signature_header="x-gitea-signature",
        signature_prefix="",
        read_push=_read_github_like,
    ),
    Provider.GOGS: _Spec(
        event_header="x-gogs-event",
        push_events=frozenset({"push"}),
        signature_header="x-gogs-signature",
        signature_prefix="",
        read_push=_read_github_like,
    ),
    Provider.BITBUCKET: _Spec(
        event_header="x-event-key",
        push_events=frozenset({"repo:push"}),
        signature_header="x-hub-signature",
        signature_prefix="sha256=",
        read_push=_read_bitbucket_cloud,
    ),
    Provider.BITBUCKET_SERVER: _Spec(
        event_header="x-event-key",
        push_events=frozenset({"repo:refs_changed"}),
        signature_header="x-hub-signature",
        signature_prefix="sha256=",
        read_push=_read_bitbucket_server,
    ),
    Provider.GENERIC: _Spec(
        event_header="x-gitsync-event",
        push_events=frozenset({"push"}),
        signature_header="x-signature",
        signature_prefix="sha256=",
        read_push=_read_generic,
        default_event="push",
    ),
}
