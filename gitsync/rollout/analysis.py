"""Metric analysis: what one measurement says, and what a metric's measurements decide. Pure.

An ``analysis`` step runs each metric it names as an ``AnalysisRun``, kept in the Rollout's
``status.analysisRuns`` so a restarted controller goes on with the same counts and schedule. The
executor reads a metric from its provider (``gitsync.rollout.providers``) only when the decision
core says it is due, and hands the ``Reading`` back; everything here is a function of the spec,
the stored runs, those readings and the time - no I/O, no clock.

A metric is measured ``count`` times, ``interval`` apart, the first as soon as the step starts
(so ``failureLimit + 1`` failures take ``interval x failureLimit``). Each measurement is:

* **Successful** / **Failed**: the value does or does not meet ``successCondition``;
* **Inconclusive**: no data (an empty result, NaN) under ``noDataPolicy: inconclusive`` (the
  default); ``fail`` makes no data Failed, ``pass`` Successful - it is never silently dropped;
* **Error**: the provider could not be read (connection refused, HTTP 500, a timeout, a response
  too big or not understood) or the condition could not be evaluated on the value.

The run, following Argo Rollouts: **Failed** as soon as more than ``failureLimit`` measurements
failed (the spec parser refuses a limit that could never be exceeded) - the rollout aborts;
**Inconclusive** at the first inconclusive measurement - the rollout pauses with the message, and
a promote goes on past the step (a person decided); **Successful** once ``count`` measurements
were taken within the limit - the rollout goes on.

Errors **do not count toward** ``failureLimit``, nor toward ``count``: an unreachable Prometheus
is no evidence that the canary is bad, and must not turn into a pass either. They are retried at
the next interval; ``CONSECUTIVE_ERROR_LIMIT`` errors in a row (Argo's default
``consecutiveErrorLimit``) end the run as **Error**, which pauses the rollout like inconclusive,
with the provider's error in the message. So a broken metric source stops a rollout where it is
- neither a crash, nor a silent pass, nor an abort the canary did not earn.

Status stays bounded: a run keeps its counters and its last ``MAX_MEASUREMENTS`` measurements,
the status its last ``MAX_RUNS`` runs (the current step's always), messages are cut at
``MAX_MESSAGE``. Values are kept as text (``"0.99"``, ``"+Inf"``), as Argo does: JSON has no
infinities.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gitsync.rollout.expressions import ConditionError, compile_condition
from gitsync.rollout.spec import Analysis, Metric, NoDataPolicy

CONSECUTIVE_ERROR_LIMIT = 4
MAX_MEASUREMENTS = 10
MAX_RUNS = 16
MAX_MESSAGE = 256


class MeasurementPhase(enum.StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class RunPhase(enum.StrEnum):
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


@dataclass(frozen=True)
class Reading:
    """What a provider returned: a value, no data (``value`` None, no ``error``), or an error."""

    value: float | bool | None = None
    error: str = ""

    @property
    def no_data(self) -> bool:
        return self.value is None and not self.error


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def format_value(value: float | bool) -> str:
    """A value as status keeps it: ``true``, ``0.99``, ``+Inf``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def format_moment(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: measurements are scheduled to the interval, and whole
    seconds would move every measurement up to a second late (or early)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _parse_moment(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(raw: object) -> int:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else 0


def _str(raw: object) -> str:
    return raw if isinstance(raw, str) else ""


@dataclass(frozen=True)
class Measurement:
    time: str
    phase: MeasurementPhase
    value: str = ""
    """The value as text (``format_value``); "" for no data and for errors."""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": self.time, "phase": self.phase.value}
        if self.value:
            out["value"] = self.value
        if self.message:
            out["message"] = self.message
        return out

    @classmethod
    def from_dict(cls, doc: object) -> Measurement | None:
        if not isinstance(doc, Mapping):
            return None
        try:
            phase = MeasurementPhase(str(doc.get("phase")))
        except ValueError:
            return None
        return cls(_str(doc.get("time")), phase, _str(doc.get("value")), _str(doc.get("message")))


@dataclass(frozen=True)
class AnalysisRun:
    """One metric measured for one analysis step (``step`` is the step's index)."""

    step: int
    metric: str
    phase: RunPhase = RunPhase.RUNNING
    message: str = ""
    started_at: str = ""
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    measurements: tuple[Measurement, ...] = ()
    """The last ``MAX_MEASUREMENTS``; the counters count them all."""

    @property
    def measured(self) -> int:
        """Measurements that count toward ``count`` (errors do not)."""
        return self.successful + self.failed + self.inconclusive

    @property
    def finished(self) -> bool:
        return self.phase != RunPhase.RUNNING

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "metric": self.metric, "phase": self.phase.value}
        if self.message:
            out["message"] = self.message
        if self.started_at:
            out["startedAt"] = self.started_at
        for key, value in (
            ("successful", self.successful),
            ("failed", self.failed),
            ("inconclusive", self.inconclusive),
            ("errors", self.errors),
            ("consecutiveErrors", self.consecutive_errors),
        ):
            if value:
                out[key] = value
        if self.measurements:
            out["measurements"] = [m.to_dict() for m in self.measurements]
        return out

    @classmethod
    def from_dict(cls, doc: object) -> AnalysisRun | None:
        """Tolerant, like ``RolloutStatus.from_dict``; None for an entry that cannot be a run."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("metric"), str):
            return None
        try:
            phase = RunPhase(str(doc.get("phase")))
        except ValueError:
            return None
        raw = doc.get("measurements")
        parsed = [Measurement.from_dict(m) for m in raw] if isinstance(raw, list) else []
        return cls(
            step=_int(doc.get("step")),
            metric=doc["metric"],
            phase=phase,
            message=_str(doc.get("message")),
            started_at=_str(doc.get("startedAt")),
            successful=_int(doc.get("successful")),
            failed=_int(doc.get("failed")),
            inconclusive=_int(doc.get("inconclusive")),
            errors=_int(doc.get("errors")),
            consecutive_errors=_int(doc.get("consecutiveErrors")),
            measurements=tuple(m for m in parsed if m is not None)[-MAX_MEASUREMENTS:],
        )


# -- one measurement -----------------------------------------------------------------------------


def measure(metric: Metric, reading: Reading, now: datetime) -> Measurement:
    """Judge ``reading`` by the metric's ``successCondition`` and ``noDataPolicy``."""
    at = format_moment(now)
    if reading.error:
        return Measurement(at, MeasurementPhase.ERROR, message=_cut(reading.error))
    if reading.value is None:
        policy = metric.no_data_policy
        phase = {
            NoDataPolicy.FAIL: MeasurementPhase.FAILED,
            NoDataPolicy.PASS: MeasurementPhase.SUCCESSFUL,
            NoDataPolicy.INCONCLUSIVE: MeasurementPhase.INCONCLUSIVE,
        }[policy]
        return Measurement(at, phase, message=f"no data (noDataPolicy: {policy.value})")
    value = format_value(reading.value)
    try:
        ok = compile_condition(metric.success_condition).evaluate(reading.value)
    except ConditionError as exc:
        problem = f"successCondition {metric.success_condition!r} on {value}: {exc}"
        return Measurement(at, MeasurementPhase.ERROR, value, _cut(problem))
    if ok:
        return Measurement(at, MeasurementPhase.SUCCESSFUL, value)
    problem = f"{value} does not meet {metric.success_condition}"
    return Measurement(at, MeasurementPhase.FAILED, value, _cut(problem))


def record(run: AnalysisRun, metric: Metric, measurement: Measurement) -> AnalysisRun:
    """``run`` with ``measurement`` counted, and its phase and message decided by the module
    doc's rules."""
    phase = measurement.phase
    error = phase == MeasurementPhase.ERROR
    run = replace(
        run,
        successful=run.successful + (phase == MeasurementPhase.SUCCESSFUL),
        failed=run.failed + (phase == MeasurementPhase.FAILED),
        inconclusive=run.inconclusive + (phase == MeasurementPhase.INCONCLUSIVE),
        errors=run.errors + error,
        consecutive_errors=run.consecutive_errors + 1 if error else 0,
        measurements=(*run.measurements, measurement)[-MAX_MEASUREMENTS:],
    )
    tally = f"{run.measured}/{metric.count} measured, {run.failed} failed"
    if run.failed > metric.failure_limit:
        return replace(
            run,
            phase=RunPhase.FAILED,
            message=_cut(
                f"{run.failed} failed measurements, more than failureLimit {metric.failure_limit}"
                f" ({tally}); last: {measurement.message or measurement.phase.value}"
            ),
        )
    if phase == MeasurementPhase.INCONCLUSIVE:
        return replace(run, phase=RunPhase.INCONCLUSIVE, message=_cut(measurement.message))
    if run.consecutive_errors >= CONSECUTIVE_ERROR_LIMIT:
        return replace(
            run,
            phase=RunPhase.ERROR,
            message=_cut(
                f"{run.consecutive_errors} errors in a row, the last: {measurement.message}"
            ),
        )
    if run.measured >= metric.count:
        return replace(run, phase=RunPhase.SUCCESSFUL, message=tally)
    last = f"; last error: {measurement.message}" if error else ""
    return replace(run, phase=RunPhase.RUNNING, message=_cut(tally + last))


def seconds_until_due(run: AnalysisRun, metric: Metric, now: datetime) -> float:
    """How long until the run's next measurement (0 or less: due now; the first is due at once)."""
    last = _parse_moment(run.measurements[-1].time) if run.measurements else None
    if last is None:
        return 0.0
    return (last + timedelta(seconds=metric.interval) - now).total_seconds()


# -- one analysis step ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepAnalysis:
    """The state of an analysis step after this tick."""

    phase: RunPhase
    """RUNNING, SUCCESSFUL, FAILED, or INCONCLUSIVE (a run that ended Inconclusive or Error)."""
    runs: tuple[AnalysisRun, ...]
    """Every run to keep in status: this step's updated, older ones trimmed to ``MAX_RUNS``."""
    message: str
    due: tuple[str, ...] = ()
    """Metrics due now that have no reading yet: read them and decide again."""
    next_in: float | None = None
    """Seconds until the next measurement is due (when nothing is due now)."""


def _keep(runs: list[AnalysisRun], index: int) -> tuple[AnalysisRun, ...]:
    """The newest ``MAX_RUNS`` runs, never dropping one of step ``index``."""
    others = sum(r.step != index for r in runs)
    drop = max(min(len(runs) - MAX_RUNS, others), 0)
    kept: list[AnalysisRun] = []
    for run in runs:  # oldest first
        if drop and run.step != index:
            drop -= 1
            continue
        kept.append(run)
    return tuple(kept)


def analyse_step(
    index: int,
    step: Analysis,
    metrics: Mapping[str, Metric],
    runs: tuple[AnalysisRun, ...],
    *,
    readings: Mapping[str, Reading],
    now: datetime,
) -> StepAnalysis:
    """Start, measure and judge the metrics of analysis step ``index``.

    A metric that is due takes its reading from ``readings`` (the executor read it for this
    decision) or, without one, is listed in ``due``. The step is FAILED as soon as one metric
    failed, RUNNING while any is, INCONCLUSIVE when one ended Inconclusive or Error, else
    SUCCESSFUL.
    """
    updated = list(runs)
    position = {r.metric: i for i, r in enumerate(updated) if r.step == index}
    due: list[str] = []
    next_in: float | None = None
    mine: list[AnalysisRun] = []
    for name in dict.fromkeys(step.metrics):
        metric = metrics[name]
        if name not in position:
            position[name] = len(updated)
            started = format_moment(now)
            first = f"0/{metric.count} measured, 0 failed"
            updated.append(AnalysisRun(index, name, message=first, started_at=started))
        run = updated[position[name]]
        if not run.finished:
            wait = seconds_until_due(run, metric, now)
            if wait <= 0 and name in readings:
                run = record(run, metric, measure(metric, readings[name], now))
                wait = metric.interval
            elif wait <= 0:
                due.append(name)
            if not run.finished and wait > 0:
                next_in = wait if next_in is None else min(next_in, wait)
        updated[position[name]] = run
        mine.append(run)
    kept = _keep(updated, index)

    def says(run: AnalysisRun) -> str:
        if run.phase == RunPhase.RUNNING:
            return f"{run.metric}: {run.message}"
        return f"{run.metric} {run.phase.value.lower()}: {run.message}"

    failed = [r for r in mine if r.phase == RunPhase.FAILED]
    running = [r for r in mine if r.phase == RunPhase.RUNNING]
    stuck = [r for r in mine if r.phase in (RunPhase.INCONCLUSIVE, RunPhase.ERROR)]
    if failed:
        message = "analysis failed: " + "; ".join(map(says, failed))
        return StepAnalysis(RunPhase.FAILED, kept, _cut(message))
    if running:
        # No countdown in the message: it would change the status on every tick.
        message = "analysis running: " + "; ".join(says(r) for r in stuck + running)
        return StepAnalysis(RunPhase.RUNNING, kept, _cut(message), tuple(due), next_in)
    if stuck:
        message = "analysis inconclusive: " + "; ".join(map(says, stuck))
        return StepAnalysis(RunPhase.INCONCLUSIVE, kept, _cut(message))
    return StepAnalysis(
        RunPhase.SUCCESSFUL, kept, "analysis successful: " + "; ".join(map(says, mine))
    )


def skip_step(index: int, runs: tuple[AnalysisRun, ...], why: str) -> tuple[AnalysisRun, ...]:
    """``runs`` with step ``index``'s unfinished runs ended Inconclusive (a promote went past)."""
    return tuple(
        replace(r, phase=RunPhase.INCONCLUSIVE, message=_cut(why))
        if r.step == index and not r.finished
        else r
        for r in runs
    )
