"""Metric providers: reading a metric's value from Prometheus or a web endpoint.

The only I/O of analysis, called by the executor for the metrics the decision core says are due.
``MetricProviders.read`` never raises: whatever goes wrong - connection refused, a timeout, HTTP
500, a redirect elsewhere, a body too big, JSON that is not what was expected - comes back as a
``Reading`` with an ``error``, which the analysis counts as an Error measurement. The parsers are
pure functions of the response body, table-tested without a server.

* ``prometheus {address, query}``: ``GET <address>/api/v1/query?query=...&timeout=...``. A scalar,
  or an instant vector of exactly one series, gives its value; an empty vector and ``NaN`` are no
  data; more than one series is an error (aggregate the query: ``sum``, ``avg``, ``max``), and so
  is a range vector or a string.
* ``web {url, jsonPath, timeout}``: ``GET <url>``, JSON; ``jsonPath`` (``$.a.b[0]``) picks the
  value: a number, a numeric string or a boolean; null or a path that leads nowhere is no data.

Bounds: only ``http``/``https`` (redirects too, at most ``MAX_REDIRECTS``), at most
``MAX_RESPONSE_BYTES`` read, and a deadline per read (``PROMETHEUS_TIMEOUT``, or the web
provider's ``timeout``) checked between chunks, so a read ends within about twice its timeout
even when the server drips bytes.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage
from typing import IO, Any

from gitsync.rollout.analysis import Reading
from gitsync.rollout.expressions import compile_json_path, select
from gitsync.rollout.spec import Metric, PrometheusProvider

MAX_RESPONSE_BYTES = 1 << 20
PROMETHEUS_TIMEOUT = 10.0
MAX_REDIRECTS = 3
_CHUNK = 64 << 10
_ERROR_EXCERPT = 200


class ProviderError(Exception):
    """A metric could not be read; the message says why, for the measurement."""


# -- parsing (pure) ------------------------------------------------------------------------------


def _json(body: bytes) -> Any:
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProviderError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(body)
    except RecursionError:
        raise ProviderError("response JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProviderError(f"response is not JSON: {exc}; starts {_excerpt(body)}") from None


def _excerpt(body: bytes) -> str:
    return repr(body[:60].decode("utf-8", "replace"))


def _sample(sample: object) -> Reading:
    """A Prometheus ``[timestamp, "value"]`` pair; NaN is no data."""
    if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
        raise ProviderError(f"unexpected sample {str(sample)[:80]}")
    try:
        value = float(sample[1])
    except ValueError:
        raise ProviderError(f"sample value {sample[1][:40]!r} is not a number") from None
    return Reading() if math.isnan(value) else Reading(value)


def parse_prometheus_response(body: bytes) -> Reading:
    """The value of an instant query's response (see the module doc); raises ``ProviderError``."""
    doc = _json(body)
    if not isinstance(doc, dict):
        raise ProviderError("response is not a Prometheus API object")
    if doc.get("status") != "success":
        kind, error = doc.get("errorType", "error"), doc.get("error", "status is not success")
        raise ProviderError(f"Prometheus {kind}: {str(error)[:_ERROR_EXCERPT]}")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise ProviderError("response has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind != "vector":
        raise ProviderError(
            f"result type {str(kind)[:20]!r}: the query must give a scalar or an instant vector"
        )
    if not isinstance(result, list):
        raise ProviderError("vector result is not a list")
    if not result:
        return Reading()
    if len(result) > 1:
        raise ProviderError(
            f"the query returned {len(result)} series; aggregate it to one (sum, avg, max ...)"
        )
    series = result[0]
    if not isinstance(series, dict) or "value" not in series:
        raise ProviderError("the series has no value (a native histogram?)")
    return _sample(series["value"])


def parse_web_response(body: bytes, json_path: str) -> Reading:
    """The value at ``json_path`` in a JSON body (see the module doc); raises ``ProviderError``."""
    try:
        path = compile_json_path(json_path)
    except ValueError as exc:
        raise ProviderError(f"jsonPath {json_path!r}: {exc}") from None
    value = select(_json(body), path)
    if value is None:
        return Reading()
    if isinstance(value, bool):
        return Reading(value)
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ProviderError(
                f"{json_path} is {str(value)[:40]!r}, not a number or a boolean"
            ) from None
        return Reading() if math.isnan(number) else Reading(number)
    raise ProviderError(f"{json_path} is a {type(value).__name__}, not a number or a boolean")


# -- reading (I/O) -------------------------------------------------------------------------------


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise ProviderError(_refused_redirect(newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class MetricProviders:
    """Reads metrics over HTTP. Safe to share between threads (it keeps no state per read)."""

    def __init__(
        self,
        *,
        prometheus_timeout: float = PROMETHEUS_TIMEOUT,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ):
        self.prometheus_timeout = prometheus_timeout
        self.max_bytes = max_bytes
        self._opener = urllib.request.build_opener(_HttpOnlyRedirects())

    def read(self, metric: Metric) -> Reading:
        """The metric's current value, no data, or the error that prevented reading it."""
        provider = metric.provider
        try:
            if isinstance(provider, PrometheusProvider):
                params = urllib.parse.urlencode(
                    {"query": provider.query, "timeout": f"{self.prometheus_timeout:g}s"}
                )
                url = f"{provider.address.rstrip('/')}/api/v1/query?{params}"
                return parse_prometheus_response(self.get(url, self.prometheus_timeout))
            return parse_web_response(self.get(provider.url, provider.timeout), provider.json_path)
        except ProviderError as exc:
            return Reading(error=str(exc))
        except Exception as exc:  # a provider must never crash the rollout
            return Reading(error=f"{type(exc).__name__}: {exc}"[:_ERROR_EXCERPT])

    def get(self, url: str, timeout: float) -> bytes:
        """The body of a 2xx answer to ``GET url``; ``ProviderError`` for anything else (a
        Prometheus error body is parsed for its message)."""
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ProviderError(f"not an http or https URL: {url[:80]!r}")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        deadline = time.monotonic() + timeout
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return self._body(response, deadline, timeout)
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.headers else None
            scheme = urllib.parse.urlsplit(location or "").scheme
            if 300 <= exc.code < 400 and location and scheme not in ("http", "https"):
                raise ProviderError(_refused_redirect(location)) from None
            try:
                body = self._body(exc, deadline, timeout)
            except ProviderError:
                body = b""
            raise ProviderError(f"HTTP {exc.code} from {_where(url)}: {_explain(body)}") from None
        except urllib.error.URLError as exc:
            raise ProviderError(f"cannot reach {_where(url)}: {exc.reason}") from None
        except TimeoutError:
            raise ProviderError(f"{_where(url)} did not answer within {timeout:g}s") from None
        except OSError as exc:
            raise ProviderError(f"reading {_where(url)} failed: {exc}") from None

    def _body(self, response: IO[bytes], deadline: float, timeout: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        # read1 returns what has arrived: a server dripping bytes cannot hold one read open
        read = getattr(response, "read1", response.read)
        while True:
            if time.monotonic() > deadline:
                raise ProviderError(f"the response took longer than {timeout:g}s")
            chunk = read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise ProviderError(f"response larger than {self.max_bytes} bytes")
            chunks.append(chunk)


def _refused_redirect(location: str) -> str:
    return f"redirect to {location[:80]!r} not followed: only http and https are"


def _where(url: str) -> str:
    """Scheme, host and path of ``url`` (no query, no credentials) for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _explain(body: bytes) -> str:
    """A Prometheus error's message, or the start of the body."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict) and doc.get("error"):
        return f"{doc.get('errorType', 'error')}: {str(doc['error'])[:_ERROR_EXCERPT]}"
    return _excerpt(body) if body else "(no body)"
