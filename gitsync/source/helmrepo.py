"""A Helm HTTP chart repository: ``<base>/index.yaml`` lists versions, archives are fetched by URL.

Everything the repository sends is untrusted and bounded (``ChartLimits``):

* **The index** is fetched conditionally (``If-None-Match`` / ``If-Modified-Since``) and kept,
  parsed, per (index URL, credential identity), so an unchanged repository costs one ``304``
  per refresh and no parse. It is read as a stream and reading stops at ``max_index_bytes``
  (a ``Content-Length`` above the cap is refused before any body is read); it is parsed by the
  project's safe YAML loader (alias bombs, nesting - injected as ``parse_index``, because the
  loader lives in the render layer and the source layer may not import it) in a worker thread
  that the caller waits for no longer than the operation's time left, and at most
  ``max_index_entries`` chart versions are accepted.
* **Credentials go to the repository's own origin only.** Archive URLs in the index may be
  relative (resolved against the repository) or absolute; basic auth is sent only when the URL's
  scheme, host and port equal the repository's, on every request and every redirect hop, so an
  index that points archives (or a redirect) at another host never gets them.
* **TLS** is verified against the entry's ``caData`` or the system roots; ``http://`` is refused
  unless the entry allows plain HTTP (``insecureAllowHttp``); ``insecure`` (Argo CD: skip TLS
  verification) turns certificate checks off for that repository only.
* **Archives** are read up to ``max_archive_bytes`` and checked against the index's ``digest``
  (sha256) when it has one.

Errors say what the reconcile loop does next: wrong credentials, a missing chart, a limit or a
malformed index are terminal; a server that is down, slow or answers 5xx/429 is transient.
Messages name the repository (without credentials) and the chart, never a secret.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import urllib3

from gitsync.source.charts import (
    ChartCredential,
    ChartLimits,
    ChartSourceTerminalError,
    ChartSourceTransientError,
    ChartVersion,
)
from gitsync.source.git import redact_url

IndexParser = Callable[[bytes, str], object]
"""Parses index text (``source`` names it in errors) into a document; raises
``ChartSourceTerminalError`` for text that is not safe YAML."""

MAX_REDIRECTS: Final = 5
MAX_CACHED_INDEXES: Final = 256
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 64 * 1024
# Index parses running at once (a parse abandoned at its deadline finishes in the background).
_PARSE_SLOTS: Final = threading.BoundedSemaphore(2)
_PARSER: Final = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="chart-index")


@dataclass(frozen=True)
class _CachedIndex:
    etag: str
    last_modified: str
    charts: Mapping[str, tuple[ChartVersion, ...]]


_cache_lock = threading.Lock()
_index_cache: collections.OrderedDict[tuple[str, str], _CachedIndex] = collections.OrderedDict()
_identity_key: Final = secrets.token_bytes(32)


def credential_identity(credential: ChartCredential) -> str:
    """Equal for equal credentials, never reversible (keyed with a per-process secret)."""
    material = "\n".join(
        (
            credential.username,
            credential.password,
            credential.ca_data,
            str(credential.insecure),
            str(credential.allow_plain_http),
        )
    )
    return hmac.new(_identity_key, material.encode(), hashlib.sha256).hexdigest()[:32]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpChartRepository:
    """The Helm repository at ``base_url`` (``https://host/path``), read with ``credential``."""

    def __init__(
        self,
        base_url: str,
        credential: ChartCredential,
        limits: ChartLimits,
        *,
        parse_index: IndexParser,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ChartSourceTerminalError(
                f"{redact_url(base_url)}: a Helm repository URL is https:// (or http://)"
            )
        if parts.username or parts.password:
            raise ChartSourceTerminalError(
                f"{redact_url(base_url)}: the repository URL must not carry credentials; "
                "put them in a repository-credential Secret"
            )
        self.base_url = base_url.rstrip("/") + "/"
        self.display = redact_url(base_url.rstrip("/"))
        self.credential = credential
        self.limits = limits
        self._parse_index = parse_index
        self._origin = _origin(self.base_url)
        self._check_scheme(self.base_url)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            cert_reqs="CERT_NONE" if credential.insecure else "CERT_REQUIRED",
            ca_cert_data=credential.ca_data or None,
            retries=False,
        )

    @property
    def index_url(self) -> str:
        return urljoin(self.base_url, "index.yaml")

    # -- the ChartRepository protocol ------------------------------------------------------------

    def versions(self, chart: str) -> list[ChartVersion]:
        charts = self._index()
        found = charts.get(chart)
        if found is None:
            raise ChartSourceTerminalError(
                f"chart {chart!r} is not in the index of {self.display} "
                f"({len(charts)} charts listed)"
            )
        return list(found)

    def resolve(self, version: ChartVersion) -> ChartVersion:
        """The index already gives each version its archive's digest."""
        return version

    def fetch(self, version: ChartVersion) -> bytes:
        what = f"{version.revision} from {self.display}"
        response = self._get(version.url, {}, self.limits.max_archive_bytes, what, "archive")
        if version.digest:
            actual = "sha256:" + hashlib.sha256(response.body).hexdigest()
            if not hmac.compare_digest(actual, version.digest):
                raise ChartSourceTerminalError(
                    f"{what}: archive digest {actual} does not match the index's {version.digest}"
                )
        return response.body

    # -- the index -----------------------------------------------------------------------------

    def _index(self) -> Mapping[str, tuple[ChartVersion, ...]]:
        key = (self.index_url, credential_identity(self.credential))
        with _cache_lock:
            cached = _index_cache.get(key)
        headers = {}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        started = time.monotonic()
        what = f"index of {self.display}"
        response = self._get(self.index_url, headers, self.limits.max_index_bytes, what, "index")
        if response.status == 304 and cached is not None:
            with _cache_lock:
                if key in _index_cache:
                    _index_cache.move_to_end(key)
            return cached.charts
        left = self.limits.timeout_seconds - (time.monotonic() - started)
        charts = self._parse(response.body, what, left)
        fresh = _CachedIndex(
            response.headers.get("etag", ""), response.headers.get("last-modified", ""), charts
        )
        with _cache_lock:
            _index_cache[key] = fresh
            _index_cache.move_to_end(key)
            while len(_index_cache) > MAX_CACHED_INDEXES:
                _index_cache.popitem(last=False)
        return charts

    def _parse(
        self, body: bytes, what: str, seconds_left: float
    ) -> Mapping[str, tuple[ChartVersion, ...]]:
        if not _PARSE_SLOTS.acquire(timeout=max(seconds_left, 0.0)):
            raise ChartSourceTransientError(f"{what}: no parser free within the time limit")
        try:
            future = _PARSER.submit(self._build, body, what)
        except BaseException:
            _PARSE_SLOTS.release()
            raise
        future.add_done_callback(lambda _: _PARSE_SLOTS.release())
        try:
            return future.result(timeout=max(seconds_left, 0.0))
        except concurrent.futures.TimeoutError:
            raise ChartSourceTerminalError(
                f"{what}: parsing took longer than {self.limits.timeout_seconds:g}s; refused"
            ) from None

    def _build(self, body: bytes, what: str) -> Mapping[str, tuple[ChartVersion, ...]]:
        document = self._parse_index(body, what)
        return parse_index_document(document, self.base_url, self.limits, what)

    # -- HTTP ----------------------------------------------------------------------------------

    def _check_scheme(self, url: str) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "https" or (scheme == "http" and self.credential.allow_plain_http):
            return
        if scheme == "http":
            raise ChartSourceTerminalError(
                f"{redact_url(url)}: plain http:// is refused unless the repository-credential "
                'entry for it sets insecureAllowHttp: "true"'
            )
        raise ChartSourceTerminalError(f"{redact_url(url)}: only https:// URLs are fetched")

    def _auth_headers(self, url: str) -> dict[str, str]:
        """Basic auth for the repository's own origin only (scheme, host and port)."""
        cred = self.credential
        if not (cred.username or cred.password) or _origin(url) != self._origin:
            return {}
        token = base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _get(
        self, url: str, headers: Mapping[str, str], max_bytes: int, what: str, kind: str
    ) -> _Response:
        deadline = time.monotonic() + self.limits.timeout_seconds
        for _ in range(MAX_REDIRECTS + 1):
            self._check_scheme(url)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                response = self._pool.request(
                    "GET",
                    url,
                    headers={
                        "User-Agent": "gitsync",
                        # the bytes as stored: a digest is over them, and a Content-Encoding
                        # would let a small body inflate past the caps before they count
                        "Accept-Encoding": "identity",
                        **headers,
                        **self._auth_headers(url),
                    },
                    preload_content=False,
                    decode_content=False,
                    redirect=False,
                    retries=False,
                    timeout=urllib3.Timeout(connect=min(left, 15.0), read=left),
                )
            except urllib3.exceptions.SSLError:
                raise ChartSourceTerminalError(
                    f"{what}: TLS verification of {redact_url(url)} failed "
                    "(give the CA in the entry's caData)"
                ) from None
            except urllib3.exceptions.HTTPError as exc:
                raise ChartSourceTransientError(
                    f"{what}: cannot reach {redact_url(url)} ({type(exc).__name__})"
                ) from None
            try:
                status = response.status
                if status in _REDIRECTS:
                    location = response.headers.get("location", "")
                    if not location:
                        raise ChartSourceTerminalError(f"{what}: redirect without a Location")
                    url = urljoin(url, location)
                    continue
                if status == 304:
                    return _Response(304, dict(response.headers), b"")
                _check_status(status, what, kind)
                body = _read_capped(response, max_bytes, deadline, what, kind)
                lowered = {k.lower(): v for k, v in response.headers.items()}
                return _Response(status, lowered, body)
            finally:
                response.release_conn()
        raise ChartSourceTransientError(
            f"{what}: no answer within {self.limits.timeout_seconds:g}s "
            f"(or more than {MAX_REDIRECTS} redirects)"
        )


def _check_status(status: int, what: str, kind: str) -> None:
    if status == 200:
        return
    if status in (401, 403):
        raise ChartSourceTerminalError(
            f"{what}: the repository refused the credentials (HTTP {status}); "
            "check the repository-credential Secret for this URL"
        )
    if status == 404:
        raise ChartSourceTerminalError(f"{what}: not found (HTTP 404)")
    if status == 429 or status >= 500:
        raise ChartSourceTransientError(f"{what}: the repository answered HTTP {status}")
    raise ChartSourceTerminalError(f"{what}: unexpected HTTP {status} for the {kind}")


def _read_capped(response: Any, max_bytes: int, deadline: float, what: str, kind: str) -> bytes:
    length = response.headers.get("content-length")
    too_big = f"{what}: the {kind} is larger than {max_bytes} bytes; refused"
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise ChartSourceTerminalError(too_big)
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.stream(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise ChartSourceTerminalError(too_big)
            if time.monotonic() > deadline:
                raise ChartSourceTransientError(f"{what}: the {kind} took too long to download")
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as exc:
        raise ChartSourceTransientError(
            f"{what}: the {kind} download broke off ({type(exc).__name__})"
        ) from None
    return b"".join(chunks)


def parse_index_document(
    document: object, base_url: str, limits: ChartLimits, what: str
) -> dict[str, tuple[ChartVersion, ...]]:
    """The versions per chart an index document lists; archive URLs made absolute against
    ``base_url``. Entries without a version or an archive URL are skipped (Helm skips them
    too); more than ``limits.max_index_entries`` versions in all is refused."""
    if not isinstance(document, Mapping):
        raise ChartSourceTerminalError(f"{what}: not a Helm repository index (not a mapping)")
    entries = document.get("entries")
    if entries is None:
        entries = {}
    if not isinstance(entries, Mapping):
        raise ChartSourceTerminalError(f"{what}: 'entries' is not a mapping")
    charts: dict[str, tuple[ChartVersion, ...]] = {}
    total = 0
    for name, listed in entries.items():
        if not isinstance(name, str) or not isinstance(listed, list):
            continue
        total += len(listed)
        if total > limits.max_index_entries:
            raise ChartSourceTerminalError(
                f"{what}: more than {limits.max_index_entries} chart versions "
                "(max_index_entries); refused"
            )
        versions = []
        for item in listed:
            version = _version(name, item, base_url)
            if version is not None:
                versions.append(version)
        charts[name] = tuple(versions)
    return charts


def _version(name: str, item: object, base_url: str) -> ChartVersion | None:
    if not isinstance(item, Mapping):
        return None
    version, urls, digest = item.get("version"), item.get("urls"), item.get("digest")
    if not isinstance(version, str) or not version or not isinstance(urls, list) or not urls:
        return None
    first = urls[0]
    if not isinstance(first, str) or not first:
        return None
    url = urljoin(base_url, first)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    text = digest.strip().lower() if isinstance(digest, str) else ""
    text = text.removeprefix("sha256:")
    valid = len(text) == 64 and all(c in "0123456789abcdef" for c in text)
    return ChartVersion(name, version, f"sha256:{text}" if valid else "", url)
