"""What a source revision is, and how the names people give repositories and revisions are read.

Pure (no git, no I/O), so the rules are table-tested and shared by the source cache and, later,
by webhooks that match a push to the Applications that follow that repository:

* ``Revision`` - one commit as the rest of the pipeline sees it: its SHA, the ref it was reached
  through, and the commit's message, author and date for status and history.
* ``normalize_url`` - one identity per repository, whatever spelling a user or a forge uses: it
  keys the local mirrors and is what webhook payloads are compared with. It never contains
  credentials.
* ``select_semver_tag`` - a semver range over tags (``>=1.2.0 <2.0.0``), npm rules: the highest
  matching tag wins, a leading ``v`` is allowed, pre-releases only when the range asks for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import semantic_version

TAG_PREFIX: Final = "refs/tags/"
PEELED_SUFFIX: Final = "^{}"
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ssh": 22, "git": 9418}

_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_SHORT_SHA = re.compile(r"[0-9a-fA-F]{7,63}")
_SCP_LIKE = re.compile(
    r"(?:(?P<user>[^@/:\s]+)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):(?P<path>.*)"
)


@dataclass(frozen=True)
class Revision:
    """One commit of a source, as reconciled.

    ``ref`` is the ref the revision was reached through (``refs/heads/main``, ``refs/tags/v1.2.0``;
    for ``HEAD`` the branch the remote's HEAD points to) or ``""`` when a SHA was asked for.
    ``author`` is ``Name <email>``; ``date`` is the author date, ISO 8601 with offset.
    """

    sha: str
    ref: str
    message: str
    author: str
    date: str
    digest: str = ""
    """For a chart (``sha`` is then ``chart@version``): the archive's or OCI manifest's
    ``sha256:`` digest; "" for a commit."""
    sources: tuple[Revision, ...] = ()
    """For a ``spec.sources`` app, each source's revision in order (``sha`` joins theirs)."""


def is_full_sha(revision: str) -> bool:
    """A complete object name (SHA-1, or SHA-256 for repositories that use it)."""
    return _FULL_SHA.fullmatch(revision) is not None


def is_short_sha(revision: str) -> bool:
    """An abbreviated object name: 7 or more hex digits, short of a full one.

    Hex-looking revisions are taken as SHAs (as the Application spec does), even if a branch of
    that name exists.
    """
    return _SHORT_SHA.fullmatch(revision) is not None and not is_full_sha(revision)


def normalize_url(url: str) -> str:
    """The identity of the repository ``url`` names, without credentials.

    * scheme and host are lowercased, default ports dropped, the path's case is kept;
    * HTTP(S) userinfo is dropped entirely (who fetches is not what is fetched); for SSH the
      user name stays (``git@`` is part of the address) and any password is dropped;
    * scp-like ``git@host:org/repo`` becomes ``ssh://git@host/org/repo``;
    * trailing ``/`` and ``.git`` are dropped, so ``https://host/org/repo.git``,
      ``https://host/org/repo`` and ``https://user:pw@HOST/org/repo.git/`` are the same.

    Best effort on input that is not a URL (webhooks pass what forges send): such text comes back
    stripped of whitespace and of a trailing ``/`` or ``.git``.
    """
    text = url.strip()
    if "://" not in text:
        scp = _SCP_LIKE.fullmatch(text)
        if scp is None or "/" in text.split(":", 1)[0]:
            return _strip_path(text)
        user = f"{scp['user']}@" if scp["user"] else ""
        path = scp["path"] if scp["path"].startswith("/") else f"/{scp['path']}"
        return f"ssh://{user}{scp['host'].lower()}{_strip_path(path)}"

    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    path = _strip_path(parts.path)
    query = f"?{parts.query}" if parts.query else ""
    if scheme == "file":
        host = parts.netloc.lower()
        return f"file://{'' if host == 'localhost' else host}{path}{query}"
    try:
        hostname = parts.hostname or ""
        port = parts.port
    except ValueError:
        return f"{scheme}://{_strip_path(text.split('://', 1)[1])}"
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    user = ""
    if scheme == "ssh" and parts.username:
        user = f"{parts.username}@"
    return f"{scheme}://{user}{host}{path}{query}"


def _strip_path(path: str) -> str:
    while True:
        stripped = path.rstrip("/")
        stripped = stripped.removesuffix(".git")
        if stripped == path:
            return path
        path = stripped


def parse_tag_version(tag: str) -> semantic_version.Version | None:
    """The semantic version a tag name carries (``1.2.0`` or ``v1.2.0``), or None."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semantic_version.Version(text)
    except ValueError:
        return None


def select_semver_tag(tags: Iterable[str], spec: str) -> str | None:
    """The tag (short name) with the highest version matching the npm-style range ``spec``.

    Tags that are not semantic versions are ignored. Pre-releases match only when the range
    names a pre-release of the same ``major.minor.patch`` (npm's rule). Build metadata does not
    order versions; between tags of equal precedence (``v1.2.0`` and ``1.2.0``) the greater name
    wins, so the choice is stable. Raises ``ValueError`` for a range that does not parse.
    """
    matcher = semantic_version.NpmSpec(spec)
    best: tuple[tuple[object, ...], str] | None = None
    for tag in tags:
        version = parse_tag_version(tag)
        if version is None or not matcher.match(version):
            continue
        key = (tuple(version.precedence_key[:4]), tag)
        if best is None or key > best:
            best = key
    return None if best is None else best[1]


def tag_names(refs: Iterable[str]) -> list[str]:
    """Short names of the tags among advertised ref names (peeled ``^{}`` entries skipped)."""
    return [
        name[len(TAG_PREFIX) :]
        for name in refs
        if name.startswith(TAG_PREFIX) and not name.endswith(PEELED_SUFFIX)
    ]
