"""Canary analysis against a real Prometheus, on the real control plane.

Debian's ``prometheus`` (started here on loopback, scraping every second) scrapes a tiny exporter
whose success ratio the test sets (``tests.support.prometheus``); the Rollout's metric queries
its ``success_ratio`` gauge every 2 s, 3 times, allowing 1 failure. As in
``test_rollout_canary.py`` there is no controller process: the test does what the sync layer
does with the rollout hook, then ticks ``RolloutExecutor`` itself, as often as the outcomes'
``requeue_after`` asks. What is observed is what users rely on: a good ratio lets the rollout go
on, a bad one aborts it within interval x failureLimit with traffic back on stable, a query
without data pauses it with a message until promoted - and the measurements are in the status.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gitsync.health import assess
from gitsync.kube import KubeClient
from gitsync.model import HealthStatus, ResourceKey, ResultCode
from gitsync.rollout import RolloutStepResult, RolloutSyncHook
from gitsync.rollout.analysis import RunPhase
from gitsync.rollout.math import ROLE_LABEL
from gitsync.rollout.status import PROMOTE_ANNOTATION, Phase, parse_time
from gitsync.sync.tracking import prepare
from tests.support.cluster import endpoint_pods
from tests.support.manifests import web_deployment, web_service
from tests.support.prometheus import Exporter, Prometheus
from tests.support.rollouts import drive as drive_rollout
from tests.support.rollouts import loopback_executor
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = "gitsync/rollout-analysis-test"
ROLLOUT_API = "gitsync.dev/v1alpha1"
N = 4
INTERVAL, COUNT, FAILURE_LIMIT = 2.0, 3, 1
STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"analysis": {"metrics": ["success-rate"]}},
    {"setWeight": 50},
    {"pause": {}},
]


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    with Exporter(0.99) as e:
        yield e


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter) -> Iterator[Prometheus]:
    assert Prometheus.available(), "needs Debian's prometheus: apt-get install -y prometheus"
    with Prometheus([exporter.address], scrape_interval=1.0) as prom:
        prom.wait_for_value("success_ratio", lambda v: True, timeout=60)
        yield prom


def deployment(image: str) -> dict[str, Any]:
    return web_deployment(image, N)


SERVICE = web_service()


def rollout(prometheus_url: str, query: str) -> dict[str, Any]:
    return {
        "apiVersion": ROLLOUT_API,
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 120,
            "strategy": {"canary": {"stableService": "web", "steps": STEPS}},
            "metrics": [
                {
                    "name": "success-rate",
                    "interval": f"{INTERVAL:g}s",
                    "count": COUNT,
                    "failureLimit": FAILURE_LIMIT,
                    "successCondition": "result >= 0.95",
                    "provider": {"prometheus": {"address": prometheus_url, "query": query}},
                }
            ],
        },
    }


class Rollouts:
    """One namespace: sync like the sync layer, tick like the controller, observe like a user."""

    def __init__(self, kube: KubeClient, namespace: str, prometheus: Prometheus):
        self.kube = kube
        self.ns = namespace
        self.prometheus = prometheus
        self.executor = loopback_executor(kube)
        self.hook = RolloutSyncHook(kube, executor=self.executor)

    def sync(self, image: str, query: str) -> None:
        """prepare -> read live -> plan -> apply (replacements instead) -> start."""
        objs = [deployment(image), SERVICE, rollout(self.prometheus.url, query)]
        prepared: dict[ResourceKey, dict[str, Any]] = {}
        for obj in objs:
            key, ready = prepare(obj, app=APP, namespaced=True, default_namespace=self.ns)
            prepared[key] = ready
        live = {
            key: self.kube.get(obj["apiVersion"], key.kind, key.name, key.namespace)
            for key, obj in prepared.items()
        }
        plan = self.hook.plan(prepared, live)
        for key, obj in prepared.items():
            self.kube.apply(plan.replacements.get(key, obj), field_manager="gitsync")
        for result in self.hook.start(plan.work, revision=image):
            assert result.code != ResultCode.SYNC_FAILED, result.message

    def status(self) -> dict[str, Any]:
        live = self.kube.get(ROLLOUT_API, "Rollout", "web", self.ns) or {}
        status: dict[str, Any] = live.get("status") or {}
        return status

    def endpoints(self) -> tuple[int, int]:
        """(canary pod IPs, all pod IPs) among the stable Service's ready addresses."""
        pods = endpoint_pods(self.kube, self.ns, "web")
        roles = [((p or {}).get("metadata", {}).get("labels") or {}).get(ROLE_LABEL) for p in pods]
        return sum(r == "canary" for r in roles), len(pods)

    def drive(
        self, until: Callable[[RolloutStepResult], bool], *, timeout: float
    ) -> RolloutStepResult:
        """Tick until ``until(outcome)``, sleeping what ``requeue_after`` asks (at most 0.3 s,
        so pods turning ready are seen soon too)."""
        return drive_rollout(self.executor, self.ns, until, timeout=timeout, follow_requeue=True)

    def start_canary(self, query: str) -> None:
        """web:1 stable behind the Service, then web:2 as a canary, ticked to the analysis."""
        self.sync("web:1", query)
        wait_for(lambda: self.endpoints() == (0, N), timeout=60, what=f"{N} stable pods")
        self.sync("web:2", query)


def in_analysis(outcome: RolloutStepResult) -> bool:
    return outcome.status.current_step_index == 1 and bool(outcome.status.analysis_runs)


@pytest.fixture
def rollouts(
    kube: KubeClient, namespace: str, rollout_crd: None, cluster: Any, prometheus: Prometheus
) -> Rollouts:
    if not cluster.has_simulator:
        pytest.skip("pod readiness comes from the gitsync pod simulator")
    return Rollouts(kube, namespace, prometheus)


def set_ratio(exporter: Exporter, prometheus: Prometheus, ratio: float) -> None:
    exporter.set_ratio(ratio)
    prometheus.wait_for_value("success_ratio", lambda v: v == ratio, timeout=30)


def test_a_good_success_ratio_passes_the_analysis_and_the_rollout_goes_on(
    rollouts: Rollouts, exporter: Exporter, prometheus: Prometheus
) -> None:
    set_ratio(exporter, prometheus, 0.99)
    rollouts.start_canary("success_ratio")
    rollouts.drive(in_analysis, timeout=90)
    started = time.monotonic()
    rollouts.drive(lambda o: o.status.current_step_index > 1, timeout=30)
    elapsed = time.monotonic() - started
    print(f"\ngood ratio: {COUNT} measurements {INTERVAL:g}s apart passed in {elapsed:.2f}s")
    assert elapsed >= INTERVAL * (COUNT - 1), "measurements are never early"
    outcome = rollouts.drive(
        lambda o: o.status.current_step_index == 3 and o.status.phase == Phase.PAUSED, timeout=60
    )
    wait_for(lambda: rollouts.endpoints() == (2, N), timeout=30, what="2 canary IPs of 4 at 50")
    status = rollouts.status()
    assert (status["phase"], status["currentStepIndex"], status["currentWeight"]) == (
        "Paused",
        3,
        50,
    )
    [run] = status["analysisRuns"]
    assert (run["metric"], run["phase"], run["successful"]) == ("success-rate", "Successful", 3)
    assert "failed" not in run
    assert [m["value"] for m in run["measurements"]] == ["0.99"] * COUNT
    times = [parse_time(m["time"]) for m in run["measurements"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times) if a and b]
    assert len(gaps) == COUNT - 1 and all(INTERVAL <= g < INTERVAL + 1.0 for g in gaps), gaps
    assert outcome.status.aborted_hash == ""


def test_a_bad_success_ratio_aborts_within_interval_times_failure_limit(
    rollouts: Rollouts, exporter: Exporter, prometheus: Prometheus
) -> None:
    set_ratio(exporter, prometheus, 0.5)
    rollouts.start_canary("success_ratio")
    first = rollouts.drive(in_analysis, timeout=90)
    started = time.monotonic()
    assert first.status.analysis_runs[0].failed == 1, "the first measurement is taken at once"
    aborted = rollouts.drive(lambda o: o.status.phase == Phase.DEGRADED, timeout=30)
    elapsed = time.monotonic() - started
    print(
        f"\nbad ratio: aborted {elapsed:.2f}s after the first measurement "
        f"(interval x failureLimit = {INTERVAL * FAILURE_LIMIT:g}s)"
    )
    assert elapsed <= INTERVAL * FAILURE_LIMIT + 1.0
    assert "analysis failed" in aborted.status.message
    assert "0.5 does not meet result >= 0.95" in aborted.status.message
    [run] = aborted.status.analysis_runs
    assert (run.phase, run.failed) == (RunPhase.FAILED, FAILURE_LIMIT + 1)
    wait_for(lambda: rollouts.endpoints() == (0, N), timeout=30, what="traffic back on stable")
    health = assess(rollouts.kube.get(ROLLOUT_API, "Rollout", "web", rollouts.ns) or {})
    assert health.status == HealthStatus.DEGRADED and "analysis failed" in health.message
    canary = rollouts.kube.get("apps/v1", "Deployment", "web-canary", rollouts.ns)
    assert canary is not None and canary["spec"]["replicas"] == 0


def test_a_query_without_data_pauses_the_rollout_until_promoted(
    rollouts: Rollouts, exporter: Exporter, prometheus: Prometheus
) -> None:
    set_ratio(exporter, prometheus, 0.99)
    assert prometheus.query("success_ratio_that_does_not_exist") == []
    rollouts.start_canary("success_ratio_that_does_not_exist")
    paused = rollouts.drive(lambda o: o.status.phase == Phase.PAUSED, timeout=90)
    assert paused.status.current_step_index == 1
    assert "no data (noDataPolicy: inconclusive)" in paused.status.message
    assert PROMOTE_ANNOTATION in paused.status.message
    assert assess(rollouts.kube.get(ROLLOUT_API, "Rollout", "web", rollouts.ns) or {}).status == (
        HealthStatus.SUSPENDED
    )
    time.sleep(INTERVAL * 2)  # a paused analysis stays paused: no more measurements, no abort
    again = rollouts.executor.tick(rollouts.ns, "web")
    assert again.status.phase == Phase.PAUSED
    [run] = again.status.analysis_runs
    assert (run.phase, len(run.measurements)) == (RunPhase.INCONCLUSIVE, 1)
    assert rollouts.endpoints() == (1, N), "the weight reached so far holds: 1 canary pod of 4"

    rollouts.kube.patch(
        ROLLOUT_API,
        "Rollout",
        "web",
        {"metadata": {"annotations": {PROMOTE_ANNOTATION: "p1"}}},
        namespace=rollouts.ns,
    )
    done = rollouts.drive(
        lambda o: o.status.current_step_index == 3 and o.status.phase == Phase.PAUSED, timeout=60
    )
    assert done.status.current_weight == 50
