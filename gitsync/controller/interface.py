"""The controller as its front-ends see it: the ``ControllerView`` protocol the web layer is written
against, and the request annotations a front-end writes for the reconciler to act on.

``gitsync.controller.Controller`` implements ``ControllerView`` with public methods only, so the
web layer never reaches into the controller's internals (its engines, its cluster registry): it
asks for a diff with ``application_diff`` and for a destination cluster's client with
``cluster_client``. Unit tests serve the web layer from a small in-memory implementation of the
same protocol. This module is the only part of ``gitsync.controller`` that ``gitsync.web`` may
import (import-linter: ``web-controller-interface``); it imports nothing else of the controller,
so depending on it does not pull the controller in.

The diff a front-end gets back is described structurally (``AppDiff``): the engine's ``AppState``
satisfies it, and a front-end reads only the revision and the per-resource comparison - Secret
values are already masked there (``gitsync.diff.masking``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gitsync.errors import TransientError
from gitsync.model import AppKey, ResourceKey
from gitsync.webhook import PushEvent

# Request annotations on an Application: written by `gitsync sync|refresh|rollback|resume` and the
# web UI's actions, acted on by ``gitsync.controller.reconciler``. Wire names users type.
SYNC_REQUEST = "gitsync.dev/sync-request"  # "<nonce>[;prune]" written by `gitsync sync APP`
REFRESH_REQUEST = "gitsync.dev/refresh"
ROLLBACK_REQUEST = "gitsync.dev/rollback-to"  # history id
AUTOMATION_PAUSED = "gitsync.dev/automation-paused"  # set by rollback, removed by resume

EVENT_TYPES = ("Normal", "Warning")
MAX_EVENTS_PER_APP = 10_000  # the largest --events-per-app, and so the largest ?limit=
MAX_FIELD = 253


@dataclass(frozen=True)
class EventQuery:
    """``?kind=&name=&namespace=&type=&limit=``: which of an app's Events to answer with."""

    kind: str = ""
    name: str = ""
    namespace: str = ""
    type: str = ""
    limit: int = 0  # 0: all that are kept

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> EventQuery:
        """Strict: an unknown parameter or a bad value raises ``ValueError`` naming it."""
        unknown = sorted(set(args) - {"kind", "name", "namespace", "type", "limit"})
        if unknown:
            raise ValueError(f"unknown query parameter {unknown[0]!r}")
        for name in ("kind", "name", "namespace"):
            if len(args.get(name, "")) > MAX_FIELD:
                raise ValueError(f"{name}: longer than {MAX_FIELD} characters")
        event_type = args.get("type", "")
        if event_type and event_type not in EVENT_TYPES:
            raise ValueError(f"type: must be one of {', '.join(EVENT_TYPES)}")
        raw_limit = args.get("limit", "")
        limit = 0
        if raw_limit:
            ok = len(raw_limit) <= 6 and raw_limit.isascii() and raw_limit.isdigit()
            if not ok or not 1 <= int(raw_limit) <= MAX_EVENTS_PER_APP:
                raise ValueError(f"limit: must be a whole number from 1 to {MAX_EVENTS_PER_APP}")
            limit = int(raw_limit)
        return cls(
            kind=args.get("kind", ""),
            name=args.get("name", ""),
            namespace=args.get("namespace", ""),
            type=event_type,
            limit=limit,
        )


@dataclass(frozen=True)
class AppEvents:
    """An app's Events as the API answers them: ``items`` newest first (documents as in
    docs/api.md) and ``loading``, the namespaces whose Events are still being listed for the
    first time. Loading is a normal state (the first look at a busy namespace under load can take
    seconds): the items are then those known so far, and the caller asks again shortly."""

    items: list[dict[str, Any]]
    loading: tuple[str, ...] = ()


class EventsUnavailableError(TransientError):
    """A namespace's Events cannot be listed - the stream fails (RBAC forbids listing Events,
    the API server answers errors) - as opposed to not being listed *yet*. The message names
    the namespace and the last error."""


class ApplicationStoreView(Protocol):
    """The part of the controller's ``ApplicationStore`` the web actions use."""

    def get(self, key: AppKey) -> dict[str, Any] | None: ...

    def patch_annotations(self, key: AppKey, annotations: dict[str, str | None]) -> None: ...


class KubeAccess(Protocol):
    """The part of ``gitsync.kube.KubeClient`` the rollout panel uses: read a Rollout, and write
    a request annotation on it (a merge patch, like ``kubectl annotate``)."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None: ...

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: str = "merge",
    ) -> dict[str, Any]: ...


class RevisionView(Protocol):
    """The commit a diff was computed at (``gitsync.source.Revision``)."""

    @property
    def sha(self) -> str: ...
    @property
    def ref(self) -> str: ...


class ResourceDiffView(Protocol):
    """One resource's comparison (``gitsync.diff.ResourceDiff``)."""

    @property
    def key(self) -> ResourceKey: ...
    @property
    def status(self) -> str: ...
    @property
    def unified(self) -> str: ...
    @property
    def changed_paths(self) -> tuple[str, ...]: ...
    @property
    def error(self) -> str | None: ...


class ComparisonView(Protocol):
    """Desired against live for every resource of an app (``gitsync.sync.Comparison``)."""

    @property
    def diffs(self) -> Sequence[ResourceDiffView]: ...
    @property
    def errors(self) -> Sequence[tuple[Any, str]]: ...
    @property
    def in_sync(self) -> bool: ...


class AppDiff(Protocol):
    """What ``ControllerView.application_diff`` answers (``gitsync.engine.AppState``)."""

    @property
    def revision(self) -> RevisionView: ...
    @property
    def comparison(self) -> ComparisonView: ...


class ManifestView(Protocol):
    """One rendered object (``gitsync.render.RenderedManifest``)."""

    @property
    def key(self) -> ResourceKey: ...
    @property
    def obj(self) -> dict[str, Any]: ...


class RenderedRevisionView(Protocol):
    """What ``ControllerView.application_manifests`` answers (``gitsync.engine.RenderedRevision``):
    the objects one revision renders to. They are the unmasked desired objects - Secrets
    included - so a front-end diffs them with ``gitsync.diff`` (which masks) and never shows
    them as they are."""

    @property
    def revision(self) -> RevisionView: ...
    @property
    def manifests(self) -> Sequence[ManifestView]: ...


class ControllerView(Protocol):
    """What the web layer needs from the controller."""

    @property
    def ready(self) -> bool: ...

    @property
    def store(self) -> ApplicationStoreView: ...

    def on_push(self, event: PushEvent) -> int: ...

    def application_objects(self) -> list[dict[str, Any]]: ...

    def application_set_objects(self) -> list[dict[str, Any]]:
        """Every ApplicationSet with its status, from the controller's watch cache (none when
        the controller does not run ApplicationSets)."""
        ...

    def refresh(self, key: AppKey, reason: str = "manual") -> None: ...

    def application_diff(self, key: AppKey) -> AppDiff | None:
        """Compare one Application with Git now, as a reconcile would (no write, no sync); None
        when there is no such Application. Raises ``SpecError`` for an invalid spec and another
        ``GitsyncError`` when the compare fails."""
        ...

    def application_tree(self, key: AppKey, *, orphans: bool = False) -> dict[str, Any] | None:
        """The Application's managed objects, each with its live children (ReplicaSets, Pods,
        EndpointSlices...) from the controller's watch cache - the document of
        ``GET /api/v1/applications/<ns>/<name>/tree``; None when there is no such Application.
        ``orphans``: also list objects of its namespaces that nothing managed owns. Raises
        ``GitsyncError`` when its destination cluster is not registered."""
        ...

    def application_manifests(self, key: AppKey, revision: str) -> RenderedRevisionView | None:
        """Render one Application at ``revision`` (a history entry's) with its current spec -
        fetch and render, nothing read from or written to the cluster; None when there is no
        such Application. Raises ``SpecError`` for an invalid spec and another ``GitsyncError``
        when the fetch or render fails."""
        ...

    def application_events(self, key: AppKey, query: EventQuery) -> AppEvents | None:
        """The app's Kubernetes Events matching ``query``, newest first, with the namespaces
        still loading; None when there is no such Application. Raises
        ``EventsUnavailableError`` when a namespace's Events cannot be listed."""
        ...

    def cluster_client(self, name: str) -> KubeAccess:
        """The client of destination cluster ``name`` (``spec.destination.name``; "" and
        ``in-cluster`` are the controller's own cluster): the rollout panel reads and annotates
        Rollouts through it. Raises ``GitsyncError`` when the cluster is not registered."""
        ...
