"""The Rollouts of an Application as the web layer shows them, and the promote / abort / retry
requests the rollout panel writes on them.

An Application's Rollouts are the entries of its ``status.resources`` with group ``gitsync.dev``
and kind ``Rollout``; each lives in the app's destination namespace (and cluster). Their progress
is in the Rollout's own ``status`` (``gitsync.rollout.status``), which the Application does not
copy, so it is read live, through the controller's Kubernetes client - the only reads of the web
layer that do not come from the Application store. They are bounded: the detail page and
``GET .../rollouts`` read the app's Rollouts; the list reads only the Rollouts the Application
records as not Healthy (a running or aborted rollout), on the rows of the page being served; and
reads are shared for ``ttl`` seconds, like ``view.Snapshot``.

Like ``view``, documents are picked, typed and bounded from status someone else wrote, never
passed through, and nothing here raises on a malformed field. A Rollout that cannot be read
(RBAC, a cluster that is down) is a document with an ``error``, not a failed page.

Requests are annotations (``rollouts.gitsync.dev/promote: <nonce>[;full]``, ``.../abort``,
``.../retry``), the same ``gitsync rollout promote`` and ``kubectl annotate`` write: the rollout
executor handles each nonce once. The web layer only writes them for a Rollout the Application
lists, and only when the Rollout is in a state the request applies to (409 otherwise), so a stale
page cannot promote a rollout that has already moved on to a new revision's first step by luck.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from gitsync.application_status import ResourceStatus, from_dict
from gitsync.controller.interface import ControllerView, KubeAccess
from gitsync.errors import GitsyncError
from gitsync.rollout.spec import API_VERSION as ROLLOUT_API_VERSION
from gitsync.rollout.spec import GROUP as ROLLOUT_GROUP
from gitsync.rollout.spec import KIND as ROLLOUT_KIND
from gitsync.rollout.status import (
    ABORT_ANNOTATION,
    FULL_PROMOTE_SUFFIX,
    PROMOTE_ANNOTATION,
    RETRY_ANNOTATION,
)
from gitsync.web.view import AppKey, _list, _map, _message, _text

log = structlog.get_logger(__name__)

ROLLOUT_ACTIONS = ("promote", "abort", "retry")
ANNOTATIONS = {"promote": PROMOTE_ANNOTATION, "abort": ABORT_ANNOTATION, "retry": RETRY_ANNOTATION}
MAX_ROLLOUTS = 32  # per Application, shown and read
MAX_STEPS = 64
MAX_RUNS = 16
MAX_MEASUREMENTS = 20
IN_PROGRESS = ("Progressing", "Paused")
BLUE_GREEN_STAGES = (
    # ``gitsync.rollout.bluegreen``: PREVIEW, PROMOTED, DRAINING, FINISHING (then COMPLETE)
    "preview: the new version runs beside the old one; waiting for promotion",
    "promoted: the active Service sends traffic to the new pods (post-promotion analysis)",
    "draining: the old pods stay until the scale-down delay ends",
    "finishing: the stable Deployment takes the new template",
)


class RolloutError(Exception):
    """A rollout request refused: ``status`` is the HTTP status, the message is safe to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RolloutRef:
    """A Rollout an Application lists: where it is, and the health the Application recorded."""

    namespace: str
    name: str
    cluster: str
    health: str


def rollout_refs(obj: Mapping[str, Any]) -> list[RolloutRef]:
    """The Rollouts an Application lists in ``status.resources``, sorted by name."""
    meta = _map(obj.get("metadata"))
    destination = _map(_map(obj.get("spec")).get("destination"))
    default_ns = _text(destination.get("namespace"), 253) or _text(meta.get("namespace"), 253)
    cluster = _text(destination.get("name"), 253)
    refs: dict[tuple[str, str], RolloutRef] = {}
    listed = _map(obj.get("status")).get("resources")
    for entry in listed if isinstance(listed, list) else ():
        # only the Rollout entries are decoded: the list API asks this of every row it serves,
        # and decoding the whole status (history, operation...) per row was 80% of its time
        if not isinstance(entry, Mapping):
            continue
        if entry.get("group") != ROLLOUT_GROUP or entry.get("kind") != ROLLOUT_KIND:
            continue
        r = from_dict(ResourceStatus, entry)
        name = _text(r.name, 253)
        if not name:
            continue
        namespace = _text(r.namespace, 253) or default_ns
        health = _text(r.health.status, 32)
        refs[(namespace, name)] = RolloutRef(namespace, name, cluster, health)
    return [refs[k] for k in sorted(refs, key=lambda k: (k[1], k[0]))][:MAX_ROLLOUTS]


# -- documents (pure) --------------------------------------------------------------------------


def _int(value: object, low: int = 0, high: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return low
    if isinstance(value, float) and not math.isfinite(value):
        return low
    return min(max(int(value), low), high)


def _step_text(raw: object) -> tuple[str, str, int | None]:
    """(kind, words, weight it sets) for one canary step of the spec."""
    step = _map(raw)
    if "setWeight" in step:
        weight = _int(step.get("setWeight"), 0, 100)
        return "setWeight", f"set weight {weight} %", weight
    if "pause" in step:
        duration = _text(_map(step.get("pause")).get("duration"), 32)
        return "pause", (f"pause {duration}" if duration else "pause until promoted"), None
    if "analysis" in step:
        metrics = [_text(m, 63) for m in _list(_map(step.get("analysis")).get("metrics"))]
        names = ", ".join(m for m in metrics if m)
        return "analysis", "analysis" + (f": {names}" if names else ""), None
    return "unknown", "(a step this page does not know)", None


def _steps(spec: Mapping[str, Any]) -> tuple[str, list[tuple[str, str, int | None]]]:
    strategy = _map(spec.get("strategy"))
    if "canary" in strategy:
        raw = _list(_map(strategy.get("canary")).get("steps"))[:MAX_STEPS]
        return "canary", [_step_text(s) for s in raw]
    if "blueGreen" in strategy:
        return "blueGreen", [("stage", text, None) for text in BLUE_GREEN_STAGES]
    return "", []


def _measurement_value(text: str) -> float | None:
    """A measured value as a number for the chart: ``true``/``false`` are 1/0; no data, errors
    and infinities are not plotted."""
    if text in ("true", "false"):
        return 1.0 if text == "true" else 0.0
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _runs(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    runs = []
    for raw in _list(status.get("analysisRuns"))[-MAX_RUNS:]:
        run = _map(raw)
        metric = _text(run.get("metric"), 253)
        if not metric:
            continue
        measurements = []
        for m_raw in _list(run.get("measurements"))[-MAX_MEASUREMENTS:]:
            m = _map(m_raw)
            measurements.append(
                {
                    "time": _text(m.get("time"), 64),
                    "phase": _text(m.get("phase"), 32),
                    "value": _text(m.get("value"), 64),
                    "message": _message(m.get("message"), 256),
                }
            )
        runs.append(
            {
                "step": _int(run.get("step")),
                "metric": metric,
                "phase": _text(run.get("phase"), 32),
                "message": _message(run.get("message"), 256),
                "startedAt": _text(run.get("startedAt"), 64),
                "successful": _int(run.get("successful")),
                "failed": _int(run.get("failed")),
                "inconclusive": _int(run.get("inconclusive")),
                "errors": _int(run.get("errors")),
                "measurements": measurements,
            }
        )
    return runs


def rollout_document(ref: RolloutRef, live: Mapping[str, Any] | None) -> dict[str, Any]:
    """One Rollout as ``GET .../rollouts`` returns it (``live`` None: it does not exist)."""
    spec = _map((live or {}).get("spec"))
    status = _map((live or {}).get("status"))
    strategy, steps = _steps(spec)
    count = len(steps)
    index = _int(status.get("currentStepIndex"), 0, 10_000)
    complete = count > 0 and index >= count
    phase = _text(status.get("phase"), 32)
    canary_hash = _text(status.get("canaryHash"), 64)
    aborted_hash = _text(status.get("abortedHash"), 64)
    in_progress = bool(canary_hash) and phase in IN_PROGRESS
    # currentWeight is measured from ready pods while a canary exists (also after an abort, as
    # it scales to zero); with no canary everything runs the stable template.
    canary = _int(status.get("currentWeight"), 0, 100) if canary_hash else 0
    target = None  # the weight the steps ask for now
    if strategy == "canary" and in_progress:
        for _, _, weight in steps[: index + 1]:
            target = weight if weight is not None else target
        target = 100 if complete else target
    step_docs = [
        {
            "index": i,
            "kind": kind,
            "text": text,
            "state": "done" if i < index else ("current" if i == index else "pending"),
        }
        for i, (kind, text, _) in enumerate(steps)
    ]
    revision = _text(status.get("gitRevision"), 64)
    unit = "stage" if strategy == "blueGreen" else "step"
    if not count:
        step_text = "no steps" if live is not None else ""
    elif complete:
        step_text = f"all {count} {unit}s done"
    else:
        step_text = f"{unit} {index + 1} of {count}: {steps[index][1]}"
    if phase == "Degraded" and aborted_hash and step_text:
        step_text = "aborted at " + step_text
    return {
        "name": ref.name,
        "namespace": ref.namespace,
        "exists": live is not None,
        "error": "" if live is not None else "the Rollout does not exist (yet)",
        "strategy": strategy,
        "phase": phase,
        "message": _message(status.get("message")),
        "currentStepIndex": index,
        "stepCount": count,
        "stepNumber": min(index + 1, count),
        "complete": complete,
        "stepText": step_text,
        "steps": step_docs,
        "currentWeight": _int(status.get("currentWeight"), 0, 100),
        "weight": {"canary": canary, "stable": 100 - canary, "target": target},
        "replicas": _int(status.get("replicas")),
        "readyCanaryReplicas": _int(status.get("readyCanaryReplicas")),
        "readyStableReplicas": _int(status.get("readyStableReplicas")),
        "stableHash": _text(status.get("stableHash"), 64),
        "canaryHash": canary_hash,
        "abortedHash": aborted_hash,
        "gitRevision": revision,
        "gitRevisionShort": revision[:7],
        "pauseUntil": _text(status.get("pauseUntil"), 64),
        "inProgress": in_progress,
        "actions": {
            "promote": in_progress,
            "promoteFull": in_progress,
            "abort": in_progress,
            "retry": phase == "Degraded" and bool(aborted_hash),
        },
        "analysisRuns": _runs(status),
    }


def unreadable(ref: RolloutRef, error: str) -> dict[str, Any]:
    """The document of a Rollout that could not be read."""
    doc = rollout_document(ref, {})
    doc.update(exists=False, error=error)
    return doc


def compact(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields the Application list shows for a rollout."""
    return {
        "name": doc["name"],
        "namespace": doc["namespace"],
        "phase": doc["phase"],
        "stepNumber": doc["stepNumber"],
        "stepCount": doc["stepCount"],
        "complete": doc["complete"],
        "weight": doc["weight"],
        "strategy": doc["strategy"],
    }


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def remaining(until: str, now: datetime) -> str:
    """What is left of a pause ending at ``until``: ``1m 05s``, ``0s``; "" when unparsable."""
    moment = _moment(until) if until else None
    if moment is None:
        return ""
    seconds = max(0, math.ceil((moment - now).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


CHART_WIDTH, CHART_HEIGHT, CHART_PAD, CHART_LEFT = 240, 72, 8, 34  # the left gutter: labels
MARKERS = {"Successful": "circle", "Failed": "cross", "Inconclusive": "square", "Error": "triangle"}


def chart(run: Mapping[str, Any]) -> dict[str, Any]:
    """The geometry of a run's small chart (``static/app.js`` draws the same from the API):
    one marker per measurement, left to right by time (by order when times are missing), the
    measured values scaled between their minimum and maximum; a measurement without a value
    (no data, an error) sits on the bottom edge. Markers say their phase by shape and title."""
    measurements = list(run.get("measurements") or [])
    values = [_measurement_value(m["value"]) for m in measurements]
    times = [_moment(m["time"]) if m["time"] else None for m in measurements]
    stamps = [t.timestamp() for t in times if t is not None]
    by_time = len(stamps) == len(measurements) and len(set(stamps)) > 1
    numbers = [v for v in values if v is not None]
    low, high = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
    inner_w, inner_h = CHART_WIDTH - CHART_LEFT - CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    first, span = (min(stamps), max(stamps) - min(stamps)) if by_time else (0.0, 1.0)
    points = []
    for i, (m, value) in enumerate(zip(measurements, values, strict=True)):
        if by_time:
            frac = (stamps[i] - first) / span
        else:
            frac = i / (len(measurements) - 1) if len(measurements) > 1 else 0.5
        if value is None:
            y_frac = 0.0
        elif high - low < 1e-12:
            y_frac = 0.5
        else:
            y_frac = (value - low) / (high - low)
        x = round(CHART_LEFT + frac * inner_w, 1)
        y = round(CHART_PAD + (1 - y_frac) * inner_h, 1)
        label = f"{m['time'] or '?'}: {m['value'] or 'no value'} ({m['phase'] or '?'})"
        if m["message"]:
            label += f" - {m['message']}"
        points.append(
            {
                "x": x,
                "y": y,
                "phase": m["phase"],
                "shape": MARKERS.get(m["phase"], "circle"),
                "d": marker_path(MARKERS.get(m["phase"], "circle"), x, y),
                "plotted": value is not None,
                "label": label,
            }
        )
    line = " ".join(f"{p['x']:g},{p['y']:g}" for p in points if p["plotted"])
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "points": points,
        "line": line,
        "low": _fmt(low) if numbers else "",
        "high": _fmt(high) if numbers else "",
    }


def marker_path(shape: str, x: float, y: float) -> str:
    """An SVG path for a chart marker centred on (x, y): the shape tells the phase apart
    without colour (``static/app.js`` has the same function)."""
    r = 3.5

    def n(v: float) -> str:
        return f"{round(v, 1):g}"

    if shape == "cross":
        return (
            f"M{n(x - r)} {n(y - r)}L{n(x + r)} {n(y + r)}"
            f"M{n(x - r)} {n(y + r)}L{n(x + r)} {n(y - r)}"
        )
    if shape == "square":
        return f"M{n(x - 3)} {n(y - 3)}h6v6h-6Z"
    if shape == "triangle":
        return f"M{n(x)} {n(y - 4)}L{n(x + 4)} {n(y + 3)}L{n(x - 4)} {n(y + 3)}Z"
    return f"M{n(x - r)} {n(y)}a{r} {r} 0 1 0 7 0a{r} {r} 0 1 0 -7 0"


def _now_text() -> str:
    """Now, for the page's pause countdown: it counts by the server's clock, not the browser's."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# -- reading and writing -----------------------------------------------------------------------


class Rollouts:
    """Reads the Rollouts of Applications (shared for ``ttl`` seconds) and writes requests."""

    def __init__(
        self,
        controller: ControllerView,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.controller = controller
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}

    def _client(self, ref: RolloutRef) -> KubeAccess:
        try:
            return self.controller.cluster_client(ref.cluster)
        except GitsyncError as exc:  # not registered, or its kubeconfig refused
            why = _message(str(exc), 300)
            raise RolloutError(502, f"cannot reach cluster {ref.cluster!r}: {why}") from exc

    def _fetch(self, ref: RolloutRef) -> dict[str, Any]:
        try:
            live = self._client(ref).get(ROLLOUT_API_VERSION, ROLLOUT_KIND, ref.name, ref.namespace)
        except RolloutError as exc:
            return unreadable(ref, exc.message)
        except Exception as exc:  # the client's own errors (ApiError, ClusterError, OSError)
            log.warning(
                "rollout not readable",
                rollout=f"{ref.namespace}/{ref.name}",
                error=str(exc)[:300],
            )
            return unreadable(ref, "the Rollout could not be read: " + _message(str(exc), 300))
        return rollout_document(ref, live)

    def document(self, ref: RolloutRef, *, fresh: bool = False) -> dict[str, Any]:
        key = (ref.cluster, ref.namespace, ref.name)
        now = self._clock()
        if not fresh and self._ttl > 0:
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        doc = self._fetch(ref)
        with self._lock:
            self._cache[key] = (now, doc)
            if len(self._cache) > 4096:  # forget the oldest (apps come and go)
                oldest = sorted(self._cache.items(), key=lambda kv: kv[1][0])[:1024]
                for k, _ in oldest:
                    self._cache.pop(k, None)
        return doc

    def of_application(self, obj: Mapping[str, Any], *, fresh: bool = False) -> dict[str, Any]:
        """``GET .../rollouts``: every Rollout the Application lists, read live."""
        meta = _map(obj.get("metadata"))
        return {
            "application": f"{_text(meta.get('namespace'), 253)}/{_text(meta.get('name'), 253)}",
            "serverTime": _now_text(),
            "rollouts": [self.document(ref, fresh=fresh) for ref in rollout_refs(obj)],
        }

    def annotate_rows(
        self, rows: Sequence[dict[str, Any]], objs: Iterable[Mapping[str, Any]]
    ) -> None:
        """Add ``rollouts`` (compact, the ones not Healthy) to each row of the list. Only
        Rollouts the Application records as not Healthy are read."""
        wanted = {(r["namespace"], r["name"]) for r in rows}
        index: dict[AppKey, Mapping[str, Any]] = {}
        for o in objs:
            meta = _map(o.get("metadata"))
            key = (_text(meta.get("namespace"), 253), _text(meta.get("name"), 253))
            if key in wanted:
                index[key] = o
        for row in rows:
            obj = index.get((row["namespace"], row["name"]))
            shown = []
            for ref in rollout_refs(obj) if obj is not None else []:
                if ref.health == "Healthy":
                    continue
                doc = self.document(ref)
                if doc["phase"] and doc["phase"] != "Healthy":
                    shown.append(compact(doc))
            row["rollouts"] = shown

    def request(
        self,
        obj: Mapping[str, Any],
        rollout: str,
        action: str,
        *,
        full: bool,
        actor: str,
    ) -> dict[str, Any]:
        """Write ``action``'s annotation on the Application's Rollout ``rollout``; returns what
        was requested (for the 202). Raises ``RolloutError``."""
        if action not in ROLLOUT_ACTIONS:
            raise RolloutError(404, f"unknown rollout action {action!r}")
        if full and action != "promote":
            raise RolloutError(400, "full applies to promote only")
        meta = _map(obj.get("metadata"))
        app = f"{_text(meta.get('namespace'), 253)}/{_text(meta.get('name'), 253)}"
        ref = next((r for r in rollout_refs(obj) if r.name == rollout), None)
        if ref is None:
            raise RolloutError(404, f"the Application {app} has no Rollout {rollout!r}")
        client = self._client(ref)
        try:
            live = client.get(ROLLOUT_API_VERSION, ROLLOUT_KIND, ref.name, ref.namespace)
        except Exception as exc:  # the client's own errors (ApiError, ClusterError, OSError)
            raise RolloutError(502, "the Rollout could not be read") from exc
        if live is None:
            raise RolloutError(404, f"the Rollout {ref.namespace}/{ref.name} does not exist")
        doc = rollout_document(ref, live)
        allowed = doc["actions"]["promoteFull" if full else action]
        if not allowed:
            what = "retry" if action == "retry" else "promote or abort"
            state = doc["phase"] or "not started"
            raise RolloutError(
                409,
                f"nothing to {what}: the Rollout {ref.name} is {state}"
                + (" (retry needs an aborted rollout)" if action == "retry" else ""),
            )
        nonce = secrets.token_hex(6)
        value = nonce + (FULL_PROMOTE_SUFFIX if full else "")
        try:
            client.patch(
                ROLLOUT_API_VERSION,
                ROLLOUT_KIND,
                ref.name,
                {"metadata": {"annotations": {ANNOTATIONS[action]: value}}},
                namespace=ref.namespace,
                patch_type="merge",
            )
        except Exception as exc:  # the client's own errors: report, do not crash
            log.warning(
                "rollout request not recorded",
                app=app,
                rollout=f"{ref.namespace}/{ref.name}",
                action=action,
                error=str(exc)[:300],
            )
            raise RolloutError(502, "the request could not be recorded on the Rollout") from exc
        with self._lock:
            self._cache.pop((ref.cluster, ref.namespace, ref.name), None)
        log.info(
            "rollout action requested",
            app=app,
            rollout=f"{ref.namespace}/{ref.name}",
            action=action + (" --full" if full else ""),
            actor=actor,
        )
        words = {
            "promote": "promote to the next step requested",
            "abort": "abort requested: traffic goes back to stable",
            "retry": "retry of the aborted revision requested",
        }[action]
        if full:
            words = "full promotion requested: the remaining steps are skipped"
        return {
            "application": app,
            "rollout": f"{ref.namespace}/{ref.name}",
            "action": action,
            "full": full,
            "message": f"{ref.name}: {words}",
            "request": value,
        }


def split_rollout_action(path: str) -> tuple[str, str]:
    """``"<rollout>/<verb>"`` (the tail of ``.../rollouts/<rollout>/<verb>``) as its two parts;
    anything else gives a verb ``request`` refuses with 404."""
    rollout, _, verb = path.partition("/")
    return rollout, verb


def parse_rollout_body(action: str, body: Mapping[str, Any]) -> bool:
    """``{"full": true}`` for promote; returns ``full``."""
    full = body.get("full", False)
    if not isinstance(full, bool):
        raise RolloutError(400, "full must be true or false")
    if full and action != "promote":
        raise RolloutError(400, "full applies to promote only")
    return full
