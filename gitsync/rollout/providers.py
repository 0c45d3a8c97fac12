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

Bounds: only ``http``/``https`` URLs that the operator's ``--analysis-allow`` list admits, sent
to an address checked by ``endpoints`` (see there: loopback, link-local and metadata addresses);
redirects are not followed; at most ``MAX_RESPONSE_BYTES`` read, and a deadline per read
(``PROMETHEUS_TIMEOUT``, or the web provider's ``timeout``) checked between chunks, so a read
ends within about twice its timeout even when the server drips bytes.

A reading's error ends up in the Rollout's status, its Events, the API and the log, where anyone
who can read the Application sees it, while the URL is chosen by whoever can push to the
repository. So an error is a fixed reason ("HTTP 500", "response is not JSON", the JSON path
that held no number) and never carries bytes of the response: pointed at an endpoint that
answers with a credential, the credential must not come back in the status.
"""

from __future__ import annotations

import http.client
import json
import math
import ssl
import time
import urllib.parse
from typing import IO, Any

from gitsync.rollout.analysis import Reading
from gitsync.rollout.endpoints import AnalysisAllowList, EndpointRefused
from gitsync.rollout.expressions import compile_json_path, select
from gitsync.rollout.spec import Metric, PrometheusProvider

MAX_RESPONSE_BYTES = 1 << 20
PROMETHEUS_TIMEOUT = 10.0
_CHUNK = 64 << 10


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
    except (ValueError, UnicodeDecodeError):
        raise ProviderError("response is not JSON") from None


# Prometheus's own errorType values: the only words of an error body that reach a message.
_PROMETHEUS_ERRORS = frozenset(
    ("timeout", "canceled", "execution", "bad_data", "internal", "unavailable", "not_found")
)


def _prometheus_error(doc: object) -> str:
    kind = doc.get("errorType") if isinstance(doc, dict) else None
    return f"Prometheus {kind}" if kind in _PROMETHEUS_ERRORS else "Prometheus error"


def _sample(sample: object) -> Reading:
    """A Prometheus ``[timestamp, "value"]`` pair; NaN is no data."""
    if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
        raise ProviderError("unexpected sample: not a [timestamp, value] pair")
    try:
        value = float(sample[1])
    except ValueError:
        raise ProviderError("sample value is not a number") from None
    return Reading() if math.isnan(value) else Reading(value)


def parse_prometheus_response(body: bytes) -> Reading:
    """The value of an instant query's response (see the module doc); raises ``ProviderError``."""
    doc = _json(body)
    if not isinstance(doc, dict):
        raise ProviderError("response is not a Prometheus API object")
    if doc.get("status") != "success":
        raise ProviderError(_prometheus_error(doc))
    data = doc.get("data")
    if not isinstance(data, dict):
        raise ProviderError("response has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind != "vector":
        shown = kind if kind in ("matrix", "string") else "unexpected"
        raise ProviderError(
            f"result type {shown}: the query must give a scalar or an instant vector"
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
            raise ProviderError(f"{json_path} is a string that is not a number") from None
        return Reading() if math.isnan(number) else Reading(number)
    raise ProviderError(f"{json_path} is a {type(value).__name__}, not a number or a boolean")


# -- reading (I/O) -------------------------------------------------------------------------------


class MetricProviders:
    """Reads metrics over HTTP. Safe to share between threads (it keeps no state per read)."""

    def __init__(
        self,
        *,
        allow: AnalysisAllowList | None = None,
        prometheus_timeout: float = PROMETHEUS_TIMEOUT,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ):
        self.allow = allow or AnalysisAllowList()
        self.prometheus_timeout = prometheus_timeout
        self.max_bytes = max_bytes

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
            # the type only: an exception's text may quote the response
            return Reading(error=f"reading failed: {type(exc).__name__}")

    def get(self, url: str, timeout: float) -> bytes:
        """The body of a 2xx answer to ``GET url``; ``ProviderError`` with a fixed reason for
        anything else (a Prometheus error body gives its ``errorType``, nothing more)."""
        deadline = time.monotonic() + timeout
        try:
            endpoint = self.allow.check(url, timeout=timeout)
        except EndpointRefused as exc:
            raise ProviderError(str(exc)) from None
        connection = endpoint.connection(max(deadline - time.monotonic(), 0.001))
        where = _where(url)
        try:
            connection.request("GET", endpoint.target, headers={"Accept": "application/json"})
            response = connection.getresponse()
            if 300 <= response.status < 400:
                raise ProviderError(
                    f"HTTP {response.status} from {where}: redirects are not followed"
                )
            if not 200 <= response.status < 300:
                try:
                    body = self._body(response, deadline, timeout)
                except ProviderError:
                    body = b""
                raise ProviderError(f"HTTP {response.status} from {where}{_explain(body)}")
            return self._body(response, deadline, timeout)
        except TimeoutError:
            raise ProviderError(f"{where} did not answer within {timeout:g}s") from None
        except ssl.SSLCertVerificationError:
            raise ProviderError(f"cannot reach {where}: TLS certificate not trusted") from None
        except ssl.SSLError:
            raise ProviderError(f"cannot reach {where}: TLS handshake failed") from None
        except ConnectionRefusedError:
            raise ProviderError(f"cannot reach {where}: connection refused") from None
        except http.client.HTTPException as exc:
            raise ProviderError(
                f"{where} sent an invalid HTTP response ({type(exc).__name__})"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ProviderError(f"cannot reach {where}: {reason}") from None
        finally:
            connection.close()

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


def _where(url: str) -> str:
    """Scheme, host and path of ``url`` (no query, no credentials) for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        pass
    return f"{parts.scheme}://{host}{parts.path}"


def _explain(body: bytes) -> str:
    """``: Prometheus <errorType>`` for a Prometheus error body; nothing from any other body."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    return f": {_prometheus_error(doc)}" if isinstance(doc, dict) and "errorType" in doc else ""
