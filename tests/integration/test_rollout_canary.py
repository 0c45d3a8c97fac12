"""Canary rollouts without a router, on the real control plane (Deployment, ReplicaSet and
Endpoints controllers, the pod simulator playing the kubelets).

No controller process: each test does what the sync layer will do with the rollout hook
(prepare -> read live -> ``plan`` -> apply -> ``start``) and then drives the executor's ``tick``
itself, the way the controller's reconcile loop will. What is observed is what users rely on:
which pod IPs the stable Service's Endpoints hold at each step, which image the Deployment ends
on, what the Rollout's status and health say.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gitsync.diff import diff_resource
from gitsync.health import assess
from gitsync.kube import KubeClient
from gitsync.model import HealthStatus, ResourceKey, ResultCode, SyncStatus
from gitsync.rollout import (
    RolloutExecutor,
    RolloutStepResult,
    RolloutSyncHook,
    TakeoverPlan,
    template_hash,
)
from gitsync.rollout.math import ROLE_LABEL, canary_replicas
from gitsync.rollout.status import PROMOTE_ANNOTATION, STABLE_HASH_ANNOTATION, Phase
from gitsync.sync import ResourceResult
from gitsync.sync.tracking import prepare
from tests.support import rollouts
from tests.support.cluster import endpoint_pods
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = "gitsync/rollout-test"
ROLLOUT_API = "gitsync.dev/v1alpha1"


def deployment(image: str, replicas: int, **pod_annotations: str) -> dict[str, Any]:
    return web_deployment(image, replicas, **pod_annotations)


SERVICE = web_service()


def rollout(steps: list[dict[str, Any]], deadline: int) -> dict[str, Any]:
    return canary_rollout(steps, deadline=deadline)


class Cluster:
    """One namespace's view: what the sync layer would do, and what a user can observe."""

    def __init__(self, kube: KubeClient, namespace: str):
        self.kube = kube
        self.ns = namespace
        self.executor = RolloutExecutor(kube)
        self.hook = RolloutSyncHook(kube, executor=self.executor)
        self.max_pods_during_steps = 0

    def sync(
        self, objs: list[dict[str, Any]], revision: str
    ) -> tuple[TakeoverPlan, list[ResourceResult]]:
        """prepare -> read live -> plan -> apply (replacements instead) -> start."""
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
        return plan, self.hook.start(plan.work, revision=revision)

    def compare_deployment(self, objs: list[dict[str, Any]]) -> SyncStatus:
        """The Deployment's sync status as the Syncer computes it (SSA dry run vs live), with
        the plan's replacement standing in for the rendered object."""
        prepared = dict(
            prepare(o, app=APP, namespaced=True, default_namespace=self.ns) for o in objs
        )
        key = ResourceKey("apps", "Deployment", self.ns, "web")
        plan = self.hook.plan(prepared, {k: None for k in prepared})
        dry = self.kube.apply(plan.replacements[key], field_manager="gitsync", dry_run=True)
        return diff_resource(key, dry, self.deployment(), mask_scope="t/app").status

    def rollout(self) -> dict[str, Any]:
        live = self.kube.get(ROLLOUT_API, "Rollout", "web", self.ns)
        assert live is not None
        return live

    def deployment(self, name: str = "web") -> dict[str, Any] | None:
        return self.kube.get("apps/v1", "Deployment", name, self.ns)

    def pods(self) -> list[dict[str, Any]]:
        items = self.kube.list("v1", "Pod", self.ns, label_selector="app=web")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def endpoints(self) -> tuple[int, int]:
        """(canary pod IPs, all pod IPs) among the stable Service's ready addresses."""
        pods = endpoint_pods(self.kube, self.ns, "web")
        roles = [((p or {}).get("metadata", {}).get("labels") or {}).get(ROLE_LABEL) for p in pods]
        return sum(r == "canary" for r in roles), len(pods)

    def request(self, annotation: str, value: str) -> None:
        rollouts.request(self.kube, self.ns, annotation, value)

    def drive(
        self,
        until: Callable[[RolloutStepResult], bool],
        *,
        timeout: float,
        watch: Callable[[], None],
    ) -> RolloutStepResult:
        """Tick the rollout (as the controller would) until ``until(outcome)``."""
        return rollouts.drive(
            self.executor, self.ns, until, timeout=timeout, watch=lambda _: watch()
        )


@pytest.fixture
def cluster_view(
    kube: KubeClient, namespace: str, rollout_crd: None, sim: None
) -> Iterator[Cluster]:
    yield Cluster(kube, namespace)


def at(index: int, phase: Phase) -> Callable[[RolloutStepResult], bool]:
    return lambda o: o.status.current_step_index == index and o.status.phase == phase


# not what this test is about: generous, so a slow, busy machine never aborts it
STEPS_DEADLINE = 300


def test_canary_follows_the_steps_in_endpoints_and_promotes(cluster_view: Cluster) -> None:
    c, n = cluster_view, 10
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    v1, v2 = deployment("web:1", n), deployment("web:2", n)
    plan, results = c.sync([v1, SERVICE, rollout(steps, deadline=STEPS_DEADLINE)], "rev-1")
    assert not plan.held() and [r.code for r in results] == [ResultCode.SYNCED]
    assert c.rollout()["status"]["phase"] == "Healthy"
    wait_for(lambda: c.endpoints() == (0, n), timeout=60, what="10 stable pods behind the Service")

    # server defaults never start a rollout: the live object (defaulted) plans as unchanged
    again, _ = c.sync([v1, SERVICE, rollout(steps, deadline=STEPS_DEADLINE)], "rev-1")
    assert not again.held()

    plan, results = c.sync([v2, SERVICE, rollout(steps, deadline=STEPS_DEADLINE)], "rev-2")
    [work] = plan.held()
    assert work.desired_hash == template_hash(v2["spec"]["template"])
    assert "starting canary" in results[0].message
    live = c.deployment()
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"  # held back

    def watch_pods() -> None:
        status = c.rollout().get("status") or {}
        if status.get("currentStepIndex", 0) < len(steps):
            c.max_pods_during_steps = max(c.max_pods_during_steps, len(c.pods()))

    for index, weight, nonce in [(1, 20, "p1"), (3, 50, "p2")]:
        c.drive(at(index, Phase.PAUSED), timeout=90, watch=watch_pods)
        expected = canary_replicas(n, weight)[0]
        wait_for(
            lambda e=expected: c.endpoints() == (e, n),  # type: ignore[misc]
            timeout=20,
            what=f"{expected} canary IPs of {n} at weight {weight}",
        )
        status = c.rollout()["status"]
        assert (status["phase"], status["currentWeight"]) == ("Paused", weight)
        assert assess(c.rollout()).status == HealthStatus.SUSPENDED
        # the held Deployment compares Synced: the app is in sync while the rollout runs
        assert (
            c.compare_deployment([v2, SERVICE, rollout(steps, deadline=STEPS_DEADLINE)])
            == SyncStatus.SYNCED
        )
        time.sleep(1.0)  # a paused rollout stays put
        assert c.endpoints() == (expected, n)
        assert c.executor.tick(c.ns, "web").status.current_step_index == index
        c.request(PROMOTE_ANNOTATION, nonce)
    assert c.max_pods_during_steps <= n + 1

    done = c.drive(lambda o: o.status.phase == Phase.HEALTHY, timeout=120, watch=lambda: None)
    assert done.status.stable_hash == work.desired_hash and done.status.canary_hash == ""
    stable = c.deployment()
    assert stable is not None
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    assert stable["spec"]["replicas"] == n
    assert stable["metadata"]["annotations"][STABLE_HASH_ANNOTATION] == work.desired_hash
    wait_for(lambda: c.deployment("web-canary") is None, timeout=30, what="the canary to go")
    wait_for(
        lambda: (
            c.endpoints() == (0, n)
            and {p["spec"]["containers"][0]["image"] for p in c.pods()} == {"web:2"}
        ),
        timeout=60,
        what="10 pods on web:2 behind the Service",
    )
    assert assess(c.rollout()).status == HealthStatus.HEALTHY
    # the next sync of the same commit applies the Deployment as rendered: nothing held
    after, _ = c.sync([v2, SERVICE, rollout(steps, deadline=STEPS_DEADLINE)], "rev-2")
    assert not after.held()


def test_a_never_ready_canary_does_not_advance_and_aborts_at_the_deadline(
    cluster_view: Cluster,
) -> None:
    c, n, deadline = cluster_view, 4, 10
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]
    v1 = deployment("web:1", n)
    broken = deployment("web:2", n, **{"sim.gitsync.dev/behavior": "never-ready"})
    c.sync([v1, SERVICE, rollout(steps, deadline)], "rev-1")
    wait_for(lambda: c.endpoints() == (0, n), timeout=60, what="4 stable pods behind the Service")

    plan, _ = c.sync([broken, SERVICE, rollout(steps, deadline)], "rev-2")
    [work] = plan.held()
    started = time.monotonic()
    seen_steps: set[int] = set()
    canary_pods_seen, canary_ips_seen = 0, 0

    def watch() -> None:
        nonlocal canary_pods_seen, canary_ips_seen
        status = c.rollout().get("status") or {}
        if status.get("phase") == "Progressing":
            seen_steps.add(status.get("currentStepIndex", 0))
        canary_pods = [p for p in c.pods() if p["metadata"]["labels"].get(ROLE_LABEL)]
        canary_pods_seen = max(canary_pods_seen, len(canary_pods))
        canary_ips_seen = max(canary_ips_seen, c.endpoints()[0])

    aborted = c.drive(lambda o: o.status.phase == Phase.DEGRADED, timeout=60, watch=watch)
    elapsed = time.monotonic() - started
    assert seen_steps == {0}, "the step never advanced"
    assert canary_pods_seen == 1, "the canary pod ran"
    assert canary_ips_seen == 0, "a canary pod that is not ready never gets traffic"
    assert elapsed >= deadline
    status = aborted.status
    assert status.aborted_hash == work.desired_hash
    assert "progress deadline exceeded" in status.message
    canary = c.deployment("web-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    wait_for(lambda: c.endpoints() == (0, n), timeout=30, what="traffic back on 4 stable pods")
    wait_for(
        lambda: not [p for p in c.pods() if p["metadata"]["labels"].get(ROLE_LABEL)],
        timeout=30,
        what="the canary pods to go",
    )
    health = assess(c.rollout())
    assert health.status == HealthStatus.DEGRADED and "progress deadline" in health.message

    # the same revision synced again is not retried
    plan, results = c.sync([broken, SERVICE, rollout(steps, deadline)], "rev-2")
    assert plan.held() and results[0].code == ResultCode.SYNCED
    assert c.rollout()["status"]["phase"] == "Degraded"
    canary = c.deployment("web-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    stable = c.deployment()
    assert stable is not None
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert stable["spec"]["replicas"] == n
    assert c.endpoints() == (0, n)
