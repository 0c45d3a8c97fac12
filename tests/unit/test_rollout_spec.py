"""Rollout spec validation: good specs parse into the dataclasses; bad ones name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitsync.application import SpecError
from gitsync.rollout.spec import (
    Analysis,
    NoDataPolicy,
    Pause,
    PrometheusProvider,
    RolloutSpecError,
    SetWeight,
    WebProvider,
    canary_name,
    parse_rollout,
    parse_rollout_spec,
)

CANARY: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "generation": 3,
        "annotations": {"rollouts.gitsync.dev/promote": "n1"},
    },
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "progressDeadlineSeconds": 120,
        "strategy": {
            "canary": {
                "stableService": "web",
                "canaryService": "web-canary",
                "trafficRouting": {"nginx": {"stableIngress": "web"}},
                "steps": [
                    {"setWeight": 20},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"metrics": ["success-rate"]}},
                    {"setWeight": 50},
                    {"pause": {}},
                ],
            }
        },
        "metrics": [
            {
                "name": "success-rate",
                "interval": "10s",
                "count": 3,
                "failureLimit": 1,
                "noDataPolicy": "inconclusive",
                "successCondition": "result >= 0.95",
                "provider": {
                    "prometheus": {
                        "address": "http://prometheus:9090",
                        "query": "sum(rate(ok[1m])) / sum(rate(all[1m]))",
                    }
                },
            },
            {
                "name": "smoke",
                "successCondition": "result == true",
                "provider": {"web": {"url": "http://svc/health", "jsonPath": "$.ok"}},
            },
        ],
    },
}

BLUE_GREEN: dict[str, Any] = {
    **CANARY,
    "spec": {
        "targetRef": {"name": "web"},
        "strategy": {
            "blueGreen": {
                "activeService": "web",
                "previewService": "web-preview",
                "autoPromotionSeconds": 60,
                "scaleDownDelaySeconds": 10,
                "previewReplicaCount": 2,
                "prePromotionAnalysis": {"metrics": ["smoke"]},
                "postPromotionAnalysis": {"metrics": ["smoke"]},
            }
        },
        "metrics": [CANARY["spec"]["metrics"][1]],
    },
}


def changed(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the dotted ``path`` set to ``value`` (``[i]`` indexes a list)."""
    out = copy.deepcopy(doc)
    node: Any = out
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return out


def test_full_canary_parses() -> None:
    rollout = parse_rollout(CANARY)
    assert (rollout.name, rollout.namespace, rollout.uid, rollout.generation) == (
        "web",
        "shop",
        "u-1",
        3,
    )
    assert rollout.annotations == {"rollouts.gitsync.dev/promote": "n1"}
    spec = rollout.spec
    assert spec.target_ref.name == "web" and spec.progress_deadline_seconds == 120
    assert spec.canary is not None and spec.blue_green is None
    assert spec.canary.steps == (
        SetWeight(20),
        Pause(30.0),
        Analysis(("success-rate",)),
        SetWeight(50),
        Pause(None),
    )
    assert spec.canary.traffic_routing is not None
    assert spec.canary.traffic_routing.nginx is not None
    assert spec.canary.traffic_routing.nginx.stable_ingress == "web"
    rate, smoke = spec.metrics
    assert (rate.interval, rate.count, rate.failure_limit) == (10.0, 3, 1)
    assert rate.no_data_policy == NoDataPolicy.INCONCLUSIVE
    assert isinstance(rate.provider, PrometheusProvider)
    assert rate.provider.address == "http://prometheus:9090"
    assert isinstance(smoke.provider, WebProvider)
    assert (smoke.provider.json_path, smoke.provider.timeout) == ("$.ok", 10.0)
    assert (smoke.interval, smoke.count, smoke.failure_limit) == (60.0, 1, 0)


def test_full_blue_green_parses() -> None:
    spec = parse_rollout(BLUE_GREEN).spec
    bg = spec.blue_green
    assert bg is not None and spec.canary is None
    assert (bg.active_service, bg.preview_service) == ("web", "web-preview")
    assert (bg.auto_promotion_enabled, bg.auto_promotion_seconds) == (True, 60)
    assert (bg.scale_down_delay_seconds, bg.preview_replica_count) == (10, 2)
    assert bg.pre_promotion_analysis == Analysis(("smoke",))


def test_defaults() -> None:
    spec = parse_rollout_spec({"targetRef": {"name": "web"}, "strategy": {"canary": {}}})
    assert spec.progress_deadline_seconds == 600
    assert spec.target_ref.kind == "Deployment" and spec.target_ref.api_version == "apps/v1"
    assert spec.canary is not None and spec.canary.steps == ()
    bg = parse_rollout_spec(
        {"targetRef": {"name": "web"}, "strategy": {"blueGreen": {"activeService": "web"}}}
    ).blue_green
    assert bg is not None and bg.scale_down_delay_seconds == 30 and bg.auto_promotion_enabled


def test_pause_durations_accept_seconds_and_go_durations() -> None:
    for value, seconds in [("1h30m", 5400.0), (45, 45.0), ("250ms", 0.25), (0, 0.0)]:
        doc = changed(CANARY, "spec.strategy.canary.steps[1]", {"pause": {"duration": value}})
        assert parse_rollout(doc).spec.canary.steps[1] == Pause(seconds)  # type: ignore[union-attr]


def test_the_error_is_a_spec_error_naming_the_field() -> None:
    doc = changed(CANARY, "spec.strategy.canary.steps[3].setWeight", 150)
    with pytest.raises(SpecError) as caught:
        parse_rollout(doc)
    assert isinstance(caught.value, RolloutSpecError)
    assert caught.value.field == "spec.strategy.canary.steps[3].setWeight"
    assert "0 to 100" in str(caught.value)


BAD: list[tuple[dict[str, Any], str, str]] = [
    (changed(CANARY, "kind", "Deployment"), "apiVersion/kind", "Rollout"),
    (changed(CANARY, "metadata.name", "Web"), "metadata.name", "lowercase"),
    (changed(CANARY, "spec.bogus", 1), "spec.bogus", "unknown field"),
    (changed(CANARY, "spec.targetRef", None), "spec.targetRef", "required"),
    (changed(CANARY, "spec.targetRef.kind", "StatefulSet"), "spec.targetRef.kind", "Deployment"),
    (changed(CANARY, "spec.targetRef.apiVersion", "apps/v1beta1"), "spec.targetRef.apiVersion", ""),
    (changed(CANARY, "spec.targetRef.name", ""), "spec.targetRef.name", "required"),
    (changed(CANARY, "spec.targetRef.name", "w" * 250), "spec.targetRef.name", "too long"),
    (changed(CANARY, "spec.progressDeadlineSeconds", 0), "spec.progressDeadlineSeconds", "1 to"),
    (changed(CANARY, "spec.progressDeadlineSeconds", "10m"), "spec.progressDeadlineSeconds", ""),
    (changed(CANARY, "spec.strategy", None), "spec.strategy", "required"),
    (changed(CANARY, "spec.strategy", {}), "spec.strategy", "set one of canary, blueGreen"),
    (
        changed(CANARY, "spec.strategy.blueGreen", {"activeService": "web"}),
        "spec.strategy.blueGreen",
        "only one",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[0]", {"setWeight": 20, "pause": {}}),
        "spec.strategy.canary.steps[0].pause",
        "only one",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[0]", {}),
        "spec.strategy.canary.steps[0]",
        "set one of",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[0].setWeight", -1),
        "spec.strategy.canary.steps[0].setWeight",
        "0 to 100",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[0].setWeight", 20.5),
        "spec.strategy.canary.steps[0].setWeight",
        "integer",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[0].setWeight", True),
        "spec.strategy.canary.steps[0].setWeight",
        "integer",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[1].pause.duration", "soon"),
        "spec.strategy.canary.steps[1].pause.duration",
        "not a duration",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[1].pause.duration", "-5s"),
        "spec.strategy.canary.steps[1].pause.duration",
        "negative",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[1].pause.duration", "30d"),
        "spec.strategy.canary.steps[1].pause.duration",
        "",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[1].pause.until", "later"),
        "spec.strategy.canary.steps[1].pause.until",
        "unknown field",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[2].analysis.metrics", ["latency"]),
        "spec.strategy.canary.steps[2].analysis.metrics[0]",
        "no metric named 'latency'",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps[2].analysis.metrics", []),
        "spec.strategy.canary.steps[2].analysis.metrics",
        "at least one",
    ),
    (
        changed(CANARY, "spec.strategy.canary.steps", {"setWeight": 1}),
        "spec.strategy.canary.steps",
        "list",
    ),
    (
        changed(CANARY, "spec.strategy.canary.stableService", "Web_Svc"),
        "spec.strategy.canary.stableService",
        "DNS label",
    ),
    (
        changed(CANARY, "spec.strategy.canary.canaryService", "web"),
        "spec.strategy.canary.canaryService",
        "differ",
    ),
    (
        changed(CANARY, "spec.strategy.canary.stableService", None),
        "spec.strategy.canary.stableService",
        "required with trafficRouting",
    ),
    (
        changed(CANARY, "spec.strategy.canary.trafficRouting", {}),
        "spec.strategy.canary.trafficRouting",
        "set one of nginx, gatewayAPI",
    ),
    (
        changed(CANARY, "spec.strategy.canary.trafficRouting", {"istio": {}}),
        "spec.strategy.canary.trafficRouting",
        "set one of",
    ),
    (
        changed(CANARY, "spec.strategy.canary.trafficRouting.nginx", {}),
        "spec.strategy.canary.trafficRouting.nginx.stableIngress",
        "required",
    ),
    (
        changed(CANARY, "spec.metrics[0].name", "success-rate-2"),
        "spec.strategy.canary.steps[2].analysis.metrics[0]",
        "no metric",
    ),
    (changed(CANARY, "spec.metrics[1].name", "success-rate"), "spec.metrics[1].name", "duplicate"),
    (changed(CANARY, "spec.metrics[0].count", 0), "spec.metrics[0].count", "1 to"),
    (
        changed(CANARY, "spec.metrics[0].failureLimit", 3),
        "spec.metrics[0].failureLimit",
        "never fail",
    ),
    (changed(CANARY, "spec.metrics[0].interval", "0s"), "spec.metrics[0].interval", "minimum"),
    (
        changed(CANARY, "spec.metrics[0].noDataPolicy", "ignore"),
        "spec.metrics[0].noDataPolicy",
        "fail, inconclusive, pass",
    ),
    (
        changed(CANARY, "spec.metrics[0].successCondition", " "),
        "spec.metrics[0].successCondition",
        "required",
    ),
    (
        changed(CANARY, "spec.metrics[0].successCondition", "x" * 2000),
        "spec.metrics[0].successCondition",
        "longer",
    ),
    (changed(CANARY, "spec.metrics[0].provider", None), "spec.metrics[0].provider", "required"),
    (
        changed(CANARY, "spec.metrics[0].provider.web", {"url": "http://x"}),
        "spec.metrics[0].provider.web",
        "only one",
    ),
    (
        changed(CANARY, "spec.metrics[0].provider.prometheus.address", "prometheus:9090"),
        "spec.metrics[0].provider.prometheus.address",
        "http",
    ),
    (
        changed(CANARY, "spec.metrics[0].provider.prometheus.query", ""),
        "spec.metrics[0].provider.prometheus.query",
        "required",
    ),
    (
        changed(CANARY, "spec.metrics[1].provider.web.jsonPath", "ok"),
        "spec.metrics[1].provider.web.jsonPath",
        "'$'",
    ),
    (
        changed(CANARY, "spec.metrics[1].provider.web.timeout", "10m"),
        "spec.metrics[1].provider.web.timeout",
        "5m",
    ),
    (
        changed(BLUE_GREEN, "spec.strategy.blueGreen.activeService", None),
        "spec.strategy.blueGreen.activeService",
        "required",
    ),
    (
        changed(BLUE_GREEN, "spec.strategy.blueGreen.autoPromotionEnabled", False),
        "spec.strategy.blueGreen.autoPromotionSeconds",
        "autoPromotionEnabled: false",
    ),
    (
        changed(BLUE_GREEN, "spec.strategy.blueGreen.previewService", "web"),
        "spec.strategy.blueGreen.previewService",
        "differ",
    ),
    (
        changed(BLUE_GREEN, "spec.strategy.blueGreen.previewReplicaCount", 0),
        "spec.strategy.blueGreen.previewReplicaCount",
        "1 to",
    ),
    (
        changed(BLUE_GREEN, "spec.strategy.blueGreen.postPromotionAnalysis", {"metrics": ["x"]}),
        "spec.strategy.blueGreen.postPromotionAnalysis.metrics[0]",
        "no metric",
    ),
    (
        changed(CANARY, "metadata.annotations", {"rollouts.gitsync.dev/promote": 1}),
        "metadata.annotations",
        "strings",
    ),
]


@pytest.mark.parametrize(("doc", "field", "fragment"), BAD, ids=[b[1] for b in BAD])
def test_bad_specs_name_the_field(doc: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(RolloutSpecError) as caught:
        parse_rollout(doc)
    assert caught.value.field == field, str(caught.value)
    assert fragment in caught.value.problem, str(caught.value)


def test_status_is_ignored_and_a_null_pause_is_an_indefinite_pause() -> None:
    doc = changed(CANARY, "status", {"phase": "Paused", "anything": [1, 2]})
    doc = changed(doc, "spec.strategy.canary.steps[4]", {"pause": None})
    assert parse_rollout(doc).spec.canary.steps[4] == Pause(None)  # type: ignore[union-attr]


def test_canary_name() -> None:
    assert canary_name("web") == "web-canary"
