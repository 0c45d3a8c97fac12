"""Delivery against real HTTP receivers on loopback: retries on 429 (after ``Retry-After``) and
5xx (bounded), the outbound-address check, the provider's Secret (its label, its keys), the
bounded non-blocking queue, and that no secret value appears in a result or message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from gitsync.model import AppKey
from gitsync.notify.delivery import (
    ALLOW_FLAG,
    DEFAULT_ALLOW,
    SCHEMES,
    Deliverer,
    Result,
    retry_after_seconds,
)
from gitsync.notify.events import EventName, NotificationEvent
from gitsync.notify.plan import Delivery
from gitsync.notify.spec import ProviderSpec, parse_provider, parse_rule
from gitsync.rollout.endpoints import AnalysisAllowList
from tests.support.receivers import Inbox, Receiver, smtp_server

SHA = "c" * 40
TOKEN = "tok-9f8e7d6c5b4a"
APP: AppKey = ("team-a", "shop")
EVENT = NotificationEvent(EventName.DEPLOYED, "team-a", "shop", SHA)
RULE = parse_rule(
    {
        "metadata": {"name": "deploys", "namespace": "team-a"},
        "spec": {"providerRefs": [{"name": "hook"}], "events": ["deployed"]},
    }
)


def secret(labelled: bool = True, **data: str) -> dict[str, Any]:
    labels = {"gitsync.dev/secret-type": "notification"} if labelled else {}
    return {
        "metadata": {"name": "hook-secret", "namespace": "team-a", "labels": labels},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


class Harness:
    """A Deliverer with one provider ``hook`` in ``team-a`` (a signed webhook to ``receiver``
    unless ``spec`` says otherwise), recording results and failures; a context manager that
    runs its workers."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        allow: tuple[str, ...] | None = None,
        the_secret: Mapping[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        self.results: list[tuple[str, str]] = []
        self.failures: list[tuple[AppKey, str, str]] = []
        self.secret = the_secret if the_secret is not None else secret(token=TOKEN)
        webhook = {
            "type": "webhook",
            "address": f"{receiver.url}/in",
            "secretRef": {"name": "hook-secret"},
            "timeout": 2,
        }
        self.provider = parse_provider(
            {"metadata": {"name": "hook", "namespace": "team-a"}, "spec": spec or webhook}
        )
        entries = allow if allow is not None else (f"http://127.0.0.1:{receiver.port}/*",)
        self.deliverer = Deliverer(
            provider_of=self.provider_of,
            secret_of=lambda ns, name: (
                self.secret if (ns, name) == ("team-a", "hook-secret") else None
            ),
            allow=AnalysisAllowList.parse(entries, flag=ALLOW_FLAG, schemes=SCHEMES),
            on_result=lambda provider, result: self.results.append((provider, result)),
            on_failure=lambda app, reason, message: self.failures.append((app, reason, message)),
            **{"base_delay": 0.05, **kw},
        )

    def __enter__(self) -> Harness:
        self.deliverer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.deliverer.stop()

    def provider_of(self, namespace: str, name: str) -> ProviderSpec | None:
        return self.provider if (namespace, name) == ("team-a", "hook") else None

    def send(self) -> None:
        assert self.deliverer.enqueue(APP, Delivery("k1", RULE, "hook", EVENT))

    def wait_final(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finals = [r for _, r in self.results if r in (Result.DELIVERED, Result.FAILED)]
            if finals:
                return finals[0]
            time.sleep(0.02)
        raise AssertionError(f"no final result: {self.results}")

    def failure(self) -> str:
        """Send once; the message of the failure it ends in."""
        self.send()
        assert self.wait_final() == Result.FAILED
        ((app, reason, message),) = self.failures
        assert (app, reason) == (APP, "NotificationFailed")
        assert TOKEN not in message
        return message


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_429_then_200_is_delivered_once_after_retry_after(receiver: Receiver) -> None:
    receiver.answers = [(429, {"Retry-After": "1"})]
    with Harness(receiver) as h:
        h.send()
        assert h.wait_final() == Result.DELIVERED
    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.95  # the provider's Retry-After, not our 0.05 s backoff
    assert len(receiver.requests()) == 2
    assert [r for _, r in h.results] == ["retrying", "delivered"]
    assert first.body == second.body


def test_500_forever_gets_bounded_retries_a_failure_and_no_secret_in_it(
    receiver: Receiver,
) -> None:
    receiver.default = (500, {})
    with Harness(receiver, max_attempts=3) as h:
        message = h.failure()
        time.sleep(0.5)  # nothing more comes
    assert len(receiver.requests()) == 3
    assert "after 3 attempts: HTTP 500" in message
    assert "NotificationProvider hook" in message
    assert receiver.url not in message


def test_the_generic_webhook_is_signed_with_the_secrets_token(receiver: Receiver) -> None:
    with Harness(receiver) as h:
        h.send()
        (got,) = receiver.wait_for(1)
    expected = hmac.new(TOKEN.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Signature"] == f"sha256={expected}"
    assert TOKEN.encode() not in got.body


def test_loopback_is_refused_unless_an_entry_names_it(receiver: Receiver) -> None:
    spec = {"type": "webhook", "address": f"https://127.0.0.1:{receiver.port}/in"}
    with Harness(receiver, allow=DEFAULT_ALLOW, spec=spec) as h:
        message = h.failure()
    assert "resolves to a loopback address" in message
    assert "--notification-allow" in message
    assert receiver.requests() == []


@pytest.mark.parametrize(
    ("the_secret", "why"),
    [
        (
            secret(labelled=False, token=TOKEN),
            "must be labelled gitsync.dev/secret-type: notification",
        ),
        (secret(token=TOKEN, kubeconfig="x"), "unknown key 'kubeconfig'"),
    ],
)
def test_a_secret_not_made_for_notifications_is_not_used(
    receiver: Receiver, the_secret: dict[str, Any], why: str
) -> None:
    with Harness(receiver, the_secret=the_secret) as h:
        assert why in h.failure()
    assert receiver.requests() == []


def test_enqueue_never_waits_and_a_full_queue_drops(receiver: Receiver) -> None:
    receiver.delay = 1.0  # a slow provider holding the only worker
    with Harness(receiver, workers=1, capacity=2) as h:
        started = time.monotonic()
        accepted = [
            h.deliverer.enqueue(APP, Delivery(f"k{i}", RULE, "hook", EVENT)) for i in range(5)
        ]
        assert time.monotonic() - started < 0.1
        assert accepted.count(False) >= 2
        assert ("team-a/hook", "dropped") in h.results


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# -- email -----------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as server:
        yield server


def mail_spec(port: int, **spec: Any) -> dict[str, Any]:
    return {
        "type": "smtp",
        "address": f"127.0.0.1:{port}",
        "to": ["ops@example.com"],
        "from": "gitsync@example.com",
        **spec,
    }


def test_an_email_reaches_a_real_smtp_server(receiver: Receiver, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    allow = (f"smtp://127.0.0.1:{port}/*",)
    with Harness(receiver, allow=allow, spec=mail_spec(port, startTLS=False)) as h:
        h.send()
        assert h.wait_final() == Result.DELIVERED
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["ops@example.com"]
    assert envelope.mail_from == "gitsync@example.com"
    text = envelope.content.decode()
    assert f"Subject: [gitsync] team-a/shop: deployed at {SHA[:12]}" in text
    assert f"revision {SHA}" in text


@pytest.mark.parametrize(
    ("spec", "the_secret", "why"),
    [
        ({}, None, "does not offer STARTTLS"),  # STARTTLS is the default; this server has none
        (
            {"startTLS": False, "secretRef": {"name": "hook-secret"}},
            secret(username="u", password="hunter2-smtp"),
            "a password is sent only after STARTTLS",
        ),
    ],
)
def test_no_email_and_no_password_without_starttls(
    receiver: Receiver,
    smtp: tuple[int, Inbox],
    spec: dict[str, Any],
    the_secret: dict[str, Any] | None,
    why: str,
) -> None:
    port, inbox = smtp
    allow = (f"smtp://127.0.0.1:{port}/*",)
    with Harness(receiver, allow=allow, spec=mail_spec(port, **spec), the_secret=the_secret) as h:
        message = h.failure()
    assert why in message and "hunter2" not in message
    assert inbox.envelopes == [] and inbox.logins == []  # the password never went out


def test_a_mail_server_on_loopback_needs_an_entry_naming_it(
    receiver: Receiver, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    with Harness(receiver, allow=("smtp://*",), spec=mail_spec(port, startTLS=False)) as h:
        assert "loopback" in h.failure()
    assert inbox.envelopes == []
