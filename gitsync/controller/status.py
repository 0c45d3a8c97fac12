"""The next Application status from the previous one: conditions, history and resources.

Pure functions over the types of ``gitsync.application_status``; the reconciler builds the next
status with them and writes it only when it differs from what is stored, so a reconcile that
found nothing new makes no API write. Conditions follow kstatus: ``Ready`` (the app is synced and
healthy), ``Reconciling`` (work in progress, with a message naming the stage), ``Stalled`` (a
terminal error: bad spec, bad credentials - nothing will change until the input does).
``lastTransitionTime`` only moves when a condition's status flips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gitsync.application_status import (
    READY,
    RECONCILING,
    SHARED_RESOURCE_WARNING,
    STALLED,
    Condition,
    HealthSummary,
    HistoryEntry,
    ResourceStatus,
)
from gitsync.model import ResourceKey

HISTORY_LIMIT = 10
RESOURCE_LIMIT = 5000  # status must stay well under etcd's object size limit

__all__ = ["READY", "RECONCILING", "SHARED_RESOURCE_WARNING", "STALLED"]
SHARED_LISTED = 5


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition] | None,
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: str,
) -> tuple[Condition, ...]:
    """The conditions with ``ctype`` set; keeps ``lastTransitionTime`` unless it flipped."""
    value = "True" if status else "False"
    previous = next((c for c in conditions or () if c.type == ctype), None)
    transition = now
    if previous is not None and previous.status == value:
        transition = previous.last_transition_time or now
    out = [
        *drop_condition(conditions, ctype),
        Condition(ctype, value, reason, message[:2048], generation, transition),
    ]
    order = {READY: 0, RECONCILING: 1, STALLED: 2}
    return tuple(sorted(out, key=lambda c: (order.get(c.type, 9), c.type)))


def drop_condition(conditions: Sequence[Condition] | None, ctype: str) -> tuple[Condition, ...]:
    return tuple(c for c in conditions or () if c.type != ctype)


def append_history(
    history: Sequence[HistoryEntry] | None, entry: HistoryEntry, *, limit: int = HISTORY_LIMIT
) -> tuple[HistoryEntry, ...]:
    """Add ``entry`` (whose ``operation`` is its operation's id) unless that operation is
    recorded already - a resumed operation never records twice. A retry of the revision whose
    sync just failed replaces that Failed entry (keeping its ``id``) instead of adding one: an
    API server that throttles or fails for a while must not fill the history with attempts and
    push the revisions one could roll back to out of it. Keeps the newest ``limit`` entries and
    gives each a stable increasing ``id`` (``entry.id`` is ignored)."""
    out = list(history or ())
    if any(h.operation == entry.operation for h in out):
        return tuple(out)
    last = out[-1] if out else None
    if last and last.result == "Failed" and last.revision == entry.revision:
        out[-1] = dataclasses.replace(entry, id=last.id)
        return tuple(out[-limit:])
    next_id = max((h.id for h in out), default=0) + 1
    return tuple([*out, dataclasses.replace(entry, id=next_id)][-limit:])


def resource_entries(
    rows: Iterable[tuple[Any, str, str, str]],
) -> tuple[ResourceStatus, ...]:
    """``rows`` of (ResourceKey, sync status, health status, health message)."""
    out = [
        ResourceStatus(
            key.group,
            key.kind,
            key.namespace,
            key.name,
            sync_status,
            HealthSummary(health, message[:512]),
        )
        for key, sync_status, health, message in rows
    ]
    out.sort(key=lambda r: (r.group, r.kind, r.namespace, r.name))
    return tuple(out[:RESOURCE_LIMIT])


def shared_resource_condition(
    conditions: Sequence[Condition] | None,
    shared: Mapping[ResourceKey, str],
    generation: int,
    now: str,
) -> tuple[Condition, ...]:
    """``SharedResourceWarning`` while objects the app renders are tracked by another app
    (``shared``: key -> that app); dropped once none is."""
    if not shared:
        return drop_condition(conditions, SHARED_RESOURCE_WARNING)
    listed = sorted(shared.items())
    message = "; ".join(
        f"{key} is tracked by Application {app}" for key, app in listed[:SHARED_LISTED]
    )
    if len(listed) > SHARED_LISTED:
        message += f" (and {len(listed) - SHARED_LISTED} more)"
    return set_condition(
        conditions,
        SHARED_RESOURCE_WARNING,
        True,
        "SharedResource",
        message,
        generation=generation,
        now=now,
    )
