"""Which deliveries an Application's status calls for, and the record that keeps them to one.

The dedupe key of a delivery is (rule, provider, event, revision), hashed short. The keys of
what was handed to delivery are kept in the Application's own status (``sentNotifications``,
newest last, at most ``SENT_LIMIT``) and written in the *same* status write as the state that
produced them, before anything is sent. That makes delivery **at most once** per key: a
controller killed after the write and before the send loses that one message, and one killed
after a send never repeats it (the key is already stored). We chose that side because the
failure of the other side is worse for people - every restart or leader change would page the
channel again with messages about deploys that happened hours ago - and because what is lost
is rare (a kill in the fraction of a second between a status write and the send) and visible
(the status, Events and history still say what happened). A delivery that fails after its
retries is reported (metric, Event) and not retried later.

Events are derived from the current status only (``gitsync.notify.events``), so old revisions
never come back and a bounded FIFO of keys is enough.

Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from gitsync.notify.events import AppFacts, NotificationEvent
from gitsync.notify.payloads import COMMIT_STATES
from gitsync.notify.spec import ProviderSpec, RuleSpec

SENT_LIMIT = 256


def dedupe_key(rule: str, provider: str, event: str, revision: str) -> str:
    raw = "\0".join((rule, provider, event, revision)).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


@dataclass(frozen=True)
class Delivery:
    """One message to send: the event, through which rule to which provider (both in the
    Application's namespace), under ``key``."""

    key: str
    rule: RuleSpec
    provider: str
    event: NotificationEvent
    repo_url: str = ""


def due(
    app: AppFacts,
    events: Iterable[NotificationEvent],
    rules: Iterable[RuleSpec],
    providers: Mapping[str, ProviderSpec],
    sent: Collection[str],
) -> list[Delivery]:
    """The deliveries the events call for that were not handed out before. A rule or provider
    of another namespace is never used (the caller lists the app's namespace; this checks
    again). A commit-status provider gets only the events a commit status shows."""
    events = list(events)
    out: list[Delivery] = []
    for rule in rules:
        if rule.namespace != app.namespace or not rule.selects(app.name, app.labels):
            continue
        for event in events:
            if event.name not in rule.events:
                continue
            for name in rule.provider_refs:
                provider = providers.get(name)
                if provider is not None and provider.namespace != app.namespace:
                    continue
                if not _shows(provider, event):
                    continue
                key = dedupe_key(rule.name, name, str(event.name), event.revision)
                if key not in sent:
                    out.append(Delivery(key, rule, name, event, app.repo_url))
    return out


def _shows(provider: ProviderSpec | None, event: NotificationEvent) -> bool:
    """A commit-status provider shows only the events a commit status has a state for, and
    only for Git commits; every other type shows every event (unknown: delivery says so)."""
    if provider is None or not provider.type.commit_status:
        return True
    return event.name in COMMIT_STATES and event.is_commit


def record(
    sent: Sequence[str] | None, keys: Iterable[str], limit: int = SENT_LIMIT
) -> tuple[str, ...]:
    """``sent`` with ``keys`` added (newest last), at most ``limit``."""
    out = [k for k in sent or () if isinstance(k, str)]
    seen = set(out)
    for key in keys:
        if key not in seen:
            out.append(key)
            seen.add(key)
    return tuple(out[-limit:])
