"""Canary rollouts through a traffic router on the real control plane: ingress-nginx canary
annotations on an Ingress (networking.k8s.io/v1; no ingress controller runs - a router is an
object on the API server) and Gateway API HTTPRoute weights (the CRD from
``tests/fixtures/crds``, installed for this module and removed after it).

Each test syncs the way the sync layer does with the rollout hook and drives the executor's
``tick``; it observes the router object at every tick, the pods behind the stable and canary
Services, and that the stable Deployment keeps its full size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import ApiError, KubeClient
from gitsync.model import ResourceKey
from gitsync.rollout import RolloutExecutor, RolloutStepResult, RolloutSyncHook, TakeoverPlan
from gitsync.rollout.canary import Decision
from gitsync.rollout.routers import (
    NGINX_CANARY_ANNOTATION,
    NGINX_WEIGHT_ANNOTATION,
    SetRouterWeight,
    routed_canary_replicas,
)
from gitsync.rollout.status import ABORT_ANNOTATION, PROMOTE_ANNOTATION, Phase, RolloutStatus
from gitsync.sync import ResourceResult
from gitsync.sync.tracking import prepare
from tests.support import rollouts
from tests.support.cluster import endpoint_images
from tests.support.manifests import web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT_CRD = ROOT / "charts/gitsync/crds/rollouts.gitsync.dev.yaml"
HTTPROUTE_CRD = ROOT / "tests/fixtures/crds/httproutes.gateway.networking.k8s.io.yaml"
APP = "gitsync/router-test"
ROLLOUT_API = "gitsync.dev/v1alpha1"
ROUTE_API = "gateway.networking.k8s.io/v1beta1"
CRD_API = "apiextensions.k8s.io/v1"
N = 4


def install_crd(kube: KubeClient, path: Path) -> str:
    crd = yaml.safe_load(path.read_text())
    name = str(crd["metadata"]["name"])
    kube.apply(crd, field_manager="gitsync-tests")

    def established() -> bool:
        live = kube.get(CRD_API, "CustomResourceDefinition", name)
        conditions = ((live or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, what=f"CRD {name} to be Established")
    kube.forget_discovery()
    return name


@pytest.fixture(scope="module")
def crds(kube: KubeClient) -> Iterator[None]:
    install_crd(kube, ROLLOUT_CRD)  # shared with the other rollout tests: left installed
    route_crd = ""
    try:
        route_crd = install_crd(kube, HTTPROUTE_CRD)
        yield
    finally:
        if route_crd:
            kube.delete(CRD_API, "CustomResourceDefinition", route_crd)
            wait_for(
                lambda: kube.get(CRD_API, "CustomResourceDefinition", route_crd) is None,
                timeout=60,
                what="the HTTPRoute CRD to go",
            )
            kube.forget_discovery()


@pytest.fixture
def sim(cluster: Any) -> None:
    if not cluster.has_simulator:
        pytest.skip("counts pods and Endpoints the gitsync pod simulator reports at once")


def deployment(image: str) -> dict[str, Any]:
    return web_deployment(image, N)


def service(name: str) -> dict[str, Any]:
    return web_service(name)


INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "web", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
    "spec": {
        "rules": [
            {
                "host": "shop.example",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    },
}
HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": ROUTE_API,
    "kind": "HTTPRoute",
    "metadata": {"name": "web"},
    "spec": {
        "parentRefs": [{"name": "gateway"}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "web", "port": 80}],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                "backendRefs": [{"name": "admin", "port": 80}],
            },
        ],
    },
}
ROUTING = {
    "nginx": ({"nginx": {"stableIngress": "web"}}, INGRESS),
    "gatewayAPI": ({"gatewayAPI": {"httpRoute": "web"}}, HTTP_ROUTE),
}


def manifests(router: str, image: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    routing, router_object = ROUTING[router]
    rollout = {
        "apiVersion": ROLLOUT_API,
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 60,
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "trafficRouting": routing,
                    "steps": steps,
                }
            },
        },
    }
    return [deployment(image), service("web"), service("web-canary"), router_object, rollout]


class Cluster:
    """One namespace's view: what the sync layer would do, and what a user can observe."""

    def __init__(self, kube: KubeClient, namespace: str, router: str):
        self.kube = kube
        self.ns = namespace
        self.router = router
        self.executor = RolloutExecutor(kube)
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

    def weights(self) -> tuple[int, int]:
        """(stable, canary) percent as the router object says."""
        if self.router == "nginx":
            canary = self.kube.get("networking.k8s.io/v1", "Ingress", "web-canary", self.ns)
            annotations = ((canary or {}).get("metadata") or {}).get("annotations") or {}
            if canary is None or annotations.get(NGINX_CANARY_ANNOTATION) != "true":
                return 100, 0
            weight = int(annotations[NGINX_WEIGHT_ANNOTATION])
            return 100 - weight, weight
        route = self.kube.get(ROUTE_API, "HTTPRoute", "web", self.ns)
        assert route is not None
        first, other = route["spec"]["rules"]
        assert other["backendRefs"] == [{"name": "admin", "port": 80}], "other rules untouched"
        refs = {r["name"]: r.get("weight", 1) for r in first["backendRefs"]}
        if "web-canary" not in refs:
            return 100, 0
        return refs["web"], refs["web-canary"]

    def canary_ingress(self) -> dict[str, Any] | None:
        return self.kube.get("networking.k8s.io/v1", "Ingress", "web-canary", self.ns)

    def deployment(self, name: str = "web") -> dict[str, Any] | None:
        return self.kube.get("apps/v1", "Deployment", name, self.ns)

    def endpoints(self, service: str) -> list[str]:
        """The images of the pods behind ``service``'s ready addresses, sorted."""
        return endpoint_images(self.kube, self.ns, service)

    def request(self, annotation: str, value: str) -> None:
        rollouts.request(self.kube, self.ns, annotation, value)

    def drive(
        self,
        until: Callable[[RolloutStepResult], bool],
        *,
        timeout: float,
        watch: Callable[[RolloutStepResult], None] = lambda o: None,
    ) -> RolloutStepResult:
        return rollouts.drive(self.executor, self.ns, until, timeout=timeout, watch=watch)


@pytest.fixture(params=["nginx", "gatewayAPI"])
def cluster_view(
    request: pytest.FixtureRequest, kube: KubeClient, namespace: str, crds: None, sim: None
) -> Iterator[Cluster]:
    yield Cluster(kube, namespace, request.param)


def paused_at(index: int) -> Callable[[RolloutStepResult], bool]:
    return lambda o: o.status.current_step_index == index and o.status.phase == Phase.PAUSED


class Watcher:
    """Checks at every tick that the stable side keeps N replicas and that the router never
    sends a share to more canary pods than are ready behind the canary Service."""

    def __init__(self, c: Cluster):
        self.c = c
        self.weights: list[int] = []

    def __call__(self, outcome: RolloutStepResult) -> None:
        _, weight = self.c.weights()
        if not self.weights or self.weights[-1] != weight:
            self.weights.append(weight)
        stable = self.c.deployment()
        assert stable is not None
        if outcome.status.phase != Phase.HEALTHY and outcome.status.canary_hash:
            assert stable["spec"]["replicas"] == N, "the stable side stays at full size"
        if weight:
            serving = self.c.endpoints("web-canary").count("web:2")
            assert serving >= routed_canary_replicas(N, weight), (
                f"weight {weight} with only {serving} ready canary pods"
            )


def start_v2(c: Cluster, steps: list[dict[str, Any]]) -> None:
    c.sync(manifests(c.router, "web:1", steps), "rev-1")
    wait_for(
        lambda: c.endpoints("web") == ["web:1"] * N, timeout=60, what="web:1 behind the Service"
    )
    assert c.weights() == (100, 0)
    plan, _ = c.sync(manifests(c.router, "web:2", steps), "rev-2")
    assert plan.held()


def test_router_weights_follow_the_steps_and_return_to_100_0(cluster_view: Cluster) -> None:
    c = cluster_view
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    start_v2(c, steps)
    watch = Watcher(c)
    for index, weight, nonce in [(1, 20, "p1"), (3, 50, "p2")]:
        paused = c.drive(paused_at(index), timeout=90, watch=watch)
        assert c.weights() == (100 - weight, weight)
        assert paused.status.current_weight == weight
        canaries = routed_canary_replicas(N, weight)
        wait_for(
            lambda k=canaries: (  # type: ignore[misc]
                c.endpoints("web-canary") == ["web:2"] * k and c.endpoints("web") == ["web:1"] * N
            ),
            timeout=20,
            what=f"{canaries} canary pods behind the canary Service, {N} stable behind stable",
        )
        if c.router == "nginx":
            ingress = c.canary_ingress()
            assert ingress is not None
            backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
            assert backend["service"]["name"] == "web-canary"
        # a sync meanwhile (Git has no weights) changes no traffic
        c.sync(manifests(c.router, "web:2", steps), "rev-2")
        assert c.weights() == (100 - weight, weight)
        c.request(PROMOTE_ANNOTATION, nonce)
    done = c.drive(lambda o: o.status.phase == Phase.HEALTHY, timeout=120, watch=watch)
    assert watch.weights == [0, 20, 50, 0]
    assert c.weights() == (100, 0) and done.status.current_weight == 100
    if c.router == "nginx":
        assert c.canary_ingress() is None
    stable = c.deployment()
    assert stable is not None
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    wait_for(lambda: c.deployment("web-canary") is None, timeout=30, what="the canary to go")
    wait_for(
        lambda: c.endpoints("web") == ["web:2"] * N, timeout=60, what="web:2 behind the Service"
    )


def test_router_returns_to_100_0_on_abort(cluster_view: Cluster) -> None:
    c = cluster_view
    steps: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}]
    start_v2(c, steps)
    c.drive(paused_at(1), timeout=90, watch=Watcher(c))
    assert c.weights() == (80, 20)
    c.request(ABORT_ANNOTATION, "stop")
    aborted = c.drive(lambda o: o.status.phase == Phase.DEGRADED, timeout=30)
    assert c.weights() == (100, 0)
    if c.router == "nginx":
        assert c.canary_ingress() is None
    canary = c.deployment("web-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    assert "abort requested" in aborted.status.message
    wait_for(lambda: c.endpoints("web-canary") == [], timeout=30, what="the canary pods to go")
    assert c.endpoints("web") == ["web:1"] * N


def test_the_route_crd_fixture_is_structural(kube: KubeClient, crds: None) -> None:
    """The API server accepted the fixture and serves both versions (the executor picks one)."""
    for version in ("v1beta1", "v1alpha2"):
        try:
            kube.resource(f"gateway.networking.k8s.io/{version}", "HTTPRoute")
        except ApiError as exc:  # pragma: no cover - a failure message
            pytest.fail(f"HTTPRoute {version} not served: {exc}")


@pytest.mark.parametrize(
    ("router", "fix"),
    [
        ("nginx", "correct spec.strategy.canary.trafficRouting.nginx.stableIngress"),
        ("gatewayAPI", "correct spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute"),
    ],
)
def test_a_router_gone_before_its_weight_is_set_stalls_with_the_fix(
    kube: KubeClient, namespace: str, crds: None, router: str, fix: str
) -> None:
    """The router object is deleted between a tick's observation and its action (the race the
    observation's own check cannot close): a configuration fault, so the rollout stalls with a
    message naming the fix, and asks for no retry - it used to be an "unreachable" API error,
    retried every 5 s forever. The next reconcile of the app, or any change, looks again."""
    rollout = manifests(router, "web:1", [{"setWeight": 20}])[-1]
    rollout["metadata"] = {"name": "web", "namespace": namespace}
    kube.apply(rollout, field_manager="gitsync-tests")
    executor = RolloutExecutor(kube)
    key = ResourceKey("gitsync.dev", "Rollout", namespace, "web")

    def decide_weight(_r: Any, status: RolloutStatus, _o: Any) -> Decision:
        return Decision(status, (SetRouterWeight(20),), requeue_after=1.0)

    outcome = executor._run(kube, key, decide_weight, None)  # the tick's decision, racing a delete
    assert outcome.requeue_after is None, "a configuration fault is not retried on a timer"
    assert "SetRouterWeight stalled" in outcome.error and fix in outcome.error
    live = kube.get(ROLLOUT_API, "Rollout", "web", namespace)
    assert live is not None and fix in live["status"]["message"]
