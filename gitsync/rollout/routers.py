"""Traffic routers and pinned Service selectors: what a rollout writes to move traffic. Pure.

Two ways of moving traffic need more than replica counts:

* **A traffic router** (a canary with ``trafficRouting``): the stable Deployment stays at full
  size, the canary runs ``routed_canary_replicas(N, w)`` pods, and only the router object's
  weights change - ingress-nginx's canary annotations on a second Ingress, or the weights of a
  Gateway API HTTPRoute's ``backendRefs``.
* **Blue-green**: the active Service keeps selecting the old pods while the new ones run behind
  the preview Service, and promotion switches the active Service to the new pods.

Both need each Service to select one side only, so the rollout **pins** Service selectors to a
template: it adds ``rollouts.gitsync.dev/template-hash: <hash>`` to the selector (stable /
active -> the stable template, canary / preview -> the new one) and the pods of a Deployment a
Rollout pins Services for carry that label (``takeover`` adds it to the stable pod template; the
canary and preview Deployments always have it). The selector key is the only field the rollout
writes on a Service (server-side apply, field manager ``gitsync-rollout``); the sync layer keeps it
(``takeover`` applies a Git-declared Service with the live value of that key).

Router objects:

* **nginx**: a canary Ingress ``<stableIngress>-canary``, built from the stable Ingress - only
  the paths whose backend is the stable Service, pointed at the canary Service - with
  ``nginx.ingress.kubernetes.io/canary: "true"`` and ``.../canary-weight: "<w>"``. Weight 0
  (100/0) is the canary Ingress deleted. It is owned by the Rollout and never in Git.
* **Gateway API**: in each rule of the HTTPRoute that has a ``backendRef`` to the stable Service,
  the stable ref gets weight ``100 - w`` and the canary ref (added beside it, same port, when Git
  does not declare it) weight ``w``. Rules that do not reference the stable Service are left alone.

Everything here is a function of its arguments; ``executor`` reads and writes the objects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.rollout.math import HASH_LABEL
from gitsync.rollout.spec import API_VERSION, CANARY_INGRESS_SUFFIX, KIND
from gitsync.rollout.status import OWNER_ANNOTATION

NGINX_CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
NGINX_WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
INGRESS_API = "networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTE_VERSIONS = ("v1", "v1beta1", "v1alpha2")
"""The HTTPRoute versions gitsync can drive, preferred first (the served one is used)."""
SELECTOR_HASH_POINTER = "/spec/selector/" + HASH_LABEL.replace("~", "~0").replace("/", "~1")
"""The JSON pointer of the one Service field a rollout writes (for ``diff.IgnoreRule``)."""


class RouterError(ValueError):
    """A router object that cannot carry the split (e.g. no route to the stable Service)."""


# -- what the core sees and asks for ------------------------------------------------------------


@dataclass(frozen=True)
class ServiceState:
    """One Service a rollout pins, as observed."""

    name: str
    exists: bool = True
    selector_hash: str = ""
    """The ``template-hash`` value in its selector ("" when the selector does not pin one)."""
    ready_endpoints: int = 0
    """Ready addresses in its Endpoints: the pods it actually sends traffic to."""


@dataclass(frozen=True)
class RouterState:
    """The traffic router of a canary, as observed."""

    weight: int = 0
    """Percent of traffic the router currently sends to the canary Service."""
    problem: str = ""
    """Why the router cannot be driven ("" when it can): a missing object, no route to the
    stable Service, a canary Ingress that belongs to something else."""


@dataclass(frozen=True)
class PinSelector:
    """Pin Service ``service``'s selector to the pods of template ``template_hash``."""

    service: str
    template_hash: str


@dataclass(frozen=True)
class SetRouterWeight:
    """Send ``weight`` percent of the router's traffic to the canary Service (0: all stable)."""

    weight: int


# -- arithmetic ---------------------------------------------------------------------------------


def routed_canary_replicas(total: int, weight: int) -> int:
    """Canary pods for ``weight`` percent behind a router, beside a full-size stable side.

    ``ceil(N * w / 100)``, at least 1 when ``w > 0`` (a weight is never sent to no pods), at most
    ``N``; 0 at ``w == 0``. Rounded up because the router, not the pod count, decides the
    traffic share: the canary needs the capacity for its share, never less.
    """
    if total < 0:
        raise ValueError(f"total replicas must not be negative, got {total}")
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be from 0 to 100, got {weight}")
    if weight == 0:
        return 0
    return min(max(-(-total * weight // 100), 1), max(total, 1))


# -- Services -----------------------------------------------------------------------------------


def service_state(
    name: str, service: Mapping[str, Any] | None, endpoints: Mapping[str, Any] | None = None
) -> ServiceState:
    """The pin state of a live Service (``None``: it does not exist) and its Endpoints."""
    if service is None:
        return ServiceState(name, exists=False)
    selector = (service.get("spec") or {}).get("selector") or {}
    ready = sum(
        len(subset.get("addresses") or []) for subset in (endpoints or {}).get("subsets") or []
    )
    return ServiceState(
        name, selector_hash=str(selector.get(HASH_LABEL, "")), ready_endpoints=ready
    )


def pinned_service(
    name: str,
    namespace: str,
    template_hash: str,
    *,
    live_selector: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The server-side apply body that pins Service ``name`` to ``template_hash``.

    Only the hash key, so the rollout owns only that key, where the API server merges a
    Service selector key by key (Kubernetes <= 1.20). Where the selector is an atomic map
    (Kubernetes >= 1.21 marks it ``+mapType=atomic``) an apply of one key would replace the whole
    selector, so ``live_selector`` is given and its other keys are carried along unchanged.
    """
    selector: dict[str, Any] = {}
    if live_selector is not None:
        selector.update({k: v for k, v in live_selector.items() if k != HASH_LABEL})
    selector[HASH_LABEL] = template_hash
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector},
    }


def keep_pinned_selector(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """``desired`` (a Service from Git) with the live selector pin, for the sync to apply.

    None when there is nothing to keep (no live Service, or its selector pins nothing). A
    Git-declared selector keeps all its keys and values; only the rollout's key is added.
    """
    if live is None:
        return None
    pinned = ((live.get("spec") or {}).get("selector") or {}).get(HASH_LABEL)
    if not pinned:
        return None
    out = copy.deepcopy(dict(desired))
    spec = out.setdefault("spec", {})
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    selector[HASH_LABEL] = pinned
    return out


# -- nginx --------------------------------------------------------------------------------------


def canary_ingress_name(stable_ingress: str) -> str:
    return f"{stable_ingress}{CANARY_INGRESS_SUFFIX}"


def _backend_service(backend: object) -> str:
    if not isinstance(backend, Mapping):
        return ""
    service = backend.get("service")
    name = service.get("name") if isinstance(service, Mapping) else None
    return name if isinstance(name, str) else ""


def _to_canary(backend: Mapping[str, Any], canary_service: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(backend))
    out["service"]["name"] = canary_service
    return out


def canary_ingress(
    stable: Mapping[str, Any],
    *,
    stable_service: str,
    canary_service: str,
    weight: int,
    rollout_name: str,
    rollout_uid: str = "",
) -> dict[str, Any]:
    """The canary Ingress for ``stable`` at ``weight`` (see the module docstring).

    Raises ``RouterError`` when no path of the stable Ingress goes to ``stable_service``.
    """
    meta = stable.get("metadata") or {}
    spec = stable.get("spec") or {}
    rules = []
    for rule in spec.get("rules") or []:
        http = rule.get("http") or {}
        paths = [
            {**copy.deepcopy(dict(p)), "backend": _to_canary(p["backend"], canary_service)}
            for p in http.get("paths") or []
            if _backend_service(p.get("backend")) == stable_service
        ]
        if paths:
            out_rule = {k: copy.deepcopy(v) for k, v in rule.items() if k != "http"}
            rules.append({**out_rule, "http": {"paths": paths}})
    out_spec: dict[str, Any] = {}
    if spec.get("ingressClassName"):
        out_spec["ingressClassName"] = spec["ingressClassName"]
    default = spec.get("defaultBackend")
    if isinstance(default, Mapping) and _backend_service(default) == stable_service:
        out_spec["defaultBackend"] = _to_canary(default, canary_service)
    if rules:
        out_spec["rules"] = rules
    if not rules and "defaultBackend" not in out_spec:
        raise RouterError(
            f"Ingress {meta.get('name')} has no path to Service {stable_service}, so it cannot "
            "split that Service's traffic"
        )
    annotations = {
        NGINX_CANARY_ANNOTATION: "true",
        NGINX_WEIGHT_ANNOTATION: str(weight),
        # Read by the executor: never touch a canary Ingress another Rollout (or a person) made.
        OWNER_ANNOTATION: rollout_name,
    }
    ingress_class = (meta.get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
    if ingress_class:
        annotations[INGRESS_CLASS_ANNOTATION] = ingress_class
    out_meta: dict[str, Any] = {
        "name": canary_ingress_name(str(meta.get("name", ""))),
        "namespace": meta.get("namespace", ""),
        "annotations": annotations,
    }
    if rollout_uid:
        out_meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": rollout_name,
                "uid": rollout_uid,
                "controller": True,
            }
        ]
    return {"apiVersion": INGRESS_API, "kind": "Ingress", "metadata": out_meta, "spec": out_spec}


def nginx_weight(canary: Mapping[str, Any] | None) -> int:
    """The weight a canary Ingress sends to the canary (0 when it is absent or not a canary)."""
    if canary is None:
        return 0
    annotations = (canary.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(NGINX_CANARY_ANNOTATION, "")).lower() != "true":
        return 0
    try:
        weight = int(str(annotations.get(NGINX_WEIGHT_ANNOTATION, "0")))
    except ValueError:
        return 0
    return min(max(weight, 0), 100)


# -- Gateway API --------------------------------------------------------------------------------


def _refers_to(ref: object, service: str) -> bool:
    """A backendRef to core Service ``service`` (kind and group default to Service and "")."""
    if not isinstance(ref, Mapping) or ref.get("name") != service:
        return False
    return ref.get("kind", "Service") == "Service" and ref.get("group", "") in ("", "core")


def _weight_of(ref: Mapping[str, Any]) -> int:
    value = ref.get("weight", 1)  # the Gateway API default
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def route_weight(route: Mapping[str, Any], stable: str, canary: str) -> int | None:
    """The percent of the stable Service's traffic the HTTPRoute sends to ``canary``.

    Read from the first rule that references ``stable``; None when no rule does.
    """
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = rule.get("backendRefs") or []
        stable_refs = [r for r in refs if _refers_to(r, stable)]
        if not stable_refs:
            continue
        s = sum(_weight_of(r) for r in stable_refs)
        c = sum(_weight_of(r) for r in refs if _refers_to(r, canary))
        if s + c == 0:
            return 0
        return (200 * c + (s + c)) // (2 * (s + c))  # rounded half up
    return None


def route_with_weight(
    route: Mapping[str, Any], stable: str, canary: str, weight: int
) -> dict[str, Any]:
    """``route`` with ``weight`` percent of every stable-Service rule going to ``canary``.

    Raises ``RouterError`` when no rule references ``stable``.
    """
    out = copy.deepcopy(dict(route))
    found = False
    for rule in (out.get("spec") or {}).get("rules") or []:
        refs = rule.get("backendRefs") or []
        stable_refs = [r for r in refs if _refers_to(r, stable)]
        if not stable_refs:
            continue
        found = True
        for ref in stable_refs[1:]:
            ref["weight"] = 0  # one stable ref carries the stable share
        stable_refs[0]["weight"] = 100 - weight
        canary_refs = [r for r in refs if _refers_to(r, canary)]
        if canary_refs:
            for ref in canary_refs[1:]:
                ref["weight"] = 0
            canary_refs[0]["weight"] = weight
        elif weight:
            added = copy.deepcopy(stable_refs[0])
            added.update(name=canary, weight=weight)
            refs.append(added)
            rule["backendRefs"] = refs
    if not found:
        name = (route.get("metadata") or {}).get("name")
        raise RouterError(f"no rule of HTTPRoute {name} has a backendRef to Service {stable}")
    return out


def keep_route_weight(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, stable: str, canary: str
) -> dict[str, Any] | None:
    """``desired`` (an HTTPRoute from Git) with the live canary weight, for the sync to apply.

    None when there is nothing to keep: no live route, or the live route sends nothing to the
    canary (at rest the route is exactly what Git says).
    """
    if live is None:
        return None
    weight = route_weight(live, stable, canary)
    if not weight:
        return None
    try:
        return route_with_weight(desired, stable, canary, weight)
    except RouterError:
        return None  # Git no longer routes to the stable Service: nothing to keep
