"""Application status as data: conditions, sync, health, resources, operation and history.

Pure functions that compute the next ``status`` from the previous one and what a reconcile found.
The controller writes the result only when it differs from what is stored, so a reconcile that
found nothing new makes no API write. Conditions follow kstatus: ``Ready`` (the app is synced and
healthy), ``Reconciling`` (work in progress, with a message naming the stage), ``Stalled`` (a
terminal error: bad spec, bad credentials - nothing will change until the input does).
``lastTransitionTime`` only moves when a condition's status flips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

HISTORY_LIMIT = 10
RESOURCE_LIMIT = 5000  # status must stay well under etcd's object size limit

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[dict[str, Any]],
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """A new conditions list with ``ctype`` set; keeps ``lastTransitionTime`` unless it flipped."""
    value = "True" if status else "False"
    out = [dict(c) for c in conditions if c.get("type") != ctype]
    previous = next((c for c in conditions if c.get("type") == ctype), None)
    transition = now
    if previous is not None and previous.get("status") == value:
        transition = str(previous.get("lastTransitionTime") or now)
    out.append(
        {
            "type": ctype,
            "status": value,
            "reason": reason,
            "message": message[:2048],
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        }
    )
    order = {READY: 0, RECONCILING: 1, STALLED: 2}
    return sorted(out, key=lambda c: (order.get(str(c.get("type")), 9), str(c.get("type"))))


def drop_condition(conditions: Sequence[dict[str, Any]], ctype: str) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions if c.get("type") != ctype]


def append_history(
    history: Sequence[dict[str, Any]], entry: dict[str, Any], *, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """Add ``entry`` (which carries an ``operation`` id) unless that operation is recorded
    already - a resumed operation never records twice. A retry of the revision whose sync just
    failed replaces that Failed entry (keeping its ``id``) instead of adding one: an API server
    that throttles or fails for a while must not fill the history with attempts and push the
    revisions one could roll back to out of it. Keeps the newest ``limit`` entries and gives
    each a stable increasing ``id``."""
    if any(h.get("operation") == entry.get("operation") for h in history):
        return [dict(h) for h in history]
    out = [dict(h) for h in history]
    last = out[-1] if out else None
    if last and last.get("result") == "Failed" and last.get("revision") == entry.get("revision"):
        out[-1] = {"id": last.get("id"), **entry}
        return out[-limit:]
    next_id = max((int(h.get("id", 0)) for h in history), default=0) + 1
    return [*out, {"id": next_id, **entry}][-limit:]


def resource_entries(
    rows: Iterable[tuple[Any, str, str, str]],
) -> list[dict[str, Any]]:
    """``rows`` of (ResourceKey, sync status, health status, health message)."""
    out = []
    for key, sync_status, health, message in rows:
        out.append(
            {
                "group": key.group,
                "kind": key.kind,
                "namespace": key.namespace,
                "name": key.name,
                "status": sync_status,
                "health": {"status": health, **({"message": message[:512]} if message else {})},
            }
        )
    out.sort(key=lambda r: (r["group"], r["kind"], r["namespace"], r["name"]))
    return out[:RESOURCE_LIMIT]


def without_volatile(status: dict[str, Any]) -> dict[str, Any]:
    """The parts of status whose change warrants a write (drops ``reconciledAt``)."""
    return {k: v for k, v in status.items() if k != "reconciledAt"}
