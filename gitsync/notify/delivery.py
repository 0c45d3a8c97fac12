"""Sending notifications: a bounded in-memory queue and worker threads apart from reconciling.

The reconciler never waits on a provider: it hands deliveries to ``Deliverer.enqueue``, which
only appends to a bounded heap and returns (a full queue drops the delivery, counted as
``dropped``). Worker threads take the deliveries that are due, read the provider and its Secret,
build the request (``gitsync.notify.payloads``) and send it:

* to an address the operator's ``--notification-allow`` globs allow, checked and connected to as
  rollout analysis does (``gitsync.rollout.endpoints``: loopback, link-local, unspecified and
  cloud-metadata addresses need an entry naming the host; the connection goes to the checked
  address; redirects are not followed) - a tenant's provider address is untrusted;
* with a timeout per request (the provider's ``spec.timeout``, default 10 s) and at most
  ``MAX_RESPONSE`` bytes of response read;
* retried on 429, 5xx and connection failures, at most ``max_attempts`` times in all, after
  ``1, 2, 4, ...`` seconds or the response's ``Retry-After`` when longer (each wait at most
  ``max_delay``); a retry waits in the heap, not in a worker, so one failing provider does not
  hold a worker while others are due;
* other outcomes are final: 2xx delivered, any other status or a refused address failed.

An ``smtp`` provider's mail server (``host:port``) is checked the same way as
``smtp://host:port/`` (so loopback needs ``--notification-allow smtp://127.0.0.1:2525/*``), the
connection goes to the checked address, ``STARTTLS`` (on by default) verifies the server's
certificate for its name, and a password is only ever sent after it. A 4xx reply is retried like
a 5xx from a webhook; a 5xx reply is final.

Every final outcome is counted in ``gitsync_notifications_total{provider,result}``; a failure is
also a Warning Event on the Application (``NotificationFailed``). Messages name the provider and a
fixed reason (``HTTP 500``, ``timed out``), never its address (a Slack or Teams URL is itself a
credential), a header, a Secret value or the response body.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import http.client
import itertools
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import structlog

from gitsync.model import AppKey
from gitsync.notify.payloads import Credentials, PayloadError, build_email, build_request
from gitsync.notify.plan import Delivery
from gitsync.notify.spec import HOST_PORT, SECRET_KEYS, ProviderSpec, ProviderType
from gitsync.rollout.endpoints import AnalysisAllowList, Endpoint, EndpointRefused, open_socket

log = structlog.get_logger(__name__)

ALLOW_FLAG = "--notification-allow"
DEFAULT_ALLOW = ("https://*",)
SCHEMES = ("http", "https", "smtp")
"""Without ``--notification-allow``: any https address; special addresses still need an entry
naming the host (a wildcard never reaches them)."""
MAX_RESPONSE = 64 * 1024
MAX_SECRET_VALUE = 8192
CAPACITY = 1000
SECRET_TYPE_LABEL, SECRET_TYPE = "gitsync.dev/secret-type", "notification"


class Result:
    """Values of the ``result`` label."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    DROPPED = "dropped"


class DeliveryError(Exception):
    """An attempt failed. ``retry``: worth another attempt; ``retry_after``: the provider's
    ``Retry-After`` in seconds. The message is safe to show (no address, no value)."""

    def __init__(self, message: str, *, retry: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


def credentials_from(secret: Mapping[str, Any] | None, where: str) -> Credentials:
    """A provider's Secret decoded; ``DeliveryError`` naming a bad key, never a value.

    Only a Secret labelled ``gitsync.dev/secret-type: notification`` is read (as for a
    repository ``secretRef``): whoever may create a NotificationProvider in a namespace must not
    be able to post any other Secret of that namespace - a ServiceAccount token, a database
    password - to an address of their choosing."""
    if secret is None:
        raise DeliveryError(f"{where}: Secret not found")
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(SECRET_TYPE_LABEL) != SECRET_TYPE:
        raise DeliveryError(
            f"{where}: the Secret must be labelled {SECRET_TYPE_LABEL}: {SECRET_TYPE}; not read"
        )
    data = secret.get("data") or {}
    unknown = sorted(set(data) - SECRET_KEYS)
    if unknown:
        raise DeliveryError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(SECRET_KEYS))})"
        )
    values: dict[str, str] = {}
    for key, raw in data.items():
        try:
            value = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise DeliveryError(f"{where}: key {key!r} is not base64 UTF-8 text") from None
        if len(value) > MAX_SECRET_VALUE:
            raise DeliveryError(f"{where}: key {key!r} is longer than {MAX_SECRET_VALUE} bytes")
        values[key] = value.strip() if key != "password" else value
    return Credentials(**values)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    app: AppKey = field(compare=False)
    delivery: Delivery = field(compare=False)
    attempt: int = field(default=0, compare=False)


class Deliverer:
    """The queue and its workers. ``provider_of(namespace, name)`` and ``secret_of(namespace,
    name)`` read from the cluster; ``on_result(provider, result)`` counts;
    ``on_failure(app, reason, message)`` records an Event."""

    def __init__(
        self,
        *,
        provider_of: Callable[[str, str], ProviderSpec | None],
        secret_of: Callable[[str, str], Mapping[str, Any] | None],
        allow: AnalysisAllowList,
        on_result: Callable[[str, str], None],
        on_failure: Callable[[AppKey, str, str], None],
        workers: int = 2,
        capacity: int = CAPACITY,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider_of = provider_of
        self.secret_of = secret_of
        self.allow = allow
        self.on_result = on_result
        self.on_failure = on_failure
        self.capacity = capacity
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._run, name=f"notify-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def enqueue(self, app: AppKey, delivery: Delivery) -> bool:
        """Queue ``delivery`` now; False (and counted ``dropped``) when the queue is full.
        Never blocks beyond the queue's lock."""
        with self._cond:
            if len(self._heap) >= self.capacity:
                full = True
            else:
                full = False
                heapq.heappush(self._heap, _Job(self.clock(), next(self._seq), app, delivery))
                self._cond.notify()
        if full:
            self._count(delivery, Result.DROPPED)
            log.warning("notification queue full; dropped", provider=self._label(delivery))
        return not full

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    # -- workers ------------------------------------------------------------------------------

    def _take(self) -> _Job | None:
        with self._cond:
            while not self._stopped:
                if self._heap:
                    wait = self._heap[0].due - self.clock()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (job := self._take()) is not None:
            try:
                self._attempt(job)
            except Exception:  # a bug must not end the worker
                log.exception("notification worker crashed", provider=self._label(job.delivery))

    def _attempt(self, job: _Job) -> None:
        delivery = job.delivery
        job.attempt += 1
        try:
            self.send(delivery)
        except DeliveryError as exc:
            if exc.retry and job.attempt < self.max_attempts:
                delay = min(self.base_delay * 2 ** (job.attempt - 1), self.max_delay)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.max_delay))
                self._count(delivery, Result.RETRYING)
                log.info(
                    "notification failed; retrying",
                    provider=self._label(delivery),
                    error=str(exc),
                    attempt=job.attempt,
                    retry_in=delay,
                )
                with self._cond:
                    job.due = self.clock() + delay
                    heapq.heappush(self._heap, job)
                    self._cond.notify()
                return
            self._count(delivery, Result.FAILED)
            attempts = f" after {job.attempt} attempts" if job.attempt > 1 else ""
            message = (
                f"{delivery.event.name} at {delivery.event.short_revision} to "
                f"NotificationProvider {delivery.provider} (rule {delivery.rule.name}) "
                f"failed{attempts}: {exc}"
            )
            log.warning("notification failed", provider=self._label(delivery), error=message)
            self.on_failure(job.app, "NotificationFailed", message)
            return
        self._count(delivery, Result.DELIVERED)
        log.info(
            "notification delivered",
            provider=self._label(delivery),
            notification_event=str(delivery.event.name),
            revision=delivery.event.short_revision,
        )

    def send(self, delivery: Delivery) -> None:
        """One attempt; ``DeliveryError`` when it did not go through."""
        namespace = delivery.rule.namespace
        provider = self.provider_of(namespace, delivery.provider)
        if provider is None:
            raise DeliveryError(f"NotificationProvider {delivery.provider} not found or invalid")
        credentials = Credentials()
        if provider.secret_name:
            where = f"spec.secretRef {provider.secret_name}"
            credentials = credentials_from(self.secret_of(namespace, provider.secret_name), where)
        if provider.type == ProviderType.SMTP:
            self._send_email(provider, delivery, credentials)
            return
        try:
            request = build_request(
                provider,
                delivery.event,
                credentials,
                template=delivery.rule.template,
                repo_url=delivery.repo_url,
            )
        except PayloadError as exc:
            raise DeliveryError(str(exc)) from None
        if request.cut:
            log.warning("notification template output cut", rule=delivery.rule.name)
        try:
            endpoint = self.allow.check(request.url, timeout=provider.timeout)
        except EndpointRefused as exc:
            raise DeliveryError(f"address refused: {exc}") from None
        conn = endpoint.connection(provider.timeout)
        try:
            conn.request("POST", endpoint.target, body=request.body, headers=request.headers)
            response = conn.getresponse()
            response.read(MAX_RESPONSE)
            status = response.status
            retry_after = retry_after_seconds(response.getheader("Retry-After"))
        except TimeoutError:
            raise DeliveryError("timed out", retry=True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"connection failed ({type(exc).__name__})", retry=True) from None
        finally:
            conn.close()
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise DeliveryError(f"HTTP {status}", retry=True, retry_after=retry_after)
        raise DeliveryError(f"HTTP {status}")

    def _send_email(
        self, provider: ProviderSpec, delivery: Delivery, credentials: Credentials
    ) -> None:
        address = credentials.address or provider.address
        match = HOST_PORT.fullmatch(address)
        if match is None:
            raise DeliveryError("spec.address: host:port of the SMTP server (or the Secret's)")
        email = build_email(provider, delivery.event, template=delivery.rule.template)
        if (credentials.username or credentials.password) and not provider.start_tls:
            raise DeliveryError("a password is sent only after STARTTLS (spec.startTLS: true)")
        try:
            endpoint = self.allow.check(
                f"smtp://{match['host']}:{match['port']}/", timeout=provider.timeout
            )
        except EndpointRefused as exc:
            raise DeliveryError(f"address refused: {exc}") from None
        try:
            with _PinnedSMTP(endpoint, provider.timeout) as smtp:
                smtp.connect(endpoint.host, endpoint.port)
                smtp.ehlo()
                if provider.start_tls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError("the SMTP server does not offer STARTTLS")
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if credentials.username or credentials.password:
                    smtp.login(credentials.username, credentials.password)
                smtp.send_message(
                    email.message, from_addr=email.sender, to_addrs=list(email.recipients)
                )
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
            raise DeliveryError(f"SMTP {code}", retry=400 <= code < 500) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError("the SMTP server does not support what was asked (AUTH)") from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("SMTP: every recipient was refused") from None
        except TimeoutError:
            raise DeliveryError("timed out", retry=True) from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS failed ({exc.reason or type(exc).__name__})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"connection failed ({type(exc).__name__})", retry=True) from None

    @staticmethod
    def _label(delivery: Delivery) -> str:
        return f"{delivery.rule.namespace}/{delivery.provider}"

    def _count(self, delivery: Delivery, result: str) -> None:
        self.on_result(self._label(delivery), result)


class _PinnedSMTP(smtplib.SMTP):
    """SMTP to the address the allow-list checked (the name stays for STARTTLS's certificate
    check), like the HTTP connections of ``gitsync.rollout.endpoints``."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self._endpoint = endpoint
        super().__init__(timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return open_socket(self._endpoint, timeout)
