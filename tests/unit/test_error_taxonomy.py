"""Errors say what the reconcile loop does next, and the loop acts on that alone.

An API failure is built as the class of its status (unreachable/5xx back off, 409 backs off,
429 waits for its ``Retry-After``, any other 4xx stalls); the reconciler turns an error that
escapes a pass into a stall (a Stalled condition naming the fix, no early requeue), a wait (the
server's delay, a hard floor) or a backoff (1 s, 2 s, 4 s ...). Fast: a recording store and an
engine whose Git server is down stand in for the adapters, and time is an injected clock."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitsync.application import Application, parse_application
from gitsync.application_status import ApplicationStatus
from gitsync.controller.reconciler import (
    API_RETRY_MIN,
    WAIT_DELAY,
    AppRuntime,
    AutoSync,
    Reconciler,
)
from gitsync.errors import (
    GitsyncError,
    NextStep,
    TerminalError,
    TransientError,
    WaitingError,
    next_step,
)
from gitsync.kube import (
    ApiConflictError,
    ApiError,
    ApiRejectedError,
    ApiThrottledError,
    ApiUnavailableError,
)
from gitsync.sync import syncer

KEY = ("team-a", "shop")
APP: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "shop", "namespace": "team-a", "generation": 1},
    "spec": {
        "source": {"repoURL": "https://git.example.com/shop.git", "targetRevision": "main"},
        "destination": {"namespace": "shop"},
        "syncPolicy": {
            "automated": {"selfHeal": True},
            "retry": {"limit": 2, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
        },
    },
}


@pytest.mark.parametrize(
    ("status", "cls", "step"),
    [
        (0, ApiUnavailableError, NextStep.BACKOFF),
        (500, ApiUnavailableError, NextStep.BACKOFF),
        (503, ApiUnavailableError, NextStep.BACKOFF),
        (409, ApiConflictError, NextStep.BACKOFF),
        (429, ApiThrottledError, NextStep.WAIT),
        (400, ApiRejectedError, NextStep.STALL),
        (401, ApiRejectedError, NextStep.STALL),
        (403, ApiRejectedError, NextStep.STALL),
        (404, ApiRejectedError, NextStep.STALL),
        (422, ApiRejectedError, NextStep.STALL),
    ],
)
def test_an_api_error_is_built_as_the_class_of_its_status(
    status: int, cls: type[ApiError], step: NextStep
) -> None:
    exc = ApiError(status, "Reason", "the server's words", method="PATCH", path="/x")
    assert type(exc) is cls and isinstance(exc, ApiError) and isinstance(exc, GitsyncError)
    assert exc.status == status and exc.message == "the server's words"
    assert next_step(exc) == step
    with pytest.raises(ApiError):  # every caller's `except ApiError` still catches it
        raise exc


def test_the_loop_decides_by_class_and_leaves_unclassified_errors_to_crash() -> None:
    assert next_step(TerminalError("bad spec")) == NextStep.STALL
    assert next_step(TransientError("flaky")) == NextStep.BACKOFF
    assert next_step(WaitingError("not ready")) == NextStep.WAIT
    assert next_step(ValueError("a bug")) is None
    assert next_step(GitsyncError("unclassified")) is None


def test_a_rejected_request_names_the_fix() -> None:
    assert "RBAC" in ApiRejectedError(403, "Forbidden", "no").fix
    assert "missing" in ApiRejectedError(404, "NotFound", "no").fix
    assert "rejected" in ApiRejectedError(422, "Invalid", "no").fix


@pytest.mark.parametrize("status", [0, 409, 429, 503])
def test_with_retries_retries_what_the_class_says(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncer.time, "sleep", lambda _s: None)
    failures = [ApiError(status, "R", "m")]

    def call() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert syncer.with_retries(call) == "done"


def test_with_retries_does_not_repeat_a_rejected_request() -> None:
    attempts = []

    def rejected() -> None:
        attempts.append(1)
        raise ApiError(422, "Invalid", "spec.replicas: must be >= 0")

    with pytest.raises(ApiRejectedError):
        syncer.with_retries(rejected)
    assert len(attempts) == 1


# -- the reconcile loop ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """An ApplicationStore whose first ``failing`` status writes raise ``error``."""

    def __init__(self, error: Exception, failing: int = 1) -> None:
        self.obj = copy.deepcopy(APP)
        self.error, self.failing = error, failing
        self.written: list[dict[str, Any]] = []

    def app_keys(self) -> list[tuple[str, str]]:
        return [KEY]

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return self.obj

    def write_status(self, key: Any, status: dict[str, Any], previous: dict[str, Any]) -> None:
        if self.failing:
            self.failing -= 1
            raise self.error
        self.written.append(copy.deepcopy(status))
        self.obj["status"] = copy.deepcopy(status)

    def patch_annotations(self, key: Any, annotations: dict[str, str | None]) -> None:
        pass

    def record_event(self, key: Any, reason: str, message: str, warning: bool = False) -> None:
        pass


class GitDown:
    """The head check fails (a retryable fetch failure), so the pass writes a Reconciling
    condition: that status write is where the API error under test strikes."""

    def check_source(self, app: Application) -> None:
        pass

    def resolve_revision(self, app: Application, *, max_age: float = 0.0) -> str:
        raise TransientError("connection refused")


def reconciler(store: Store, clock: Clock) -> Reconciler:
    return Reconciler(store, lambda _app: GitDown(), clock=clock)  # type: ignore[arg-type,return-value]


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def test_a_transient_api_error_backs_off_exponentially() -> None:
    clock = Clock()
    store = Store(ApiError(503, "ServiceUnavailable", "etcd"), failing=3)
    r = reconciler(store, clock)
    delays = [r.reconcile(KEY, {"interval"}).requeue for _ in range(3)]
    assert delays == [API_RETRY_MIN, 2 * API_RETRY_MIN, 4 * API_RETRY_MIN]
    assert r.runtime[KEY].not_before == 0.0  # no Retry-After: a push may come back sooner
    assert store.written == []  # nothing stalled: the status is written when the server is back


def test_a_conflict_is_retried_not_stalled() -> None:
    clock = Clock()
    r = reconciler(Store(ApiError(409, "Conflict", "the object has been modified")), clock)
    assert r.reconcile(KEY, {"interval"}).requeue == API_RETRY_MIN


def test_a_throttled_request_waits_as_long_as_the_server_said() -> None:
    clock = Clock()
    store = Store(ApiError(429, "TooManyRequests", "slow down", retry_after=7.0))
    r = reconciler(store, clock)
    assert r.reconcile(KEY, {"interval"}).requeue == 7.0
    clock.now += 3.0  # a watch event 3 s later may not cut the server's pause short
    assert r.reconcile(KEY, {"live-change"}).requeue == pytest.approx(4.0)
    assert store.written == []
    clock.now += 4.0
    assert r.reconcile(KEY, {"live-change"}).requeue is not None  # the pass ran: Git is down
    assert store.written, "the pass ran once the pause was over"


def test_a_waiting_error_without_a_delay_waits_without_escalating() -> None:
    clock = Clock()
    store = Store(WaitingError("the destination cluster's CRD is not Established"), failing=2)
    r = reconciler(store, clock)
    assert [r.reconcile(KEY, {"interval"}).requeue for _ in range(2)] == [WAIT_DELAY] * 2
    assert r.runtime[KEY].api_failures == 0


def test_a_rejected_request_stalls_with_the_fix_and_is_not_hot_looped() -> None:
    clock = Clock()
    forbidden = ApiError(
        403,
        "Forbidden",
        'applications.gitsync.dev "shop" is forbidden: cannot patch resource',
        method="PATCH",
        path="/apis/gitsync.dev/v1alpha1/namespaces/team-a/applications/shop/status",
    )
    store = Store(forbidden, failing=1)
    outcome = reconciler(store, clock).reconcile(KEY, {"interval"})
    assert outcome.requeue is None  # back at the interval, not in a second
    stalled = condition(store.written[-1], "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "ReconcileFailed"
    assert "403 Forbidden" in stalled["message"] and "RBAC" in stalled["message"]


def test_an_unclassified_error_is_a_bug_and_reaches_the_worker() -> None:
    r = reconciler(Store(KeyError("status")), Clock())
    with pytest.raises(KeyError):
        r.reconcile(KEY, {"interval"})


# -- automated sync's decision -----------------------------------------------------------------

SHA, OLD_SHA = "b" * 40, "a" * 40


def decide(
    rt: AppRuntime, clock: Clock, *, applied: str = OLD_SHA, self_heal: bool = True
) -> AutoSync:
    spec = copy.deepcopy(APP)
    spec["spec"]["syncPolicy"]["automated"]["selfHeal"] = self_heal
    r = reconciler(Store(KeyError("unused"), failing=0), clock)
    bound: Any = type("Log", (), {"info": lambda *a, **k: None})()
    return r._automated_trigger(
        parse_application(spec), rt, ApplicationStatus(last_applied_revision=applied), SHA, bound
    )


def test_a_new_revision_syncs() -> None:
    assert decide(AppRuntime(), Clock()) == AutoSync.SYNC


def test_a_failed_revision_waits_for_its_retry_then_syncs_then_holds_when_exhausted() -> None:
    clock = Clock()
    rt = AppRuntime(failed_revision=SHA, failures=1, retry_at=clock.now + 5.0)
    assert decide(rt, clock) == AutoSync.WAIT
    clock.now += 5.0
    assert decide(rt, clock) == AutoSync.SYNC
    rt.failures = 3  # retry.limit is 2
    assert decide(rt, clock) == AutoSync.HOLD


def test_drift_without_self_heal_holds() -> None:
    assert decide(AppRuntime(), Clock(), applied=SHA, self_heal=False) == AutoSync.HOLD


def test_self_heal_backs_off_and_resets_after_a_quiet_minute() -> None:
    clock, rt = Clock(), AppRuntime()
    assert decide(rt, clock, applied=SHA) == AutoSync.SYNC
    assert rt.heal_delay == 2.0
    clock.now += 1.0
    assert decide(rt, clock, applied=SHA) == AutoSync.WAIT  # drift again within 2 s
    clock.now += 1.0
    assert decide(rt, clock, applied=SHA) == AutoSync.SYNC
    assert rt.heal_delay == 4.0
    clock.now += 61.0
    assert decide(rt, clock, applied=SHA) == AutoSync.SYNC
    assert rt.heal_delay == 2.0
