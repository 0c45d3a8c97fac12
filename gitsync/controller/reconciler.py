"""One reconcile of one Application: cheap check, compare, maybe sync, finalize status.

The order of work, and why:

1. **Parse the spec.** A bad spec is *Stalled* (terminal): nothing is fetched or applied.
2. **Cheap remote check**: one ``ls-remote`` turns ``targetRevision`` into a SHA. A failure here
   (server down, bad credentials, an HTML page) is reported on the conditions and nothing else
   happens - no apply, and above all no prune.
3. **Compare** only when something may have changed: a new SHA, a watched live object changed, a
   manual request, or the periodic full compare is due. Otherwise the reconcile ends with zero API
   requests beyond the ls-remote.
4. **Sync** when automated and out of sync (new revision; or drift with ``selfHeal``, with backoff
   2 s, 4 s, ... capped at 5 min), when requested by hand, or to finish an operation a crashed
   process left ``Running``. The operation is persisted as ``Running`` *before* anything is
   applied, and its history entry is keyed by the operation id, so a resumed operation applies
   nothing twice (unchanged objects are never written) and records one history entry.
   A revision whose sync failed is retried per ``spec.syncPolicy.retry`` and not hot-looped.
5. **Finalize status** in one place, written only if it differs from what is stored.

An app being deleted with a resources finalizer takes another path (``_delete``), Argo CD's:
PreDelete hooks of the revision it last synced, then its objects deleted, then PostDelete hooks,
then the finalizer off; each step persisted in ``operationState.deletionStep`` under an id stable
for the deletion, so a restart neither skips a step nor creates a hook twice.

Each step is a method named after it (``_open_pass``, ``_compare_due``, ``_automated``, ``_sync``,
``_finish``); what decides between branches is a module function over plain data (``Requests``,
``initiator``, ``resumes``, ``failed_sync_to_retry``, ``automated_sync_on``, ``next_attempt_at``,
``retry_delay``), and time is the injected ``clock``, so ``tests/unit/test_reconcile_decisions.py``
drives every branch without a control plane.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from gitsync.application import Application, Backoff, SpecError, parse_application
from gitsync.application_status import (
    SOURCE_TYPES,
    ApplicationStatus,
    DependencyWait,
    HealthSummary,
    HistoryEntry,
    HookStatus,
    OperationState,
    ResourceResult,
    SourceRevision,
    SyncSummary,
    SyncWindowState,
)
from gitsync.controller import status as st
from gitsync.controller.apps import ApplicationStore
from gitsync.controller.dependencies import describe_cycle, find_cycle, waits
from gitsync.controller.interface import (
    AUTOMATION_PAUSED,
    ROLLBACK_REQUEST,
    SYNC_REQUEST,
)
from gitsync.controller.metrics import Metrics
from gitsync.engine import AppState, SourceNotPermittedError, StageError
from gitsync.errors import GitsyncError, NextStep, TerminalError, next_step
from gitsync.kube import ApiError, ApiRejectedError
from gitsync.model import AppKey, HealthStatus, ResourceKey, SyncStatus, short_revision
from gitsync.render.hooks import HookPhase
from gitsync.rollout import RolloutStepResult
from gitsync.sync import SyncResult
from gitsync.sync.deletion import AppDeletion, Propagation, resources_finalizer
from gitsync.sync.hooks import HookResult, phase_failed
from gitsync.sync_windows import ALLOWED, SyncWindow, WindowVerdict, can_sync, combined

log = structlog.get_logger(__name__)

HEAL_MIN, HEAL_MAX = 2.0, 300.0
API_RETRY_MIN, API_RETRY_MAX = 1.0, 60.0  # backoff when the API server fails a reconcile
WAIT_DELAY = 5.0  # a WaitingError that did not say how long
PROGRESSING_REQUEUE = 5.0  # health moves without spec changes: look again this soon
DELETE_POLL = 2.0  # a deleted app's objects are going: look again this soon
DELETE_RETRY_MIN, DELETE_RETRY_MAX = 5.0, 300.0  # a failed deletion hook is retried so


def _revisions(state: AppState) -> tuple[str, ...] | None:
    """``revisions`` for status and history: per source, only for a ``spec.sources`` app."""
    return tuple(r.sha for r in state.revision.sources) or None


class Trigger(enum.StrEnum):
    """Why an app was queued. A reconcile gets the set of them (the queue merges triggers that
    arrive while the app waits); only the head check cares which (``head_max_age``). Members
    are strings, so the queue, logs and a web action's own reason (``web:<action>``) mix."""

    INTERVAL = "interval"  # the periodic refresh
    STARTUP = "startup"  # this replica became leader, or started
    REQUEUE = "requeue"  # the previous pass asked to come back (a backoff, a rollout step)
    LIVE_CHANGE = "live-change"  # a watched object the app manages changed
    APPLICATION_CHANGED = "application-changed"  # the Application itself (spec, annotations)
    DELETED = "deleted"
    MANUAL = "manual"  # `gitsync refresh`, the API
    SHARD_ACQUIRED = "shard-acquired"  # another replica had it: compare afresh
    RETRY_AFTER_CRASH = "retry-after-crash"  # an unclassified error (a bug) ended the pass
    DEPENDENCY = "dependency"  # an app in its spec.dependsOn changed (readiness, revision, spec)

    @staticmethod
    def push(provider: str) -> str:
        """A push webhook from ``provider`` (``PUSH_TRIGGER_PREFIX`` + its name)."""
        return f"{PUSH_TRIGGER_PREFIX}{provider}"


# Triggers that are not news from Git: their head check may share an ``ls-remote`` of the same
# repository started up to HEAD_MAX_AGE seconds earlier (``SourceCache.resolve``), so a thousand
# apps on one repository refreshing together cost a few listings, not a thousand. A push webhook
# may share only a listing that started after the webhook arrived (it sees the push), so a push
# to a repository a thousand apps follow costs one listing, not a thousand. Any other trigger (a
# manual refresh, a spec change) lists for itself.
SHARED_HEAD_TRIGGERS = frozenset(
    {Trigger.INTERVAL, Trigger.LIVE_CHANGE, Trigger.STARTUP, Trigger.REQUEUE, Trigger.DEPENDENCY}
)
PUSH_TRIGGER_PREFIX = "push:"
HEAD_MAX_AGE = 2.0


def head_max_age(reasons: set[str], since_push: float | None = None) -> float:
    """How old a shared ``ls-remote`` this reconcile's head check may use (0: its own).

    ``since_push`` is how long ago the latest push webhook for the app arrived (None: unknown)."""
    pushes = {r for r in reasons if r.startswith(PUSH_TRIGGER_PREFIX)}
    others = reasons - pushes
    age = HEAD_MAX_AGE if others and others <= SHARED_HEAD_TRIGGERS else 0.0
    if not pushes:
        return age
    if since_push is None:
        return 0.0
    return max(0.0, since_push if not others else min(age, since_push))


class AutoSync(enum.StrEnum):
    """Automated sync's decision about an app that is out of sync."""

    SYNC = "sync"  # a new revision, or drift to self-heal now
    WAIT = "wait"  # a failed sync's retry or a self-heal backoff is not due yet: come back
    HOLD = "hold"  # leave it OutOfSync: retries exhausted, or drift without selfHeal


@dataclass
class AppRuntime:
    """In-memory state per Application; everything that must survive a restart is in status."""

    last_sha: str = ""
    last_compare: float = 0.0
    live_dirty: bool = True
    heal_delay: float = 0.0
    last_heal: float = 0.0
    failed_revision: str = ""
    failures: int = 0
    retry_at: float = 0.0
    fetch_failures: int = 0
    stage_failures: int = 0
    """Renders/compares failed in a row: counted apart from ``fetch_failures``, which the
    head check before each compare resets, so the backoff of a broken render grows."""
    api_failures: int = 0
    seen_generation: int = -1
    seen_annotations: dict[str, str] = field(default_factory=dict)
    rollouts: list[ResourceKey] = field(default_factory=list)
    pushed_at: float | None = None  # time.monotonic() when the latest push webhook arrived
    interval: float | None = None  # spec.interval in seconds, when the spec parsed
    not_before: float = 0.0  # self.clock() before which the API server asked us to stay away
    waited_for: list[tuple[str, str]] | None = None
    """The dependencies the last wait Event named (None: none recorded by this process yet)."""
    parsed: tuple[str, ApplicationStatus, Application] | None = None
    """The status and spec parsed from the Application at a resourceVersion: an unchanged
    object is not parsed again (both are immutable), which was a fifth of a no-change refresh."""


class AppEngine(Protocol):
    """What a reconcile asks of the engine serving the app's destination cluster
    (``gitsync.engine.Engine``): the reconciler is given one per app by ``engine_for`` and calls
    only these, never the engine's sources, credentials or rollout executor directly."""

    def check_source(self, app: Application) -> None:
        """Raise ``SpecError`` when the destination policy does not allow the app's repository."""
        ...

    def resolve_revision(self, app: Application, *, max_age: float = 0.0) -> str:
        """The commit the app's ``targetRevision`` names now (the cheap remote check)."""
        ...

    def compare(self, app: Application, sha: str | None = None) -> AppState: ...

    def sync(
        self,
        app: Application,
        *,
        dry_run: bool = False,
        prune: bool | None = None,
        state: AppState | None = None,
        operation: str = "",
    ) -> tuple[AppState, SyncResult]: ...

    def tick_rollouts(
        self, app: Application, rollouts: Sequence[ResourceKey]
    ) -> list[RolloutStepResult] | None:
        """Advance the app's Rollouts one step each; None when the app has no identity yet."""
        ...

    def delete_resources(self, app: Application, propagation: Propagation) -> AppDeletion:
        """One round of deleting the objects of an app deleted with a resources finalizer."""
        ...

    def run_delete_hooks(
        self, app: Application, revision: str, phase: HookPhase, *, operation: str
    ) -> list[HookResult]:
        """Render the app at ``revision`` and run its PreDelete or PostDelete hooks."""
        ...


class Notifier(Protocol):
    """Notifications (``gitsync.controller.notifications``): ``plan`` records in the status
    about to be written which deliveries it calls for and returns them; ``enqueue`` hands them
    to delivery once that write succeeded. Neither waits on a provider."""

    def plan(self, key: AppKey, status: ApplicationStatus) -> Sequence[Any]: ...

    def enqueue(self, key: AppKey, deliveries: Sequence[Any]) -> None: ...


@dataclass
class _Pass:
    """Everything one reconcile of one app works with."""

    key: AppKey
    app: Application
    engine: AppEngine
    rt: AppRuntime
    old: ApplicationStatus
    new: ApplicationStatus
    generation: int
    bound: Any
    head_max_age: float = 0.0
    annotations: dict[str, str] = field(default_factory=dict)
    window: WindowVerdict = ALLOWED  # a sync window blocking the sync this pass wanted
    waiting: tuple[DependencyWait, ...] = ()  # spec.dependsOn entries automated sync waits for
    deleting: bool = False  # metadata.deletionTimestamp is set
    finalizers: tuple[str, ...] = ()
    deletion: str = ""  # the deletion's id (``deletion_id``) while deleting


@dataclass
class ReconcileResult:
    """What the reconcile wants next: requeue after ``requeue`` seconds (None: at the interval).
    ``interval`` is the app's refresh interval when its spec parsed, so the caller scheduling
    the next refresh does not parse the Application a second time (a tenth of a no-change
    refresh at 1,000 apps)."""

    requeue: float | None = None
    interval: float | None = None


class Initiator(enum.StrEnum):
    """Who started an operation (``operationState.initiatedBy``, a history entry's)."""

    AUTOMATED = "automated"
    MANUAL = "manual"  # `gitsync sync APP`: the sync-request annotation
    ROLLBACK = "rollback"  # the rollback-to annotation
    DELETION = "deletion"  # the app was deleted with a resources finalizer (no history entry)


INITIATORS = frozenset(str(i) for i in Initiator)


@dataclass(frozen=True)
class Requests:
    """What the Application's annotations ask of this pass, next to what status says was
    already handled (a request is answered once, however often the app is reconciled)."""

    sync_request: str = ""
    manual: bool = False  # a sync request not handled yet
    rollback: str = ""  # the history id a rollback asks for
    rollback_pending: bool = False  # ... not handled yet
    paused: bool = False  # automated sync paused (a rollback sets it, `resume` removes it)

    @classmethod
    def read(cls, annotations: Mapping[str, str], status: ApplicationStatus) -> Requests:
        sync_request = annotations.get(SYNC_REQUEST, "")
        rollback = annotations.get(ROLLBACK_REQUEST, "")
        return cls(
            sync_request=sync_request,
            manual=bool(sync_request) and sync_request != status.last_handled_sync_request,
            rollback=rollback,
            rollback_pending=bool(rollback) and rollback != status.last_handled_rollback,
            paused=AUTOMATION_PAUSED in annotations,
        )

    @property
    def prune(self) -> bool | None:
        """A manual sync asked with ``;prune`` prunes whatever the policy says; None: the
        policy decides."""
        return True if self.sync_request.endswith(";prune") else None


def rollback_revision(status: ApplicationStatus, history_id: str) -> str | None:
    """The revision of history entry ``history_id``; None when status no longer holds it."""
    entry = next((h for h in status.history or () if str(h.id) == history_id), None)
    return None if entry is None else entry.revision


def resumes(op: OperationState, pinned: str | None, sha: str) -> bool:
    """Whether the pass finishes an operation a crashed process left Running. Not when the
    interrupted sync's revision is no longer what Git says (and no rollback pins it): finishing
    it would prune objects the new head declares again (a revert pushed while the controller
    was down). The head is synced instead; the inventory the interrupted sync wrote ahead of its
    applies (``Syncer.sync``) lets that sync prune what it had created."""
    if op.phase != "Running":
        return False
    return bool(pinned) or not op.revision or op.revision == sha


def failed_sync_to_retry(op: OperationState, status: ApplicationStatus, sha: str) -> bool:
    """A sync of ``sha`` failed (e.g. at its inventory write) and nothing applied it since: it
    is retried even when every object already matches, since only a finished sync records the
    inventory and history."""
    return op.phase == "Failed" and op.revision == sha and status.last_applied_revision != sha


def initiator(op: OperationState, resume: bool, req: Requests) -> Initiator | None:
    """Who starts a sync regardless of the comparison: the interrupted operation's initiator,
    a rollback, a manual request. None: only automated sync may, if the app is out of sync."""
    if resume:
        return Initiator(op.initiated_by) if op.initiated_by in INITIATORS else Initiator.AUTOMATED
    if req.rollback_pending:
        return Initiator.ROLLBACK
    if req.manual:
        return Initiator.MANUAL
    return None


def automated_sync_on(app: Application, paused: bool) -> bool:
    """``syncPolicy.automated``, unless the app is suspended or its automation paused."""
    return app.sync_policy.automated and not app.suspend and not paused


def next_attempt_at(rt: AppRuntime, sha: str, now: float) -> float:
    """When automated sync that said ``AutoSync.WAIT`` may try ``sha`` again: the failed
    revision's retry while it is not due, else the end of the self-heal backoff."""
    if rt.failed_revision == sha and now < rt.retry_at:
        return rt.retry_at
    return rt.last_heal + rt.heal_delay


def retry_delay(backoff: Backoff, failures: int) -> float:
    """``spec.syncPolicy.retry.backoff`` after the ``failures``-th failed sync of a revision."""
    return min(backoff.duration * backoff.factor ** (failures - 1), backoff.max_duration)


class DeletionStep(enum.StrEnum):
    """Where the deletion of an app with a resources finalizer is (Argo CD's order), persisted
    in ``operationState.deletionStep`` so a restarted controller goes on from there."""

    PRE_DELETE = "PreDelete"  # render the revision last synced, run its PreDelete hooks
    DELETE_RESOURCES = "DeleteResources"  # delete the managed objects, until they are gone
    POST_DELETE = "PostDelete"  # run the PostDelete hooks, then take the finalizer off


def deletion_id(uid: str, deletion_timestamp: str) -> str:
    """The id of one deletion of one app: the same on every pass and after a restart (so a
    hook's resume lookup finds what an earlier pass created), different for a re-created app
    of the same name."""
    digest = hashlib.sha256(f"{uid}|{deletion_timestamp}".encode()).hexdigest()[:12]
    return f"delete-{digest}"


def deletion_operation(op: OperationState, deletion: str, revision: str) -> OperationState:
    """The deletion's operation state: ``op`` when it already is this deletion's, else a new
    one at its first step, for ``revision`` (the one the app last synced). Its id is the
    deletion's id and the attempt (``-1``): each retry of a failed hook step is a new attempt,
    so its hooks are created afresh rather than found failed again."""
    if op.initiated_by == Initiator.DELETION and op.id.rpartition("-")[0] == deletion:
        return op
    return OperationState(
        id=f"{deletion}-1",
        phase="Running",
        revision=revision,
        initiated_by=str(Initiator.DELETION),
        started_at=st.now_rfc3339(),
        message="deleting the application",
        deletion_step=str(DeletionStep.PRE_DELETE),
    )


def next_deletion_attempt(op: OperationState) -> OperationState:
    """A failed deletion step tried again: the same step, the next attempt's id."""
    base, _, attempt = op.id.rpartition("-")
    n = int(attempt) + 1 if attempt.isdigit() else 2
    return dataclasses.replace(op, id=f"{base}-{n}", phase="Running", finished_at="")


def hook_statuses(hooks: Sequence[HookResult]) -> tuple[HookStatus, ...]:
    """Hook results as ``operationState.hooks`` records them (bounded)."""
    return tuple(
        HookStatus(
            h.key.group,
            h.key.kind,
            h.key.namespace,
            h.key.name,
            str(h.phase),
            str(h.outcome),
            h.message[:512],
            int(h.duration * 1000),
        )
        for h in hooks[: st.RESOURCE_LIMIT]
    )


def window_verdict(
    app: Application, project_windows: Sequence[SyncWindow], now: dt.datetime, *, manual: bool
) -> WindowVerdict:
    """What the sync windows say about syncing ``app`` at ``now``: its project's windows that
    match it (the local cluster is ``in-cluster`` to ``clusters`` globs, as in Argo CD) and its
    own, each set judged alone (``can_sync``), blocked when either blocks, so
    an app's own allow window never opens what its project keeps closed."""
    matched = [
        w
        for w in project_windows
        if w.matches(app.name, app.destination.namespace, app.destination.name or "in-cluster")
    ]
    return combined(
        can_sync(matched, now, manual=manual), can_sync(app.sync_windows, now, manual=manual)
    )


def window_requeue(verdict: WindowVerdict, now: dt.datetime, interval: float) -> float:
    """Seconds until a blocked app looks again: just after the window ends, at the latest at
    its refresh interval (a window that never ends, or ends in days, is looked at again)."""
    if verdict.until is None:
        return interval
    return max(1.0, min((verdict.until - now).total_seconds() + 1.0, interval))


def window_state(verdict: WindowVerdict) -> SyncWindowState | None:
    """``status.syncWindow`` for a verdict; None while no window blocks."""
    if verdict.allowed:
        return None
    until = verdict.until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if verdict.until else ""
    return SyncWindowState(until, verdict.message[:1024])


class Reconciler:
    def __init__(
        self,
        store: ApplicationStore,
        engine_for: Callable[[Application], AppEngine],
        *,
        metrics: Metrics | None = None,
        full_compare_every: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sync_windows: Callable[[Application], Sequence[SyncWindow]] = lambda _app: (),
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        cross_namespace_refs: bool = True,
        notifier: Notifier | None = None,
    ):
        """``sync_windows``: the windows of an app's project (the policy's); ``wall_clock``:
        the time windows are judged at (``clock`` is monotonic, for delays only);
        ``cross_namespace_refs``: False refuses a ``spec.dependsOn`` entry in another
        namespace (``serve --no-cross-namespace-refs``)."""
        self.store = store
        self.cross_namespace_refs = cross_namespace_refs
        self.sync_windows = sync_windows
        self.wall_clock = wall_clock
        self.engine_for = engine_for
        self.metrics = metrics
        self.full_compare_every = full_compare_every
        self.clock = clock
        self.runtime: dict[AppKey, AppRuntime] = {}
        self.notifier = notifier

    def mark_live_change(self, key: AppKey) -> None:
        self.runtime.setdefault(key, AppRuntime()).live_dirty = True

    def mark_pushed(self, key: AppKey) -> None:
        """A push webhook for the app arrived now (before it is queued): its head check may
        share a listing that started later (``head_max_age``). ``time.monotonic``, the clock
        of ``SourceCache``'s listings, not ``self.clock``."""
        self.runtime.setdefault(key, AppRuntime()).pushed_at = time.monotonic()

    # -- the reconcile -------------------------------------------------------------------------

    def reconcile(self, key: AppKey, reasons: set[str]) -> ReconcileResult:
        outcome = self._reconcile_app(key, reasons)
        rt = self.runtime.get(key)
        outcome.interval = rt.interval if rt is not None else None
        return outcome

    def _reconcile_app(self, key: AppKey, reasons: set[str]) -> ReconcileResult:
        obj = self.store.get(key)
        if obj is None:
            self.runtime.pop(key, None)
            if self.metrics:
                self.metrics.forget_app(*key)
            return ReconcileResult()
        rt = self.runtime.setdefault(key, AppRuntime())
        wait = rt.not_before - self.clock()
        if wait > 0:  # a 429's Retry-After: no trigger (a watch event, a push) may cut it short
            return ReconcileResult(requeue=wait)
        rt.interval = None  # until the spec parses
        started = self.clock()
        p = self._open_pass(key, obj, rt, reasons)
        if p is None:
            return ReconcileResult()
        try:
            outcome = self._delete(p) if p.deleting else self._reconcile(p)
        except Exception as exc:
            rt.live_dirty = True  # the pass did not finish: the next one must compare again
            step = next_step(exc)
            if step is None:
                raise  # not classified, so a bug: the worker logs it and retries later
            assert isinstance(exc, GitsyncError)
            return self._pass_failed(p, exc, step)
        else:
            rt.api_failures = 0
            return outcome
        finally:
            if self.metrics:
                self.metrics.reconcile_duration.observe(self.clock() - started)

    def _open_pass(
        self, key: AppKey, obj: dict[str, Any], rt: AppRuntime, reasons: set[str]
    ) -> _Pass | None:
        """Parse the spec and find the app's engine; None when either fails (the app is
        Stalled, status written: nothing is fetched or applied)."""
        bound = log.bind(app=f"{key[0]}/{key[1]}", trigger=",".join(sorted(reasons)))
        version = str(obj.get("metadata", {}).get("resourceVersion") or "")
        memo = rt.parsed if version and rt.parsed and rt.parsed[0] == version else None
        old = memo[1] if memo else ApplicationStatus.from_dict(obj.get("status"))
        new = old.copy()
        generation = int(obj.get("metadata", {}).get("generation") or 0)
        annotations = dict(obj.get("metadata", {}).get("annotations") or {})
        deletion_timestamp = str(obj.get("metadata", {}).get("deletionTimestamp") or "")
        deleting = bool(deletion_timestamp)
        uid = str(obj.get("metadata", {}).get("uid") or "")
        finalizers = tuple(str(f) for f in obj.get("metadata", {}).get("finalizers") or ())
        try:
            app = memo[2] if memo else parse_application(obj)
        except SpecError as exc:
            self._stalled(new, generation, "InvalidSpec", str(exc))
            self._write(key, new, old)
            return None
        rt.parsed = (version, old, app) if version else None
        rt.interval = app.interval
        new.observed_generation = generation
        problem = None if deleting else self._dependency_problem(app)
        if problem is not None:
            new.waiting_for = None
            self._stalled(new, generation, *problem)
            self._write(key, new, old)
            return None
        if generation != rt.seen_generation or annotations != rt.seen_annotations:
            rt.seen_generation, rt.seen_annotations = generation, annotations
            rt.live_dirty = True  # the spec or a request annotation changed: compare again
        try:
            engine = self.engine_for(app)
        except TerminalError as exc:  # the destination cluster is unknown or its kubeconfig refused
            self._stalled(new, generation, "InvalidDestination", str(exc))
            self._write(key, new, old)
            return None
        try:
            if not deleting:  # a repository no longer allowed must not keep the app's objects
                engine.check_source(app)  # sourceRepos: before any credential or connection
        except SpecError as exc:
            self._stalled(new, generation, "InvalidSpec", str(exc))
            self._write(key, new, old)
            return None
        since_push = None if rt.pushed_at is None else time.monotonic() - rt.pushed_at
        max_age = head_max_age(reasons, since_push)
        return _Pass(
            key,
            app,
            engine,
            rt,
            old,
            new,
            generation,
            bound,
            max_age,
            annotations,
            deleting=deleting,
            finalizers=finalizers,
            deletion=deletion_id(uid, deletion_timestamp) if deleting else "",
        )

    def _reconcile(self, p: _Pass) -> ReconcileResult:
        engine, rt, new = p.engine, p.rt, p.new
        op = new.operation_state or OperationState()
        req = Requests.read(p.annotations, new)

        # 2. cheap remote check (skipped when the pass must sync a revision it already knows)
        pinned: str | None = None
        if req.rollback_pending:
            pinned = rollback_revision(new, req.rollback)
            if pinned is None:
                return self._rollback_missing(p, req.rollback)
        elif op.phase == "Running" and op.revision and op.initiated_by == Initiator.ROLLBACK:
            pinned = op.revision
        try:
            sha = pinned or self._resolve_head(p)
        except GitsyncError as exc:
            return self._fetch_failed(p, exc)
        rt.fetch_failures = 0
        resume = resumes(op, pinned, sha)
        rollout_requeue = self._tick_rollouts(engine, p.app, rt, p.bound)
        retry_failed = failed_sync_to_retry(op, new, sha)
        requested = resume or req.manual or req.rollback_pending or retry_failed
        if not self._compare_due(p, sha, requested=requested):
            # nothing to compare; notifications the status still calls for (a rule created
            # since, a watch that was loading) are recorded and sent now - no write otherwise
            self._write(p.key, p.new, p.old)
            return ReconcileResult(rollout_requeue)

        # 3. compare
        try:
            state = engine.compare(p.app, sha)
        except StageError as exc:
            return self._stage_failed(p, exc)
        rt.stage_failures = 0
        rt.last_sha, rt.last_compare, rt.live_dirty = sha, self.clock(), False
        rt.rollouts = state.rollouts()

        # 4. sync?
        initiated = initiator(op, resume, req)
        requeue: float | None = None
        refused = False
        if initiated in (Initiator.MANUAL, Initiator.ROLLBACK) and not resume:
            refused = self._window_refuses(p, req, initiated)
        if refused:
            initiated = None
            p.rt.live_dirty = True  # the pass after the window decides again
            requeue = window_requeue(p.window, self.wall_clock(), p.app.interval)
        if initiated is None and not refused and (not state.comparison.in_sync or retry_failed):
            initiated, requeue = self._automated(p, sha, req.paused)
        if initiated is not None:
            resumed = op if resume else None
            state, requeue = self._sync(
                p, state, sha, resumed=resumed, initiated=initiated, req=req
            )

        # 5. finalize
        return self._finish(p, state, req.paused, requeue, rollout_requeue)

    def _delete(self, p: _Pass) -> ReconcileResult:
        """The Application is being deleted. With a resources finalizer, Argo CD's order: run
        the PreDelete hooks of the revision it last synced, delete its objects
        (``gitsync.sync.deletion``, coming back until they are gone), run its PostDelete hooks,
        take the finalizer off. A failed hook, or a revision that cannot be fetched or
        rendered, stops the deletion there (nothing deleted before PreDelete succeeded; the
        finalizer kept until PostDelete did), says why and tries again with backoff. Without a
        resources finalizer, nothing (its objects stay). Nothing is synced any more either way.
        Each step is persisted before it starts, so a restart goes on where it was."""
        found = resources_finalizer(p.finalizers)
        if found is None:
            return ReconcileResult()
        finalizer, propagation = found
        op = deletion_operation(
            p.new.operation_state or OperationState(),
            p.deletion,
            p.new.last_applied_revision or "",
        )
        if op.phase == "Failed":
            wait = p.rt.retry_at - self.clock()
            if wait > 0:  # another trigger came before the retry is due
                return ReconcileResult(requeue=wait)
            op = next_deletion_attempt(op)
        if op.deletion_step == DeletionStep.PRE_DELETE:
            op, stopped = self._delete_hooks(p, op, HookPhase.PRE_DELETE)
            if stopped is not None:
                return stopped
            op = dataclasses.replace(op, deletion_step=str(DeletionStep.DELETE_RESOURCES))
        if op.deletion_step == DeletionStep.DELETE_RESOURCES:
            p.new.operation_state = op
            waiting = self._delete_objects(p, propagation)
            if waiting is not None:
                return waiting
            op = dataclasses.replace(op, deletion_step=str(DeletionStep.POST_DELETE))
        op, stopped = self._delete_hooks(p, op, HookPhase.POST_DELETE)
        if stopped is not None:
            return stopped
        p.new.operation_state = dataclasses.replace(
            op,
            phase="Succeeded",
            finished_at=st.now_rfc3339(),
            message="the app's objects are deleted",
        )
        self._persist(p)
        self.store.record_event(
            p.key, "ResourcesDeleted", f"the app's objects are deleted; removing {finalizer}"
        )
        self.store.remove_finalizer(p.key, finalizer)
        p.bound.info("application released", finalizer=finalizer)
        return ReconcileResult()

    def _delete_hooks(
        self, p: _Pass, op: OperationState, phase: HookPhase
    ) -> tuple[OperationState, ReconcileResult | None]:
        """Run the deletion's ``phase`` hooks; the operation after them, and the pass's result
        when the deletion stops here (a failed hook, a failed fetch or render)."""
        op = dataclasses.replace(op, deletion_step=str(phase))
        p.new.operation_state = op
        self._persist(p)  # persisted first: a restart resumes this attempt
        try:
            results = p.engine.run_delete_hooks(p.app, op.revision, phase, operation=op.id)
        except StageError as exc:
            if isinstance(exc.cause, SourceNotPermittedError):
                # the policy no longer allows the repository: it is not read, and its objects
                # must not stay because of it (the deletion without hooks, said out loud)
                why = f"{phase} hooks not run: {exc.cause}"
                p.bound.warning("deletion hooks not run", phase=str(phase), why=str(exc.cause))
                self.store.record_event(p.key, "DeleteHooksNotRun", why[:1024], warning=True)
                return dataclasses.replace(op, message=why[:1024]), None
            return op, self._stage_failed(p, exc)  # nothing deleted on a guess: retried
        p.rt.fetch_failures = 0
        earlier = tuple(h for h in op.hooks or () if h.phase != phase)
        op = dataclasses.replace(op, hooks=(*earlier, *hook_statuses(results)) or None)
        failed = phase_failed(results)
        if failed is None:
            p.rt.failures = 0
            if results:
                p.bound.info("deletion hooks succeeded", phase=str(phase), hooks=len(results))
            return op, None
        p.rt.failures += 1
        delay = min(DELETE_RETRY_MIN * 2 ** (p.rt.failures - 1), DELETE_RETRY_MAX)
        p.rt.retry_at = self.clock() + delay
        blocked = (
            "the app's objects are not deleted"
            if phase == HookPhase.PRE_DELETE
            else "the finalizer stays"
        )
        message = f"{phase} hook {failed.key} failed: {failed.message}; {blocked}"
        p.bound.warning("deletion hook failed", phase=str(phase), hook=str(failed.key))
        p.new.operation_state = dataclasses.replace(
            op, phase="Failed", finished_at=st.now_rfc3339(), message=message[:1024]
        )
        self._retrying(p.new, p.generation, f"{phase}HookFailed", message)
        self._persist(p)
        self.store.record_event(p.key, f"{phase}HookFailed", message[:1024], warning=True)
        return op, ReconcileResult(requeue=delay)

    def _persist(self, p: _Pass) -> None:
        """Write the pass's status now (when changed) and take it as the stored one."""
        self._write(p.key, p.new, p.old)
        p.old = p.new.copy()

    def _delete_objects(self, p: _Pass, propagation: Propagation) -> ReconcileResult | None:
        """One round of deleting the app's objects; the pass's result while some are still
        there, None once they are all gone."""
        outcome = p.engine.delete_resources(p.app, propagation)
        for result in outcome.results:
            p.bound.info("delete", resource=str(result.key), code=result.code, why=result.message)
        if outcome.done:
            return None
        waiting = ", ".join(str(k) for k in outcome.remaining[:3])
        more = len(outcome.remaining) - 3
        message = f"deleting the app's objects ({propagation}); waiting for {waiting}" + (
            f" and {more} more" if more > 0 else ""
        )
        p.new.conditions = st.set_condition(
            p.new.conditions,
            st.RECONCILING,
            True,
            "Deleting",
            message,
            generation=p.generation,
            now=st.now_rfc3339(),
        )
        self._persist(p)
        return ReconcileResult(requeue=DELETE_POLL)

    def _dependency_problem(self, app: Application) -> tuple[str, str] | None:
        """What makes ``spec.dependsOn`` an error (reason and message): an entry in another
        namespace when the operator refuses those, or a cycle through this app (each app on the
        cycle reports it, naming it). None: the app may wait for its dependencies."""
        if not app.depends_on:
            return None
        if not self.cross_namespace_refs:
            for i, ref in enumerate(app.depends_on):
                if ref.namespace != app.namespace:
                    problem = SpecError(
                        f"spec.dependsOn[{i}].namespace",
                        f"{ref} is in another namespace, which this controller refuses "
                        "(--no-cross-namespace-refs)",
                    )
                    return "InvalidSpec", str(problem)
        cycle = find_cycle((app.namespace, app.name), self.store.get)
        if cycle is None:
            return None
        return "DependencyCycle", f"spec.dependsOn: a dependency cycle {describe_cycle(cycle, app)}"

    def _resolve_head(self, p: _Pass) -> str:
        """The revision ``targetRevision`` names now: a SHA (one ``ls-remote``, maybe a shared
        one) or a chart's ``chart@version``."""
        return p.engine.resolve_revision(p.app, max_age=p.head_max_age)

    def _compare_due(self, p: _Pass, sha: str, *, requested: bool) -> bool:
        """Whether this pass compares: something may have changed (a new SHA, a watched object,
        a request), the periodic full compare is due, or a failure condition is showing (so
        recovery clears it). Otherwise the pass costs the ``ls-remote`` alone."""
        rt = p.rt
        return (
            sha != rt.last_sha
            or rt.live_dirty
            or self.clock() - rt.last_compare >= self.full_compare_every
            or requested
            or self._stale_conditions(p.new)
        )

    def _automated(self, p: _Pass, sha: str, paused: bool) -> tuple[Initiator | None, float | None]:
        """Automated sync's answer for an out-of-sync app: sync now, or when to look again
        (None: at the interval, or not at all when automation is off)."""
        app, rt = p.app, p.rt
        if not automated_sync_on(app, paused):
            return None, None
        wall = self.wall_clock()
        verdict = window_verdict(app, self.sync_windows(app), wall, manual=False)
        if not verdict.allowed:
            p.window = verdict
            rt.live_dirty = True  # the pass after the window decides again, on a fresh compare
            p.bound.info("automated sync blocked by a sync window", until=str(verdict.until))
            return None, window_requeue(verdict, wall, app.interval)
        if app.depends_on and (p.new.last_applied_revision != sha or app.sync_policy.self_heal):
            p.waiting = waits(app, self.store.get, sha)
            if p.waiting:  # the controller queues the app again when a dependency changes
                rt.live_dirty = True  # that pass decides again, on a fresh compare
                p.bound.info("automated sync waits", why="; ".join(map(str, p.waiting)))
                return None, None
        decision = self._automated_trigger(app, rt, p.new, sha, p.bound)
        if decision == AutoSync.SYNC:
            return Initiator.AUTOMATED, None
        if decision == AutoSync.WAIT:
            rt.live_dirty = True  # the pass that comes back decides again, on a fresh compare
            now = self.clock()
            return None, max(0.5, next_attempt_at(rt, sha, now) - now)
        return None, None

    def _window_refuses(self, p: _Pass, req: Requests, initiated: Initiator) -> bool:
        """A manual sync or rollback asked while a window blocks it (a deny window without
        ``manualSync``): refused and marked handled (asked again, it is judged again), with
        the reason in ``status.syncWindow`` and an event."""
        verdict = window_verdict(p.app, self.sync_windows(p.app), self.wall_clock(), manual=True)
        if verdict.allowed:
            return False
        p.window = dataclasses.replace(
            verdict, message=f"{initiated} sync refused: {verdict.message}"
        )
        if initiated == Initiator.MANUAL:
            p.new.last_handled_sync_request = req.sync_request
        else:
            p.new.last_handled_rollback = req.rollback
        self.store.record_event(p.key, "SyncBlocked", p.window.message, warning=True)
        p.bound.info("sync refused by a sync window", initiated=initiated)
        return True

    def _sync(
        self,
        p: _Pass,
        state: AppState,
        sha: str,
        *,
        resumed: OperationState | None,
        initiated: Initiator,
        req: Requests,
    ) -> tuple[AppState, float | None]:
        """Run the operation, mark the request it answered handled, and count a failure
        towards ``spec.syncPolicy.retry``: the state after it and when to retry (None: no
        retry is due)."""
        prune = req.prune if initiated == Initiator.MANUAL else None
        state, result = self._run_operation(p, state, resumed, initiated, prune)
        if initiated == Initiator.MANUAL:
            p.new.last_handled_sync_request = req.sync_request
        if initiated == Initiator.ROLLBACK:
            p.new.last_handled_rollback = req.rollback
            self.store.patch_annotations(p.key, {AUTOMATION_PAUSED: f"rollback to {req.rollback}"})
        return state, self._count_failure(p.rt, p.app, sha, succeeded=result.succeeded)

    def _count_failure(
        self, rt: AppRuntime, app: Application, sha: str, *, succeeded: bool
    ) -> float | None:
        """After a sync of ``sha``: reset the retry count, or count the failure and return the
        backoff before the next attempt."""
        if succeeded:
            rt.failed_revision, rt.failures = "", 0
            return None
        if rt.failed_revision != sha:
            rt.failed_revision, rt.failures = sha, 0
        rt.failures += 1
        delay = retry_delay(app.sync_policy.retry.backoff, rt.failures)
        rt.retry_at = self.clock() + delay
        return delay

    def _finish(
        self,
        p: _Pass,
        state: AppState,
        paused: bool,
        requeue: float | None,
        rollout_requeue: float | None,
    ) -> ReconcileResult:
        """Write the status, and come back soon while health or a rollout is moving."""
        rt = p.rt
        self._finalize(p, state, paused)
        if requeue is None and state.health.status == HealthStatus.PROGRESSING:
            rt.live_dirty = True  # health moves without spec changes: look again soon
            requeue = PROGRESSING_REQUEUE
        if rt.rollouts and rollout_requeue is None:
            # first sight of the app's Rollouts (e.g. just after a restart), or one just begun
            rollout_requeue = self._tick_rollouts(p.engine, p.app, rt, p.bound)
        if rollout_requeue is not None:
            rt.live_dirty = True  # a running rollout changes health and status as it goes
            requeue = rollout_requeue if requeue is None else min(requeue, rollout_requeue)
        return ReconcileResult(requeue)

    def _rollback_missing(self, p: _Pass, rollback: str) -> ReconcileResult:
        """A rollback to a history entry status no longer holds: stalled, and handled (it is
        not retried until another id is asked for)."""
        p.new.last_handled_rollback = rollback
        self._stalled(p.new, p.generation, "RollbackFailed", f"no history entry {rollback}")
        self._write(p.key, p.new, p.old)
        return ReconcileResult()

    def _tick_rollouts(
        self, engine: AppEngine, app: Application, rt: AppRuntime, bound: Any
    ) -> float | None:
        """Advance each of the app's Rollouts one step, acting as the app (its ServiceAccount);
        the earliest time one wants another."""
        if not rt.rollouts:
            return None
        outcomes = engine.tick_rollouts(app, rt.rollouts)
        if outcomes is None:
            return None  # no ServiceAccount to act as: the compare reports it (Stalled)
        soonest: float | None = None
        for outcome in outcomes:
            if outcome.error:
                bound.warning("rollout", rollout=str(outcome.key), error=outcome.error)
            if outcome.actions:
                rt.live_dirty = True
            if outcome.requeue_after is not None:
                soonest = (
                    outcome.requeue_after
                    if soonest is None
                    else min(soonest, outcome.requeue_after)
                )
        return soonest

    def _automated_trigger(
        self, app: Application, rt: AppRuntime, new: ApplicationStatus, sha: str, bound: Any
    ) -> AutoSync:
        """What automated sync does about an out-of-sync app (see ``AutoSync``)."""
        now = self.clock()
        limit = app.sync_policy.retry.limit
        if rt.failed_revision == sha:
            if limit != -1 and rt.failures > limit:
                return AutoSync.HOLD  # retries exhausted: wait for a new commit or a manual sync
            if now < rt.retry_at:
                return AutoSync.WAIT
        applied = new.last_applied_revision
        if applied != sha:
            return AutoSync.SYNC  # a new revision
        if not app.sync_policy.self_heal:
            return AutoSync.HOLD
        # drift on the same revision: self-heal with backoff
        if now - rt.last_heal > max(2 * rt.heal_delay, 60.0):
            rt.heal_delay = HEAL_MIN
        elif now < rt.last_heal + rt.heal_delay:
            return AutoSync.WAIT
        else:
            rt.heal_delay = min(max(rt.heal_delay * 2, HEAL_MIN), HEAL_MAX)
        rt.last_heal = now
        bound.info("self-heal", delay=rt.heal_delay)
        return AutoSync.SYNC

    def _run_operation(
        self,
        p: _Pass,
        state: AppState,
        resumed: OperationState | None,
        initiated: Initiator,
        prune: bool | None,
    ) -> tuple[AppState, SyncResult]:
        key, app, engine, new, old, bound = p.key, p.app, p.engine, p.new, p.old, p.bound
        sha = state.revision.sha
        op = OperationState(
            id=(resumed and resumed.id) or uuid.uuid4().hex[:12],
            phase="Running",
            revision=sha,
            initiated_by=str(initiated),
            started_at=(resumed and resumed.started_at) or st.now_rfc3339(),
            message=f"syncing revision {short_revision(sha)}",
        )
        new.operation_state = op
        new.last_attempted_revision = sha
        new.conditions = st.set_condition(
            new.conditions,
            st.RECONCILING,
            True,
            "Syncing",
            f"syncing revision {short_revision(sha)} ({len(state.manifests)} objects)",
            generation=p.generation,
            now=st.now_rfc3339(),
        )
        self._write(key, new, old)
        p.old = old = new.copy()
        self.store.record_event(
            key, "SyncStarted", f"sync of {short_revision(sha)} started ({initiated})"
        )
        bound.info(
            "sync started", revision=short_revision(sha), initiated=initiated, resumed=bool(resumed)
        )
        try:
            state, result = engine.sync(app, prune=prune, state=state, operation=op.id)
        except StageError as exc:
            result = SyncResult(revision=sha, aborted=True, message=str(exc.cause))
        op = dataclasses.replace(
            op,
            phase=result.phase,
            finished_at=st.now_rfc3339(),
            message=result.message or f"{result.phase.lower()} at revision {short_revision(sha)}",
            resources=tuple(
                ResourceResult(
                    r.key.group,
                    r.key.kind,
                    r.key.namespace,
                    r.key.name,
                    str(r.code),
                    r.message[:512],
                )
                for r in result.results[: st.RESOURCE_LIMIT]
            ),
            hooks=hook_statuses(result.hooks) or None,
        )
        new.operation_state = op
        new.history = st.append_history(
            new.history,
            HistoryEntry(
                operation=op.id,
                revision=sha,
                message=state.revision.message[:512],
                author=state.revision.author,
                deployed_at=op.finished_at,
                result=result.phase,
                initiated_by=str(initiated),
                digest=state.revision.digest,
                revisions=_revisions(state),
                deploy_started_at=op.started_at,
                result_message=op.message[:512],
            ),
        )
        if result.succeeded:
            new.last_applied_revision = sha
        pruned = [r for r in result.results if r.code == "Pruned"]
        if pruned:
            self.store.record_event(key, "Pruned", f"pruned {len(pruned)} objects no longer in Git")
        if result.succeeded:
            self.store.record_event(key, "SyncSucceeded", f"synced revision {short_revision(sha)}")
        else:
            self.store.record_event(
                key,
                "SyncFailed",
                f"sync of {short_revision(sha)} failed: {op.message}",
                warning=True,
            )
        if self.metrics:
            self.metrics.app_sync_total.labels(key[0], key[1], result.phase).inc()
        bound.info("sync finished", revision=short_revision(sha), phase=result.phase)
        with contextlib.suppress(StageError):  # else keep the pre-sync comparison
            state = engine.compare(app, sha)
        return state, result

    def _finalize(self, p: _Pass, state: AppState, paused: bool) -> None:
        key, new, old, generation = p.key, p.new, p.old, p.generation
        now = st.now_rfc3339()
        health = state.health
        healths = dict(state.resource_health())
        sync_status = state.sync_status
        new.sync = SyncSummary(str(sync_status), state.revision.sha, _revisions(state))
        new.health = HealthSummary(str(health.status), health.message)
        new.source_revision = SourceRevision(
            state.revision.sha,
            state.revision.ref,
            state.revision.message[:512],
            state.revision.author,
            state.revision.date,
            state.revision.digest,
        )
        rows = []
        for d in state.comparison.diffs:
            h = healths.get(d.key)
            rows.append((d.key, str(d.status), str(h.status) if h else "", h.message if h else ""))
        new.resources = st.resource_entries(rows)
        new.automation_paused = paused
        new.sync_window = window_state(p.window)
        new.waiting_for = p.waiting or None
        self._record_wait(p)
        new.source_type = SOURCE_TYPES[state.source_type]
        previous_health = old.health.status if old.health else ""
        if previous_health and previous_health != str(health.status):
            self.store.record_event(
                key,
                "HealthChanged",
                f"health {previous_health} -> {health.status}"
                + (f": {health.message}" if health.message else ""),
                warning=health.status == HealthStatus.DEGRADED,
            )
        conds = st.drop_condition(new.conditions, st.RECONCILING)
        conds = st.drop_condition(conds, st.STALLED)
        conds = st.shared_resource_condition(conds, state.comparison.shared, generation, now)
        errors = state.comparison.errors
        op = new.operation_state or OperationState()
        if op.phase == "Failed" and op.revision == state.revision.sha:
            ready, reason, message = False, "SyncFailed", op.message
            failed = [r for r in op.resources or () if r.status == "SyncFailed"]
            if failed:
                message += "; " + "; ".join(f"{r.kind}/{r.name}: {r.message}" for r in failed[:3])
        elif errors:
            ready, reason = False, "CompareFailed"
            message = "; ".join(f"{k}: {e}" for k, e in errors[:3])
        elif sync_status != SyncStatus.SYNCED:
            ready = False
            reason, message = self._out_of_sync(p, state.revision.sha, paused)
        elif health.status != HealthStatus.HEALTHY:
            ready, reason = False, str(health.status)
            message = health.message or f"health is {health.status}"
        else:
            ready, reason = True, "Synced"
            message = f"synced to {short_revision(state.revision.sha)} and healthy"
        new.conditions = st.set_condition(
            conds, st.READY, ready, reason, message, generation=generation, now=now
        )
        if self.metrics:
            self.metrics.set_app(key[0], key[1], str(sync_status), str(health.status))
        self._write(key, new, old)

    @staticmethod
    def _out_of_sync(p: _Pass, sha: str, paused: bool) -> tuple[str, str]:
        """The Ready condition's reason and message for an app that is out of sync: why
        automated sync has not fixed it (off, a sync window, dependencies not Ready)."""
        message = f"revision {short_revision(sha)}: the cluster differs from Git"
        if not automated_sync_on(p.app, paused):
            return "OutOfSync", message + " (automated sync is off: sync manually)"
        if not p.window.allowed:
            window = p.new.sync_window
            until = f" until {window.until}" if window and window.until else ""
            return "SyncWindowBlocked", f"{message}; {p.window.message}{until}"
        if p.waiting:  # Flux's reason
            waiting = "; ".join(map(str, p.waiting[:3]))
            return "DependencyNotReady", f"{message}; automated sync {waiting}"
        return "OutOfSync", message

    def _record_wait(self, p: _Pass) -> None:
        """An Event when the app starts waiting for its dependencies, when which ones it waits
        for changes, and when the wait ends - not on every pass while it lasts, nor when only
        the reason moves on (status shows that)."""
        now = [(w.namespace, w.name) for w in p.waiting]
        # what this process last recorded wins over the status read back: the watch cache may
        # not show our own last status write yet, and reading it stale sent the Event twice
        before = p.rt.waited_for
        if before is None:
            before = [(w.namespace, w.name) for w in p.old.waiting_for or ()]
        p.rt.waited_for = now
        if before == now:
            return
        if p.waiting:
            message = "automated sync " + "; ".join(map(str, p.waiting))
            self.store.record_event(p.key, "DependencyNotReady", message[:1024])
        else:
            self.store.record_event(
                p.key, "DependenciesReady", "no longer waiting for dependencies"
            )

    # -- failures ------------------------------------------------------------------------------

    def _stalled(self, new: ApplicationStatus, generation: int, reason: str, message: str) -> None:
        now = st.now_rfc3339()
        conds = st.drop_condition(new.conditions, st.RECONCILING)
        conds = st.set_condition(
            conds, st.STALLED, True, reason, message, generation=generation, now=now
        )
        new.conditions = st.set_condition(
            conds, st.READY, False, reason, message, generation=generation, now=now
        )

    def _retrying(self, new: ApplicationStatus, generation: int, reason: str, message: str) -> None:
        now = st.now_rfc3339()
        conds = st.drop_condition(new.conditions, st.STALLED)
        conds = st.set_condition(
            conds,
            st.RECONCILING,
            True,
            reason,
            f"retrying: {message}",
            generation=generation,
            now=now,
        )
        new.conditions = st.set_condition(
            conds, st.READY, False, reason, message, generation=generation, now=now
        )

    def _fetch_failed(self, p: _Pass, exc: GitsyncError) -> ReconcileResult:
        key, rt, old, new, generation = p.key, p.rt, p.old, p.new, p.generation
        rt.fetch_failures += 1
        message = f"fetch failed: {exc}"
        p.bound.warning("fetch failed", error=str(exc), attempt=rt.fetch_failures)
        if isinstance(exc, TerminalError):
            self._stalled(new, generation, "FetchFailed", message)
        else:
            self._retrying(new, generation, "FetchFailed", message)
        self._write(key, new, old)
        return ReconcileResult(requeue=min(5.0 * 2 ** (rt.fetch_failures - 1), 300.0))

    def _pass_failed(self, p: _Pass, exc: GitsyncError, step: NextStep) -> ReconcileResult:
        """A classified error escaped the pass (most often an API request the reconcile cannot
        do without, like a status write while the server is down or throttling). The class
        decides: a transient one comes back with backoff and redoes the pass; a waiting one
        comes back when the server said; a terminal one stalls with what to fix, until the spec
        or the cluster changes (the periodic refresh still looks again). An operation already
        marked Running resumes under the same id, so it still ends up as one history entry."""
        rt = p.rt
        if step == NextStep.STALL:
            fix = f"; {exc.fix}" if isinstance(exc, ApiRejectedError) else ""
            message = f"{exc}{fix}"
            p.bound.warning("reconcile stalled", error=message)
            self._stalled(p.new, p.generation, "ReconcileFailed", message)
            try:  # the refused request may have been this very write: say it if we can
                self._write(p.key, p.new, p.old)
            except ApiError as write_exc:
                p.bound.warning("could not record the stall", error=str(write_exc))
            return ReconcileResult()
        if step == NextStep.WAIT and exc.retry_after is None:
            delay = WAIT_DELAY  # a dependency is not ready: look again soon, do not escalate
        else:
            rt.api_failures += 1
            delay = min(API_RETRY_MIN * 2 ** (rt.api_failures - 1), API_RETRY_MAX)
        if exc.retry_after:  # the server said how long: a hard floor for this app's next pass
            delay = max(delay, min(exc.retry_after, API_RETRY_MAX))
            rt.not_before = self.clock() + delay
        p.bound.warning("reconcile failed; retrying", error=str(exc), retry_in=delay, next=step)
        return ReconcileResult(requeue=delay)

    def _stage_failed(self, p: _Pass, exc: StageError) -> ReconcileResult:
        key, rt, old, new, generation = p.key, p.rt, p.old, p.new, p.generation
        reason = {"fetch": "FetchFailed", "render": "RenderFailed"}.get(exc.stage, "CompareFailed")
        p.bound.warning("stage failed", stage=exc.stage, error=str(exc.cause))
        if exc.terminal:
            self._stalled(new, generation, reason, str(exc))
        else:
            self._retrying(new, generation, reason, str(exc))
        self._write(key, new, old)
        rt.stage_failures += 1
        return ReconcileResult(requeue=min(5.0 * 2 ** (rt.stage_failures - 1), 300.0))

    @staticmethod
    def _stale_conditions(new: ApplicationStatus) -> bool:
        """A failure condition is showing: compare again so recovery clears it."""
        return (
            any(c.type in (st.STALLED, st.RECONCILING) and c.is_true for c in new.conditions or ())
            or not new.sync
        )

    def _write(self, key: AppKey, new: ApplicationStatus, old: ApplicationStatus) -> None:
        # the notifications this status calls for are recorded in it before it is written, and
        # sent only once it was (gitsync.notify.plan: at most once per event and revision)
        planned = self.notifier.plan(key, new) if self.notifier else ()
        if new == old:
            return
        self.store.write_status(key, new.to_dict(), old.to_dict())
        if planned and self.notifier:
            self.notifier.enqueue(key, planned)
