"""Where a sync hands a pod-template change over to a rollout. Pure: plans, never writes.

The sync layer calls ``plan_takeover`` with the objects it is about to compare and apply (already
prepared: namespace resolved, tracking annotation set) and the live objects it read for them. For
every Deployment that a Rollout *in the same rendered set* targets:

* the hash of its rendered pod template (``math.template_hash``; from the manifest, so server
  defaults never start a rollout) is compared with the hash the live Deployment records in its
  ``rollouts.gitsync.dev/stable-hash`` annotation;
* **same hash**, **no live Deployment** (first deploy) or **no recorded hash** (a Rollout added
  next to an existing Deployment - adopted as it is rendered, without a canary): the Deployment is
  applied as rendered, with the annotation set to the rendered hash;
* **different hash**: the template change is *held*. The sync applies the Deployment with the
  **live** pod template (so everything else in it - labels, strategy, annotations - still applies
  normally), the live ``spec.replicas`` (the rollout shares N out between stable and canary) and
  the recorded hash; the rollout gets the rendered Deployment as its work and runs the new
  template as a canary.

A Rollout whose spec does not parse still holds its target's template change (a bad spec must not
let a change through unguarded); its work carries the error, which the rollout reports. Errors
that leave nothing to hold (the target is not rendered in this app, two Rollouts claim one
Deployment) are reported the same way.

The held object is the live template taken as it is (with the defaults the server added): what
gitsync applies while the rollout runs is exactly what runs. Those defaulted fields are released
again by the first normal apply after the rollout, and the server defaults them back unchanged.

**Pinned Services and routers** (blue-green, and a canary with ``trafficRouting``; see
``routers``). The rollout pins Service selectors to one side with the selector key
``rollouts.gitsync.dev/template-hash``, so the pods of such a target carry that label: its pod
template is applied with ``template-hash: <hash>`` added (the rendered hash, or the recorded one
while held; the label is not part of the hash, so this never starts a rollout - but adding it to
a Deployment that did not have it is one rolling restart of the same version). A label already
on the live template stays while a Rollout targets the Deployment, even with a broken spec.
Every Service a rendered Rollout names (``activeService``/``previewService``,
``stableService``/``canaryService``) is applied as rendered **plus the live value of that
selector key**, and an HTTPRoute a Rollout routes through with the live canary weight while it
is not 0 (at rest it is applied exactly as Git says): a sync never moves traffic a rollout set,
whether or not the API server merges selector keys one by one (it does not from Kubernetes 1.21,
where ``Service.spec.selector`` is an atomic map). ``selector_ignore_rules`` gives the matching
``diff.IgnoreRule``s for a comparison of Git against live that does not use the replacements.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitsync.diff import IgnoreRule
from gitsync.model import ResourceKey
from gitsync.rollout.math import HASH_LABEL, template_hash
from gitsync.rollout.routers import (
    GATEWAY_GROUP,
    SELECTOR_HASH_POINTER,
    keep_pinned_selector,
    keep_route_weight,
)
from gitsync.rollout.spec import GROUP, KIND, RolloutSpec, RolloutSpecError, parse_rollout_spec
from gitsync.rollout.status import STABLE_HASH_ANNOTATION
from gitsync.rollout.strategy import strategy_of

DEPLOYMENT_GROUP = "apps"


@dataclass(frozen=True)
class RolloutWork:
    """What a sync hands to the rollout of one Rollout (``gitsync.rollout.executor``)."""

    rollout: ResourceKey
    target: ResourceKey
    desired: Mapping[str, Any] = field(default_factory=dict)
    """The Deployment as rendered and prepared (the canary is built from it)."""
    desired_hash: str = ""
    replicas: int = 0
    """N: ``spec.replicas`` from Git, else the live Deployment's, else 1."""
    held: bool = False
    """The sync kept the live template: a rollout of ``desired_hash`` is to run."""
    error: str = ""
    running: bool = False
    """The Rollout already runs (or aborted) ``desired_hash``: nothing new for a sync to start."""


@dataclass(frozen=True)
class TakeoverPlan:
    replacements: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)
    """Deployment key -> the object to apply instead of the rendered one."""
    work: tuple[RolloutWork, ...] = ()

    def held(self) -> list[RolloutWork]:
        return [w for w in self.work if w.held]


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def recorded_hash(live: Mapping[str, Any] | None) -> str:
    """The stable template hash a live Deployment records ("" when none)."""
    return str(_annotations(live).get(STABLE_HASH_ANNOTATION) or "")


def _raw_target_name(rollout: Mapping[str, Any]) -> str:
    ref = _spec(rollout).get("targetRef")
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) else ""


def _replicas(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _annotated(obj: Mapping[str, Any], stable_hash: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[STABLE_HASH_ANNOTATION] = stable_hash
    return out


def live_template(live: Mapping[str, Any]) -> dict[str, Any]:
    """The live pod template, ready to be applied again (no server-set ``creationTimestamp``)."""
    template = copy.deepcopy(dict(_spec(live).get("template") or {}))
    meta = template.get("metadata")
    if isinstance(meta, dict):
        meta.pop("creationTimestamp", None)
    return template


def holding(
    desired: Mapping[str, Any], live: Mapping[str, Any], stable_hash: str
) -> dict[str, Any]:
    """``desired`` with the live pod template and replicas: what to apply while a rollout runs."""
    out = _annotated(desired, stable_hash)
    spec = out.setdefault("spec", {})
    spec["template"] = live_template(live)
    live_replicas = _replicas(_spec(live).get("replicas"))
    if "replicas" in spec and live_replicas is not None:
        spec["replicas"] = live_replicas
    return out


def _text(value: object, *path: str) -> str:
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else ""


def named_services(rollout: Mapping[str, Any]) -> list[str]:
    """The Services a Rollout document names for pinning, read leniently (a broken spec must not
    let a sync unpin a Service mid-rollout): blue-green's active and preview Services; a
    canary's stable and canary Services when it has ``trafficRouting``."""
    strategy = _spec(rollout).get("strategy")
    names = [
        _text(strategy, "blueGreen", "activeService"),
        _text(strategy, "blueGreen", "previewService"),
    ]
    routing = strategy.get("canary") if isinstance(strategy, Mapping) else None
    if isinstance(routing, Mapping) and routing.get("trafficRouting") is not None:
        names += [_text(routing, "stableService"), _text(routing, "canaryService")]
    return [n for n in dict.fromkeys(names) if n]


def _pins_services(spec: RolloutSpec | None) -> bool:
    if spec is None:
        return False
    return bool(strategy_of(spec).pinned_services(spec))


def _route_key(
    desired: Mapping[ResourceKey, Mapping[str, Any]], namespace: str, name: str
) -> ResourceKey | None:
    for key in desired:
        if (key.group, key.kind, key.namespace, key.name) == (
            GATEWAY_GROUP,
            "HTTPRoute",
            namespace,
            name,
        ):
            return key
    return None


def pinned_objects(desired: Mapping[ResourceKey, Mapping[str, Any]]) -> list[ResourceKey]:
    """The keys of the rendered Services and HTTPRoutes that rendered Rollouts pin or route
    through (what the sync applies with the rollout's live values, ``plan_takeover``)."""
    out: list[ResourceKey] = []
    for key, obj in desired.items():
        if key.group != GROUP or key.kind != KIND:
            continue
        for name in named_services(obj):
            service = ResourceKey("", "Service", key.namespace, name)
            if service in desired:
                out.append(service)
        route_name = _text(
            _spec(obj).get("strategy"), "canary", "trafficRouting", "gatewayAPI", "httpRoute"
        )
        route = _route_key(desired, key.namespace, route_name) if route_name else None
        if route is not None:
            out.append(route)
    return sorted(set(out))


def selector_ignore_rules(desired: Mapping[ResourceKey, Mapping[str, Any]]) -> list[IgnoreRule]:
    """For each rendered Service a rendered Rollout pins: ignore the one selector key the
    rollout owns, ``/spec/selector/rollouts.gitsync.dev~1template-hash``."""
    rules = []
    for key in pinned_objects(desired):
        if key.kind == "Service":
            rules.append(
                IgnoreRule(
                    group="",
                    kind="Service",
                    name=key.name,
                    namespace=key.namespace,
                    json_pointers=(SELECTOR_HASH_POINTER,),
                )
            )
    return rules


def _labeled(obj: dict[str, Any], value: str) -> dict[str, Any]:
    """``obj`` (a Deployment, modified) with ``template-hash: value`` on its pod template."""
    template = obj.setdefault("spec", {}).setdefault("template", {})
    meta = template.get("metadata")
    if not isinstance(meta, dict):
        meta = template["metadata"] = {}
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = meta["labels"] = {}
    labels[HASH_LABEL] = value
    return obj


def _live_label(live: Mapping[str, Any] | None) -> str:
    template = _spec(live).get("template")
    meta = template.get("metadata") if isinstance(template, Mapping) else None
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    value = labels.get(HASH_LABEL) if isinstance(labels, Mapping) else None
    return value if isinstance(value, str) else ""


def _keep_rollout_fields(
    rollout_key: ResourceKey,
    rollout: Mapping[str, Any],
    *,
    spec: RolloutSpec | None,
    desired: Mapping[ResourceKey, Mapping[str, Any]],
    live: Mapping[ResourceKey, Mapping[str, Any] | None],
    replacements: dict[ResourceKey, dict[str, Any]],
) -> None:
    """The pinned Services' selector keys and the HTTPRoute's canary weight, as live."""
    namespace = rollout_key.namespace
    for name in named_services(rollout):
        key = ResourceKey("", "Service", namespace, name)
        if key in desired:
            kept = keep_pinned_selector(desired[key], live.get(key))
            if kept is not None:
                replacements[key] = kept
    routing = spec.canary.traffic_routing if spec and spec.canary else None
    if spec is None or spec.canary is None or routing is None or routing.gateway_api is None:
        return
    route = _route_key(desired, namespace, routing.gateway_api.http_route)
    if route is not None:
        kept = keep_route_weight(
            desired[route], live.get(route), spec.canary.stable_service, spec.canary.canary_service
        )
        if kept is not None:
            replacements[route] = kept


def targeted_deployments(desired: Mapping[ResourceKey, Mapping[str, Any]]) -> list[ResourceKey]:
    """The keys of the rendered Deployments that rendered Rollouts target."""
    out = []
    for key, obj in desired.items():
        if key.group == GROUP and key.kind == KIND:
            name = _raw_target_name(obj)
            target = ResourceKey(DEPLOYMENT_GROUP, "Deployment", key.namespace, name)
            if name and target in desired:
                out.append(target)
    return sorted(set(out))


def plan_takeover(
    desired: Mapping[ResourceKey, Mapping[str, Any]],
    live: Mapping[ResourceKey, Mapping[str, Any] | None],
) -> TakeoverPlan:
    """Which Deployments a rollout takes over, and what to apply for them (module docstring).

    ``desired``: the prepared objects of one sync by key; ``live``: the live object for each key
    (None or absent: does not exist). Deployments no Rollout targets are not in the plan.
    """
    replacements: dict[ResourceKey, dict[str, Any]] = {}
    work: list[RolloutWork] = []
    claimed: dict[ResourceKey, ResourceKey] = {}
    for key in sorted(desired):
        if key.group != GROUP or key.kind != KIND:
            continue
        rollout = desired[key]
        error = ""
        parsed: RolloutSpec | None = None
        try:
            parsed = parse_rollout_spec(rollout.get("spec"))
            target_name = parsed.target_ref.name
        except RolloutSpecError as exc:
            error = f"invalid Rollout spec: {exc}"
            target_name = _raw_target_name(rollout)
        target = ResourceKey(DEPLOYMENT_GROUP, "Deployment", key.namespace, target_name)
        if not target_name:
            work.append(RolloutWork(key, target, error=error))
            continue
        if target in claimed:
            error = f"{target} is already rolled out by Rollout {claimed[target].name}"
            work.append(RolloutWork(key, target, error=error))
            continue
        deployment = desired.get(target)
        if deployment is None:
            error = error or (
                f"spec.targetRef: Deployment {target_name} is not rendered next to the Rollout "
                "(a Rollout governs a Deployment of its own app)"
            )
            work.append(RolloutWork(key, target, error=error))
            continue
        claimed[target] = key
        template = _spec(deployment).get("template")
        if not isinstance(template, Mapping):
            continue  # not a valid Deployment: its own apply reports why
        digest = template_hash(dict(template))
        live_deployment = live.get(target)
        recorded = recorded_hash(live_deployment)
        replicas = _replicas(_spec(deployment).get("replicas"))
        if replicas is None:
            replicas = _replicas(_spec(live_deployment).get("replicas"))
        held = live_deployment is not None and bool(recorded) and recorded != digest
        if held and live_deployment is not None:
            replacements[target] = holding(deployment, live_deployment, recorded)
        else:
            replacements[target] = _annotated(deployment, digest)
        if _pins_services(parsed) or _live_label(live_deployment):
            _labeled(replacements[target], recorded if held else digest)
        _keep_rollout_fields(
            key, rollout, spec=parsed, desired=desired, live=live, replacements=replacements
        )
        work.append(
            RolloutWork(
                rollout=key,
                target=target,
                desired=copy.deepcopy(dict(deployment)),
                desired_hash=digest,
                replicas=1 if replicas is None else replicas,
                held=held,
                error=error,
            )
        )
    return TakeoverPlan(replacements, tuple(work))
