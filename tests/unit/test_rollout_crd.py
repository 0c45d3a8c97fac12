"""The Rollout CRD: structural, with the status subresource and printer columns, and in step with
``gitsync.rollout.spec`` (every field the parser reads is declared, so the API server does not
prune it) and ``RolloutStatus`` (every status key is declared, so a status write is not pruned).

The schema's value checks are exercised with a small validator for the keywords the CRD uses; it
refuses any other keyword, so a new constraint cannot slip past it unchecked. The integration
test installs the same file on the real API server, which checks that it is structural.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.rollout.spec import RolloutSpecError, parse_rollout
from gitsync.rollout.status import STATUS_FIELDS

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "charts/gitsync/crds/rollouts.gitsync.dev.yaml"

SPEC_FIELDS = {
    "targetRef",
    "targetRef.apiVersion",
    "targetRef.kind",
    "targetRef.name",
    "progressDeadlineSeconds",
    "strategy",
    "strategy.canary",
    "strategy.canary.stableService",
    "strategy.canary.canaryService",
    "strategy.canary.trafficRouting",
    "strategy.canary.trafficRouting.nginx",
    "strategy.canary.trafficRouting.nginx.stableIngress",
    "strategy.canary.trafficRouting.gatewayAPI",
    "strategy.canary.trafficRouting.gatewayAPI.httpRoute",
    "strategy.canary.steps",
    "strategy.canary.steps[].setWeight",
    "strategy.canary.steps[].pause",
    "strategy.canary.steps[].pause.duration",
    "strategy.canary.steps[].analysis",
    "strategy.canary.steps[].analysis.metrics",
    "strategy.blueGreen",
    "strategy.blueGreen.activeService",
    "strategy.blueGreen.previewService",
    "strategy.blueGreen.autoPromotionEnabled",
    "strategy.blueGreen.autoPromotionSeconds",
    "strategy.blueGreen.scaleDownDelaySeconds",
    "strategy.blueGreen.previewReplicaCount",
    "strategy.blueGreen.prePromotionAnalysis",
    "strategy.blueGreen.prePromotionAnalysis.metrics",
    "strategy.blueGreen.postPromotionAnalysis",
    "strategy.blueGreen.postPromotionAnalysis.metrics",
    "metrics",
    "metrics[].name",
    "metrics[].interval",
    "metrics[].count",
    "metrics[].failureLimit",
    "metrics[].noDataPolicy",
    "metrics[].successCondition",
    "metrics[].provider",
    "metrics[].provider.prometheus",
    "metrics[].provider.prometheus.address",
    "metrics[].provider.prometheus.query",
    "metrics[].provider.web",
    "metrics[].provider.web.url",
    "metrics[].provider.web.jsonPath",
    "metrics[].provider.web.timeout",
}

_METRICS = [
    {
        "name": "success-rate",
        "interval": "10s",
        "count": 3,
        "failureLimit": 1,
        "noDataPolicy": "inconclusive",
        "successCondition": "result >= 0.95",
        "provider": {"prometheus": {"address": "http://prom:9090", "query": "vector(1)"}},
    },
    {
        "name": "smoke",
        "successCondition": "result == true",
        "provider": {"web": {"url": "https://svc/health", "jsonPath": "$.ok", "timeout": 5}},
    },
]
CANARY: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "progressDeadlineSeconds": 600,
        "strategy": {
            "canary": {
                "stableService": "web",
                "canaryService": "web-canary",
                "trafficRouting": {"nginx": {"stableIngress": "web"}},
                "steps": [
                    {"setWeight": 20},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"metrics": ["success-rate"]}},
                    {"pause": {}},
                ],
            }
        },
        "metrics": _METRICS,
    },
}
GATEWAY = copy.deepcopy(CANARY)
GATEWAY["spec"]["strategy"]["canary"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": "web"}}
BLUE_GREEN: dict[str, Any] = {
    **CANARY,
    "spec": {
        "targetRef": {"name": "web"},
        "strategy": {
            "blueGreen": {
                "activeService": "web",
                "previewService": "web-preview",
                "autoPromotionEnabled": True,
                "autoPromotionSeconds": 60,
                "scaleDownDelaySeconds": 30,
                "previewReplicaCount": 2,
                "prePromotionAnalysis": {"metrics": ["smoke"]},
                "postPromotionAnalysis": {"metrics": ["success-rate"]},
            }
        },
        "metrics": _METRICS,
    },
}
FULL_DOCS = [CANARY, GATEWAY, BLUE_GREEN]


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def root_schema() -> dict[str, Any]:
    [version] = load_crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


_KEYWORDS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "enum",
    "oneOf",
    "x-kubernetes-int-or-string",
}
_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def violations(value: object, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server would reject in ``value`` (unknown fields are pruned, not errors)."""
    unknown = set(schema) - _KEYWORDS
    assert not unknown, f"{path}: the test validator does not know {sorted(unknown)}"
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        return [f"{path}: expected {kind}, got {value!r}"]
    if schema.get("x-kubernetes-int-or-string") and (
        isinstance(value, bool) or not isinstance(value, int | str)
    ):
        return [f"{path}: expected an integer or a string, got {value!r}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            found.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, dict):
        found += [f"{path}.{n}: required" for n in schema.get("required", []) if n not in value]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += violations(value[name], sub, f"{path}.{name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                found += violations(item, schema["items"], f"{path}[{i}]")
    if "oneOf" in schema:
        matching = sum(not violations(value, sub, path) for sub in schema["oneOf"])
        if matching != 1:
            found.append(f"{path}: matches {matching} of oneOf {schema['oneOf']}, not exactly 1")
    return found


def schema_fields(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        yield from schema_fields(sub, path)
        if "items" in sub:
            yield from schema_fields(sub["items"], f"{path}[]")


def document_fields(value: object, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for name, sub in value.items():
            path = f"{prefix}.{name}" if prefix else name
            yield path
            yield from document_fields(sub, path)
    elif isinstance(value, list):
        for item in value:
            yield from document_fields(item, f"{prefix}[]")


def structural_problems(node: dict[str, Any], path: str, *, in_junctor: bool = False) -> list[str]:
    problems: list[str] = []
    if in_junctor:
        banned = {"type", "description", "default", "nullable", "additionalProperties"}
        banned |= {k for k in node if k.startswith("x-kubernetes-")}
        problems += [f"{path}: {k} inside a junctor" for k in sorted(banned & set(node))]
    elif not (
        node.get("type")
        or node.get("x-kubernetes-preserve-unknown-fields") is True
        or node.get("x-kubernetes-int-or-string") is True
    ):
        problems.append(f"{path}: no type")
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}", in_junctor=in_junctor)
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[]", in_junctor=in_junctor)
    for sub in node.get("oneOf", []):
        problems += structural_problems(sub, f"{path}(oneOf)", in_junctor=True)
        for name in sub.get("required", []):
            if name not in node.get("properties", {}):
                problems.append(f"{path}: oneOf requires undeclared field {name}")
    return problems


def set_field(doc: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    parts = dotted.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return out


def parses(doc: dict[str, Any]) -> bool:
    try:
        parse_rollout(doc)
    except RolloutSpecError:
        return False
    return True


# -- the CRD itself --------------------------------------------------------------------------


def test_names_scope_and_version() -> None:
    crd = load_crd()
    assert (crd["apiVersion"], crd["kind"]) == (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
    )
    assert crd["metadata"]["name"] == "rollouts.gitsync.dev"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("gitsync.dev", "Namespaced")
    assert (spec["names"]["kind"], spec["names"]["plural"]) == ("Rollout", "rollouts")
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_status_subresource_and_printer_columns() -> None:
    [version] = load_crd()["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ("string", ".status.phase")
    assert columns["Weight"] == ("integer", ".status.currentWeight")
    assert columns["Step"] == ("integer", ".status.currentStepIndex")
    assert columns["Age"] == ("date", ".metadata.creationTimestamp")


def test_schema_is_structural() -> None:
    assert structural_problems(root_schema(), "") == []


def test_every_status_key_is_declared() -> None:
    status = root_schema()["properties"]["status"]
    assert set(status["properties"]) == set(STATUS_FIELDS)
    assert status["properties"]["phase"]["enum"] == ["Healthy", "Progressing", "Paused", "Degraded"]


# -- the CRD and the parser agree ------------------------------------------------------------


def test_schema_declares_exactly_the_spec_fields() -> None:
    declared = set(schema_fields(root_schema()["properties"]["spec"]))
    assert sorted(SPEC_FIELDS - declared) == [], "read by gitsync but pruned by the API server"
    assert sorted(declared - SPEC_FIELDS) == [], "allowed by the CRD but unknown to gitsync"


@pytest.mark.parametrize("doc", FULL_DOCS, ids=["canary-nginx", "canary-gateway", "blue-green"])
def test_parser_and_crd_accept_the_full_documents(doc: dict[str, Any]) -> None:
    parse_rollout(doc)
    assert violations(doc, root_schema()) == []


def test_full_documents_use_every_spec_field() -> None:
    used = set().union(*(document_fields(doc["spec"]) for doc in FULL_DOCS))
    assert used == SPEC_FIELDS


REJECTED_BY_BOTH: list[tuple[str, object]] = [
    ("spec.strategy.canary.steps[0].setWeight", 101),
    ("spec.strategy.canary.steps[0].setWeight", "20"),
    ("spec.strategy.canary.steps[0]", {}),
    ("spec.strategy.canary.steps[0]", {"setWeight": 1, "pause": {}}),
    ("spec.strategy.canary.steps[2].analysis", {"metrics": []}),
    ("spec.strategy.canary.trafficRouting", {}),
    ("spec.strategy.blueGreen", {"activeService": "web"}),
    ("spec.strategy", {}),
    ("spec.targetRef", {"kind": "Deployment"}),
    ("spec.targetRef.kind", "StatefulSet"),
    ("spec.progressDeadlineSeconds", 0),
    ("spec.metrics[0].noDataPolicy", "ignore"),
    ("spec.metrics[0].count", 0),
    ("spec.metrics[0].successCondition", ""),
    ("spec.metrics[0].provider", {}),
    ("spec.metrics[0].provider.prometheus.address", "prom:9090"),
    ("spec.metrics[1].provider.web.jsonPath", "ok"),
    ("spec.strategy.canary.steps[1].pause.duration", True),
]


@pytest.mark.parametrize(("field", "value"), REJECTED_BY_BOTH, ids=repr)
def test_crd_and_parser_both_reject(field: str, value: object) -> None:
    doc = set_field(CANARY, field, value)
    assert not parses(doc)
    assert violations(doc, root_schema()) != []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spec.strategy.canary.steps[1].pause.duration", 30),
        ("spec.strategy.canary.steps[0].setWeight", 0),
        ("spec.strategy.canary.steps", []),
        ("spec.metrics[0].interval", 15),
        ("spec.metrics[0].noDataPolicy", "fail"),
    ],
    ids=repr,
)
def test_crd_and_parser_both_accept(field: str, value: object) -> None:
    doc = set_field(CANARY, field, value)
    assert parses(doc)
    assert violations(doc, root_schema()) == []
