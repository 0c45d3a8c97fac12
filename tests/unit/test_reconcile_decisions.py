"""The decisions of one reconcile, without a control plane: when a pass compares, who starts a
sync (an interrupted operation, a rollback, a manual request, automated sync), when automated sync
holds back (off, suspended, paused, drift without selfHeal, a retry or self-heal backoff not due,
retries exhausted), and that a fetch or render failure never reaches the sync.

Time is the Reconciler's injected clock. The collaborators are gitsync's own seams: an in-memory
``ApplicationStore`` and a stand-in for the ``Engine`` the reconciler drives (resolve the head,
compare, sync) whose answers the test sets. No Kubernetes API is involved; the integration tests
(``test_controller.py``, ``test_hardening_apifaults.py``) show the same loop on a real one."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from gitsync.application import Backoff, parse_application
from gitsync.application_status import ApplicationStatus, HistoryEntry, OperationState
from gitsync.controller.reconciler import (
    AUTOMATION_PAUSED,
    ROLLBACK_REQUEST,
    SYNC_REQUEST,
    Initiator,
    Reconciler,
    Requests,
    automated_sync_on,
    failed_sync_to_retry,
    initiator,
    resumes,
    retry_delay,
    rollback_revision,
)
from gitsync.diff import ResourceDiff
from gitsync.engine import AppState, SourceNotPermittedError, StageError
from gitsync.errors import GitsyncError, TerminalError, TransientError
from gitsync.model import ResourceKey, ResultCode, SyncStatus
from gitsync.render import RenderError
from gitsync.render.hooks import HookPhase
from gitsync.source import Revision
from gitsync.sync import Comparison, ResourceResult, SyncResult
from gitsync.sync.deletion import AppDeletion, Propagation
from gitsync.sync.hooks import HookOutcome, HookResult
from gitsync.sync.syncer import Item
from gitsync.sync_windows import SyncWindow, parse_sync_windows

KEY = ("team-a", "shop")
SHA1, SHA2 = "1" * 40, "2" * 40
CONFIG = ResourceKey("", "ConfigMap", "shop", "settings")


def spec(**sync_policy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "team-a", "generation": 1, "annotations": {}},
        "spec": {
            "source": {"repoURL": "https://git.example.com/shop.git", "targetRevision": "main"},
            "destination": {"namespace": "shop"},
            "syncPolicy": {
                "retry": {
                    "limit": 2,
                    "backoff": {"duration": "5s", "factor": 2, "maxDuration": "1m"},
                },
                **sync_policy,
            },
        },
    }


AUTOMATED = {"automated": {"prune": True}}
SELF_HEAL = {"automated": {"prune": True, "selfHeal": True}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """An in-memory ``ApplicationStore`` holding the Application under test and ``others``
    (its dependencies), whose status no reconcile here writes."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = copy.deepcopy(obj)
        self.others: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[str] = []
        self.messages: list[str] = []

    def app_keys(self) -> list[tuple[str, str]]:
        return [KEY, *self.others]

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        if key != KEY:
            other = self.others.get(key)
            return None if other is None else copy.deepcopy(other)
        return copy.deepcopy(self.obj)

    def write_status(self, key: Any, status: dict[str, Any], previous: dict[str, Any]) -> None:
        self.obj["status"] = copy.deepcopy(status)

    def patch_annotations(self, key: Any, annotations: dict[str, str | None]) -> None:
        merged = {**self.obj["metadata"]["annotations"], **annotations}
        self.obj["metadata"]["annotations"] = {k: v for k, v in merged.items() if v is not None}

    def record_event(self, key: Any, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(reason)
        self.messages.append(message)

    def remove_finalizer(self, key: Any, finalizer: str) -> None:
        self.obj["metadata"]["finalizers"].remove(finalizer)

    @property
    def status(self) -> ApplicationStatus:
        return ApplicationStatus.from_dict(self.obj.get("status"))

    def annotate(self, name: str, value: str) -> None:
        self.obj["metadata"]["annotations"][name] = value
        self.obj["metadata"]["generation"] += 0  # annotations alone change no generation


class Pipeline:
    """The Engine as the reconciler drives it: the head SHA of the app's branch, whether the
    cluster differs from Git, and whether a fetch, a render or a sync fails are the test's to
    set; what the reconciler asked for is recorded."""

    def __init__(self) -> None:
        self.head = SHA1
        self.drift = True  # nothing applied yet
        self.fetch_error: GitsyncError | None = None
        self.compare_error: StageError | None = None
        self.sync_fails = False
        self.resolved = 0
        self.compared: list[str] = []
        self.synced: list[tuple[str, bool | None]] = []
        self.deletes: list[Propagation] = []
        self.still_there: list[ResourceKey] = [CONFIG]
        self.deletion_log: list[str] = []  # hook phases and delete rounds, in the order asked
        self.hook_runs: list[tuple[HookPhase, str, str]] = []  # (phase, revision, operation)
        self.failing_hook: HookPhase | None = None
        self.hook_render_error: StageError | None = None

    def check_source(self, app: Any) -> None:
        pass

    def resolve_revision(self, app: Any, *, max_age: float = 0.0) -> str:
        self.resolved += 1
        if self.fetch_error is not None:
            raise self.fetch_error
        return self.head

    def compare(self, app: Any, sha: str) -> AppState:
        self.compared.append(sha)
        if self.compare_error is not None:
            raise self.compare_error
        status = SyncStatus.OUT_OF_SYNC if self.drift else SyncStatus.SYNCED
        live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
        item = Item(CONFIG, dict(live), 0, live=live, diff=ResourceDiff(CONFIG, status))
        revision = Revision(sha, "refs/heads/main", "a commit", "Dev <dev@example.com>", "")
        return AppState(app, revision, (), Comparison([item], {}, {}))

    def sync(
        self, app: Any, *, prune: bool | None, state: AppState, operation: str = ""
    ) -> tuple[AppState, SyncResult]:
        self.synced.append((state.revision.sha, prune))
        code = ResultCode.SYNC_FAILED if self.sync_fails else ResultCode.SYNCED
        if not self.sync_fails:
            self.drift = False
        return state, SyncResult(state.revision.sha, [ResourceResult(CONFIG, code, "applied")])

    def tick_rollouts(self, app: Any, rollouts: Any) -> None:
        return None

    def delete_resources(self, app: Any, propagation: Propagation) -> AppDeletion:
        """One round of deletes: the objects still there stay ``remaining`` until the test
        says the garbage collector removed them."""
        self.deletes.append(propagation)
        self.deletion_log.append("delete")
        return AppDeletion(remaining=list(self.still_there))

    def run_delete_hooks(
        self, app: Any, revision: str, phase: HookPhase, *, operation: str
    ) -> list[HookResult]:
        """The app's one hook of ``phase`` (a Job), which fails when the test says so."""
        if self.hook_render_error is not None:
            raise self.hook_render_error
        self.deletion_log.append(str(phase))
        self.hook_runs.append((phase, revision, operation))
        outcome = HookOutcome.FAILED if phase == self.failing_hook else HookOutcome.SUCCEEDED
        job = ResourceKey("batch", "Job", "shop", f"{phase.lower()}-job")
        return [
            HookResult(
                job, phase, outcome, "BackoffLimitExceeded" if outcome == HookOutcome.FAILED else ""
            )
        ]


class Harness:
    def __init__(self, obj: dict[str, Any], *, cross_namespace_refs: bool = True) -> None:
        self.clock = Clock()
        self.store = Store(obj)
        self.engine = Pipeline()
        self.wall = dt.datetime(2026, 12, 7, 22, 30, tzinfo=dt.UTC)  # a Monday
        self.windows: list[SyncWindow] = []  # the app's project's (the policy's)
        self.reconciler = Reconciler(
            self.store,
            lambda _app: self.engine,
            clock=self.clock,
            sync_windows=lambda _app: self.windows,
            wall_clock=lambda: self.wall,
            cross_namespace_refs=cross_namespace_refs,
        )

    requeue: float | None = None  # what the last ``drift_after`` pass asked for

    def reconcile(self, *reasons: str) -> float | None:
        return self.reconciler.reconcile(KEY, set(reasons) or {"interval"}).requeue

    def drift_after(self, seconds: float) -> int:
        """``seconds`` later someone changes a live object: the watch says so, the compare
        sees it. How many syncs the app has had after that reconcile."""
        self.clock.now += seconds
        self.engine.drift = True
        self.reconciler.mark_live_change(KEY)
        self.requeue = self.reconcile("live-change")
        return len(self.engine.synced)

    def ready(self) -> tuple[str, str]:
        cond = self.store.status.condition("Ready")
        assert cond is not None
        return cond.reason, cond.message


# -- automated sync ----------------------------------------------------------------------------


def test_a_new_revision_is_synced_once_and_recorded() -> None:
    h = Harness(spec(**AUTOMATED))
    h.reconcile()
    assert h.engine.synced == [(SHA1, None)]  # prune: the app's policy decides
    status = h.store.status
    assert status.last_applied_revision == SHA1
    assert [e.revision for e in status.history or ()] == [SHA1]
    assert h.ready()[0] == "Synced"
    h.reconcile()
    assert h.engine.synced == [(SHA1, None)]  # in sync: nothing to do
    h.engine.head, h.engine.drift = SHA2, True
    h.reconcile()
    assert h.engine.synced[-1] == (SHA2, None)


@pytest.mark.parametrize(
    ("policy", "paused"),
    [({}, False), ({**AUTOMATED}, True)],
    ids=["manual-policy", "automation-paused"],
)
def test_without_automated_sync_an_out_of_sync_app_is_only_reported(
    policy: dict[str, Any], paused: bool
) -> None:
    obj = spec(**policy)
    if paused:
        obj["metadata"]["annotations"][AUTOMATION_PAUSED] = "rollback to 3"
    h = Harness(obj)
    h.reconcile()
    assert h.engine.compared == [SHA1] and h.engine.synced == []
    reason, message = h.ready()
    assert reason == "OutOfSync" and "automated sync is off: sync manually" in message
    assert h.store.status.automation_paused is paused


def test_a_suspended_app_is_not_synced() -> None:
    obj = spec(**AUTOMATED)
    obj["spec"]["suspend"] = True
    h = Harness(obj)
    h.reconcile()
    assert h.engine.synced == []
    assert h.ready()[0] == "OutOfSync"


def test_drift_without_self_heal_is_left_out_of_sync() -> None:
    h = Harness(spec(**AUTOMATED))
    h.reconcile()
    assert h.drift_after(10) == 1  # the first sync only
    assert h.ready()[0] == "OutOfSync"


def test_self_heal_reapplies_drift_with_a_growing_backoff() -> None:
    h = Harness(spec(**SELF_HEAL))
    h.reconcile()
    # seconds between drifts -> syncs so far: healed at once; again within the 2 s backoff is
    # too soon; at 2 s it heals and the backoff doubles to 4 s; 3 s after that is too soon
    assert [h.drift_after(s) for s in (100, 1, 1, 1, 2, 1)] == [2, 2, 3, 3, 3, 4]
    assert h.drift_after(61 + 8) == 5  # a quiet minute resets the backoff to 2 s
    assert h.drift_after(1) == 5
    assert h.drift_after(1) == 6


def test_drift_inside_the_self_heal_backoff_is_healed_when_the_backoff_ends() -> None:
    h = Harness(spec(**SELF_HEAL))
    h.reconcile()
    assert h.drift_after(100) == 2  # healed at once; the next heal waits 2 s
    assert h.drift_after(0.5) == 2
    assert h.requeue == pytest.approx(1.5)  # when the backoff ends, not a poll every 0.5 s
    h.clock.now += 1.5
    h.reconcile("requeue")  # no new watch event: the one drift is reason enough
    assert len(h.engine.synced) == 3


def test_a_failed_sync_is_retried_on_the_backoff_then_held_until_a_new_revision() -> None:
    h = Harness(spec(**AUTOMATED))
    h.engine.sync_fails = True
    assert h.reconcile() == 5.0  # retry.backoff.duration
    assert h.ready()[0] == "SyncFailed"
    h.clock.now += 1.0
    assert h.reconcile("live-change") == pytest.approx(4.0)  # not due yet: back when it is
    assert len(h.engine.synced) == 1
    h.clock.now += 4.0
    assert h.reconcile("requeue") == 10.0  # the second failure: duration * factor
    assert len(h.engine.synced) == 2
    h.clock.now += 10.0
    assert h.reconcile("requeue") == 20.0  # the third attempt: retry.limit 2 retries
    h.clock.now += 20.0
    h.reconcile("requeue")
    assert len(h.engine.synced) == 3  # exhausted: held
    assert not h.store.status.last_applied_revision
    h.engine.head, h.engine.sync_fails = SHA2, False
    h.reconcile("push:github")
    assert h.engine.synced[-1] == (SHA2, None)
    assert h.store.status.last_applied_revision == SHA2


# -- failures before the sync never sync (above all: never prune) ------------------------------


def test_a_render_failure_never_reaches_the_sync_and_backs_off() -> None:
    h = Harness(spec(**AUTOMATED))
    h.engine.compare_error = StageError("render", RenderError("mapping values are not allowed"))
    # the head check before each compare succeeds; the render's backoff still grows (it once
    # stayed at 5 s: a broken commit was rendered again every 5 seconds for ever)
    assert [h.reconcile() for _ in range(4)] == [5.0, 10.0, 20.0, 40.0]
    assert h.engine.synced == []
    reason, message = h.ready()
    assert reason == "RenderFailed" and "mapping values" in message
    assert h.store.status.condition("Stalled") is not None  # a render error is terminal
    h.engine.compare_error = None  # fixed in Git
    h.reconcile()
    assert h.engine.synced == [(SHA1, None)]
    assert h.store.status.condition("Stalled") is None
    h.engine.head, h.engine.compare_error = SHA2, StageError("render", RenderError("again"))
    assert h.reconcile() == 5.0  # the good compare reset the count


@pytest.mark.parametrize(
    ("error", "stalled"),
    [(TransientError("connection refused"), False), (TerminalError("bad credentials"), True)],
)
def test_a_failed_head_check_neither_compares_nor_syncs(error: GitsyncError, stalled: bool) -> None:
    h = Harness(spec(**AUTOMATED))
    h.engine.fetch_error = error
    assert [h.reconcile() for _ in range(3)] == [5.0, 10.0, 20.0]
    assert h.engine.compared == [] and h.engine.synced == []
    assert h.ready()[0] == "FetchFailed"
    assert (h.store.status.condition("Stalled") is not None) is stalled


# -- when a pass compares ----------------------------------------------------------------------


def test_an_unchanged_app_costs_only_the_head_check_until_the_full_compare_is_due() -> None:
    h = Harness(spec(**AUTOMATED))
    h.reconcile()
    compares = len(h.engine.compared)
    h.clock.now += 60
    h.reconcile()
    assert len(h.engine.compared) == compares and h.engine.resolved == 2
    h.reconcile("live-change")  # the trigger alone does not say something changed
    assert len(h.engine.compared) == compares
    h.reconciler.mark_live_change(KEY)
    h.reconcile("live-change")
    assert len(h.engine.compared) == compares + 1
    h.clock.now += h.reconciler.full_compare_every
    h.reconcile()
    assert len(h.engine.compared) == compares + 2
    h.engine.head = SHA2
    h.reconcile()
    assert h.engine.compared[-1] == SHA2


# -- requests: manual sync, rollback, an interrupted operation --------------------------------


def test_a_manual_sync_request_is_answered_once_and_may_ask_to_prune() -> None:
    h = Harness(spec())
    h.store.annotate(SYNC_REQUEST, "n1;prune")
    h.reconcile("application-changed")
    assert h.engine.synced == [(SHA1, True)]
    assert h.store.status.last_handled_sync_request == "n1;prune"
    h.engine.drift = True
    h.reconcile("application-changed")
    assert len(h.engine.synced) == 1  # handled: not repeated
    h.store.annotate(SYNC_REQUEST, "n2")
    h.reconcile("application-changed")
    assert h.engine.synced[-1] == (SHA1, None)
    history = h.store.status.history or ()
    assert [e.initiated_by for e in history][-1] == "manual"


def test_a_rollback_syncs_the_recorded_revision_without_asking_git_and_pauses_automation() -> None:
    h = Harness(spec(**AUTOMATED))
    h.reconcile()
    h.engine.head, h.engine.drift = SHA2, True
    h.reconcile()
    first = (h.store.status.history or ())[0]
    resolved = h.engine.resolved
    h.store.annotate(ROLLBACK_REQUEST, str(first.id))
    h.reconcile("application-changed")
    assert h.engine.synced[-1] == (SHA1, None)
    assert h.engine.resolved == resolved  # the pinned revision needs no ls-remote
    assert h.store.obj["metadata"]["annotations"][AUTOMATION_PAUSED] == f"rollback to {first.id}"
    assert h.store.status.last_handled_rollback == str(first.id)
    h.clock.now += 10
    h.reconcile()  # paused: the head (SHA2) is not synced back
    assert h.engine.synced[-1] == (SHA1, None)


def test_a_rollback_to_a_missing_history_entry_stalls_and_syncs_nothing() -> None:
    h = Harness(spec(**AUTOMATED))
    h.store.annotate(ROLLBACK_REQUEST, "42")
    h.reconcile("application-changed")
    assert h.engine.synced == [] and h.engine.resolved == 0
    assert h.ready() == ("RollbackFailed", "no history entry 42")


def running(revision: str, initiated_by: str = "automated") -> dict[str, Any]:
    op = OperationState(id="op-1", phase="Running", revision=revision, initiated_by=initiated_by)
    return ApplicationStatus(operation_state=op).to_dict()


def test_an_operation_left_running_is_finished_under_its_id() -> None:
    obj = spec()  # not automated: only the resume syncs
    obj["status"] = running(SHA1, "manual")
    h = Harness(obj)
    h.engine.drift = False  # everything already applied before the crash
    h.reconcile("startup")
    assert h.engine.synced == [(SHA1, None)]
    op = h.store.status.operation_state
    assert op is not None and (op.id, op.phase, op.initiated_by) == ("op-1", "Succeeded", "manual")


def test_an_interrupted_sync_of_a_revision_git_no_longer_has_is_not_resumed() -> None:
    obj = spec(**AUTOMATED)
    obj["status"] = running(SHA1)
    h = Harness(obj)
    h.engine.head = SHA2  # a revert pushed while the controller was down
    h.reconcile("startup")
    assert h.engine.synced == [(SHA2, None)]
    op = h.store.status.operation_state
    assert op is not None and op.id != "op-1" and op.revision == SHA2


def test_a_failed_sync_is_retried_even_when_every_object_matches() -> None:
    obj = spec(**AUTOMATED)
    failed = OperationState(id="op-1", phase="Failed", revision=SHA1, initiated_by="automated")
    obj["status"] = ApplicationStatus(operation_state=failed).to_dict()
    h = Harness(obj)
    h.engine.drift = False  # the objects were applied; the inventory write failed
    h.reconcile()
    assert h.engine.synced == [(SHA1, None)]
    assert h.store.status.last_applied_revision == SHA1


# -- the pure parts ----------------------------------------------------------------------------


def status(**fields: Any) -> ApplicationStatus:
    return ApplicationStatus(**fields)


def test_requests_are_pending_until_status_records_them_handled() -> None:
    annotations = {SYNC_REQUEST: "n1", ROLLBACK_REQUEST: "3", AUTOMATION_PAUSED: "x"}
    req = Requests.read(annotations, status())
    assert (req.manual, req.rollback_pending, req.paused, req.prune) == (True, True, True, None)
    handled = status(last_handled_sync_request="n1", last_handled_rollback="3")
    req = Requests.read(annotations, handled)
    assert (req.manual, req.rollback_pending) == (False, False)
    assert Requests.read({SYNC_REQUEST: "n2;prune"}, handled).prune is True
    assert Requests.read({}, status()) == Requests()


def test_who_starts_a_sync_an_interrupted_operation_then_a_rollback_then_a_manual_request() -> None:
    both = Requests(manual=True, rollback_pending=True)
    op = OperationState(phase="Running", initiated_by="manual")
    assert initiator(op, True, both) == Initiator.MANUAL
    assert initiator(OperationState(phase="Running"), True, Requests()) == Initiator.AUTOMATED
    assert initiator(OperationState(), False, both) == Initiator.ROLLBACK
    assert initiator(OperationState(), False, Requests(manual=True)) == Initiator.MANUAL
    assert initiator(OperationState(), False, Requests()) is None


def test_an_operation_is_resumed_only_while_git_still_names_its_revision() -> None:
    op = OperationState(phase="Running", revision=SHA1)
    assert resumes(op, None, SHA1)
    assert not resumes(op, None, SHA2)
    assert resumes(op, SHA1, SHA1)  # a rollback pins its own revision
    assert not resumes(OperationState(phase="Succeeded", revision=SHA1), None, SHA1)


def test_only_a_failed_sync_of_this_revision_not_applied_since_is_retried() -> None:
    failed = OperationState(phase="Failed", revision=SHA1)
    assert failed_sync_to_retry(failed, status(), SHA1)
    assert not failed_sync_to_retry(failed, status(last_applied_revision=SHA1), SHA1)
    assert not failed_sync_to_retry(failed, status(), SHA2)
    assert not failed_sync_to_retry(
        OperationState(phase="Succeeded", revision=SHA1), status(), SHA1
    )


def test_rollback_revision_reads_the_history() -> None:
    history = (HistoryEntry(id=1, revision=SHA1), HistoryEntry(id=2, revision=SHA2))
    assert rollback_revision(status(history=history), "2") == SHA2
    assert rollback_revision(status(history=history), "7") is None


def test_retry_backoff_grows_by_its_factor_up_to_its_cap() -> None:
    backoff = Backoff(duration=5.0, factor=2.0, max_duration=60.0)
    assert [retry_delay(backoff, n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 60.0]


def test_automated_sync_is_on_only_when_automated_unsuspended_and_unpaused() -> None:
    automated = parse_application(spec(**AUTOMATED))
    assert automated_sync_on(automated, paused=False)
    assert not automated_sync_on(automated, paused=True)
    assert not automated_sync_on(parse_application(spec()), paused=False)
    suspended = spec(**AUTOMATED)
    suspended["spec"]["suspend"] = True
    assert not automated_sync_on(parse_application(suspended), paused=False)


# -- sync windows ------------------------------------------------------------------------------


def night_deny(**extra: Any) -> list[SyncWindow]:
    """A project's deny window, 22:00-24:00 UTC, for every app named shop."""
    doc = {"kind": "deny", "schedule": "0 22 * * *", "duration": "2h", "applications": ["shop"]}
    return list(parse_sync_windows([{**doc, **extra}], "w", scoped=True))


def test_a_deny_window_holds_an_automated_sync_until_it_closes() -> None:
    h = Harness(spec(**AUTOMATED))
    h.windows = night_deny()
    requeue = h.reconcile()
    assert h.engine.synced == []  # not started
    window = h.store.status.sync_window
    assert window is not None and window.until == "2026-12-08T00:00:00Z"
    assert "deny window '0 22 * * *'" in window.message
    reason, message = h.ready()
    assert reason == "SyncWindowBlocked" and "until 2026-12-08T00:00:00Z" in message
    assert requeue == 180.0  # the refresh interval comes first; the window ends in 90 minutes
    h.wall = dt.datetime(2026, 12, 7, 23, 59, 30, tzinfo=dt.UTC)
    assert h.reconcile("requeue") == 31.0  # just after the window closes
    assert h.engine.synced == []
    h.wall = dt.datetime(2026, 12, 8, 0, 0, 1, tzinfo=dt.UTC)
    h.reconcile("requeue")
    assert h.engine.synced == [(SHA1, None)]
    assert h.store.status.sync_window is None
    assert h.ready()[0] == "Synced"


def test_a_window_for_another_app_does_not_hold_this_one() -> None:
    h = Harness(spec(**AUTOMATED))
    h.windows = night_deny(applications=["blog"])
    h.reconcile()
    assert h.engine.synced == [(SHA1, None)]


def test_a_window_for_the_local_cluster_holds_an_app_without_a_destination_name() -> None:
    h = Harness(spec(**AUTOMATED))
    h.windows = night_deny(applications=[], clusters=["in-cluster"])
    h.reconcile()
    assert h.engine.synced == []


def test_the_apps_own_deny_window_holds_it_too() -> None:
    obj = spec(**AUTOMATED)
    obj["spec"]["syncWindows"] = [{"kind": "deny", "schedule": "0 22 * * *", "duration": "2h"}]
    h = Harness(obj)
    h.reconcile()
    assert h.engine.synced == []


def test_the_apps_own_allow_window_cannot_open_what_its_project_keeps_closed() -> None:
    """The project allows syncs only 06:00-07:00; the tenant's own always-open allow window
    must not widen that (judged together, any open allow window would permit)."""
    obj = spec(**AUTOMATED)
    obj["spec"]["syncWindows"] = [{"kind": "allow", "schedule": "0 0 * * *", "duration": "24h"}]
    h = Harness(obj)
    h.windows = night_deny(kind="allow", schedule="0 6 * * *", duration="1h")
    h.reconcile()
    assert h.engine.synced == []
    window = h.store.status.sync_window
    assert window is not None and window.until == "2026-12-08T06:00:00Z"


def test_a_manual_sync_in_a_deny_window_is_refused_and_marked_handled() -> None:
    h = Harness(spec())
    h.windows = night_deny()
    h.store.annotate(SYNC_REQUEST, "req-1")
    h.reconcile("application-changed")
    assert h.engine.synced == []
    status = h.store.status
    assert status.last_handled_sync_request == "req-1"  # answered: refused, not pending
    assert status.sync_window is not None
    assert status.sync_window.message.startswith("manual sync refused: blocked by the deny")
    assert "SyncBlocked" in h.store.events


def test_manual_sync_passes_a_deny_window_with_manual_sync() -> None:
    h = Harness(spec(**AUTOMATED))
    h.windows = night_deny(manualSync=True)
    h.reconcile()
    assert h.engine.synced == []  # automated: still held
    h.store.annotate(SYNC_REQUEST, "req-1")
    h.reconcile("application-changed")
    assert h.engine.synced == [(SHA1, None)]
    assert h.store.status.last_handled_sync_request == "req-1"


# -- deletion ----------------------------------------------------------------------------------


def deleting(*finalizers: str) -> dict[str, Any]:
    obj = spec(**AUTOMATED)
    obj["metadata"]["deletionTimestamp"] = "2026-12-07T22:30:00Z"
    obj["metadata"]["uid"] = "0b1c7e6a-uid"
    obj["metadata"]["finalizers"] = list(finalizers)
    return obj


def test_a_deleted_app_with_the_finalizer_is_released_once_its_objects_are_gone() -> None:
    h = Harness(deleting("gitsync.dev/resources-finalizer", "someone-elses/finalizer"))
    assert h.reconcile("application-changed") == 2.0  # deleting: come back soon
    assert h.engine.deletes == [Propagation.FOREGROUND]
    assert h.engine.synced == [] and h.engine.resolved == 0  # never synced again
    reconciling = h.store.status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "Deleting"
    assert "ConfigMap" in reconciling.message
    assert h.store.obj["metadata"]["finalizers"] == [
        "gitsync.dev/resources-finalizer",
        "someone-elses/finalizer",
    ]
    h.engine.still_there = []
    assert h.reconcile("requeue") is None
    assert h.store.obj["metadata"]["finalizers"] == ["someone-elses/finalizer"]
    assert "ResourcesDeleted" in h.store.events


def test_argo_cds_background_finalizer_deletes_in_the_background() -> None:
    h = Harness(deleting("resources-finalizer.argocd.argoproj.io/background"))
    h.engine.still_there = []
    h.reconcile("application-changed")
    assert h.engine.deletes == [Propagation.BACKGROUND]
    assert h.store.obj["metadata"]["finalizers"] == []


def test_a_deleted_app_without_the_finalizer_leaves_its_objects() -> None:
    h = Harness(deleting("someone-elses/finalizer"))
    h.reconcile("application-changed")
    assert h.engine.deletes == [] and h.engine.synced == [] and h.engine.hook_runs == []
    assert h.store.obj["metadata"]["finalizers"] == ["someone-elses/finalizer"]


def synced_then_deleted(*finalizers: str) -> Harness:
    """An app that synced SHA1, then was deleted (and its branch moved on since)."""
    h = Harness(spec(**AUTOMATED))
    h.reconcile()
    assert h.store.status.last_applied_revision == SHA1
    h.engine.head = SHA2
    h.store.obj["metadata"].update(deleting(*finalizers)["metadata"])
    return h


def test_deletion_runs_pre_delete_hooks_then_deletes_then_post_delete_hooks_then_releases() -> None:
    h = synced_then_deleted("gitsync.dev/resources-finalizer")
    assert h.reconcile("application-changed") == 2.0  # objects going: come back soon
    assert h.engine.deletion_log == ["PreDelete", "delete"]
    h.engine.still_there = []
    assert h.reconcile("requeue") is None
    assert h.engine.deletion_log == ["PreDelete", "delete", "delete", "PostDelete"]
    assert h.store.obj["metadata"]["finalizers"] == []
    # the hooks of the revision the app last synced, not the branch's head; one operation id
    assert {(phase, rev) for phase, rev, _ in h.engine.hook_runs} == {
        (HookPhase.PRE_DELETE, SHA1),
        (HookPhase.POST_DELETE, SHA1),
    }
    assert len({op for _, _, op in h.engine.hook_runs}) == 1
    op = h.store.status.operation_state
    assert op is not None and op.initiated_by == "deletion" and op.phase == "Succeeded"
    assert [(hook.phase, hook.status) for hook in op.hooks or ()] == [
        ("PreDelete", "Succeeded"),
        ("PostDelete", "Succeeded"),
    ]


def test_a_failed_pre_delete_hook_deletes_nothing_and_is_retried_with_backoff() -> None:
    h = synced_then_deleted("gitsync.dev/resources-finalizer")
    h.engine.failing_hook = HookPhase.PRE_DELETE
    assert h.reconcile("application-changed") == 5.0
    assert h.engine.deletes == []
    assert h.store.obj["metadata"]["finalizers"] == ["gitsync.dev/resources-finalizer"]
    reconciling = h.store.status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "PreDeleteHookFailed"
    assert "BackoffLimitExceeded" in reconciling.message
    assert "not deleted" in reconciling.message
    op = h.store.status.operation_state
    assert op is not None and op.phase == "Failed" and op.deletion_step == "PreDelete"
    h.clock.now += 2
    assert h.reconcile("live-change") == pytest.approx(3.0)  # not due: the hook is not rerun
    assert len(h.engine.hook_runs) == 1
    h.clock.now += 3
    assert h.reconcile("requeue") == 10.0  # failed again: the backoff doubles
    assert h.engine.deletes == []
    first, second = (run[2] for run in h.engine.hook_runs)
    assert first.endswith("-1") and second.endswith("-2")  # a retry creates its hook afresh
    h.engine.failing_hook = None
    h.engine.still_there = []
    h.clock.now += 10
    assert h.reconcile("requeue") is None
    assert h.engine.deletion_log[-3:] == ["PreDelete", "delete", "PostDelete"]
    assert h.store.obj["metadata"]["finalizers"] == []


def test_a_failed_post_delete_hook_keeps_the_finalizer_until_it_succeeds() -> None:
    h = synced_then_deleted("gitsync.dev/resources-finalizer")
    h.engine.still_there = []
    h.engine.failing_hook = HookPhase.POST_DELETE
    assert h.reconcile("application-changed") == 5.0
    assert h.store.obj["metadata"]["finalizers"] == ["gitsync.dev/resources-finalizer"]
    reconciling = h.store.status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "PostDeleteHookFailed"
    h.engine.failing_hook = None
    h.clock.now += 5
    assert h.reconcile("requeue") is None
    # PreDelete ran once: the retry goes on from the step that failed
    assert h.engine.deletion_log == ["PreDelete", "delete", "PostDelete", "PostDelete"]
    assert h.store.obj["metadata"]["finalizers"] == []


def test_a_revision_that_cannot_be_rendered_during_deletion_deletes_nothing() -> None:
    h = synced_then_deleted("gitsync.dev/resources-finalizer")
    h.engine.hook_render_error = StageError("render", RenderError("bad chart"))
    requeue = h.reconcile("application-changed")
    assert requeue is not None and requeue > 0
    assert h.engine.deletes == [] and h.engine.hook_runs == []
    assert h.store.obj["metadata"]["finalizers"] == ["gitsync.dev/resources-finalizer"]
    reason, message = h.ready()
    assert reason == "RenderFailed" and "bad chart" in message
    h.engine.hook_render_error = None
    h.engine.still_there = []
    h.reconcile("requeue")
    assert h.engine.deletion_log == ["PreDelete", "delete", "PostDelete"]
    assert h.store.obj["metadata"]["finalizers"] == []


def test_a_restarted_controller_goes_on_with_the_deletion_where_it_was() -> None:
    h = synced_then_deleted("gitsync.dev/resources-finalizer")
    h.reconcile("application-changed")  # PreDelete done, objects still going
    operation_id = h.engine.hook_runs[0][2]
    restarted = Reconciler(h.store, lambda _app: h.engine, clock=h.clock)
    h.engine.still_there = []
    restarted.reconcile(KEY, {"startup"})
    assert h.engine.deletion_log == ["PreDelete", "delete", "delete", "PostDelete"]
    assert h.engine.hook_runs[-1][2] == operation_id  # the same deletion, the same id
    assert h.store.obj["metadata"]["finalizers"] == []


def test_a_repository_the_policy_no_longer_allows_is_not_read_and_the_objects_still_go() -> None:
    h = synced_then_deleted("gitsync.dev/resources-finalizer")
    denied = SourceNotPermittedError("spec.source.repoURL", "denied by the destination policy")
    h.engine.hook_render_error = StageError("fetch", denied)
    h.engine.still_there = []
    assert h.reconcile("application-changed") is None
    assert h.engine.hook_runs == [] and h.engine.deletes == [Propagation.FOREGROUND]
    assert h.store.obj["metadata"]["finalizers"] == []
    assert h.store.events.count("DeleteHooksNotRun") == 2  # PreDelete and PostDelete, said so


# -- spec.dependsOn ----------------------------------------------------------------------------


def dependency(
    name: str,
    namespace: str = "team-a",
    *,
    ready: str = "Synced",
    message: str = "",
    revision: str = SHA1,
    repo: str = "https://git.example.com/shop.git",
    depends_on: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Another Application as the store holds it, reconciled: Ready (``ready="Synced"``) or
    not for the reason ``ready``, Synced at ``revision``."""
    doc = spec(**AUTOMATED)
    doc["metadata"].update(name=name, namespace=namespace)
    doc["spec"]["source"] = {"repoURL": repo, "targetRevision": "main", "path": name}
    if depends_on is not None:
        doc["spec"]["dependsOn"] = depends_on
    is_ready = ready == "Synced"
    doc["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if is_ready else "False",
                "reason": ready,
                "message": message,
            }
        ],
        "sync": {"status": "Synced" if is_ready else "OutOfSync", "revision": revision},
        "health": {"status": "Healthy" if is_ready else ready, "message": message},
    }
    return doc


def depending(*entries: dict[str, str], **policy: Any) -> dict[str, Any]:
    obj = spec(**(policy or AUTOMATED))
    obj["spec"]["dependsOn"] = list(entries)
    return obj


def test_automated_sync_waits_for_a_dependency_until_it_is_ready() -> None:
    h = Harness(depending({"name": "db"}))
    h.store.others[("team-a", "db")] = dependency("db", ready="Progressing")
    assert h.reconcile() is None  # no polling: the controller queues it when db changes
    assert h.engine.synced == []
    [wait] = h.store.status.waiting_for or ()
    assert (wait.namespace, wait.name, wait.reason) == ("team-a", "db", "Progressing")
    reason, message = h.ready()
    assert reason == "DependencyNotReady"
    assert message.endswith("automated sync waiting for team-a/db: Progressing")
    h.reconcile("dependency")
    assert h.engine.compared == [SHA1, SHA1]  # looked again, on a fresh compare
    assert h.store.events == ["DependencyNotReady"]  # once, not per pass
    h.store.others[("team-a", "db")] = dependency("db")
    h.reconcile("dependency")
    assert h.engine.synced == [(SHA1, None)]
    assert h.store.status.waiting_for is None
    assert h.ready()[0] == "Synced"
    assert h.store.events.count("DependencyNotReady") == 1
    assert {"SyncSucceeded", "DependenciesReady"} <= set(h.store.events)


def test_a_missing_dependency_is_waited_for_saying_so() -> None:
    h = Harness(depending({"name": "db"}))
    h.reconcile()
    assert h.engine.synced == []
    assert h.ready()[1].endswith("waiting for team-a/db: not found")


def test_every_dependency_must_be_ready() -> None:
    h = Harness(depending({"name": "db"}, {"name": "cache"}))
    h.store.others[("team-a", "db")] = dependency("db")
    h.store.others[("team-a", "cache")] = dependency("cache", ready="Degraded")
    h.reconcile()
    assert [w.name for w in h.store.status.waiting_for or ()] == ["cache"]
    assert h.engine.synced == []


def test_a_dependency_on_the_same_repository_must_be_ready_at_the_new_commit() -> None:
    """A push changes db and shop: shop resolved it first; db is still Ready at the commit
    before. shop waits until db is Ready at the pushed commit."""
    h = Harness(depending({"name": "db"}))
    h.store.others[("team-a", "db")] = dependency("db", revision=SHA1)
    h.reconcile()
    assert h.engine.synced == [(SHA1, None)]
    h.engine.head, h.engine.drift = SHA2, True
    h.reconcile("push:github")
    assert h.engine.synced == [(SHA1, None)]
    assert h.ready()[1].endswith("db: Ready at 111111111111, not yet at 222222222222")
    h.store.others[("team-a", "db")] = dependency("db", revision=SHA2)
    h.reconcile("dependency")
    assert h.engine.synced[-1] == (SHA2, None)


def test_a_dependency_in_another_namespace_shows_only_that_it_is_not_ready() -> None:
    """The tenant of team-a learns one bit of team-b's app: Ready or not. Not its health, its
    message, or whether it exists."""
    h = Harness(depending({"name": "db", "namespace": "team-b"}))
    h.store.others[("team-b", "db")] = dependency(
        "db", "team-b", ready="Degraded", message="team-b password rotation failed on pg-7"
    )
    h.reconcile()
    assert h.engine.synced == []
    seen = repr(h.store.obj["status"]) + repr(h.store.messages)
    assert "waiting for team-b/db: not Ready" in seen
    assert "Degraded" not in seen and "pg-7" not in seen
    del h.store.others[("team-b", "db")]
    h.reconcile("dependency")
    assert h.ready()[1].endswith("waiting for team-b/db: not Ready")  # absent reads the same
    h.store.others[("team-b", "db")] = dependency("db", "team-b")
    h.reconcile("dependency")
    assert h.engine.synced == [(SHA1, None)]


def test_no_cross_namespace_refs_makes_another_namespace_a_spec_error() -> None:
    h = Harness(depending({"name": "db", "namespace": "team-b"}), cross_namespace_refs=False)
    h.store.others[("team-b", "db")] = dependency("db", "team-b")
    h.reconcile()
    assert (h.engine.resolved, h.engine.synced) == (0, [])
    reason, message = h.ready()
    assert reason == "InvalidSpec"
    assert message.startswith("spec.dependsOn[0].namespace: team-b/db is in another namespace")
    assert "--no-cross-namespace-refs" in message


def test_a_dependency_cycle_stalls_the_app_naming_the_cycle_and_nothing_is_fetched() -> None:
    h = Harness(depending({"name": "db"}))
    h.store.others[("team-a", "db")] = dependency("db", depends_on=[{"name": "shop"}])
    h.reconcile()
    assert (h.engine.resolved, h.engine.synced) == (0, [])
    stalled = h.store.status.condition("Stalled")
    assert stalled is not None and stalled.is_true
    assert h.ready() == (
        "DependencyCycle",
        "spec.dependsOn: a dependency cycle team-a/shop -> team-a/db -> team-a/shop",
    )
    h.store.others[("team-a", "db")] = dependency("db")  # the cycle broken on db's side
    h.reconcile("dependency")
    assert h.engine.synced == [(SHA1, None)]
    assert h.store.status.condition("Stalled") is None


def test_a_manual_sync_is_an_operators_decision_and_not_held() -> None:
    h = Harness(depending({"name": "db"}, retry={"limit": 2}))  # automated sync off
    h.store.others[("team-a", "db")] = dependency("db", ready="Progressing")
    h.store.annotate(SYNC_REQUEST, "req-1")
    h.reconcile("application-changed")
    assert h.engine.synced == [(SHA1, None)]


def test_an_app_in_sync_does_not_wait_for_its_dependencies() -> None:
    """Only a sync waits; an app already in sync keeps its Ready condition while a
    dependency is not Ready (its Deployment restarting, say)."""
    h = Harness(depending({"name": "db"}))
    h.store.others[("team-a", "db")] = dependency("db")
    h.reconcile()
    h.store.others[("team-a", "db")] = dependency("db", ready="Progressing")
    h.reconcile("dependency")
    assert h.ready()[0] == "Synced" and h.store.status.waiting_for is None


# -- notifications -----------------------------------------------------------------------------


class RecordingNotifier:
    """gitsync's own plan (events, rule matching, dedupe record) behind the reconciler's
    ``Notifier`` seam; delivery is a list. Checks that every delivery's key is already stored
    when it is handed over (recorded before sending: at most once)."""

    def __init__(self, store: Store) -> None:
        from gitsync.notify.spec import parse_rule

        self.store = store
        self.rule = parse_rule(
            {
                "metadata": {"name": "all", "namespace": KEY[0]},
                "spec": {
                    "providerRefs": [{"name": "chat"}],
                    "events": ["sync-running", "sync-succeeded", "deployed", "sync-failed"],
                },
            }
        )
        self.enqueued: list[tuple[str, str]] = []

    def plan(self, key: tuple[str, str], status: ApplicationStatus) -> list[Any]:
        from gitsync.notify.events import AppFacts, events_of
        from gitsync.notify.plan import due, record

        app = AppFacts(*key)
        deliveries = due(
            app, events_of(app, status), [self.rule], {}, status.sent_notifications or ()
        )
        status.sent_notifications = record(status.sent_notifications, (d.key for d in deliveries))
        return deliveries

    def enqueue(self, key: tuple[str, str], deliveries: list[Any]) -> None:
        stored = self.store.status.sent_notifications or ()
        assert all(d.key in stored for d in deliveries)
        self.enqueued += [(str(d.event.name), d.event.revision) for d in deliveries]


def with_notifier(h: Harness) -> RecordingNotifier:
    notifier = RecordingNotifier(h.store)
    h.reconciler.notifier = notifier
    return notifier


def test_a_sync_notifies_running_then_succeeded_and_deployed_once() -> None:
    h = Harness(spec(**AUTOMATED))
    notifier = with_notifier(h)
    h.reconcile()
    assert notifier.enqueued == [
        ("sync-running", SHA1),
        ("sync-succeeded", SHA1),
        ("deployed", SHA1),
    ]
    h.clock.now += 400  # a periodic full compare: same facts, nothing new
    h.reconcile()
    assert len(notifier.enqueued) == 3


def test_a_restarted_controller_does_not_notify_again() -> None:
    h = Harness(spec(**AUTOMATED))
    with_notifier(h)
    h.reconcile()
    restarted = Harness(h.store.obj)  # a new process: fresh runtime, the stored status
    notifier = with_notifier(restarted)
    restarted.reconcile("startup")
    assert notifier.enqueued == []


def test_nothing_is_handed_to_delivery_when_the_status_write_fails() -> None:
    h = Harness(spec(**AUTOMATED))
    notifier = with_notifier(h)

    def refuse(*_: Any) -> None:
        raise TransientError("the API server is away")

    h.store.write_status = refuse  # type: ignore[method-assign]
    h.reconcile()
    assert notifier.enqueued == []


def test_a_pass_with_nothing_to_compare_still_sends_what_is_due() -> None:
    h = Harness(spec(**AUTOMATED))
    h.reconcile()  # deployed while no rule existed
    notifier = with_notifier(h)
    h.clock.now += 5
    h.reconcile()  # the interval: same head, nothing to compare
    assert ("deployed", SHA1) in notifier.enqueued
