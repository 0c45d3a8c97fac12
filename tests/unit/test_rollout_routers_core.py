"""Traffic routers and pinned selectors: the replica arithmetic behind a router, the nginx canary
Ingress and the HTTPRoute weights (pure object patches), the canary core driving a router, and
what a sync applies for the objects a rollout pins (``takeover``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitsync.diff import IgnoreRule, diff_resource
from gitsync.model import ResourceKey, SyncStatus
from gitsync.rollout import canary as core
from gitsync.rollout.canary import (
    CreateCanary,
    Decision,
    DeleteCanary,
    Observation,
    PromoteStable,
    Requests,
    Role,
    Scale,
    WorkloadState,
)
from gitsync.rollout.executor import canary_deployment, promoted_template, workload_states
from gitsync.rollout.math import HASH_LABEL, ROLE_LABEL
from gitsync.rollout.routers import (
    NGINX_CANARY_ANNOTATION,
    NGINX_WEIGHT_ANNOTATION,
    SELECTOR_HASH_POINTER,
    PinSelector,
    RouterError,
    RouterState,
    ServiceState,
    SetRouterWeight,
    canary_ingress,
    keep_pinned_selector,
    keep_route_weight,
    nginx_weight,
    pinned_service,
    route_weight,
    route_with_weight,
    routed_canary_replicas,
    service_state,
)
from gitsync.rollout.spec import RolloutSpec, parse_rollout_spec
from gitsync.rollout.status import (
    OWNER_ANNOTATION,
    PREVIEW_ROLE,
    STABLE_HASH_ANNOTATION,
    Phase,
    RolloutStatus,
)
from gitsync.rollout.takeover import pinned_objects, plan_takeover, selector_ignore_rules

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NS = "shop"

# -- arithmetic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("total", range(1, 11))
def test_routed_canary_replicas_cover_the_weight_and_never_zero(total: int) -> None:
    for weight in range(101):
        canary = routed_canary_replicas(total, weight)
        if weight == 0:
            assert canary == 0
            continue
        assert 1 <= canary <= total
        assert canary * 100 >= total * weight, "capacity for the share (rounded up)"
        assert (canary - 1) * 100 < total * weight or canary == 1, "no more than needed"


@pytest.mark.parametrize(
    ("total", "weight", "canary"),
    [(10, 20, 2), (10, 25, 3), (4, 20, 1), (4, 50, 2), (3, 1, 1), (3, 100, 3), (0, 50, 1)],
)
def test_routed_canary_replicas_examples(total: int, weight: int, canary: int) -> None:
    assert routed_canary_replicas(total, weight) == canary


def test_routed_canary_replicas_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="weight"):
        routed_canary_replicas(4, 101)
    with pytest.raises(ValueError, match="negative"):
        routed_canary_replicas(-1, 50)


# -- nginx -----------------------------------------------------------------------------------------


def stable_ingress() -> dict[str, Any]:
    def path(p: str, service: str) -> dict[str, Any]:
        backend = {"service": {"name": service, "port": {"number": 80}}}
        return {"path": p, "pathType": "Prefix", "backend": backend}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "namespace": NS,
            "annotations": {
                "kubernetes.io/ingress.class": "nginx",
                "gitsync.dev/tracking": "gitsync/app:networking.k8s.io/Ingress:shop/web",
            },
            "uid": "u-ing",
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["shop.example"], "secretName": "tls"}],
            "rules": [
                {
                    "host": "shop.example",
                    "http": {"paths": [path("/", "web"), path("/api", "api")]},
                },
                {"host": "admin.example", "http": {"paths": [path("/", "admin")]}},
            ],
        },
    }


def test_the_canary_ingress_copies_only_the_stable_paths_pointed_at_the_canary() -> None:
    out = canary_ingress(
        stable_ingress(),
        stable_service="web",
        canary_service="web-canary",
        weight=20,
        rollout_name="web",
        rollout_uid="u-ro",
    )
    assert out["metadata"]["name"] == "web-canary" and out["metadata"]["namespace"] == NS
    assert out["metadata"]["annotations"] == {
        NGINX_CANARY_ANNOTATION: "true",
        NGINX_WEIGHT_ANNOTATION: "20",
        OWNER_ANNOTATION: "web",
        "kubernetes.io/ingress.class": "nginx",
    }, "no tracking annotation: no app claims (or prunes) the canary Ingress"
    assert out["metadata"]["ownerReferences"][0]["uid"] == "u-ro"
    assert out["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "shop.example",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web-canary", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ],
    }
    assert nginx_weight(out) == 20


def test_the_stable_ingress_is_not_changed() -> None:
    stable = stable_ingress()
    before = copy.deepcopy(stable)
    canary_ingress(stable, stable_service="web", canary_service="c", weight=5, rollout_name="web")
    assert stable == before


def test_an_ingress_without_a_path_to_the_stable_service_cannot_split_it() -> None:
    with pytest.raises(RouterError, match="no path to Service shop"):
        canary_ingress(
            stable_ingress(), stable_service="shop", canary_service="c", weight=5, rollout_name="r"
        )


@pytest.mark.parametrize(
    ("annotations", "weight"),
    [
        ({NGINX_CANARY_ANNOTATION: "true", NGINX_WEIGHT_ANNOTATION: "35"}, 35),
        ({NGINX_CANARY_ANNOTATION: "false", NGINX_WEIGHT_ANNOTATION: "35"}, 0),
        ({NGINX_CANARY_ANNOTATION: "true"}, 0),
        ({NGINX_CANARY_ANNOTATION: "true", NGINX_WEIGHT_ANNOTATION: "x"}, 0),
        ({NGINX_CANARY_ANNOTATION: "true", NGINX_WEIGHT_ANNOTATION: "250"}, 100),
    ],
)
def test_nginx_weight_reads_the_canary_annotations(
    annotations: dict[str, str], weight: int
) -> None:
    assert nginx_weight({"metadata": {"annotations": annotations}}) == weight
    assert nginx_weight(None) == 0


# -- Gateway API -----------------------------------------------------------------------------------


def http_route(*, canary_ref: bool = False) -> dict[str, Any]:
    refs: list[dict[str, Any]] = [{"name": "web", "port": 80}]
    if canary_ref:
        refs.append({"name": "web-canary", "port": 80, "weight": 0})
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs},
                {"backendRefs": [{"name": "api", "port": 8080}]},
            ],
        },
    }


def test_route_weights_split_the_stable_rules_only() -> None:
    route = http_route()
    out = route_with_weight(route, "web", "web-canary", 20)
    assert out["spec"]["rules"][0]["backendRefs"] == [
        {"name": "web", "port": 80, "weight": 80},
        {"name": "web-canary", "port": 80, "weight": 20},
    ]
    assert out["spec"]["rules"][1] == route["spec"]["rules"][1]
    assert route_weight(out, "web", "web-canary") == 20
    assert route == http_route(), "the input is not changed"


def test_route_weights_update_a_declared_canary_ref_and_return_to_100_0() -> None:
    at_50 = route_with_weight(http_route(canary_ref=True), "web", "web-canary", 50)
    assert [r["weight"] for r in at_50["spec"]["rules"][0]["backendRefs"]] == [50, 50]
    back = route_with_weight(at_50, "web", "web-canary", 0)
    assert [r["weight"] for r in back["spec"]["rules"][0]["backendRefs"]] == [100, 0]
    assert route_weight(back, "web", "web-canary") == 0


def test_route_weight_without_a_canary_ref_is_zero_and_without_stable_none() -> None:
    assert route_weight(http_route(), "web", "web-canary") == 0
    assert route_weight(http_route(), "shop", "web-canary") is None
    with pytest.raises(RouterError, match="no rule of HTTPRoute web"):
        route_with_weight(http_route(), "shop", "c", 10)


def test_a_backend_ref_of_another_kind_is_not_the_stable_service() -> None:
    route = http_route()
    route["spec"]["rules"][0]["backendRefs"][0]["kind"] = "ServiceImport"
    assert route_weight(route, "web", "web-canary") is None


# -- Services and what a sync keeps ----------------------------------------------------------------


def test_a_pin_applies_the_hash_key_only_unless_the_selector_is_atomic() -> None:
    body = pinned_service("web", NS, "abc")
    assert body["spec"] == {"selector": {HASH_LABEL: "abc"}}
    atomic = pinned_service("web", NS, "abc", live_selector={"app": "web", HASH_LABEL: "old"})
    assert atomic["spec"] == {"selector": {"app": "web", HASH_LABEL: "abc"}}


def test_service_state_reads_the_pin_and_the_ready_endpoints() -> None:
    service = {"spec": {"selector": {"app": "web", HASH_LABEL: "abc"}}}
    endpoints = {
        "subsets": [
            {"addresses": [{"ip": "1"}, {"ip": "2"}], "notReadyAddresses": [{"ip": "3"}]},
            {"addresses": [{"ip": "4"}]},
        ]
    }
    assert service_state("web", service, endpoints) == ServiceState("web", True, "abc", 3)
    assert service_state("web", None) == ServiceState("web", exists=False)


def service(selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": selector, "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def test_a_sync_keeps_the_live_pin_and_every_git_selector_key() -> None:
    desired = service({"app": "web", "tier": "front"})
    kept = keep_pinned_selector(desired, service({"app": "web", HASH_LABEL: "abc"}))
    assert kept is not None
    assert kept["spec"]["selector"] == {"app": "web", "tier": "front", HASH_LABEL: "abc"}
    assert keep_pinned_selector(desired, service({"app": "web"})) is None
    assert keep_pinned_selector(desired, None) is None


def test_a_sync_keeps_a_live_canary_weight_but_not_a_route_at_rest() -> None:
    live = route_with_weight(http_route(), "web", "web-canary", 30)
    kept = keep_route_weight(http_route(), live, "web", "web-canary")
    assert kept is not None and route_weight(kept, "web", "web-canary") == 30
    at_rest = route_with_weight(live, "web", "web-canary", 0)
    assert keep_route_weight(http_route(), at_rest, "web", "web-canary") is None


# -- takeover for Rollouts that pin ----------------------------------------------------------------


def deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def rollout_doc(strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"targetRef": {"name": "web"}, "strategy": strategy},
    }


BLUE_GREEN = {"blueGreen": {"activeService": "web", "previewService": "web-preview"}}
GATEWAY = {
    "canary": {
        "stableService": "web",
        "canaryService": "web-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "steps": [{"setWeight": 20}],
    }
}
D_KEY = ResourceKey("apps", "Deployment", NS, "web")
R_KEY = ResourceKey("gitsync.dev", "Rollout", NS, "web")
S_KEY = ResourceKey("", "Service", NS, "web")
P_KEY = ResourceKey("", "Service", NS, "web-preview")
ROUTE_KEY = ResourceKey("gateway.networking.k8s.io", "HTTPRoute", NS, "web")


def live_deployment(obj: dict[str, Any], recorded: str) -> dict[str, Any]:
    live = copy.deepcopy(obj)
    live["metadata"]["annotations"] = {STABLE_HASH_ANNOTATION: recorded}
    return live


def test_the_target_of_a_pinning_rollout_runs_pods_with_the_hash_label() -> None:
    v1 = deployment("web:1")
    plan = plan_takeover({D_KEY: v1, R_KEY: rollout_doc(BLUE_GREEN)}, {})
    [work] = plan.work
    labels = plan.replacements[D_KEY]["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "web", HASH_LABEL: work.desired_hash}
    # held: the live template, labeled with the recorded hash
    v2 = deployment("web:2")
    live = {D_KEY: live_deployment(v1, work.desired_hash)}
    plan = plan_takeover({D_KEY: v2, R_KEY: rollout_doc(BLUE_GREEN)}, live)
    [held] = plan.held()
    template = plan.replacements[D_KEY]["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "web:1"
    assert template["metadata"]["labels"][HASH_LABEL] == work.desired_hash != held.desired_hash


def test_a_plain_canary_target_gets_no_label() -> None:
    plain = {"canary": {"steps": [{"setWeight": 20}]}}
    plan = plan_takeover({D_KEY: deployment("web:1"), R_KEY: rollout_doc(plain)}, {})
    assert HASH_LABEL not in plan.replacements[D_KEY]["spec"]["template"]["metadata"]["labels"]


def test_a_broken_spec_keeps_the_live_label_and_pins() -> None:
    broken = {"blueGreen": {"activeService": "web", "previewService": "web-preview", "x": 1}}
    live_d = live_deployment(deployment("web:1"), "h1")
    live_d["spec"]["template"]["metadata"]["labels"][HASH_LABEL] = "h1"
    desired = {
        D_KEY: deployment("web:1"),
        R_KEY: rollout_doc(broken),
        S_KEY: service({"app": "web"}),
    }
    live = {D_KEY: live_d, S_KEY: service({"app": "web", HASH_LABEL: "h1"})}
    plan = plan_takeover(desired, live)
    assert plan.work[0].error.startswith("invalid Rollout spec")
    assert plan.replacements[D_KEY]["spec"]["template"]["metadata"]["labels"][HASH_LABEL]
    assert plan.replacements[S_KEY]["spec"]["selector"] == {"app": "web", HASH_LABEL: "h1"}


def test_pinned_services_and_routes_are_applied_with_the_live_rollout_fields() -> None:
    route = http_route()
    desired = {
        D_KEY: deployment("web:1"),
        R_KEY: rollout_doc(GATEWAY),
        S_KEY: service({"app": "web"}),
        ROUTE_KEY: route,
    }
    live = {
        S_KEY: service({"app": "web", HASH_LABEL: "h1"}),
        ROUTE_KEY: route_with_weight(route, "web", "web-canary", 20),
    }
    assert pinned_objects(desired) == [S_KEY, ROUTE_KEY]
    plan = plan_takeover(desired, live)
    assert plan.replacements[S_KEY]["spec"]["selector"] == {"app": "web", HASH_LABEL: "h1"}
    assert route_weight(plan.replacements[ROUTE_KEY], "web", "web-canary") == 20
    assert desired[S_KEY]["spec"]["selector"] == {"app": "web"}, "the input is not changed"


def test_the_ignore_rule_hides_exactly_the_pin() -> None:
    desired = {D_KEY: deployment("web:1"), R_KEY: rollout_doc(BLUE_GREEN), S_KEY: service({})}
    desired[P_KEY] = {**service({}), "metadata": {"name": "web-preview", "namespace": NS}}
    rules = selector_ignore_rules(desired)
    assert rules == [
        IgnoreRule("", "Service", "web", NS, json_pointers=(SELECTOR_HASH_POINTER,)),
        IgnoreRule("", "Service", "web-preview", NS, json_pointers=(SELECTOR_HASH_POINTER,)),
    ]
    assert SELECTOR_HASH_POINTER == "/spec/selector/rollouts.gitsync.dev~1template-hash"
    git = service({"app": "web"})
    pinned = service({"app": "web", HASH_LABEL: "h1"})
    assert (
        diff_resource(S_KEY, git, pinned, ignore=rules, mask_scope="t/app").status
        == SyncStatus.SYNCED
    )
    moved = service({"app": "api", HASH_LABEL: "h1"})
    assert (
        diff_resource(S_KEY, git, moved, ignore=rules, mask_scope="t/app").status
        == SyncStatus.OUT_OF_SYNC
    )


# -- executor manifests ----------------------------------------------------------------------------


def test_the_preview_deployment_is_named_and_labeled_as_preview() -> None:
    out = canary_deployment(
        deployment("web:2"),
        rollout_name="web",
        rollout_uid="u",
        template_hash="h2",
        role=PREVIEW_ROLE,
    )
    assert out["metadata"]["name"] == "web-preview"
    assert out["spec"]["template"]["metadata"]["labels"][ROLE_LABEL] == PREVIEW_ROLE
    assert out["spec"]["selector"]["matchLabels"][HASH_LABEL] == "h2"
    promoted = promoted_template(out, keep_hash=True)
    assert promoted["metadata"]["labels"] == {"app": "web", HASH_LABEL: "h2"}
    assert promoted_template(out)["metadata"]["labels"] == {"app": "web"}


def pod(name: str, labels: dict[str, str], *, ready: bool = True) -> dict[str, Any]:
    status = "True" if ready else "False"
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": status}]},
    }


def test_workload_states_count_the_pods_a_pinned_selector_selects() -> None:
    stable = live_deployment(deployment("web:1"), "h1")
    preview = canary_deployment(
        deployment("web:2"),
        rollout_name="web",
        rollout_uid="",
        template_hash="h2",
        role=PREVIEW_ROLE,
    )
    pods = [
        pod("s1", {"app": "web", HASH_LABEL: "h1"}),
        pod("s2", {"app": "web"}),  # not restarted with the label yet
        pod("s3", {"app": "web", HASH_LABEL: "h1"}, ready=False),
        pod("p1", {"app": "web", ROLE_LABEL: PREVIEW_ROLE, HASH_LABEL: "h2"}),
    ]
    s, p = workload_states(stable, preview, pods)
    assert s is not None and p is not None
    assert (s.pods, s.ready, s.labeled_ready) == (3, 2, 1)
    assert (p.pods, p.ready, p.labeled_ready, p.template_hash) == (1, 1, 1, "h2")


# -- the canary core with a router -----------------------------------------------------------------


N = 4
STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
]


def routed(steps: list[dict[str, Any]] = STEPS, deadline: int = 60) -> RolloutSpec:
    return parse_rollout_spec(
        {
            "targetRef": {"name": "web"},
            "progressDeadlineSeconds": deadline,
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "trafficRouting": {"nginx": {"stableIngress": "web"}},
                    "steps": steps,
                }
            },
        }
    )


@dataclass
class Routed:
    """Stable and canary Deployments, two Service pins and a router weight."""

    stable_replicas: int = N
    stable_hash: str = "old"
    canary_replicas: int | None = None
    canary_hash: str = ""
    canary_ready: bool = True
    stable_pin: str = ""
    canary_pin: str = ""
    weight: int = 0
    requests: Requests = field(default_factory=Requests)
    log: list[tuple[int, int]] = field(default_factory=list)
    """(router weight, ready canary pods) after every tick."""

    def ready_canary(self) -> int:
        return (self.canary_replicas or 0) if self.canary_ready else 0

    def observe(self, now: datetime) -> Observation:
        stable = WorkloadState(
            self.stable_replicas,
            self.stable_replicas,
            self.stable_replicas,
            self.stable_hash,
            rolled_out=True,
            labeled_ready=self.stable_replicas,
        )
        canary = None
        if self.canary_replicas is not None:
            ready = self.ready_canary()
            canary = WorkloadState(
                self.canary_replicas,
                self.canary_replicas,
                ready,
                self.canary_hash,
                labeled_ready=ready,
            )
        endpoints = self.ready_canary() if self.canary_pin == self.canary_hash else 0
        services = {
            "stable": ServiceState("web", True, self.stable_pin, self.stable_replicas),
            "canary": ServiceState("web-canary", True, self.canary_pin, endpoints),
        }
        return Observation(
            now,
            stable,
            canary,
            self.requests,
            1,
            services=services,
            router=RouterState(self.weight),
        )

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, SetRouterWeight):
                assert action.weight == 0 or self.ready_canary() >= routed_canary_replicas(
                    N, action.weight
                ), "a weight only for ready canary pods"
                self.weight = action.weight
            elif isinstance(action, Scale) and action.role == Role.STABLE:
                self.stable_replicas = action.replicas
            elif isinstance(action, Scale):
                assert self.weight == 0 or action.replicas >= routed_canary_replicas(N, self.weight)
                self.canary_replicas = action.replicas
            elif isinstance(action, CreateCanary):
                self.canary_replicas, self.canary_hash = 0, action.template_hash
            elif isinstance(action, DeleteCanary):
                assert self.weight == 0, "no weight on a canary that goes"
                self.canary_replicas, self.canary_hash = None, ""
            elif isinstance(action, PromoteStable):
                assert self.stable_pin == action.template_hash, "the stable Service moved first"
                self.stable_hash, self.stable_replicas = action.template_hash, action.replicas
            elif isinstance(action, PinSelector) and action.service == "web":
                self.stable_pin = action.template_hash
            elif isinstance(action, PinSelector):
                self.canary_pin = action.template_hash
        self.log.append((self.weight, self.ready_canary()))


def routed_start(world: Routed, the_spec: RolloutSpec) -> RolloutStatus:
    decision = core.start(
        the_spec,
        RolloutStatus(phase=Phase.HEALTHY, stable_hash="old"),
        world.observe(T0),
        desired_hash="new",
        held=True,
        replicas=N,
        revision="r1",
    )
    world.apply(decision)
    return decision.status


def tick_until(
    world: Routed, the_spec: RolloutSpec, status: RolloutStatus, now: datetime, until: Any
) -> tuple[RolloutStatus, datetime]:
    for _ in range(40):
        decision = core.step(the_spec, status, world.observe(now))
        world.apply(decision)
        status = decision.status
        assert (
            world.stable_replicas == N
            or status.phase == Phase.HEALTHY
            or (world.stable_hash == "new")
        ), "the stable side stays at full size"
        if until(status):
            return status, now
        now += timedelta(seconds=1)
    raise AssertionError(f"never reached; last status {status}")


def paused_at(index: int) -> Any:
    return lambda s: s.current_step_index == index and s.phase == Phase.PAUSED


def test_a_router_gets_the_weights_of_the_steps_and_returns_to_100_0() -> None:
    the_spec = routed()
    world = Routed()
    status = routed_start(world, the_spec)
    status, now = tick_until(world, the_spec, status, T0, paused_at(1))
    assert (world.stable_pin, world.canary_pin) == ("old", "new")
    assert (world.weight, world.canary_replicas, world.stable_replicas) == (20, 1, N)
    assert status.current_weight == 20
    world.requests = Requests(promote="p1")
    status, now = tick_until(world, the_spec, status, now, paused_at(3))
    assert (world.weight, world.canary_replicas) == (50, 2)
    world.requests = Requests(promote="p2")
    status, now = tick_until(world, the_spec, status, now, lambda s: s.phase == Phase.HEALTHY)
    assert (world.weight, world.canary_replicas, world.stable_pin) == (0, None, "new")
    assert (world.stable_hash, world.stable_replicas) == ("new", N)
    weights = [w for w, _ in world.log]
    assert [w for i, w in enumerate(weights) if i == 0 or w != weights[i - 1]] == [0, 20, 50, 0]


def test_the_weight_waits_for_ready_canary_pods() -> None:
    the_spec = routed()
    world = Routed(canary_ready=False)
    status = routed_start(world, the_spec)
    status, now = tick_until(
        world, the_spec, status, T0, lambda s: world.canary_replicas == 1 and world.canary_pin
    )
    for _ in range(5):
        status, now = tick_until(
            world, the_spec, status, now + timedelta(seconds=1), lambda s: True
        )
    assert world.weight == 0 and status.current_step_index == 0
    world.canary_ready = True
    status, now = tick_until(world, the_spec, status, now, paused_at(1))
    assert world.weight == 20


def test_the_canary_service_endpoints_gate_the_weight() -> None:
    the_spec = routed()
    world = Routed()
    status = routed_start(world, the_spec)
    status, now = tick_until(world, the_spec, status, T0, lambda s: world.ready_canary() == 1)
    obs = world.observe(now)
    lagging = {**obs.services, "canary": ServiceState("web-canary", True, "new", 0)}
    decision = core.step(the_spec, status, replace(obs, services=lagging))
    assert not any(isinstance(a, SetRouterWeight) for a in decision.actions)


def test_a_router_abort_sends_everything_to_stable_first() -> None:
    the_spec = routed()
    world = Routed()
    status = routed_start(world, the_spec)
    status, now = tick_until(world, the_spec, status, T0, paused_at(1))
    world.requests = Requests(abort="a1")
    decision = core.step(the_spec, status, world.observe(now))
    assert decision.actions == (SetRouterWeight(0), Scale(Role.CANARY, 0))
    world.apply(decision)
    assert decision.status.phase == Phase.DEGRADED and world.stable_pin == "old"


def test_the_services_are_pinned_before_the_canary_gets_pods() -> None:
    the_spec = routed()
    world = Routed()
    status = routed_start(world, the_spec)
    first = core.step(the_spec, status, world.observe(T0))
    assert first.actions == (PinSelector("web", "old"), PinSelector("web-canary", "new"))
    world.apply(first)
    second = core.step(the_spec, first.status, world.observe(T0))
    assert second.actions == (Scale(Role.CANARY, 1),)


def test_a_router_problem_waits_and_then_hits_the_deadline() -> None:
    the_spec = routed(deadline=5)
    world = Routed()
    status = routed_start(world, the_spec)
    obs = world.observe(T0)
    broken = Observation(
        T0,
        obs.stable,
        obs.canary,
        obs.requests,
        1,
        services=obs.services,
        router=RouterState(0, "the stable Ingress web does not exist"),
    )
    decision = core.step(the_spec, status, broken)
    assert decision.actions == () and "stable Ingress web does not exist" in decision.status.message
    later = Observation(
        T0 + timedelta(seconds=10),
        obs.stable,
        obs.canary,
        obs.requests,
        1,
        services=obs.services,
        router=broken.router,
    )
    assert core.step(the_spec, decision.status, later).status.phase == Phase.DEGRADED
