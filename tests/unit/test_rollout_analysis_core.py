"""Metric analysis: the successCondition language and its bounds, the jsonPath subset, what a
provider's answer means (vector, scalar, empty, NaN, huge, garbage, errors over real loopback
HTTP), and the decision core measuring an analysis step: success after ``count`` good
measurements, abort after more than ``failureLimit`` failures, pause on no data, the ``fail`` and
``pass`` policies, provider errors that count toward neither.

The core is pure, so a small harness plays the executor: it ticks ``canary.step`` at the times the
decisions ask for (``requeue_after``), reads the metrics a decision names (``measure``) from a
scripted source and decides again with the readings, and applies the scale actions to two
replica counts whose pods are ready at once.
"""

from __future__ import annotations

import inspect
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gitsync.cli import build_parser
from gitsync.localenv.pki import make_pki
from gitsync.localenv.processes import free_port
from gitsync.rollout import canary as core
from gitsync.rollout import endpoints
from gitsync.rollout.analysis import (
    CONSECUTIVE_ERROR_LIMIT,
    MAX_MEASUREMENTS,
    MAX_RUNS,
    AnalysisRun,
    Reading,
    RunPhase,
    analyse_step,
)
from gitsync.rollout.canary import CreateCanary, Decision, Observation, Role, Scale, WorkloadState
from gitsync.rollout.endpoints import AnalysisAllowList
from gitsync.rollout.expressions import (
    MAX_CONDITION_LENGTH,
    ConditionError,
    compile_condition,
    compile_json_path,
    select,
)
from gitsync.rollout.providers import (
    MetricProviders,
    ProviderError,
    parse_prometheus_response,
    parse_web_response,
)
from gitsync.rollout.spec import (
    Analysis,
    RolloutSpec,
    RolloutSpecError,
    parse_rollout_spec,
)
from gitsync.rollout.status import PROMOTE_ANNOTATION, Phase, RolloutStatus

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
N = 10

# -- successCondition -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        ("result >= 0.95", 0.99, True),
        ("result >= 0.95", 0.5, False),
        ("result >= 0.95", 0.95, True),
        ("result == 0", 0.0, True),  # numbers are doubles: no int/double mismatch
        ("result == 1", 1.0, True),
        ("result * 100 >= 95 && result <= 1", 0.97, True),
        ("result * 100 >= 95 && result <= 1", 1.5, False),
        ("result < 0.01 || result > 0.99", 0.995, True),
        ("!(result < 0.5)", 0.7, True),
        ("-result < 0", 0.1, True),
        ("result / 2 > 0.4", 0.9, True),
        ("result > 0.5 ? result < 0.9 : false", 0.7, True),
        ("result > 0x10", 17.0, True),
        ("result >= 9.5e-1", 0.96, True),
        ("result", True, True),  # the web provider's booleans
        ("result == true", False, False),
        ("!result", False, True),
        ("result > 1e300", float("inf"), True),
    ],
)
def test_conditions_evaluate_like_cel(condition: str, result: float | bool, expected: bool) -> None:
    assert compile_condition(condition).evaluate(result) is expected


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("", "empty"),
        ("result >", "not a CEL expression"),
        ("result > 0.9 and result < 1", "not a CEL expression"),  # Python, not CEL
        ("__import__('os').system('true') == 0", "not supported"),
        ("size(result) > 0", "function calls"),
        ("result.size() > 0", "method calls"),
        ("result.value > 0", "field selection"),
        ("result[0] >= 0.95", "indexing"),
        ("result in [1, 2]", "not supported"),
        ("[1, 2].exists(x, x > result)", "not supported"),
        ("{'a': 1}['a'] > result", "not supported"),
        ("result == 'ok'", "strings"),
        ("result == b'ok'", "bytes"),
        ("result == null", "null"),
        ("result > 1u", "unsigned"),
        ("result % 2 == 0", "'%'"),
        ("duration('1s') > result", "function calls"),
        ("total > 1", "unknown name 'total'"),
        ("true", "never looks at result"),
        ("1 > 0", "never looks at result"),
        ("result > 1e400", "out of range"),
        ("result > " + "9" * 400, "out of range"),
        ("(" * 6 + "result" + ")" * 6 + " > 0", "nested deeper"),
        (" && ".join(["result > 0.1"] * 60), "nested deeper"),
        ("result > 0.5 && " * 80 + "true", f"longer than {MAX_CONDITION_LENGTH}"),
    ],
)
def test_conditions_outside_the_safe_subset_are_rejected(condition: str, problem: str) -> None:
    with pytest.raises(ConditionError, match=re.escape(problem)):
        compile_condition(condition)


def test_a_macro_bomb_is_rejected_before_anything_runs() -> None:
    # Evaluated, this nests four maps over 60-element lists: 13 million steps, minutes in any CEL
    # library, and neither can be interrupted. Refused at compile time instead.
    items = "[" + ",".join(["1"] * 60) + "]"
    bomb = f"{items}.map(a, {items}.map(b, {items}.map(c, {items}.map(d, result)))).size() > 0"
    assert len(bomb) <= MAX_CONDITION_LENGTH
    started = time.monotonic()
    with pytest.raises(ConditionError, match="not supported"):
        compile_condition(bomb)
    assert time.monotonic() - started < 2.0


def test_the_deepest_accepted_conditions_evaluate_even_from_a_deep_call_stack() -> None:
    def deepest(make: Callable[[int], str]) -> str:
        """The biggest ``make(n)`` the depth bound lets through."""
        n = 1
        while True:
            try:
                compile_condition(make(n + 1))
            except ConditionError:
                return make(n)
            n += 1

    conditions = [
        compile_condition(deepest(lambda n: "(" * n + "-result" + ")" * n + " < 0")),
        compile_condition(deepest(lambda n: " && ".join(["result > 0.1"] * n))),
    ]
    assert conditions[0].text.count("(") >= 5 and conditions[1].text.count("&&") >= 50

    def deeper(more: int) -> list[bool]:
        return deeper(more - 1) if more else [c.evaluate(0.5) for c in conditions]

    # a caller 500 frames deep, plus what evaluation takes, stays under Python's 1000
    assert deeper(500 - len(inspect.stack(0))) == [True, True]


@pytest.mark.parametrize(
    ("condition", "result", "problem"),
    [
        ("result == true", 0.99, "type mismatch"),
        ("result + 1", 0.99, "not true or false"),
        ("result > 0.5 ? 1 : 0", 0.99, "not true or false"),
    ],
)
def test_a_condition_that_cannot_be_evaluated_raises_condition_error(
    condition: str, result: float | bool, problem: str
) -> None:
    with pytest.raises(ConditionError, match=problem):
        compile_condition(condition).evaluate(result)


def test_the_spec_rejects_a_bad_condition_or_json_path_naming_the_field() -> None:
    with pytest.raises(RolloutSpecError, match=r"spec\.metrics\[0\]\.successCondition: .*function"):
        rollout_spec(metric={"successCondition": "size(result) > 0"})
    with pytest.raises(RolloutSpecError, match=r"spec\.metrics\[0\]\.provider\.web\.jsonPath"):
        rollout_spec(metric={"provider": {"web": {"url": "http://svc/", "jsonPath": "$..ok"}}})


# -- jsonPath ---------------------------------------------------------------------------------

DOC = {"ok": True, "a": {"b": [{"c": 0.97}, 5]}, "with space": {"x-y": "0.5"}, "nothing": None}


@pytest.mark.parametrize(
    ("path", "keys", "value"),
    [
        ("$", (), DOC),
        ("$.ok", ("ok",), True),
        ("$.a.b[0].c", ("a", "b", 0, "c"), 0.97),
        ("$.a.b[1]", ("a", "b", 1), 5),
        ("$['with space']['x-y']", ("with space", "x-y"), "0.5"),
        ('$["with space"].x-y', ("with space", "x-y"), "0.5"),
        ("$.a.b[7]", ("a", "b", 7), None),  # out of range: nowhere
        ("$.missing.deeper", ("missing", "deeper"), None),
        ("$.ok[0]", ("ok", 0), None),  # indexing a boolean: nowhere
        ("$.a.b.c", ("a", "b", "c"), None),  # a name on a list: nowhere
        ("$.nothing", ("nothing",), None),
    ],
)
def test_json_path_subset(path: str, keys: tuple[str | int, ...], value: object) -> None:
    assert compile_json_path(path) == keys
    assert select(DOC, keys) == value


@pytest.mark.parametrize(
    "path", ["ok", "$..ok", "$.a[*]", "$.a[-1]", "$.a[?(@.b)]", "$.a[0:2]", "$.", "$ok", "$['a"]
)
def test_json_path_outside_the_subset_is_rejected(path: str) -> None:
    with pytest.raises(ValueError, match=r"start with|unsupported"):
        compile_json_path(path)


# -- provider answers (pure) ------------------------------------------------------------------


def prom(result_type: str, result: object, status: str = "success") -> bytes:
    return json.dumps(
        {"status": status, "data": {"resultType": result_type, "result": result}}
    ).encode()


def series(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1767268800.0, value]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (prom("vector", [series("0.99")]), Reading(0.99)),
        (prom("vector", [series("1", job="web")]), Reading(1.0)),
        (prom("scalar", [1767268800.0, "0.5"]), Reading(0.5)),
        (prom("vector", []), Reading()),  # empty: no data
        (prom("vector", [series("NaN")]), Reading()),  # 0/0: no data
        (prom("scalar", [1767268800.0, "NaN"]), Reading()),
        (prom("vector", [series("+Inf")]), Reading(float("inf"))),
    ],
)
def test_prometheus_values(body: bytes, expected: Reading) -> None:
    assert parse_prometheus_response(body) == expected
    assert parse_prometheus_response(body).no_data == (expected.value is None)


HUGE_VECTOR = prom("vector", [series("1", pod=f"web-{i}") for i in range(20_000)])


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (prom("vector", [series("1", pod="a"), series("0", pod="b")]), "2 series; aggregate"),
        (prom("matrix", [{"metric": {}, "values": [[1, "1"]]}]), "result type matrix"),
        (prom("string", [1, "x"]), "result type string"),
        (prom("secret-token", [1, "x"]), "result type unexpected:"),
        (prom("vector", [series("fast")]), "not a number"),
        (prom("vector", [{"metric": {}, "histogram": [1, {}]}]), "no value"),
        (prom("vector", {"not": "a list"}), "not a list"),
        (
            json.dumps(
                {"status": "error", "errorType": "bad_data", "error": "parse error"}
            ).encode(),
            "^Prometheus bad_data$",
        ),
        (b"<html>502 Bad Gateway</html>", "^response is not JSON$"),
        (b"", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2, 3]", "not a Prometheus API object"),
        (json.dumps({"status": "success"}).encode(), "no data"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|larger than"),
        (HUGE_VECTOR, "larger than"),
        (b" " * (2 << 20), "larger than"),
    ],
)
def test_prometheus_answers_that_are_errors(body: bytes, problem: str) -> None:
    with pytest.raises(ProviderError, match=problem):
        parse_prometheus_response(body)


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        (b'{"ok": true}', "$.ok", Reading(True)),
        (b'{"ok": false}', "$.ok", Reading(False)),
        (b'{"ratio": 0.97}', "$.ratio", Reading(0.97)),
        (b'{"ratio": 3}', "$.ratio", Reading(3.0)),
        (b'{"ratio": "0.5"}', "$.ratio", Reading(0.5)),
        (b'{"data": [{"v": 1.5}]}', "$.data[0].v", Reading(1.5)),
        (b'{"ratio": null}', "$.ratio", Reading()),
        (b'{"other": 1}', "$.ratio", Reading()),
        (b'{"ratio": NaN}', "$.ratio", Reading()),
        (b'{"ratio": "NaN"}', "$.ratio", Reading()),
        (b"0.99", "$", Reading(0.99)),
    ],
)
def test_web_values(body: bytes, path: str, expected: Reading) -> None:
    assert parse_web_response(body, path) == expected


@pytest.mark.parametrize(
    ("body", "path", "problem"),
    [
        (b'{"ok": {"nested": 1}}', "$.ok", "dict, not a number"),
        (b'{"ok": [1]}', "$.ok", "list, not a number"),
        (b'{"ok": "yes"}', "$.ok", r"^\$\.ok is a string that is not a number$"),
        (b"not json", "$.ok", "not JSON"),
        (b'{"ok": 1}', "$..ok", "jsonPath"),
        (b'{"ok": ' + b"1" * 400 + b"}", "$.ok", "not a number"),  # too big for a double
    ],
)
def test_web_answers_that_are_errors(body: bytes, path: str, problem: str) -> None:
    with pytest.raises(ProviderError, match=problem):
        parse_web_response(body, path)


# -- providers over loopback HTTP -------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0


class MetricServer:
    """A loopback HTTP server answering each path with a scripted ``Answer``."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.queries: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                server.queries.append(query)
                answer = server.answers.get(path, Answer(404, b"not found"))
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    if answer.drip:
                        for i in range(len(answer.body)):
                            self.wfile.write(answer.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(answer.drip)
                    else:
                        self.wfile.write(answer.body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# the test servers listen on loopback, which only an entry naming the host reaches
LOOPBACK_ONLY = AnalysisAllowList.parse(["http://127.0.0.1:*/*"])
LOOPBACK = MetricProviders(allow=LOOPBACK_ONLY)


@pytest.fixture
def server() -> Iterator[MetricServer]:
    s = MetricServer()
    yield s
    s.close()


def prometheus_metric(address: str, query: str = "success_ratio") -> Any:
    return rollout_spec(
        metric={"provider": {"prometheus": {"address": address, "query": query}}}
    ).metrics[0]


def web_metric(url: str, json_path: str = "$.ok", timeout: str = "2s") -> Any:
    return rollout_spec(
        metric={
            "successCondition": "result == true",
            "provider": {"web": {"url": url, "jsonPath": json_path, "timeout": timeout}},
        }
    ).metrics[0]


def test_prometheus_is_queried_with_the_query_and_a_timeout(server: MetricServer) -> None:
    server.answers["/api/v1/query"] = Answer(body=prom("vector", [series("0.99")]))
    reading = LOOPBACK.read(prometheus_metric(server.url + "/", 'sum(rate(x{code="200"}[1m]))'))
    assert reading == Reading(0.99)
    [query] = server.queries
    assert "query=sum%28rate%28x%7Bcode%3D%22200%22%7D%5B1m%5D%29%29" in query
    assert "timeout=10s" in query


def test_the_web_provider_reads_json(server: MetricServer) -> None:
    server.answers["/health"] = Answer(body=b'{"ok": true}')
    assert LOOPBACK.read(web_metric(server.url + "/health")) == Reading(True)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (Answer(500, b"boom"), "^HTTP 500 from http://127.0.0.1:[0-9]+/api/v1/query$"),
        (
            Answer(400, b'{"status":"error","errorType":"bad_data","error":"parse error at 3"}'),
            "^HTTP 400 from .*: Prometheus bad_data$",
        ),
        (Answer(200, b"<html>garbage</html>"), "^response is not JSON$"),
        (Answer(200, b"{" * 10), "not JSON"),
        (Answer(200, b" " * (1 << 20) + b"{}"), "larger than"),
        (
            Answer(302, headers={"Location": "file:///etc/passwd"}),
            "^HTTP 302 from .*: redirects are not followed$",
        ),
        (Answer(302, headers={"Location": "ftp://127.0.0.1/x"}), "redirects are not followed"),
        (Answer(200, b"{}", delay=3.0), "did not answer within 1s|timed out"),
    ],
)
def test_provider_failures_are_error_readings_not_exceptions(
    server: MetricServer, answer: Answer, problem: str
) -> None:
    server.answers["/api/v1/query"] = answer
    started = time.monotonic()
    reading = MetricProviders(allow=LOOPBACK_ONLY, prometheus_timeout=1.0).read(
        prometheus_metric(server.url)
    )
    assert reading.value is None and reading.error
    assert re.search(problem, reading.error), reading.error
    assert time.monotonic() - started < 2.5


def test_a_dripping_server_is_cut_off_near_the_timeout(server: MetricServer) -> None:
    server.answers["/health"] = Answer(body=b'{"ok": true}' + b" " * 100, drip=0.05)
    started = time.monotonic()
    reading = LOOPBACK.read(web_metric(server.url + "/health", timeout="500ms"))
    elapsed = time.monotonic() - started
    assert "longer than 0.5s" in reading.error
    assert elapsed < 1.5, f"{elapsed:.2f}s"


def test_connection_refused_is_an_error_reading() -> None:
    reading = LOOPBACK.read(prometheus_metric(f"http://127.0.0.1:{free_port()}"))
    assert reading.error.startswith("cannot reach http://127.0.0.1:")
    assert "refused" in reading.error.lower()


# -- the decision core with measurements ------------------------------------------------------


def rollout_spec(
    *,
    metric: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    extra_metrics: tuple[dict[str, Any], ...] = (),
    deadline: int = 30,
) -> RolloutSpec:
    the_metric: dict[str, Any] = {
        "name": "success-rate",
        "interval": "10s",
        "count": 3,
        "failureLimit": 1,
        "successCondition": "result >= 0.95",
        "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "ratio"}},
    }
    the_metric.update(metric or {})
    return parse_rollout_spec(
        {
            "targetRef": {"name": "web"},
            "progressDeadlineSeconds": deadline,
            "strategy": {
                "canary": {
                    "steps": steps
                    or [
                        {"setWeight": 20},
                        {"analysis": {"metrics": ["success-rate"]}},
                        {"setWeight": 50},
                        {"pause": {}},
                    ]
                }
            },
            "metrics": [the_metric, *extra_metrics],
        }
    )


Source = Callable[[str, datetime], Reading]


@dataclass
class Harness:
    """Replica counts (pods ready at once) and the metric reads the decisions asked for."""

    spec: RolloutSpec
    source: Source
    stable: int = N
    canary: int | None = None
    stable_hash: str = "old"
    canary_hash: str = ""
    promote: str = ""
    reads: list[tuple[str, datetime]] = field(default_factory=list)

    def observe(self, now: datetime) -> Observation:
        stable = WorkloadState(self.stable, self.stable, self.stable, self.stable_hash, True)
        canary = None
        if self.canary is not None:
            canary = WorkloadState(self.canary, self.canary, self.canary, self.canary_hash)
        return Observation(now, stable, canary, core.Requests(promote=self.promote), 1)

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, Scale) and action.role == Role.STABLE:
                self.stable = action.replicas
            elif isinstance(action, Scale):
                self.canary = action.replicas
            elif isinstance(action, CreateCanary):
                self.canary, self.canary_hash = 0, action.template_hash

    def start(self) -> RolloutStatus:
        decision = core.start(
            self.spec,
            RolloutStatus(phase=Phase.HEALTHY, stable_hash="old"),
            self.observe(T0),
            desired_hash="new",
            held=True,
            replicas=N,
            revision="abc",
        )
        self.apply(decision)
        return decision.status

    def tick(self, status: RolloutStatus, now: datetime) -> Decision:
        """What the executor does: decide, read what is due, decide again with the readings."""
        obs = self.observe(now)
        decision = core.step(self.spec, status, obs)
        if decision.measure:
            readings = {name: self.source(name, now) for name in decision.measure}
            self.reads += [(name, now) for name in decision.measure]
            decision = core.step(self.spec, status, replace(obs, readings=readings))
            assert not decision.measure, "read metrics are recorded in the same tick"
        self.apply(decision)
        return decision

    def run(
        self,
        status: RolloutStatus,
        now: datetime,
        until: Callable[[RolloutStatus], bool],
        *,
        ticks: int = 200,
    ) -> tuple[RolloutStatus, datetime]:
        """Tick when the decisions say (``requeue_after``; 1 s when they say nothing)."""
        for _ in range(ticks):
            decision = self.tick(status, now)
            status = decision.status
            if until(status):
                return status, now
            wait = decision.requeue_after
            now += timedelta(seconds=1.0 if wait is None else max(wait, 0.001))
        raise AssertionError(f"not reached in {ticks} ticks: {status}")


def values(*sequence: float | str | None) -> Source:
    """A source giving these readings in turn (None: no data, a str: an error), then the last."""
    given = list(sequence)

    def source(name: str, now: datetime) -> Reading:
        item = given.pop(0) if len(given) > 1 else given[0]
        if isinstance(item, str):
            return Reading(error=item)
        return Reading(item)

    return source


def at(index: int, phase: Phase | None = None) -> Callable[[RolloutStatus], bool]:
    return lambda s: s.current_step_index == index and (phase is None or s.phase == phase)


def the_run(status: RolloutStatus, metric: str = "success-rate") -> AnalysisRun:
    [run] = [r for r in status.analysis_runs if r.metric == metric]
    return run


def analysing(h: Harness) -> tuple[RolloutStatus, datetime]:
    """Start and tick until the analysis step (index 1) began: its first read was taken."""
    status, now = h.run(h.start(), T0, lambda s: bool(s.analysis_runs))
    assert h.reads == [("success-rate", now)], "the first measurement is taken at once"
    return status, now


def test_good_measurements_pass_after_count_and_the_rollout_goes_on() -> None:
    h = Harness(rollout_spec(), values(0.99))
    status, began = analysing(h)
    assert status.phase == Phase.PROGRESSING and "analysis running" in status.message
    status, _ = h.run(status, began, at(3, Phase.PAUSED))
    assert [t - began for _, t in h.reads] == [timedelta(seconds=s) for s in (0, 10, 20)]
    run = the_run(status)
    assert (run.phase, run.successful, run.failed, run.step) == (RunPhase.SUCCESSFUL, 3, 0, 1)
    assert [m.value for m in run.measurements] == ["0.99"] * 3
    assert (h.canary, h.stable) == (5, 5), "went on to setWeight 50"


def test_requeue_after_says_when_the_next_measurement_is_due() -> None:
    h = Harness(rollout_spec(), values(0.99))
    status, began = analysing(h)
    decision = h.tick(status, began + timedelta(seconds=3.5))
    assert decision.measure == () and decision.requeue_after == pytest.approx(6.5)
    assert h.reads == [("success-rate", began)], "nothing read before it is due"
    assert decision.status == replace(status, last_progress_time=decision.status.last_progress_time)


def test_more_failures_than_failure_limit_abort_within_interval_times_failure_limit() -> None:
    h = Harness(rollout_spec(metric={"failureLimit": 1}), values(0.5))
    status, began = analysing(h)
    status, now = h.run(status, began, lambda s: s.phase == Phase.DEGRADED)
    assert now - began == timedelta(seconds=10 * 1), "interval x failureLimit"
    assert (h.canary, h.stable) == (0, N), "traffic back on stable at once"
    assert status.aborted_hash == "new"
    assert "analysis failed: success-rate failed: 2 failed measurements" in status.message
    assert "0.5 does not meet result >= 0.95" in status.message
    run = the_run(status)
    assert (run.phase, run.failed, len(run.measurements)) == (RunPhase.FAILED, 2, 2)


def test_failures_within_the_limit_still_pass() -> None:
    h = Harness(rollout_spec(metric={"count": 4, "failureLimit": 2}), values(0.5, 0.99, 0.4, 0.99))
    status, began = analysing(h)
    status, _ = h.run(status, began, at(3, Phase.PAUSED))
    run = the_run(status)
    assert (run.phase, run.successful, run.failed) == (RunPhase.SUCCESSFUL, 2, 2)


def test_no_data_is_inconclusive_by_default_and_pauses_until_promoted() -> None:
    h = Harness(rollout_spec(), values(None))
    status, began = analysing(h)
    assert status.phase == Phase.PAUSED
    assert (
        "inconclusive" in status.message
        and "no data (noDataPolicy: inconclusive)" in status.message
    )
    assert PROMOTE_ANNOTATION in status.message
    assert (h.canary, h.stable) == (2, 8), "the weight reached so far holds"
    later = h.tick(status, began + timedelta(hours=3))
    assert later.status.phase == Phase.PAUSED and later.requeue_after is None
    assert len(h.reads) == 1, "no more reads while paused, no abort, no pass"
    h.promote = "p1"
    status, _ = h.run(later.status, began + timedelta(hours=3), at(3, Phase.PAUSED))
    assert (h.canary, h.stable) == (5, 5), "promote went on past the analysis"
    assert the_run(status).phase == RunPhase.INCONCLUSIVE


def test_no_data_policy_fail_counts_as_a_failure() -> None:
    h = Harness(rollout_spec(metric={"noDataPolicy": "fail"}), values(None))
    status, began = analysing(h)
    status, now = h.run(status, began, lambda s: s.phase == Phase.DEGRADED)
    assert now - began == timedelta(seconds=10)
    assert "no data (noDataPolicy: fail)" in status.message


def test_no_data_policy_pass_counts_as_a_success() -> None:
    h = Harness(rollout_spec(metric={"noDataPolicy": "pass"}), values(None))
    status, began = analysing(h)
    status, _ = h.run(status, began, at(3, Phase.PAUSED))
    assert the_run(status).successful == 3
    assert {m.value for m in the_run(status).measurements} == {""}


def test_provider_errors_count_toward_neither_failure_limit_nor_count() -> None:
    refused = "cannot reach http://prometheus:9090/api/v1/query: connection refused"
    h = Harness(rollout_spec(), values(refused, 0.99, "HTTP 500", 0.99, refused, 0.99))
    status, began = analysing(h)
    status, _ = h.run(status, began, at(3, Phase.PAUSED))
    run = the_run(status)
    assert (run.phase, run.successful, run.failed, run.errors) == (RunPhase.SUCCESSFUL, 3, 0, 3)
    assert len(h.reads) == 6
    assert [m.phase.value for m in run.measurements][:2] == ["Error", "Successful"]


def test_errors_in_a_row_pause_with_the_error() -> None:
    h = Harness(rollout_spec(), values("cannot reach http://prometheus:9090: connection refused"))
    status, began = analysing(h)
    status, now = h.run(status, began, lambda s: s.phase == Phase.PAUSED)
    assert len(h.reads) == CONSECUTIVE_ERROR_LIMIT
    assert now - began == timedelta(seconds=10 * (CONSECUTIVE_ERROR_LIMIT - 1))
    assert f"{CONSECUTIVE_ERROR_LIMIT} errors in a row" in status.message
    assert "connection refused" in status.message
    assert the_run(status).phase == RunPhase.ERROR
    assert status.aborted_hash == "", "no evidence against the canary: not aborted"


def test_a_condition_that_cannot_judge_the_value_is_an_error_measurement() -> None:
    spec = rollout_spec(metric={"successCondition": "result == true"})
    h = Harness(spec, values(0.99))  # a number where the condition expects a boolean
    status, _ = analysing(h)
    [measurement] = the_run(status).measurements
    assert measurement.phase.value == "Error" and "type mismatch" in measurement.message


def test_a_failing_metric_aborts_while_another_still_runs() -> None:
    latency = {
        "name": "latency",
        "interval": "30s",
        "count": 5,
        "successCondition": "result < 0.3",
        "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "p99"}},
    }
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"analysis": {"metrics": ["success-rate", "latency"]}},
    ]
    h = Harness(
        rollout_spec(steps=steps, extra_metrics=(latency,)),
        lambda name, now: Reading(0.1 if name == "latency" else 0.2),
    )
    status, began = h.run(h.start(), T0, lambda s: bool(s.analysis_runs))
    assert sorted(n for n, _ in h.reads) == ["latency", "success-rate"]
    status, now = h.run(status, began, lambda s: s.phase == Phase.DEGRADED)
    assert now - began == timedelta(seconds=10)
    assert the_run(status, "latency").phase == RunPhase.RUNNING
    assert "success-rate failed" in status.message and "latency" not in status.message


def test_analysing_does_not_count_against_the_progress_deadline() -> None:
    slow = rollout_spec(metric={"interval": "60s", "count": 3}, deadline=30)
    h = Harness(slow, values(0.99))
    status, began = analysing(h)
    status, _ = h.run(status, began, at(3, Phase.PAUSED))
    assert [t - began for _, t in h.reads] == [timedelta(seconds=s) for s in (0, 60, 120)]
    assert status.aborted_hash == "" and the_run(status).phase == RunPhase.SUCCESSFUL


def test_a_promote_while_analysing_skips_the_rest_and_says_so() -> None:
    h = Harness(rollout_spec(), values(0.99))
    status, began = analysing(h)
    h.promote = "p1"
    status, _ = h.run(status, began + timedelta(seconds=1), at(3, Phase.PAUSED))
    run = the_run(status)
    assert run.phase == RunPhase.INCONCLUSIVE and "promoted" in run.message
    assert len(h.reads) == 1


def test_retry_after_an_analysis_abort_measures_afresh() -> None:
    h = Harness(rollout_spec(), values(0.5, 0.5, 0.99))
    status, began = analysing(h)
    status, now = h.run(status, began, lambda s: s.phase == Phase.DEGRADED)
    decision = core.step(
        h.spec, status, replace(h.observe(now), requests=core.Requests(retry="r1"))
    )
    assert decision.status.analysis_runs == () and decision.status.phase == Phase.PROGRESSING
    status, _ = h.run(decision.status, now, at(3, Phase.PAUSED))
    assert the_run(status).successful == 3


def test_analysis_status_is_bounded_json_and_survives_a_restart() -> None:
    h = Harness(
        rollout_spec(metric={"interval": "1s", "count": 50, "failureLimit": 10}), values(0.99)
    )
    status, began = analysing(h)
    status, now = h.run(status, began, lambda s: the_run(s).measured == 20)
    run = the_run(status)
    assert (run.successful, len(run.measurements)) == (20, MAX_MEASUREMENTS)
    doc = json.loads(json.dumps(status.to_dict(), allow_nan=False))
    entry = doc["analysisRuns"][0]
    assert entry["measurements"][-1]["value"] == "0.99"
    assert entry["measurements"][-1]["time"].endswith(".000Z")
    restarted = RolloutStatus.from_dict(doc)
    assert restarted == status
    # the schedule continues from the stored time: a restart neither reads early nor starts over
    decision = h.tick(restarted, now + timedelta(seconds=0.5))
    assert decision.measure == () and decision.requeue_after == pytest.approx(0.5)


def test_infinite_values_are_kept_as_text() -> None:
    h = Harness(rollout_spec(metric={"successCondition": "result > 100"}), values(float("inf")))
    status, _ = analysing(h)
    assert the_run(status).measurements[0].value == "+Inf"
    json.dumps(status.to_dict(), allow_nan=False)


def test_runs_kept_in_status_are_bounded_and_the_current_steps_are_never_dropped() -> None:
    spec = rollout_spec()
    old = tuple(
        AnalysisRun(step=i, metric="success-rate", phase=RunPhase.SUCCESSFUL) for i in range(40)
    )
    result = analyse_step(
        99,
        Analysis(("success-rate",)),
        {m.name: m for m in spec.metrics},
        old,
        readings={"success-rate": Reading(0.99)},
        now=T0,
    )
    assert len(result.runs) == MAX_RUNS
    assert result.runs[-1].step == 99 and result.runs[-1].successful == 1
    assert [r.step for r in result.runs[:-1]] == list(range(40 - MAX_RUNS + 1, 40)), "oldest go"


def test_malformed_stored_runs_read_as_absent() -> None:
    status = RolloutStatus.from_dict(
        {
            "analysisRuns": [
                {"step": 1, "metric": "a", "phase": "Running", "measurements": [{"phase": "?"}]},
                {"step": 1, "phase": "Running"},
                {"step": 1, "metric": "b", "phase": "Exploded"},
                "junk",
            ]
        }
    )
    assert [(r.metric, r.measurements) for r in status.analysis_runs] == [("a", ())]


# -- where analysis may connect (issue 13, finding 4) ------------------------------------------

SECRET = "AKIA-metadata-secret-5f0c2b"


def test_without_an_allow_list_analysis_reads_nothing(server: MetricServer) -> None:
    server.answers["/health"] = Answer(body=b'{"ok": true}')
    reading = MetricProviders().read(web_metric(server.url + "/health"))
    assert reading.error == "URL not allowed by --analysis-allow"
    assert server.queries == [], "the request was sent"


@pytest.mark.parametrize(
    ("entries", "url", "reason"),
    [
        # a wildcard host does not reach loopback, link-local or metadata addresses
        (["http://*"], "http://127.0.0.1:{port}/health", "resolves to a loopback address"),
        (["http://*"], "http://localhost:{port}/health", "resolves to a loopback address"),
        (["http://*"], "http://[::ffff:127.0.0.1]:{port}/h", "resolves to a loopback address"),
        (["http://*"], "http://169.254.169.254/latest/meta-data/", "link-local address"),
        (["http://*"], "http://[fd00:ec2::254]/latest/meta-data/", "a metadata address"),
        (["http://*"], "http://0.0.0.0:{port}/health", "an unspecified address"),
        (["http://*"], "http://metadata.google.internal/v1/", "is a metadata endpoint"),
        (["http://*.internal/*"], "http://Metadata.Google.Internal/v1/", "metadata endpoint"),
        # user info cannot smuggle another host past an entry; hosts match whole
        (["http://127.0.0.1:*"], "http://127.0.0.1:{port}@169.254.169.254/", "user info"),
        (["http://good.example/*"], "http://good.example.evil.test/x", "not allowed"),
        (["http://127.0.0.1:*/*"], "http://user:pw@127.0.0.1:{port}/health", "user info"),
    ],
)
def test_urls_outside_the_allow_list_are_refused_before_any_request(
    server: MetricServer, entries: list[str], url: str, reason: str
) -> None:
    server.answers["/health"] = Answer(body=b'{"ok": true}')
    providers = MetricProviders(allow=AnalysisAllowList.parse(entries))
    reading = providers.read(web_metric(url.format(port=server.url.rsplit(":", 1)[1])))
    assert reason in reading.error
    assert server.queries == [], "the request was sent"


@pytest.mark.parametrize("entry", ["http://127.0.0.1:*/*", "HTTP://LocalHost:*/health"])
def test_an_entry_naming_a_loopback_host_allows_it(server: MetricServer, entry: str) -> None:
    server.answers["/health"] = Answer(body=b'{"ok": true}')
    host = "localhost" if "localhost" in entry.lower() else "127.0.0.1"
    url = server.url.replace("127.0.0.1", host) + "/health"
    assert MetricProviders(allow=AnalysisAllowList.parse([entry])).read(web_metric(url)) == (
        Reading(True)
    )


def test_the_connection_goes_to_the_address_that_was_checked(
    server: MetricServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: the name answers 127.0.0.1 for the check, then 127.0.0.2 (nothing listens
    # there). Reading must use the first answer, not ask again.
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])
    real = socket.getaddrinfo

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            host = next(answers)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    server.answers["/health"] = Answer(body=b'{"ok": true}')
    url = server.url.replace("127.0.0.1", "rebind.test") + "/health"
    providers = MetricProviders(allow=AnalysisAllowList.parse(["http://rebind.test:*/*"]))
    assert providers.read(web_metric(url)) == Reading(True)
    assert next(answers) == "127.0.0.2", "the name was resolved more than once"


@pytest.mark.parametrize(
    ("answer", "json_path"),
    [
        (Answer(200, json.dumps({"token": SECRET}).encode()), "$.token"),
        (Answer(200, SECRET.encode()), "$.ok"),
        (Answer(200, b"{" + SECRET.encode()), "$.ok"),
        (Answer(500, SECRET.encode()), "$.ok"),
        (Answer(403, json.dumps({"errorType": SECRET, "error": SECRET}).encode()), "$.ok"),
        (Answer(302, headers={"Location": f"http://169.254.169.254/{SECRET}"}), "$.ok"),
        (Answer(200, json.dumps({"ok": {"nested": SECRET}}).encode()), "$.ok"),
    ],
)
def test_no_byte_of_the_response_reaches_the_reading(
    server: MetricServer, answer: Answer, json_path: str
) -> None:
    server.answers["/latest/meta-data/token"] = answer
    url = server.url + "/latest/meta-data/token"
    reading = LOOPBACK.read(web_metric(url, json_path=json_path))
    assert reading.error and reading.value is None
    assert SECRET not in reading.error and "AKIA" not in reading.error, reading.error


def test_a_prometheus_error_body_gives_only_its_error_type(server: MetricServer) -> None:
    body = {"status": "error", "errorType": "bad_data", "error": f"parse error near {SECRET}"}
    server.answers["/api/v1/query"] = Answer(200, json.dumps(body).encode())
    reading = LOOPBACK.read(prometheus_metric(server.url))
    assert reading.error == "Prometheus bad_data"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("127.0.0.1:9090/*", "must start with http:// or https://"),
        ("ftp://example.com/*", "must start with http:// or https://"),
        ("*://example.com/*", "must start with http:// or https://"),
        ("https:///x", "has no host"),
        ("https://user@example.com/*", "must not contain user info"),
    ],
)
def test_bad_allow_list_entries_name_the_flag(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"--analysis-allow '{re.escape(entry)}': {problem}"):
        AnalysisAllowList.parse([entry])


@pytest.mark.parametrize("command", [["serve"], ["sync", "-f", "app.yaml"]])
def test_a_bad_analysis_allow_flag_is_refused_naming_it(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--analysis-allow", "prometheus:9090/*"])
    err = capsys.readouterr().err
    assert "--analysis-allow 'prometheus:9090/*': must start with http:// or https://" in err
    args = build_parser().parse_args([*command, "--analysis-allow", "http://p:9090/*"])
    assert args.analysis_allow == ["http://p:9090/*"]


def test_analysis_allow_is_not_accepted_where_nothing_reads_a_metric(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in (["diff", "-f", "app.yaml"], ["health", "-f", "app.yaml"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--analysis-allow", "http://p:9090/*"])
    args = build_parser().parse_args(["sync", "team/web", "--analysis-allow", "http://p:9090/*"])
    assert args.func(args) == 2
    assert "--analysis-allow applies to sync -f FILE" in capsys.readouterr().err


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[MetricServer, ssl.SSLContext]]:
    """The metric server behind TLS with a certificate for 127.0.0.1 and localhost from a
    throw-away CA, and a client context trusting that CA."""
    pki = make_pki(tmp_path)
    s = MetricServer()
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(pki.serving_cert, pki.serving_key)
    s.httpd.socket = serving.wrap_socket(s.httpd.socket, server_side=True)
    s.url = s.url.replace("http://", "https://")
    yield s, ssl.create_default_context(cafile=str(pki.ca_cert))
    s.close()


def test_tls_is_verified_against_the_url_s_name_at_the_checked_address(
    tls_server: tuple[MetricServer, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, trusting = tls_server
    server.answers["/health"] = Answer(body=b'{"ok": true}')
    port = server.url.rsplit(":", 1)[1]
    allow = AnalysisAllowList.parse(["https://localhost:*/*", "https://rebind.test:*/*"])
    providers = MetricProviders(allow=allow)
    # the system's CAs do not know the throw-away CA
    untrusted = providers.read(web_metric(f"https://localhost:{port}/health"))
    assert untrusted.error.endswith("TLS certificate not trusted")

    monkeypatch.setattr(endpoints.ssl, "create_default_context", lambda: trusting)
    assert providers.read(web_metric(f"https://localhost:{port}/health")) == Reading(True)

    # a name pinned to the same address is still checked as that name: not on the certificate
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.1" if host == "rebind.test" else host, *a, **k),
    )
    renamed = providers.read(web_metric(f"https://rebind.test:{port}/health"))
    assert renamed.error.endswith("TLS certificate not trusted")
