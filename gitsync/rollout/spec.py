"""The Rollout spec: which Deployment to roll out progressively, how (canary or blue-green steps),
and the metrics that judge it.

Parsed from a plain dict (the custom resource, or a manifest rendered from Git) into frozen
dataclasses and validated strictly, the way ``gitsync.application`` validates an Application:
unknown fields, out-of-range weights, bad durations, analysis steps naming metrics that do not
exist, and combinations that cannot work (both strategies, ``autoPromotionSeconds`` with
``autoPromotionEnabled: false``, a ``failureLimit`` that can never be reached) are rejected with a
``RolloutSpecError`` naming the field (``spec.strategy.canary.steps[2].setWeight: ...``). Field
names follow Argo Rollouts where the meaning is the same. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gitsync.application import DNS_SUBDOMAIN, SERVER_SET_METADATA, SpecError, SpecFields
from gitsync.kinds import API_VERSION, GROUP
from gitsync.kinds import ROLLOUT as KIND
from gitsync.rollout.expressions import ConditionError, compile_condition, compile_json_path

__all__ = ["API_VERSION", "GROUP", "KIND"]  # re-exported: the rollout package's own spelling

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
MAX_SECONDS = 7 * 24 * 3600
MAX_METRIC_COUNT = 1000
MAX_CONDITION_LENGTH = 1024
MAX_QUERY_LENGTH = 8192
CANARY_SUFFIX = "-canary"
PREVIEW_SUFFIX = "-preview"
CANARY_INGRESS_SUFFIX = "-canary"
MAX_NAME_LENGTH = 253

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
# a Rollout's annotations carry requests (promote, abort, retry): read, not just passed over
_IGNORED_METADATA = ("labels", *SERVER_SET_METADATA)


class RolloutSpecError(SpecError):
    """The Rollout spec is invalid; ``field`` is the dotted path of the offending field.

    A ``SpecError`` (so code that stalls on a bad Application spec handles it the same way): a
    terminal error for this one Rollout - retrying will not help until the spec changes.
    """


class NoDataPolicy(enum.StrEnum):
    """What a measurement that returns no data counts as."""

    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # pause the rollout with a message (the default)
    PASS = "pass"  # noqa: S105 - a policy name, not a password


@dataclass(frozen=True)
class TargetRef:
    name: str
    kind: str = "Deployment"
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class SetWeight:
    """Send ``weight`` percent of traffic (of ready pods, without a router) to the canary."""

    weight: int


@dataclass(frozen=True)
class Pause:
    """Wait ``duration`` seconds, or for a promote request when ``duration`` is None."""

    duration: float | None = None


@dataclass(frozen=True)
class Analysis:
    """Run the named metrics; their results decide whether the rollout goes on."""

    metrics: tuple[str, ...]


CanaryStep = SetWeight | Pause | Analysis


@dataclass(frozen=True)
class NginxRouting:
    stable_ingress: str


@dataclass(frozen=True)
class GatewayAPIRouting:
    http_route: str


@dataclass(frozen=True)
class TrafficRouting:
    nginx: NginxRouting | None = None
    gateway_api: GatewayAPIRouting | None = None


@dataclass(frozen=True)
class CanaryStrategy:
    stable_service: str = ""
    canary_service: str = ""
    traffic_routing: TrafficRouting | None = None
    steps: tuple[CanaryStep, ...] = ()


@dataclass(frozen=True)
class BlueGreenStrategy:
    active_service: str
    preview_service: str = ""
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: int | None = None
    scale_down_delay_seconds: int = 30
    preview_replica_count: int | None = None
    pre_promotion_analysis: Analysis | None = None
    post_promotion_analysis: Analysis | None = None


@dataclass(frozen=True)
class PrometheusProvider:
    address: str
    query: str


@dataclass(frozen=True)
class WebProvider:
    url: str
    json_path: str
    timeout: float = 10.0


@dataclass(frozen=True)
class Metric:
    name: str
    success_condition: str
    provider: PrometheusProvider | WebProvider
    interval: float = 60.0
    count: int = 1
    failure_limit: int = 0
    no_data_policy: NoDataPolicy = NoDataPolicy.INCONCLUSIVE


@dataclass(frozen=True)
class RolloutSpec:
    target_ref: TargetRef
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    metrics: tuple[Metric, ...] = ()
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS


@dataclass(frozen=True)
class Rollout:
    """A parsed Rollout object: identity, request annotations and the validated spec."""

    name: str
    namespace: str
    spec: RolloutSpec
    uid: str = ""
    generation: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)


def canary_name(target: str) -> str:
    """The name of the canary Deployment beside ``target``."""
    return f"{target}{CANARY_SUFFIX}"


def preview_name(target: str) -> str:
    """The name of the blue-green preview Deployment beside ``target``."""
    return f"{target}{PREVIEW_SUFFIX}"


def second_name(spec: RolloutSpec) -> str:
    """The Deployment a rollout of ``spec`` runs the new template in, beside the stable one:
    ``<target>-preview`` for blue-green, ``<target>-canary`` for a canary."""
    target = spec.target_ref.name
    return preview_name(target) if spec.blue_green is not None else canary_name(target)


# -- reading fields ----------------------------------------------------------------------------


class _Fields(SpecFields):
    """The Application's field reader, raising ``RolloutSpecError``."""

    error = RolloutSpecError
    max_duration = MAX_SECONDS


def _name(value: str, path: str, *, label: bool = False, required: bool = True) -> str:
    if not value:
        if required:
            raise RolloutSpecError(path, "is required")
        return value
    pattern = _DNS_LABEL if label else DNS_SUBDOMAIN
    if not pattern.match(value):
        what = "DNS label" if label else "DNS subdomain"
        raise RolloutSpecError(path, f"must be a lowercase {what} (a-z, 0-9, '-'): {value!r}")
    return value


def _http_url(value: str, path: str) -> str:
    if not value:
        raise RolloutSpecError(path, "is required")
    if not _HTTP_URL.match(value):
        raise RolloutSpecError(path, f"expected an http:// or https:// URL, got {value!r}")
    return value


# -- the parts ---------------------------------------------------------------------------------


def _parse_target(value: object) -> TargetRef:
    if value is None:
        raise RolloutSpecError("spec.targetRef", "is required")
    f = _Fields(value, "spec.targetRef")
    kind = f.text("kind", "Deployment")
    if kind != "Deployment":
        raise RolloutSpecError(f.path("kind"), f"only Deployment can be rolled out, got {kind!r}")
    api_version = f.text("apiVersion", "apps/v1")
    if api_version != "apps/v1":
        raise RolloutSpecError(f.path("apiVersion"), f"expected apps/v1, got {api_version!r}")
    name = _name(f.text("name"), f.path("name"))
    if len(canary_name(name)) > 253:
        raise RolloutSpecError(
            f.path("name"), f"too long to add {CANARY_SUFFIX!r} for the canary Deployment"
        )
    f.done()
    return TargetRef(name=name, kind=kind, api_version=api_version)


def _parse_analysis(value: object, path: str, metric_names: set[str]) -> Analysis:
    f = _Fields(value, path)
    names = []
    entries = f.items("metrics")
    if not entries:
        raise RolloutSpecError(f.path("metrics"), "name at least one metric")
    for i, name in enumerate(entries):
        p = f"{f.path('metrics')}[{i}]"
        if not isinstance(name, str) or not name:
            raise RolloutSpecError(p, f"expected a metric name, got {name!r}")
        if name not in metric_names:
            known = ", ".join(sorted(metric_names)) or "none"
            raise RolloutSpecError(p, f"no metric named {name!r} in spec.metrics (known: {known})")
        names.append(name)
    f.done()
    return Analysis(tuple(names))


def _parse_step(value: object, path: str, metric_names: set[str]) -> CanaryStep:
    f = _Fields(value, path)
    which = f.one_of(("setWeight", "pause", "analysis"), required=True)
    step: CanaryStep
    if which == "setWeight":
        weight = f.integer("setWeight", minimum=0, maximum=100)
        if weight is None:
            raise RolloutSpecError(f.path("setWeight"), "expected an integer from 0 to 100")
        step = SetWeight(weight)
    elif which == "pause":
        p = _Fields(f.raw("pause"), f.path("pause"))
        step = Pause(p.optional_duration("duration"))
        p.done()
    else:
        step = _parse_analysis(f.raw("analysis"), f.path("analysis"), metric_names)
    f.done()
    return step


def _parse_canary(value: object, metric_names: set[str]) -> CanaryStrategy:
    f = _Fields(value, "spec.strategy.canary")
    stable = _name(f.text("stableService"), f.path("stableService"), label=True, required=False)
    canary = _name(f.text("canaryService"), f.path("canaryService"), label=True, required=False)
    if stable and stable == canary:
        raise RolloutSpecError(f.path("canaryService"), "must differ from stableService")
    routing = None
    if f.raw("trafficRouting") is not None:
        r = _Fields(f.raw("trafficRouting"), f.path("trafficRouting"))
        which = r.one_of(("nginx", "gatewayAPI"), required=True)
        if which == "nginx":
            n = _Fields(r.raw("nginx"), r.path("nginx"))
            ingress = _name(n.text("stableIngress"), n.path("stableIngress"))
            if len(ingress) + len(CANARY_INGRESS_SUFFIX) > MAX_NAME_LENGTH:
                raise RolloutSpecError(
                    n.path("stableIngress"),
                    f"too long to add {CANARY_INGRESS_SUFFIX!r} for the canary Ingress",
                )
            routing = TrafficRouting(nginx=NginxRouting(ingress))
            n.done()
        else:
            g = _Fields(r.raw("gatewayAPI"), r.path("gatewayAPI"))
            routing = TrafficRouting(
                gateway_api=GatewayAPIRouting(_name(g.text("httpRoute"), g.path("httpRoute")))
            )
            g.done()
        r.done()
        if not stable:
            raise RolloutSpecError(f.path("stableService"), "is required with trafficRouting")
        if not canary:
            # The router splits traffic between two Services; the canary's is the second.
            raise RolloutSpecError(f.path("canaryService"), "is required with trafficRouting")
    steps = tuple(
        _parse_step(s, f"{f.path('steps')}[{i}]", metric_names)
        for i, s in enumerate(f.items("steps"))
    )
    f.done()
    return CanaryStrategy(stable, canary, routing, steps)


def _parse_blue_green(value: object, metric_names: set[str]) -> BlueGreenStrategy:
    f = _Fields(value, "spec.strategy.blueGreen")
    active = _name(f.text("activeService"), f.path("activeService"), label=True)
    preview = _name(f.text("previewService"), f.path("previewService"), label=True, required=False)
    if preview and preview == active:
        raise RolloutSpecError(f.path("previewService"), "must differ from activeService")
    enabled = f.flag("autoPromotionEnabled", True)
    seconds = f.integer("autoPromotionSeconds", minimum=0, maximum=MAX_SECONDS)
    if seconds is not None and not enabled:
        raise RolloutSpecError(
            f.path("autoPromotionSeconds"), "cannot be set with autoPromotionEnabled: false"
        )
    delay = f.integer("scaleDownDelaySeconds", minimum=0, maximum=MAX_SECONDS)
    preview_count = f.integer("previewReplicaCount", minimum=1, maximum=10_000)
    pre = post = None
    if f.raw("prePromotionAnalysis") is not None:
        pre = _parse_analysis(
            f.raw("prePromotionAnalysis"), f.path("prePromotionAnalysis"), metric_names
        )
    if f.raw("postPromotionAnalysis") is not None:
        post = _parse_analysis(
            f.raw("postPromotionAnalysis"), f.path("postPromotionAnalysis"), metric_names
        )
    f.done()
    return BlueGreenStrategy(
        active_service=active,
        preview_service=preview,
        auto_promotion_enabled=enabled,
        auto_promotion_seconds=seconds,
        scale_down_delay_seconds=30 if delay is None else delay,
        preview_replica_count=preview_count,
        pre_promotion_analysis=pre,
        post_promotion_analysis=post,
    )


def _parse_condition(f: _Fields) -> str:
    """``successCondition``: required, bounded, and compiled now so a typo fails the sync, not
    the analysis half-way through a rollout."""
    condition = f.text("successCondition").strip()
    if not condition:
        raise RolloutSpecError(f.path("successCondition"), "is required (e.g. 'result >= 0.95')")
    if len(condition) > MAX_CONDITION_LENGTH:
        raise RolloutSpecError(
            f.path("successCondition"), f"is longer than {MAX_CONDITION_LENGTH} characters"
        )
    try:
        compile_condition(condition)
    except ConditionError as exc:
        raise RolloutSpecError(f.path("successCondition"), str(exc)) from None
    return condition


def _parse_provider(f: _Fields) -> PrometheusProvider | WebProvider:
    """``provider``: exactly one of prometheus or web, each with its own bounded fields."""
    if f.raw("provider") is None:
        raise RolloutSpecError(f.path("provider"), "is required (prometheus or web)")
    pf = _Fields(f.raw("provider"), f.path("provider"))
    which = pf.one_of(("prometheus", "web"), required=True)
    provider: PrometheusProvider | WebProvider
    if which == "prometheus":
        p = _Fields(pf.raw("prometheus"), pf.path("prometheus"))
        address = _http_url(p.text("address"), p.path("address"))
        query = p.text("query").strip()
        if not query:
            raise RolloutSpecError(p.path("query"), "is required")
        if len(query) > MAX_QUERY_LENGTH:
            raise RolloutSpecError(p.path("query"), f"is longer than {MAX_QUERY_LENGTH} characters")
        provider = PrometheusProvider(address, query)
        p.done()
    else:
        w = _Fields(pf.raw("web"), pf.path("web"))
        url = _http_url(w.text("url"), w.path("url"))
        json_path = w.text("jsonPath", "$")
        try:
            compile_json_path(json_path)
        except ValueError as exc:
            raise RolloutSpecError(w.path("jsonPath"), str(exc)) from None
        timeout = w.duration("timeout", 10.0, minimum=0.001)
        if timeout > 300:
            raise RolloutSpecError(w.path("timeout"), "must be at most 5m")
        provider = WebProvider(url, json_path, timeout)
        w.done()
    pf.done()
    return provider


def _parse_metric(value: object, path: str) -> Metric:
    """One entry of ``spec.metrics``: what to measure, how often, and what counts as a pass."""
    f = _Fields(value, path)
    name = _name(f.text("name"), f.path("name"), label=True)
    interval = f.duration("interval", 60.0, minimum=1.0)
    count = f.integer("count", minimum=1, maximum=MAX_METRIC_COUNT)
    count = 1 if count is None else count
    failure_limit = f.integer("failureLimit", minimum=0, maximum=MAX_METRIC_COUNT)
    failure_limit = 0 if failure_limit is None else failure_limit
    if failure_limit >= count:
        raise RolloutSpecError(
            f.path("failureLimit"),
            f"must be below count ({count}): with {failure_limit} allowed failures the analysis "
            "could never fail",
        )
    policy_text = f.text("noDataPolicy", NoDataPolicy.INCONCLUSIVE.value)
    try:
        policy = NoDataPolicy(policy_text)
    except ValueError:
        raise RolloutSpecError(
            f.path("noDataPolicy"),
            f"expected one of {', '.join(p.value for p in NoDataPolicy)}, got {policy_text!r}",
        ) from None
    condition = _parse_condition(f)
    provider = _parse_provider(f)
    f.done()
    return Metric(
        name=name,
        success_condition=condition,
        provider=provider,
        interval=interval,
        count=count,
        failure_limit=failure_limit,
        no_data_policy=policy,
    )


def parse_rollout_spec(value: object) -> RolloutSpec:
    """Validate a Rollout's ``spec``; raises ``RolloutSpecError`` naming the first bad field."""
    if value is None:
        raise RolloutSpecError("spec", "is required")
    spec = _Fields(value, "spec")
    target = _parse_target(spec.raw("targetRef"))
    deadline = spec.integer("progressDeadlineSeconds", minimum=1, maximum=MAX_SECONDS)
    metrics = []
    seen: set[str] = set()
    for i, m in enumerate(spec.items("metrics")):
        metric = _parse_metric(m, f"spec.metrics[{i}]")
        if metric.name in seen:
            raise RolloutSpecError(f"spec.metrics[{i}].name", f"duplicate metric {metric.name!r}")
        seen.add(metric.name)
        metrics.append(metric)
    if spec.raw("strategy") is None:
        raise RolloutSpecError("spec.strategy", "is required (canary or blueGreen)")
    strategy = _Fields(spec.raw("strategy"), "spec.strategy")
    which = strategy.one_of(("canary", "blueGreen"), required=True)
    canary = blue_green = None
    if which == "canary":
        canary = _parse_canary(strategy.raw("canary"), seen)
    else:
        blue_green = _parse_blue_green(strategy.raw("blueGreen"), seen)
    strategy.done()
    spec.done()
    if blue_green is not None and len(preview_name(target.name)) > MAX_NAME_LENGTH:
        raise RolloutSpecError(
            "spec.targetRef.name", f"too long to add {PREVIEW_SUFFIX!r} for the preview Deployment"
        )
    return RolloutSpec(
        target_ref=target,
        canary=canary,
        blue_green=blue_green,
        metrics=tuple(metrics),
        progress_deadline_seconds=(
            DEFAULT_PROGRESS_DEADLINE_SECONDS if deadline is None else deadline
        ),
    )


def parse_rollout(doc: object) -> Rollout:
    """Validate a whole Rollout document (metadata and spec; status is ignored)."""
    top = _Fields(doc, "")
    api_version, kind = top.text("apiVersion"), top.text("kind")
    if api_version != API_VERSION or kind != KIND:
        raise RolloutSpecError(
            "apiVersion/kind", f"expected {API_VERSION} {KIND}, got {api_version} {kind}"
        )
    meta = _Fields(top.raw("metadata"), "metadata")
    name = _name(meta.text("name"), "metadata.name")
    namespace = _name(meta.text("namespace"), "metadata.namespace", label=True, required=False)
    uid = meta.text("uid")
    generation = meta.raw("generation")
    annotations = meta.raw("annotations") or {}
    if not isinstance(annotations, Mapping) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise RolloutSpecError("metadata.annotations", "expected a map of strings")
    for ignored in _IGNORED_METADATA:
        meta.raw(ignored)
    meta.done()
    top.raw("status")
    spec = parse_rollout_spec(top.raw("spec"))
    top.done()
    return Rollout(
        name=name,
        namespace=namespace,
        spec=spec,
        uid=uid,
        generation=generation if isinstance(generation, int) else 0,
        annotations=dict(annotations),
    )
