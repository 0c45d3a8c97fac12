"""Helm charts from an OCI registry (``oci://host[:port]/path``), over the distribution API.

Helm pushes a chart as an OCI artifact ``<path>/<chart>:<version>`` (``+`` in a version becomes
``_`` in the tag, since tags may not hold ``+``). This adapter lists the tags
(``GET /v2/<name>/tags/list``, following ``Link`` pages), keeps those that are strict semver as
Helm does, and only for the version the engine chose reads the manifest (``resolve``): listing a
chart with a thousand versions costs one request, not a thousand. ``fetch`` reads the manifest by
the digest ``resolve`` recorded - so a tag moved in between cannot swap the archive - and
downloads the chart layer, checked against its sha256.

Everything the registry sends is untrusted and bounded: the tag list by bytes and entries while it
streams (a registry with 100,000 tags costs at most ``max_index_bytes``, never an OOM), the
manifest and token bodies by fixed caps, the archive by ``max_archive_bytes``, and each operation
by one wall-clock deadline (``timeout_seconds``) checked between chunks, so a server trickling
bytes cannot hold a worker.

Credentials go only to the registry's own ``scheme://host:port``: the ``Basic`` answer to a
``401``, and the token request of a ``Bearer`` challenge when its realm is on that same origin. A
realm on another host is asked for an anonymous token - a registry that delegates login to a
separate token host (Docker Hub's ``auth.docker.io``) therefore serves only public charts here,
by design: a registry cannot send the password anywhere by naming a realm. Redirects (blob
storage) are followed by hand and never carry the ``Authorization`` header off the registry's
origin. TLS is verified against the entry's ``caData`` or the system roots unless the entry says
``insecure`` (Argo CD's meaning: the certificate is not checked); plain HTTP is spoken only when
the entry allows it (``insecureAllowHttp``; Helm's ``--plain-http``).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Self
from urllib.parse import urlencode, urljoin, urlsplit

import semantic_version
import urllib3

from gitsync.source.charts import (
    MIB,
    ChartCredential,
    ChartLimits,
    ChartSourceTerminalError,
    ChartSourceTransientError,
    ChartVersion,
)

MANIFEST_MEDIA_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"
CHART_LAYER_MEDIA_TYPE: Final = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MAX_MANIFEST_BYTES: Final = 4 * MIB
"""The OCI distribution spec's recommended manifest ceiling; a chart's manifest is < 1 KiB."""
MAX_TOKEN_BYTES: Final = 64 * 1024
MAX_REDIRECTS: Final = 5
MAX_TAG_PAGES: Final = 1000
_CHUNK: Final = 64 * 1024
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# One component of an OCI repository name (the distribution spec's grammar); a chart name must be
# one too. No "/", "..", "?", "%" or upper case can reach a request path.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Headers come from the registry, so both are tried only where a match can start, keeping the
# work linear: a key from the start of a word (an attempt at every letter of a long word was
# quadratic), a link's parameters after a "<...>" found with str.find (an attempt at every "<"
# with no ">" after it was).
_AUTH_PARAM = re.compile(
    r'(?<![\w-])(?:(?![A-Za-z])[\w-])*([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)'
)
_LINK_PARAMS = re.compile(r"\s*((?:;\s*[^;,]*)*)")


# --- pure parts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: the scheme (lower-cased) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The challenge in a ``WWW-Authenticate`` value (``Basic realm="x"``,
    ``Bearer realm="https://h/token",service="h",scope="repository:a/b:pull"``); None when the
    value names no scheme. Quoted values may hold commas and escaped quotes."""
    scheme, _, rest = header.strip().partition(" ")
    if not re.fullmatch(r"[A-Za-z][\w-]*", scheme):
        return None
    params: dict[str, str] = {}
    for key, raw in _AUTH_PARAM.findall(rest):
        value = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        params.setdefault(key.lower(), value)
    return Challenge(scheme.lower(), params)


def next_page(link_header: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), or None."""
    for target, params in _links(link_header):
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "rel" and "next" in value.strip().strip('"').split():
                return str(target)
    return None


def _links(link_header: str) -> list[tuple[str, str]]:
    """Each ``<target>`` of a ``Link`` header with the ``;param`` text after it."""
    links: list[tuple[str, str]] = []
    start = link_header.find("<")
    while start != -1:
        end = link_header.find(">", start + 1)
        if end == -1:  # no later "<" has a ">" after it either
            break
        params = _LINK_PARAMS.match(link_header, end + 1)
        assert params is not None  # the pattern matches the empty string
        links.append((link_header[start + 1 : end], params[1]))
        start = link_header.find("<", params.end())
    return links


def tag_version(tag: str) -> str | None:
    """The chart version an OCI tag carries (Helm writes ``+`` as ``_``), or None when it is not
    strict semver - Helm ignores such tags too."""
    version = tag.replace("_", "+")
    try:
        semantic_version.Version(version)
    except ValueError:
        return None
    return version


def version_tag(version: str) -> str:
    """The OCI tag Helm pushes ``version`` under."""
    return version.replace("+", "_")


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, the unit credentials are bound to; a port that does
    not parse is -1, equal to no registry's."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def basic_authorization(credential: ChartCredential) -> str:
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# --- the adapter ---------------------------------------------------------------------------------


_active = threading.local()
"""The operation (``_Deadline``) the current thread is running, for the connections to find."""


class _Deadline:
    """One operation's wall-clock bound. Checked before each request and between chunks, and
    enforced by a timer that shuts down the sockets the operation's requests use once it passes:
    a socket timeout bounds one receive only, so a server trickling its headers or body a byte
    at a time would never trip it. Used as a context manager around the whole operation."""

    def __init__(self, seconds: float, what: str) -> None:
        self._end = time.monotonic() + seconds
        self._seconds = seconds
        self.what = what
        self._expired = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        self._timer.start()
        _active.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _active.deadline = None

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0 or self._expired.is_set():
            raise ChartSourceTransientError(
                f"{self.what}: took longer than {self._seconds:g}s (limits.timeout_seconds)"
            )
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if not self._expired.is_set():
                return
        _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired.set()
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _cut(sock)


def _cut(sock: socket.socket) -> None:
    """Make any receive on ``sock`` return now (the owning thread then fails its read)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch_request(sock: socket.socket | None) -> None:
    deadline = getattr(_active, "deadline", None)
    if sock is not None and isinstance(deadline, _Deadline):
        deadline.watch(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """A connection whose socket the running operation's deadline can cut."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _watch_request(self.sock)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _watch_request(self.sock)


class _WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class OciChartRepository:
    """The charts under one ``oci://host[:port]/path`` prefix, with one credential bound in."""

    def __init__(self, base_url: str, credential: ChartCredential, limits: ChartLimits) -> None:
        parts = urlsplit(base_url)
        if parts.scheme.lower() != "oci" or not parts.hostname:
            raise ChartSourceTerminalError(
                f"repoURL {base_url!r}: an OCI chart repository is oci://host[:port]/path"
            )
        if parts.username is not None or parts.password is not None:
            raise ChartSourceTerminalError(
                f"repoURL oci://***@{parts.hostname}: credentials belong in a repository "
                "credential Secret, not in the URL"
            )
        if parts.query or parts.fragment:
            raise ChartSourceTerminalError(f"repoURL {base_url!r}: no query or fragment allowed")
        if origin(f"https://{parts.netloc}")[2] == -1:
            raise ChartSourceTerminalError(f"repoURL {base_url!r}: the port is not a number")
        prefix = parts.path.strip("/")
        if prefix and not all(_PATH_COMPONENT.fullmatch(c) for c in prefix.split("/")):
            raise ChartSourceTerminalError(
                f"repoURL {base_url!r}: each path segment must be an OCI name component "
                "(lower-case letters and digits, separated by '.', '_', '__' or '-')"
            )
        self._credential = credential
        self._limits = limits
        self._prefix = prefix
        scheme = "http" if credential.allow_plain_http else "https"
        self._registry = f"{scheme}://{parts.netloc.lower()}"
        self._origin = origin(self._registry)
        self.shown = f"oci://{parts.netloc.lower()}" + (f"/{prefix}" if prefix else "")
        """The repository as messages show it (the URL had no userinfo: refused above)."""
        self._pool = urllib3.PoolManager(
            cert_reqs=ssl.CERT_NONE if credential.insecure else ssl.CERT_REQUIRED,
            ca_cert_data=credential.ca_data or None,
        )
        self._pool.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }
        self._authorizations: dict[str, str] = {}
        """``Authorization`` value per repository name, once a challenge was answered."""

    # -- ChartRepository ---------------------------------------------------------------------------

    def versions(self, chart: str) -> list[ChartVersion]:
        """Every semver tag of ``<path>/<chart>``; digests are left empty (see ``resolve``)."""
        name = self._repository(chart)
        what = f"{self.shown} chart {chart!r}: listing tags"
        with _Deadline(self._limits.timeout_seconds, what) as deadline:
            tags = self._tags(name, deadline)
        found = []
        for tag in tags:
            version = tag_version(tag)
            if version is not None:
                found.append(ChartVersion(chart, version, "", f"{self.shown}/{chart}:{tag}"))
        return found

    def _tags(self, name: str, deadline: _Deadline) -> list[str]:
        what = deadline.what
        counter = _EntryCounter(self._limits.max_index_entries, what)
        budget = self._limits.max_index_bytes
        url: str | None = f"{self._registry}/v2/{name}/tags/list"
        tags: list[str] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_TAG_PAGES:
                raise ChartSourceTerminalError(f"{what}: more than {MAX_TAG_PAGES} pages")
            response = self._get(url, name, deadline, accept="application/json")
            counter.new_page()
            link = response.headers.get("Link", "")
            body = self._read(
                response, budget, deadline, f"{what}: the tag list", "limits.max_index_bytes",
                on_chunk=counter.count,
            )  # fmt: skip
            budget -= len(body)
            tags.extend(_tags_of(body, what))
            if len(tags) > self._limits.max_index_entries:
                raise counter.over()
            url = self._next_url(url, link, what)
        return tags

    def resolve(self, version: ChartVersion) -> ChartVersion:
        """``version`` with ``digest`` set to its manifest's digest (the tag read once, now)."""
        if version.digest:
            return version
        what = f"{self.shown} chart {version.name!r} version {version.version}"
        with _Deadline(self._limits.timeout_seconds, f"{what}: reading the manifest") as deadline:
            _, digest = self._manifest(version, version_tag(version.version), deadline)
        return dataclasses.replace(version, digest=digest)

    def fetch(self, version: ChartVersion) -> bytes:
        """The chart layer of ``version``'s manifest (by its digest when resolved), checked
        against the layer's sha256 and capped at ``max_archive_bytes``."""
        what = f"{self.shown} chart {version.name!r} version {version.version}"
        with _Deadline(self._limits.timeout_seconds, f"{what}: downloading") as deadline:
            return self._archive(version, deadline)

    def _archive(self, version: ChartVersion, deadline: _Deadline) -> bytes:
        name = self._repository(version.name)
        what = f"{self.shown} chart {version.name!r} version {version.version}"
        reference = version.digest or version_tag(version.version)
        manifest, _ = self._manifest(version, reference, deadline)
        digest, size = _chart_layer(manifest, what)
        if size > self._limits.max_archive_bytes:
            raise ChartSourceTerminalError(
                f"{what}: the chart archive is {size} bytes, over limits.max_archive_bytes "
                f"({self._limits.max_archive_bytes})"
            )
        response = self._get(f"{self._registry}/v2/{name}/blobs/{digest}", name, deadline)
        archive = self._read(
            response, self._limits.max_archive_bytes, deadline, f"{what}: the chart archive",
            "limits.max_archive_bytes",
        )  # fmt: skip
        actual = "sha256:" + hashlib.sha256(archive).hexdigest()
        if actual != digest:
            raise ChartSourceTerminalError(
                f"{what}: the chart archive's digest is {actual}, the manifest says {digest}"
            )
        return archive

    # -- the manifest ------------------------------------------------------------------------------

    def _manifest(
        self, version: ChartVersion, reference: str, deadline: _Deadline
    ) -> tuple[dict[str, object], str]:
        name = self._repository(version.name)
        what = f"{self.shown} chart {version.name!r} version {version.version}"
        response = self._get(
            f"{self._registry}/v2/{name}/manifests/{reference}", name, deadline,
            accept=MANIFEST_MEDIA_TYPE,
        )  # fmt: skip
        announced = response.headers.get("Docker-Content-Digest", "")
        body = self._read(response, MAX_MANIFEST_BYTES, deadline, f"{what}: the manifest", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        expected = reference if reference.startswith("sha256:") else announced
        if expected and expected != digest:
            raise ChartSourceTerminalError(
                f"{what}: the manifest's digest is {digest}, the registry said {expected}"
            )
        try:
            manifest = json.loads(body)
        except ValueError as exc:
            raise ChartSourceTerminalError(f"{what}: the manifest is not JSON") from exc
        if not isinstance(manifest, dict):
            raise ChartSourceTerminalError(f"{what}: the manifest is not a JSON object")
        return manifest, digest

    # -- HTTP ------------------------------------------------------------------------------------

    def _repository(self, chart: str) -> str:
        if not _PATH_COMPONENT.fullmatch(chart):
            raise ChartSourceTerminalError(
                f"{self.shown}: {chart!r} is not a chart name (lower-case letters and digits, "
                "separated by '.', '_', '__' or '-')"
            )
        return f"{self._prefix}/{chart}" if self._prefix else chart

    def _get(
        self, url: str, name: str, deadline: _Deadline, *, accept: str = "*/*"
    ) -> urllib3.BaseHTTPResponse:
        """A 200 response to GET ``url`` (body unread), answering one 401 challenge."""
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        if name in self._authorizations:
            headers["Authorization"] = self._authorizations[name]
        response = self._send(url, headers, deadline)
        if response.status == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            _discard(response)
            self._authorizations[name] = self._answer(challenge, name, deadline)
            headers["Authorization"] = self._authorizations[name]
            response = self._send(url, headers, deadline)
            if response.status == 401:
                _discard(response)
                self._authorizations.pop(name, None)  # another thread may have dropped it
                raise self._refused(deadline.what)
        if response.status != 200:
            _discard(response)
            raise self._status_error(response, deadline.what)
        return response

    def _send(
        self, url: str, headers: dict[str, str], deadline: _Deadline
    ) -> urllib3.BaseHTTPResponse:
        """One GET, following redirects by hand: ``Authorization`` only ever goes to the
        registry's own origin, and a redirect may not downgrade to plain HTTP."""
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if origin(url) != self._origin:
                sent.pop("Authorization", None)
            response = self._request(url, sent, deadline)
            if response.status not in _REDIRECTS:
                return response
            location = response.headers.get("Location", "")
            _discard(response)
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("https", "http"):
                raise ChartSourceTerminalError(f"{deadline.what}: redirected to a non-HTTP URL")
            if urlsplit(url).scheme == "http" and not self._credential.allow_plain_http:
                raise ChartSourceTerminalError(
                    f"{deadline.what}: redirected to plain http:// (not allowed for this "
                    "repository)"
                )
        raise ChartSourceTerminalError(f"{deadline.what}: more than {MAX_REDIRECTS} redirects")

    def _request(
        self, url: str, headers: dict[str, str], deadline: _Deadline
    ) -> urllib3.BaseHTTPResponse:
        remaining = deadline.remaining()
        try:
            return self._pool.request(
                "GET", url, headers=headers, preload_content=False, redirect=False,
                retries=False, timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )  # fmt: skip
        except urllib3.exceptions.SSLError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                hint = "the certificate is not trusted (" + (
                    "checked against the entry's caData)" if self._credential.ca_data
                    else "no caData: checked against the system roots)"
                )  # fmt: skip
            else:
                hint = "the handshake failed (a registry without TLS needs plain HTTP allowed "
                hint += "in its repository credential entry)"
            raise ChartSourceTerminalError(
                f"{deadline.what}: TLS with {_shown_origin(url)}: {hint}: {_reason(exc)}"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            deadline.remaining()
            raise ChartSourceTransientError(
                f"{deadline.what}: {_shown_origin(url)} unreachable: {_reason(exc)}"
            ) from exc

    def _answer(self, challenge: Challenge | None, name: str, deadline: _Deadline) -> str:
        """The ``Authorization`` value that answers ``challenge``."""
        has_credential = bool(self._credential.username or self._credential.password)
        if challenge is None:
            raise ChartSourceTerminalError(f"{deadline.what}: 401 without a usable challenge")
        if challenge.scheme == "basic":
            if not has_credential:
                raise self._refused(deadline.what)
            return basic_authorization(self._credential)
        if challenge.scheme != "bearer":
            raise ChartSourceTerminalError(
                f"{deadline.what}: unsupported authentication scheme {challenge.scheme!r}"
            )
        realm = challenge.params.get("realm", "")
        url = self._token_url(challenge, realm, name, deadline)
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        same_origin = origin(realm) == self._origin
        if same_origin and has_credential:
            headers["Authorization"] = basic_authorization(self._credential)
        response = self._request(url, headers, deadline)
        if response.status != 200:
            _discard(response)
            if response.status in (401, 403):
                if same_origin:
                    raise self._refused(deadline.what)
                raise ChartSourceTerminalError(
                    f"{deadline.what}: the token service {_shown_origin(realm)} refused an "
                    f"anonymous token (HTTP {response.status}); credentials are sent only to "
                    f"the registry's own host {_shown_origin(self._registry)}"
                )
            raise self._status_error(response, f"{deadline.what}: the token service")
        body = self._read(response, MAX_TOKEN_BYTES, deadline, f"{deadline.what}: the token", "")
        return f"Bearer {_token_from(body, deadline.what)}"

    def _token_url(self, challenge: Challenge, realm: str, name: str, deadline: _Deadline) -> str:
        """Where a Bearer challenge says to ask for a token, checked: a URL, and plain
        ``http://`` only when the repository's entry allows it."""
        scheme = urlsplit(realm).scheme
        if scheme not in ("https", "http") or not urlsplit(realm).hostname:
            raise ChartSourceTerminalError(f"{deadline.what}: the token realm is not a URL")
        if scheme == "http" and not self._credential.allow_plain_http:
            raise ChartSourceTerminalError(
                f"{deadline.what}: the token realm {_shown_origin(realm)} is plain http:// "
                "(not allowed for this repository)"
            )
        query = {"scope": challenge.params.get("scope", f"repository:{name}:pull")}
        if "service" in challenge.params:
            query["service"] = challenge.params["service"]
        return realm + ("&" if urlsplit(realm).query else "?") + urlencode(query)

    def _refused(self, what: str) -> ChartSourceTerminalError:
        if self._credential.username or self._credential.password:
            return ChartSourceTerminalError(
                f"{what}: the registry rejected the credentials (HTTP 401); check the "
                "repository credential Secret whose url matches it"
            )
        return ChartSourceTerminalError(
            f"{what}: the registry requires credentials (HTTP 401) and no repository "
            "credential Secret matches it"
        )

    def _status_error(self, response: urllib3.BaseHTTPResponse, what: str) -> Exception:
        status = response.status
        if status == 404:
            return ChartSourceTerminalError(f"{what}: not found (HTTP 404)")
        if status == 403:
            return ChartSourceTerminalError(f"{what}: access denied (HTTP 403)")
        if status == 429 or status >= 500:
            error = ChartSourceTransientError(f"{what}: the registry answered HTTP {status}")
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                error.retry_after = float(retry_after)
            return error
        return ChartSourceTerminalError(f"{what}: the registry answered HTTP {status}")

    def _read(
        self, response: urllib3.BaseHTTPResponse, cap: int, deadline: _Deadline, what: str,
        limit_name: str, *, on_chunk: Callable[[bytes], None] | None = None,
    ) -> bytes:  # fmt: skip
        """The body, at most ``cap`` bytes, read in chunks against the deadline."""
        over = f"{what} is over {cap} bytes" + (f" ({limit_name})" if limit_name else "")
        try:
            declared = int(response.headers.get("Content-Length", "-1"))
            if declared > cap:
                raise ChartSourceTerminalError(over)
            chunks: list[bytes] = []
            size = 0
            while True:
                deadline.remaining()
                chunk = response.read(_CHUNK, decode_content=False)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise ChartSourceTerminalError(over)
                if on_chunk is not None:
                    on_chunk(chunk)
                chunks.append(chunk)
            response.release_conn()  # read to the end: the connection can be reused
        except urllib3.exceptions.HTTPError as exc:
            deadline.remaining()  # a receive timed out because the deadline came: say so
            raise ChartSourceTransientError(f"{what}: the transfer failed: {_reason(exc)}") from exc
        except ValueError as exc:
            raise ChartSourceTerminalError(f"{what}: bad Content-Length") from exc
        finally:
            if not response.closed and response.connection is not None:
                _discard(response)
        if 0 <= declared != size:
            raise ChartSourceTransientError(f"{what}: truncated ({size} of {declared} bytes)")
        return b"".join(chunks)

    def _next_url(self, url: str, link: str, what: str) -> str | None:
        target = next_page(link)
        if target is None:
            return None
        following = urljoin(url, target)
        if origin(following) != self._origin:
            raise ChartSourceTerminalError(
                f"{what}: the next page is on another host ({_shown_origin(following)})"
            )
        return following


class _EntryCounter:
    """Counts tag-list entries while the bytes stream in, so a list far over the limit is cut
    off before it is parsed: every element after the first follows a comma, and tags hold none,
    so commas bound the entries from above. Each page's ``{"name": ..., "tags": [...]}`` has one
    comma more than entries, hence one allowance per page."""

    def __init__(self, limit: int, what: str) -> None:
        self._limit = limit
        self._what = what
        self._commas = 0
        self._pages = 0

    def new_page(self) -> None:
        self._pages += 1

    def count(self, chunk: bytes) -> None:
        self._commas += chunk.count(b",")
        if self._commas > self._limit + self._pages:
            raise self.over()

    def over(self) -> ChartSourceTerminalError:
        return ChartSourceTerminalError(
            f"{self._what}: more than {self._limit} tags (limits.max_index_entries)"
        )


def _tags_of(body: bytes, what: str) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ChartSourceTerminalError(f"{what}: the tag list is not JSON") from exc
    tags = document.get("tags") if isinstance(document, dict) else None
    if tags is None:
        return []  # distribution answers "tags": null for a repository without tags
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ChartSourceTerminalError(f"{what}: 'tags' is not a list of strings")
    return tags


def _chart_layer(manifest: dict[str, object], what: str) -> tuple[str, int]:
    """The one Helm chart layer of a manifest, its digest and size checked for shape."""
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ChartSourceTerminalError(f"{what}: the manifest has no layers")
    found = [
        layer
        for layer in layers
        if isinstance(layer, dict) and layer.get("mediaType") == CHART_LAYER_MEDIA_TYPE
    ]
    if len(found) != 1:
        raise ChartSourceTerminalError(
            f"{what}: the manifest has {len(found)} layers of type {CHART_LAYER_MEDIA_TYPE} "
            "(not a Helm chart?)"
        )
    digest, size = found[0].get("digest"), found[0].get("size")
    if not isinstance(digest, str) or not _SHA256_DIGEST.fullmatch(digest):
        raise ChartSourceTerminalError(f"{what}: the chart layer's digest is not sha256:<hex>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ChartSourceTerminalError(f"{what}: the chart layer's size is not a byte count")
    return digest, size


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Close a connection whose body was not read to the end: draining an untrusted body could
    take any time or bytes, and a connection with unread bytes must not go back to the pool."""
    response.close()
    response.release_conn()


def _shown_origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, never its userinfo, path or query."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def _reason(exc: BaseException) -> str:
    """The innermost cause's text, bounded; urllib3 messages carry no credentials (the
    ``Authorization`` header is never part of them)."""
    reason = getattr(exc, "reason", None) or exc
    return str(reason)[:300]


def _token_from(body: bytes, what: str) -> str:
    """The token in a token service's JSON answer (``token`` or ``access_token``)."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ChartSourceTerminalError(f"{what}: the token is not JSON") from exc
    token = document.get("token") or document.get("access_token") if isinstance(
        document, dict
    ) else None  # fmt: skip
    if not isinstance(token, str) or not token:
        raise ChartSourceTerminalError(f"{what}: the token response has no token")
    return token
