"""The Application's ``status`` as types: what the reconciler writes and the web layer, CLI and
tests read.

Many read the status and one writes it, so its shape lives here once instead of as dict keys
spread over the reconciler, the web view and hand-built test documents. The wire format is the
custom resource's (camelCase keys; a key the reconciler has not written yet is absent), so
``to_dict``/``from_dict`` round-trip what is stored, and ``status_schema`` generates the CRD's
status schema from the same fields (``tests/unit/test_crd_schema.py`` fails when the chart and
the types disagree). Adding a status field is one field here plus the code that fills it and the
code that shows it.

``from_dict`` is tolerant, like ``gitsync.rollout.status.RolloutStatus``: status is ours to
rewrite and anyone with write access to the status subresource can put anything there, so a value
of the wrong type reads as absent rather than failing the reconcile or the page.

This module sits beside ``gitsync.application`` (the spec) at the bottom of the layers: it imports
nothing from gitsync, so the controller, web layer and CLI may all import it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
"""Condition types (kstatus): synced and healthy / work in progress / a terminal error."""
SHARED_RESOURCE_WARNING = "SharedResourceWarning"
"""Condition type (Argo CD's name): objects the app renders are tracked by another app."""
SOURCE_TYPES = {
    "plain": "Directory",
    "kustomize": "Kustomize",
    "helm": "Helm",
    "helm-repository": "HelmRepository",
    "oci": "OCI",
}
"""``sourceType`` for each renderer (``gitsync.render.SourceType``), spelled as Argo CD does, and
for a chart from a Helm repository or an OCI registry (Flux's ``HelmRepository``, ``OCI``)."""


def _key(camel: str, *, omit_empty: bool = False) -> Any:
    """A field stored under ``camel``; ``omit_empty``: not written while "" (None never is)."""
    return {"key": camel, "omit_empty": omit_empty}


@dataclass(frozen=True)
class Condition:
    """One kstatus condition; ``last_transition_time`` moves only when ``status`` flips."""

    type: str = field(default="", metadata=_key("type"))
    status: str = field(default="", metadata=_key("status"))  # "True" | "False"
    reason: str = field(default="", metadata=_key("reason"))
    message: str = field(default="", metadata=_key("message"))
    observed_generation: int = field(default=0, metadata=_key("observedGeneration"))
    last_transition_time: str = field(default="", metadata=_key("lastTransitionTime"))

    @property
    def is_true(self) -> bool:
        return self.status == "True"


@dataclass(frozen=True)
class SyncSummary:
    """``status.sync``: a ``gitsync.model.SyncStatus`` value and the revision compared."""

    status: str = field(default="", metadata=_key("status"))
    revision: str = field(default="", metadata=_key("revision"))
    revisions: tuple[str, ...] | None = field(default=None, metadata=_key("revisions"))
    """A ``spec.sources`` app's revision per source, in order (Argo CD's ``revisions``);
    ``revision`` is then these joined by ``,``. None (not written) for one source."""


@dataclass(frozen=True)
class HealthSummary:
    """A ``gitsync.model.HealthStatus`` value and why (the app's or one object's health)."""

    status: str = field(default="", metadata=_key("status"))
    message: str = field(default="", metadata=_key("message", omit_empty=True))


@dataclass(frozen=True)
class SourceRevision:
    """The commit reconciled (``gitsync.source.Revision``)."""

    sha: str = field(default="", metadata=_key("sha"))
    ref: str = field(default="", metadata=_key("ref"))
    message: str = field(default="", metadata=_key("message"))
    author: str = field(default="", metadata=_key("author"))
    date: str = field(default="", metadata=_key("date"))
    digest: str = field(default="", metadata=_key("digest", omit_empty=True))
    """A chart's ``sha256:`` digest (``sha`` is then ``chart@version``)."""


@dataclass(frozen=True)
class ObjectRef:
    """Which object a row of ``resources`` is about (``gitsync.model.ResourceKey`` on the wire)."""

    group: str = field(default="", metadata=_key("group"))
    kind: str = field(default="", metadata=_key("kind"))
    namespace: str = field(default="", metadata=_key("namespace"))
    name: str = field(default="", metadata=_key("name"))


@dataclass(frozen=True)
class ResourceStatus(ObjectRef):
    """One object the app manages: its sync status and health."""

    status: str = field(default="", metadata=_key("status"))
    health: HealthSummary = field(default_factory=HealthSummary, metadata=_key("health"))


@dataclass(frozen=True)
class ResourceResult(ObjectRef):
    """What the last operation did to one object (a ``gitsync.model.ResultCode`` value)."""

    status: str = field(default="", metadata=_key("status"))
    message: str = field(default="", metadata=_key("message"))


@dataclass(frozen=True)
class HookStatus(ObjectRef):
    """One resource hook the operation ran (``gitsync.sync.hooks``): ``name`` is the server's
    (a generated one for ``generateName``), ``phase`` a hook phase (PreSync, Sync, PostSync,
    SyncFail), ``status`` Succeeded | Failed | Running."""

    phase: str = field(default="", metadata=_key("phase"))
    status: str = field(default="", metadata=_key("status"))
    message: str = field(default="", metadata=_key("message"))
    duration_ms: int = field(default=0, metadata=_key("durationMs"))


@dataclass(frozen=True)
class OperationState:
    """The current or last sync operation. Persisted as ``Running`` before anything is applied,
    so a restarted controller resumes it under the same ``id``; ``finished_at`` and ``resources``
    are written when it ends. The deletion of an app with a resources finalizer is an operation
    too (``initiatedBy: deletion``); ``deletion_step`` says which of its steps it is at."""

    id: str = field(default="", metadata=_key("id"))
    phase: str = field(default="", metadata=_key("phase"))  # Running | Succeeded | Failed
    revision: str = field(default="", metadata=_key("revision"))
    initiated_by: str = field(default="", metadata=_key("initiatedBy"))
    started_at: str = field(default="", metadata=_key("startedAt"))
    message: str = field(default="", metadata=_key("message"))
    finished_at: str = field(default="", metadata=_key("finishedAt", omit_empty=True))
    resources: tuple[ResourceResult, ...] | None = field(default=None, metadata=_key("resources"))
    hooks: tuple[HookStatus, ...] | None = field(default=None, metadata=_key("hooks"))
    deletion_step: str = field(default="", metadata=_key("deletionStep", omit_empty=True))
    """PreDelete | DeleteResources | PostDelete (``gitsync.controller.reconciler.DeletionStep``);
    "" for a sync operation."""


@dataclass(frozen=True)
class HistoryEntry:
    """One deploy; ``operation`` is the id of the operation that made it (recorded once)."""

    id: int = field(default=0, metadata=_key("id"))
    operation: str = field(default="", metadata=_key("operation"))
    revision: str = field(default="", metadata=_key("revision"))
    message: str = field(default="", metadata=_key("message"))
    author: str = field(default="", metadata=_key("author"))
    deployed_at: str = field(default="", metadata=_key("deployedAt"))
    result: str = field(default="", metadata=_key("result"))
    initiated_by: str = field(default="", metadata=_key("initiatedBy"))
    digest: str = field(default="", metadata=_key("digest", omit_empty=True))
    """A chart's ``sha256:`` digest (``revision`` is then ``chart@version``)."""
    revisions: tuple[str, ...] | None = field(default=None, metadata=_key("revisions"))
    """A ``spec.sources`` app's revision per source (Argo CD's ``revisions``)."""
    deploy_started_at: str = field(default="", metadata=_key("deployStartedAt", omit_empty=True))
    """When the operation started (Argo CD's ``deployStartedAt``); with ``deployed_at`` the
    deploy's duration. Entries written before it was recorded have none."""
    result_message: str = field(default="", metadata=_key("resultMessage", omit_empty=True))
    """The operation's own message (why it failed, say), bounded; "" in older entries."""


@dataclass(frozen=True)
class SyncWindowState:
    """A sync window keeps the app from syncing: until when ("" when no window will open) and
    which window (``gitsync.sync_windows``). Absent while no window blocks."""

    until: str = field(default="", metadata=_key("until"))
    message: str = field(default="", metadata=_key("message"))


@dataclass(frozen=True)
class DependencyWait:
    """One ``spec.dependsOn`` entry the app's automated sync waits for, and why (e.g.
    ``Progressing``, ``not found``; only ``not Ready`` for an app in another namespace)."""

    namespace: str = field(default="", metadata=_key("namespace"))
    name: str = field(default="", metadata=_key("name"))
    reason: str = field(default="", metadata=_key("reason"))

    def __str__(self) -> str:
        return f"waiting for {self.namespace}/{self.name}: {self.reason}"


@dataclass
class ApplicationStatus:
    """``status`` of an Application. None: not written yet (the key is absent on the wire).

    Mutable, unlike its parts: one reconcile builds the next status step by step from the
    previous one and writes it when it differs (``gitsync.controller.status``)."""

    observed_generation: int | None = field(default=None, metadata=_key("observedGeneration"))
    conditions: tuple[Condition, ...] | None = field(default=None, metadata=_key("conditions"))
    sync: SyncSummary | None = field(default=None, metadata=_key("sync"))
    health: HealthSummary | None = field(default=None, metadata=_key("health"))
    source_revision: SourceRevision | None = field(default=None, metadata=_key("sourceRevision"))
    resources: tuple[ResourceStatus, ...] | None = field(default=None, metadata=_key("resources"))
    operation_state: OperationState | None = field(default=None, metadata=_key("operationState"))
    history: tuple[HistoryEntry, ...] | None = field(default=None, metadata=_key("history"))
    last_applied_revision: str | None = field(default=None, metadata=_key("lastAppliedRevision"))
    last_attempted_revision: str | None = field(
        default=None, metadata=_key("lastAttemptedRevision")
    )
    last_handled_sync_request: str | None = field(
        default=None, metadata=_key("lastHandledSyncRequest")
    )
    last_handled_rollback: str | None = field(default=None, metadata=_key("lastHandledRollback"))
    automation_paused: bool | None = field(default=None, metadata=_key("automationPaused"))
    source_type: str | None = field(default=None, metadata=_key("sourceType"))
    """How the source was rendered, detected or as the spec says (``SOURCE_TYPES``)."""
    sync_window: SyncWindowState | None = field(default=None, metadata=_key("syncWindow"))
    """Set while a sync window blocks the sync the app needs."""
    waiting_for: tuple[DependencyWait, ...] | None = field(
        default=None, metadata=_key("waitingFor")
    )
    """Set while automated sync waits for ``spec.dependsOn`` entries that are not Ready."""
    sent_notifications: tuple[str, ...] | None = field(
        default=None, metadata=_key("sentNotifications")
    )
    """Dedupe keys of the notifications handed to delivery (``gitsync.notify.plan``), newest
    last: written with the status that called for them, so a restart does not send again."""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, doc: object) -> ApplicationStatus:
        return from_dict(cls, doc)

    def condition(self, ctype: str) -> Condition | None:
        return next((c for c in self.conditions or () if c.type == ctype), None)

    def copy(self) -> ApplicationStatus:
        """An independent copy: shallow is enough, every part is immutable."""
        return dataclasses.replace(self)


# -- conversion --------------------------------------------------------------------------------

T = TypeVar("T")
_Decoder = Callable[[object], Any]  # the value, or MISSING when it does not fit


def _optional(tp: Any) -> Any:
    """``X`` for ``X | None``, else ``tp``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _decoder(tp: Any) -> _Decoder:
    """A function reading a ``tp`` from its wire form (built once per field: status is read on
    every reconcile and every list of the UI, so the type is not inspected per value)."""
    tp = _optional(tp)
    if isinstance(tp, type) and is_dataclass(tp):
        cls = tp
        return lambda raw: from_dict(cls, raw) if isinstance(raw, Mapping) else MISSING
    if typing.get_origin(tp) is tuple:
        item = _decoder(typing.get_args(tp)[0])

        def decode_items(raw: object) -> Any:
            if not isinstance(raw, list):
                return MISSING
            return tuple(d for d in map(item, raw) if d is not MISSING)

        return decode_items
    if tp is bool:
        return lambda raw: raw if isinstance(raw, bool) else MISSING
    if tp is int:
        return lambda raw: raw if isinstance(raw, int) and not isinstance(raw, bool) else MISSING
    return lambda raw: raw if isinstance(raw, str) else MISSING


_Plan = tuple[tuple[str, str, bool, _Decoder], ...]
_PLANS: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    """Per field of ``cls``: attribute name, wire key, omit_empty and how to decode it."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            (f.name, f.metadata["key"], f.metadata["omit_empty"], _decoder(hints[f.name]))
            for f in fields(cls)
        )
        _PLANS[cls] = plan
    return plan


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _to_dict(value)
    return value


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, omit_empty, _ in _plan(type(obj)):
        value = getattr(obj, name)
        if value is None or (omit_empty and value == ""):
            continue
        out[key] = _encode(value)
    return out


def from_dict(cls: type[T], doc: object) -> T:
    """A ``cls`` (one of this module's dataclasses) read tolerantly from its wire form."""
    values: dict[str, Any] = {}
    if isinstance(doc, Mapping):
        for name, key, _, decode in _plan(cls):
            if key in doc:
                value = decode(doc[key])
                if value is not MISSING:
                    values[name] = value
    return cls(**values)


def _schema(tp: Any) -> dict[str, Any]:
    tp = _optional(tp)
    if is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return {
            "type": "object",
            "properties": {f.metadata["key"]: _schema(hints[f.name]) for f in fields(tp)},
        }
    if typing.get_origin(tp) is tuple:
        return {"type": "array", "items": _schema(typing.get_args(tp)[0])}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    # nullable: the API server turns an empty string that a merge patch adds into null (seen on
    # v1.20 for "" in a new list item or object, e.g. the core group), and the type must accept
    # what it stores; from_dict reads null as "".
    return {"type": "string", "nullable": True}


def status_schema() -> dict[str, Any]:
    """The OpenAPI schema of ``status`` that the Application CRD declares (generated)."""
    return _schema(ApplicationStatus)
