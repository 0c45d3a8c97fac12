"""The shared vocabulary: one identity for a resource and the status enums.

Everything that names a Kubernetes object uses ``ResourceKey`` (group, kind, namespace, name) -
maps are keyed by it and logs are bound with it - so desired and live objects pair up the same way
in diff, sync, health and status. This module is a leaf: it imports nothing from gitsync.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True, slots=True)
class ResourceKey:
    """Identity of an object: API group, kind, namespace and name.

    The core group and the namespace of a cluster-scoped object are ``""``.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ResourceKey:
        """The key of a manifest or live object."""
        api_version = str(obj.get("apiVersion", ""))
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        meta = obj.get("metadata") or {}
        return cls(
            group=group,
            kind=str(obj.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name", "")),
        )

    def __str__(self) -> str:
        gk = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{gk}/{self.namespace}/{self.name}" if self.namespace else f"{gk}/{self.name}"


AppKey = tuple[str, str]
"""An Application's identity, ``(namespace, name)``: how queues, schedules and stores key one."""


class SyncStatus(enum.StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    MISSING = "Missing"
    EXTRANEOUS = "Extraneous"
    UNKNOWN = "Unknown"


class HealthStatus(enum.StrEnum):
    """Health of an object or app. ``worst_of`` aggregates by the order defined here."""

    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def severity(self) -> int:
        return _HEALTH_ORDER.index(self)

    @staticmethod
    def worst_of(statuses: list[HealthStatus]) -> HealthStatus:
        return max(statuses, key=lambda s: s.severity, default=HealthStatus.HEALTHY)


# Least to most severe, like Argo CD: Unknown is the worst because nothing can be said.
_HEALTH_ORDER = [
    HealthStatus.HEALTHY,
    HealthStatus.SUSPENDED,
    HealthStatus.PROGRESSING,
    HealthStatus.MISSING,
    HealthStatus.DEGRADED,
    HealthStatus.UNKNOWN,
]


class ResultCode(enum.StrEnum):
    """Outcome of syncing one resource."""

    SYNCED = "Synced"
    SYNC_FAILED = "SyncFailed"
    PRUNED = "Pruned"
    PRUNE_SKIPPED = "PruneSkipped"


REVISION_SEPARATOR = ","
"""Joins a ``spec.sources`` app's per-source revisions (no SHA or ``chart@version`` has one)."""


def short_revision(revision: str, digits: int = 12) -> str:
    """A revision as people read it: a commit's first ``digits`` hex digits, a chart's
    ``chart@version`` whole (its version is the point), and a ``spec.sources`` app's
    comma-joined revision each part so. Messages and logs use 12 digits (unique in any real
    repository); pages use 7, as forges do."""
    if REVISION_SEPARATOR in revision:
        parts = revision.split(REVISION_SEPARATOR)
        return REVISION_SEPARATOR.join(short_revision(part, digits) for part in parts)
    return revision if "@" in revision else revision[:digits]
