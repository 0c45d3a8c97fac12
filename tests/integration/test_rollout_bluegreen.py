"""Blue-green rollouts on the real control plane (Deployment, ReplicaSet and Endpoints
controllers, the pod simulator playing the kubelets).

As in ``test_rollout_canary``, each test does what the sync layer does with the rollout hook
(prepare -> read live -> ``plan`` -> apply the replacements -> ``start``) and drives the
executor's ``tick`` itself. What is observed is what users rely on: which pods (by image) the
active and preview Services' Endpoints hold at every tick, when the old pods go, and what the
Rollout's status says. The post-promotion analysis is real: a web metric read from a small HTTP
server on loopback whose answer the test sets.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gitsync.diff import diff_resource
from gitsync.health import assess
from gitsync.kube import KubeClient
from gitsync.model import HealthStatus, ResourceKey, ResultCode, SyncStatus
from gitsync.rollout import RolloutStepResult, RolloutSyncHook, TakeoverPlan
from gitsync.rollout.bluegreen import DRAINING
from gitsync.rollout.math import HASH_LABEL
from gitsync.rollout.status import ABORT_ANNOTATION, PROMOTE_ANNOTATION, Phase, parse_time
from gitsync.sync import ResourceResult
from gitsync.sync.tracking import prepare
from tests.support import rollouts
from tests.support.cluster import endpoint_images
from tests.support.manifests import web_deployment, web_service
from tests.support.rollouts import loopback_executor
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = "gitsync/bluegreen-test"
ROLLOUT_API = "gitsync.dev/v1alpha1"
N = 4


class MetricServer:
    """``GET /`` answers ``{"ratio": <ratio>}``; counts the reads."""

    def __init__(self) -> None:
        self.ratio = 1.0
        self.reads = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.reads += 1
                body = json.dumps({"ratio": owner.ratio}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetricServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metrics() -> Iterator[MetricServer]:
    with MetricServer() as server:
        yield server


def deployment(image: str) -> dict[str, Any]:
    return web_deployment(image, N)


def service(name: str) -> dict[str, Any]:
    return web_service(name)


def rollout(blue_green: dict[str, Any], metric_url: str = "http://127.0.0.1:9/") -> dict[str, Any]:
    return {
        "apiVersion": ROLLOUT_API,
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 60,
            "strategy": {
                "blueGreen": {"activeService": "web", "previewService": "web-preview", **blue_green}
            },
            "metrics": [
                {
                    "name": "success-rate",
                    "interval": "1s",
                    "count": 2,
                    "successCondition": "result >= 0.95",
                    "provider": {"web": {"url": metric_url, "jsonPath": "$.ratio"}},
                }
            ],
        },
    }


class Cluster:
    """One namespace's view: what the sync layer would do, and what a user can observe."""

    def __init__(self, kube: KubeClient, namespace: str):
        self.kube = kube
        self.ns = namespace
        self.executor = loopback_executor(kube)
        self.hook = RolloutSyncHook(kube, executor=self.executor)

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

    def compare(self, objs: list[dict[str, Any]], kind: str, name: str) -> SyncStatus:
        """An object's sync status as the Syncer computes it (SSA dry run of the replacement
        vs live)."""
        prepared = dict(
            prepare(o, app=APP, namespaced=True, default_namespace=self.ns) for o in objs
        )
        [key] = [k for k in prepared if (k.kind, k.name) == (kind, name)]
        live = {
            k: self.kube.get(o["apiVersion"], k.kind, k.name, k.namespace)
            for k, o in prepared.items()
        }
        plan = self.hook.plan(prepared, live)
        desired = plan.replacements.get(key, prepared[key])
        dry = self.kube.apply(desired, field_manager="gitsync", dry_run=True)
        return diff_resource(key, dry, live[key], mask_scope="t/app").status

    def rollout(self) -> dict[str, Any]:
        live = self.kube.get(ROLLOUT_API, "Rollout", "web", self.ns)
        assert live is not None
        return live

    def deployment(self, name: str = "web") -> dict[str, Any] | None:
        return self.kube.get("apps/v1", "Deployment", name, self.ns)

    def pod_images(self) -> dict[str, str]:
        """Live (not terminating) pod name -> image."""
        items = self.kube.list("v1", "Pod", self.ns)["items"]
        return {
            p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
            for p in items
            if not p["metadata"].get("deletionTimestamp")
        }

    def endpoints(self, service: str) -> list[str]:
        """The images of the pods behind ``service``'s ready addresses, sorted."""
        return endpoint_images(self.kube, self.ns, service)

    def selector(self, service: str) -> dict[str, str]:
        live = self.kube.get("v1", "Service", service, self.ns) or {}
        return dict((live.get("spec") or {}).get("selector") or {})

    def request(self, annotation: str, value: str) -> None:
        rollouts.request(self.kube, self.ns, annotation, value)

    def drive(
        self,
        until: Callable[[RolloutStepResult], bool],
        *,
        timeout: float,
        watch: Callable[[RolloutStepResult], None] = lambda o: None,
    ) -> RolloutStepResult:
        """Tick the rollout (as the controller would) until ``until(outcome)``."""
        return rollouts.drive(self.executor, self.ns, until, timeout=timeout, watch=watch)


@pytest.fixture
def cluster_view(
    kube: KubeClient, namespace: str, rollout_crd: None, sim: None
) -> Iterator[Cluster]:
    yield Cluster(kube, namespace)


def all_of(image: str) -> list[str]:
    return [image] * N


def deploy_v1_then_v2(c: Cluster, objs: Callable[[str], list[dict[str, Any]]]) -> str:
    """Sync web:1 (Healthy, N pods behind the active Service), then web:2 (held): the hash."""
    plan, results = c.sync(objs("web:1"), "rev-1")
    assert not plan.held() and [r.code for r in results] == [ResultCode.SYNCED]
    assert c.rollout()["status"]["phase"] == "Healthy"
    wait_for(
        lambda: c.endpoints("web") == all_of("web:1"), timeout=60, what="web:1 behind the Service"
    )
    plan, results = c.sync(objs("web:2"), "rev-2")
    [work] = plan.held()
    assert "starting preview" in results[0].message
    return work.desired_hash


def test_preview_then_one_switch_then_the_old_pods_go_after_the_delay(
    cluster_view: Cluster,
) -> None:
    c = cluster_view
    spec = {"autoPromotionEnabled": False, "scaleDownDelaySeconds": 3}

    def objs(image: str) -> list[dict[str, Any]]:
        return [deployment(image), service("web"), service("web-preview"), rollout(spec)]

    new_hash = deploy_v1_then_v2(c, objs)
    seen_active: set[str] = set()
    seen_preview: set[str] = set()

    def watch(_: RolloutStepResult) -> None:
        seen_active.update(c.endpoints("web"))
        seen_preview.update(c.endpoints("web-preview"))

    paused = c.drive(lambda o: o.status.phase == Phase.PAUSED, timeout=90, watch=watch)
    assert paused.status.current_step_index == 0 and paused.status.current_weight == 0
    wait_for(
        lambda: c.endpoints("web-preview") == all_of("web:2"),
        timeout=30,
        what="the new pods behind the preview Service",
    )
    watch(paused)
    assert seen_active == {"web:1"}, "the active Service only ever held old pods"
    assert seen_preview <= {"web:1", "web:2"}
    assert c.endpoints("web") == all_of("web:1")
    assert c.selector("web")[HASH_LABEL] != new_hash == c.selector("web-preview")[HASH_LABEL]
    assert assess(c.rollout()).status == HealthStatus.SUSPENDED

    # a sync meanwhile (Git declares the Services without the pin) moves no traffic
    c.sync(objs("web:2"), "rev-2")
    assert c.selector("web")[HASH_LABEL] != new_hash
    assert c.compare(objs("web:2"), "Service", "web") == SyncStatus.SYNCED
    assert c.compare(objs("web:2"), "Deployment", "web") == SyncStatus.SYNCED
    time.sleep(1.0)
    assert c.endpoints("web") == all_of("web:1")

    c.request(PROMOTE_ANNOTATION, "go")
    switched = c.drive(lambda o: o.status.current_step_index >= DRAINING, timeout=30)
    switched_at = time.monotonic()
    scale_down_at = parse_time(switched.status.scale_down_at)
    assert scale_down_at is not None
    wait_for(
        lambda: c.endpoints("web") == all_of("web:2"),
        timeout=10,
        what="only new pods behind the active Service",
    )
    old_pods = [n for n, image in c.pod_images().items() if image == "web:1"]
    assert len(old_pods) == N, "the old pods stay until the scale-down delay"
    assert time.monotonic() - switched_at < 3

    old_gone_after: list[float] = []
    after_switch: set[str] = set()

    def watch_after(_: RolloutStepResult) -> None:
        after_switch.update(c.endpoints("web"))
        if not old_gone_after and not any(i == "web:1" for i in c.pod_images().values()):
            old_gone_after.append(time.monotonic() - switched_at)

    done = c.drive(lambda o: o.status.phase == Phase.HEALTHY, timeout=120, watch=watch_after)
    assert after_switch == {"web:2"}, "after the switch, the active Service held new pods only"
    assert done.status.stable_hash == new_hash and done.status.canary_hash == ""
    wait_for(lambda: "web:1" not in c.pod_images().values(), timeout=30, what="the old pods to go")
    gone = old_gone_after[0] if old_gone_after else time.monotonic() - switched_at
    assert gone >= 2.0, "not before the 3 s delay (kept in whole seconds: ±1 s)"
    stable = c.deployment()
    assert stable is not None
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    wait_for(lambda: c.deployment("web-preview") is None, timeout=30, what="the preview to go")
    wait_for(
        lambda: (
            c.endpoints("web") == all_of("web:2")
            and sorted(c.pod_images().values()) == all_of("web:2")
        ),
        timeout=60,
        what="N stable pods on web:2 behind the active Service",
    )
    assert assess(c.rollout()).status == HealthStatus.HEALTHY
    after, _ = c.sync(objs("web:2"), "rev-2")
    assert not after.held()


@pytest.mark.parametrize("how", ["failing post-promotion analysis", "abort after promotion"])
def test_a_failing_analysis_or_an_abort_after_promotion_switches_back(
    cluster_view: Cluster, metrics: MetricServer, how: str
) -> None:
    c = cluster_view
    analysis = how.startswith("failing")
    spec: dict[str, Any] = {"autoPromotionSeconds": 1, "scaleDownDelaySeconds": 60}
    if analysis:
        spec["postPromotionAnalysis"] = {"metrics": ["success-rate"]}
        metrics.ratio = 0.5

    def objs(image: str) -> list[dict[str, Any]]:
        return [
            deployment(image),
            service("web"),
            service("web-preview"),
            rollout(spec, metrics.url),
        ]

    deploy_v1_then_v2(c, objs)
    switched = c.drive(lambda o: o.status.current_step_index >= 1, timeout=90)
    assert switched.status.current_step_index == (1 if analysis else DRAINING)
    wait_for(
        lambda: c.endpoints("web") == all_of("web:2"), timeout=10, what="the switch to new pods"
    )
    if not analysis:
        c.request(ABORT_ANNOTATION, "stop")
    aborted = c.drive(lambda o: o.status.phase == Phase.DEGRADED, timeout=30)
    wait_for(
        lambda: c.endpoints("web") == all_of("web:1"),
        timeout=10,
        what="the active Service back on the old pods",
    )
    preview = c.deployment("web-preview")
    assert preview is not None and preview["spec"]["replicas"] == 0
    wait_for(
        lambda: sorted(c.pod_images().values()) == all_of("web:1"),
        timeout=30,
        what="the new pods to go",
    )
    message = aborted.status.message
    if analysis:
        assert "post-promotion analysis failed" in message and metrics.reads >= 1
        runs = c.rollout()["status"]["analysisRuns"]
        assert [(r["step"], r["phase"]) for r in runs] == [(1, "Failed")]
    else:
        assert "abort requested" in message
    health = assess(c.rollout())
    assert health.status == HealthStatus.DEGRADED and "aborted" in health.message
    # the same revision synced again is not retried
    c.sync(objs("web:2"), "rev-2")
    c.drive(lambda o: True, timeout=5)
    assert c.rollout()["status"]["phase"] == "Degraded"
    assert c.endpoints("web") == all_of("web:1")
