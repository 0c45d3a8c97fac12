"""Repository credentials scoped to URLs: which credentials, if any, a repository URL is sent.

Controller-wide credentials used to go to every Application without its own, so a tenant who
named a server of theirs as ``repoURL`` received the operator's token (plain ``http://``
included). Here credentials are **entries**, shaped like Argo CD's repo-creds: a ``url`` prefix
plus what to send. A repository gets the entry whose prefix matches its normalized URL
(``normalize_url``) at a path-segment boundary, scheme and host compared exactly, the longest
prefix winning; no match, no credentials. A password or token never goes over plain ``http://``
unless its entry says ``insecureAllowHttp: "true"``.

The same entries serve chart repositories (``https://``/``http://`` Helm repositories and
``oci://`` registries, prefixes matched the same way). ``insecure: "true"`` keeps Argo CD's
meaning - the server's TLS certificate is not verified - and is honoured for chart repositories
only: for a Git repository it is refused (give the CA in ``caData``) rather than ignored.

A URL prefix alone still lets any tenant who names a private repository under it have it
fetched with the operator's token, so an entry in the controller's namespace is also scoped to
the Application namespaces (gitsync's projects) it serves: ``namespaces``, globs separated by
commas or newlines. The key is required there, like ``url``: an entry that does not say who may
use it is refused rather than offered to everyone; ``"*"`` is the explicit, visible way to make
it global. (Argo CD scopes a repository Secret with ``project``, one project name; here a
project is a namespace and a list of globs is needed, so the spelling is ``namespaces``.)

Pure: the keys of an entry (a Secret's decoded data, or the environment turned into the same
keys) are parsed and checked here; reading Secrets is the controller's job
(``gitsync.controller.repo_credentials``). Values are never put in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final
from urllib.parse import unquote, urlsplit

from gitsync.errors import TerminalError
from gitsync.source.git import GitCredentials, GitInvalidURLError, parse_remote, redact_url
from gitsync.source.revision import normalize_url

URL_KEY: Final = "url"
INSECURE_ALLOW_HTTP_KEY: Final = "insecureAllowHttp"
INSECURE_KEY: Final = "insecure"
NAMESPACES_KEY: Final = "namespaces"
# The keys an entry may have; anything else is refused rather than ignored.
ENTRY_KEYS: Final = frozenset(
    {
        URL_KEY,
        "username",
        "password",
        "token",
        "sshPrivateKey",
        "knownHosts",
        "caData",
        INSECURE_ALLOW_HTTP_KEY,
        INSECURE_KEY,
        NAMESPACES_KEY,
    }
)
_PREFIX_SCHEMES: Final = frozenset({"https", "http", "ssh", "oci"})
# A namespace name (DNS-1123 label) with the wildcards "*" and "?"; no character classes, so a
# glob reads the same to everyone and cannot be malformed in a way that matches by accident.
_NAMESPACE_GLOB: Final = re.compile(r"[a-z0-9*?]([-a-z0-9*?]{0,61}[a-z0-9*?])?")
# An Application's own secretRef Secret is tenant input too: its scope is bounded.
MAX_NAMESPACE_GLOBS: Final = 256
_ARGO_PROJECT_KEY: Final = "project"


class CredentialsError(TerminalError):
    """A credential entry is malformed, or may not be used for this repository URL."""


@dataclass(frozen=True)
class RepositoryCredential:
    """One entry: ``url`` is the normalized prefix it applies to (None for an Application's own
    secretRef Secret without one); ``namespaces`` the globs of the Application namespaces it is
    offered to (None for a secretRef Secret without the key: it is its own namespace's);
    ``origin`` names it in messages (``Secret ns/name``)."""

    origin: str
    url: str | None
    credentials: GitCredentials
    insecure_allow_http: bool = False
    allow_http_hint: str = f'{INSECURE_ALLOW_HTTP_KEY}: "true"'
    namespaces: tuple[str, ...] | None = None
    namespaces_hint: str = NAMESPACES_KEY
    insecure: bool = False
    """``insecure: "true"``: TLS certificates are not verified (chart repositories only)."""

    def offered_to(self, namespace: str) -> bool:
        """Whether an Application in ``namespace`` may use this entry."""
        return self.namespaces is None or any(fnmatchcase(namespace, g) for g in self.namespaces)


def parse_entry(
    origin: str,
    data: Mapping[str, str],
    *,
    controller_wide: bool = True,
    allow_http_hint: str = f'{INSECURE_ALLOW_HTTP_KEY}: "true"',
    namespaces_hint: str = NAMESPACES_KEY,
) -> RepositoryCredential:
    """The entry ``data`` (key -> decoded value) describes, or ``CredentialsError`` naming the
    key that is wrong. A ``controller_wide`` entry (not an Application's own secretRef) must
    say where it goes: ``url`` and ``namespaces`` are required."""
    unknown = sorted(set(data) - ENTRY_KEYS)
    if unknown:
        hint = (
            f"; Argo CD's {_ARGO_PROJECT_KEY!r} is {NAMESPACES_KEY!r} here (Application namespaces)"
            if _ARGO_PROJECT_KEY in unknown
            else ""
        )
        raise CredentialsError(
            f"{origin}: unknown key(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(ENTRY_KEYS))}{hint}"
        )
    url = _prefix(origin, data[URL_KEY]) if data.get(URL_KEY) else None
    if url is None and controller_wide:
        raise CredentialsError(
            f"{origin}: the {URL_KEY!r} key (a repository URL prefix) is required"
        )
    namespaces = None
    if NAMESPACES_KEY in data:
        namespaces = parse_namespaces(f"{origin}: {namespaces_hint}", data[NAMESPACES_KEY])
    elif controller_wide:
        raise CredentialsError(
            f"{origin}: the {namespaces_hint} key is required: the Application namespaces "
            'this entry is offered to (globs, comma-separated; "*" for every namespace)'
        )
    if data.get("password") and data.get("token"):
        raise CredentialsError(f"{origin}: set either 'password' or 'token', not both")
    flag = _flag(origin, data, INSECURE_ALLOW_HTTP_KEY)
    insecure = _flag(origin, data, INSECURE_KEY)
    credentials = GitCredentials(
        username=data.get("username") or None,
        password=data.get("password") or data.get("token") or None,
        ssh_private_key=data.get("sshPrivateKey") or None,
        known_hosts=data.get("knownHosts") or None,
        ca_data=data.get("caData") or None,
    )
    return RepositoryCredential(
        origin, url, credentials, flag, allow_http_hint, namespaces, namespaces_hint, insecure
    )


def _flag(origin: str, data: Mapping[str, str], key: str) -> bool:
    flag = data.get(key, "false").strip().lower()
    if flag not in ("true", "false"):
        raise CredentialsError(f'{origin}: {key} must be "true" or "false"')
    return flag == "true"


def parse_namespaces(where: str, text: str) -> tuple[str, ...]:
    """``text`` (namespace globs separated by commas or newlines) as a tuple, or
    ``CredentialsError`` starting with ``where``. A glob is named by its position, not quoted."""
    globs = tuple(g.strip() for g in re.split(r"[,\n]", text) if g.strip())
    if not globs:
        raise CredentialsError(f'{where}: no namespace glob given ("*" for every namespace)')
    if len(globs) > MAX_NAMESPACE_GLOBS:
        raise CredentialsError(f"{where}: more than {MAX_NAMESPACE_GLOBS} namespace globs")
    for number, glob in enumerate(globs, 1):
        if not _NAMESPACE_GLOB.fullmatch(glob):
            raise CredentialsError(
                f"{where}: glob #{number} is not a namespace glob (lowercase letters, digits, "
                "'-' and the wildcards '*' and '?', at most 63 characters)"
            )
    return globs


def _prefix(origin: str, text: str) -> str:
    """``text`` as a normalized URL prefix: http(s), ssh or oci, with a host, without a
    password, query or fragment."""
    if text.strip().lower().startswith("oci://"):
        # an OCI registry is no Git remote: checked here the way parse_remote checks http
        text = "https://" + text.strip()[len("oci://") :]
        return "oci://" + _prefix(origin, text).removeprefix("https://")
    try:
        remote = parse_remote(text.strip())
    except GitInvalidURLError as exc:
        raise CredentialsError(f"{origin}: {URL_KEY}: {exc}") from None
    prefix = normalize_url(text)
    parts = urlsplit(prefix)
    if parts.scheme not in _PREFIX_SCHEMES:
        raise CredentialsError(
            f"{origin}: {URL_KEY} {remote.display!r} must be an https://, http://, ssh or "
            "oci:// URL"
        )
    if remote.password is not None or (remote.transport == "http" and remote.username):
        raise CredentialsError(
            f"{origin}: {URL_KEY} {remote.display!r} must not carry credentials; "
            "put them in the entry's other keys"
        )
    if parts.query or parts.fragment or _has_dot_segment(parts.path):
        raise CredentialsError(
            f"{origin}: {URL_KEY} {remote.display!r} must be a plain prefix "
            "(no query, fragment, '.' or '..')"
        )
    return prefix


def _has_dot_segment(path: str) -> bool:
    # git (curl) resolves "." and ".." before asking the server: /org/../other is /other.
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


def prefix_matches(prefix: str, url: str) -> bool:
    """Whether the normalized ``prefix`` covers the repository ``url``: the same scheme and
    host (port and, for ssh, user included), and the prefix's path is the URL's path or a
    leading run of its segments. A URL with ``.``/``..`` segments matches nothing."""
    normalized = normalize_url(url)
    if "://" not in normalized or _has_dot_segment(urlsplit(normalized).path):
        return False
    return normalized == prefix or normalized.startswith(prefix + "/")


def select(
    entries: Iterable[RepositoryCredential], url: str, namespace: str
) -> RepositoryCredential | None:
    """Of the entries offered to ``namespace``, the one with the longest prefix covering
    ``url``, or None (the repository is then fetched without credentials)."""
    matching = [
        e
        for e in entries
        if e.url is not None and e.offered_to(namespace) and prefix_matches(e.url, url)
    ]
    return max(matching, key=lambda e: len(e.url or ""), default=None)


def credentials_for(entry: RepositoryCredential, url: str, namespace: str) -> GitCredentials:
    """``entry``'s credentials for ``url`` of an Application in ``namespace``: refused when the
    entry is not offered to that namespace, when they would go to a repository outside the
    entry's prefix, or when a password or token would go over plain ``http://`` without the
    entry's consent."""
    shown = redact_url(url)
    if not entry.offered_to(namespace):
        raise CredentialsError(
            f"{entry.origin} is not offered to namespace {namespace} (its {entry.namespaces_hint} "
            "key); refused to send its credentials"
        )
    if entry.url is not None and not prefix_matches(entry.url, url):
        raise CredentialsError(
            f"{entry.origin} is for {entry.url}, not for {shown}; refused to send its credentials"
        )
    if (
        entry.credentials.password
        and not entry.insecure_allow_http
        and url.strip().lower().startswith("http://")
    ):
        raise CredentialsError(
            f"{entry.origin} would send its password or token over plain http:// to {shown}; "
            f"refused (use https, or set {entry.allow_http_hint} to allow it)"
        )
    return entry.credentials


def no_password_over_http(
    credentials: GitCredentials | None, url: str, *, allowed: bool, hint: str
) -> None:
    """``CredentialsError`` when ``credentials`` carry a password and ``url`` is plain http
    without ``allowed`` (for the one-shot CLI, which has no entries)."""
    if credentials is None:
        return
    entry = RepositoryCredential("the Git credentials", None, credentials, allowed, hint)
    credentials_for(entry, url, "")
