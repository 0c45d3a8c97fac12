"""The Application CRD: a structural schema that matches what ``parse_application`` accepts.

The API server prunes fields a structural schema does not declare, so a spec field missing from
the CRD would vanish silently on ``kubectl apply``; a field the CRD declares but the parser rejects
would be accepted by the cluster and then fail every sync. ``SPEC_FIELDS`` is the list both must
agree on: the schema declares exactly these, and ``parse_application`` accepts documents that
together use all of them.

Custom resources cannot be validated against the v1.20 test control plane, so the schema's value
checks are exercised with a small validator for the OpenAPI keywords the CRD uses. It refuses any
other keyword, so a new constraint cannot slip past it unchecked.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync import sync_options
from gitsync.application import (
    KNOWN_SYNC_OPTIONS,
    UNSUPPORTED_HELM_FIELDS,
    UNSUPPORTED_KUSTOMIZE_FIELDS,
    SpecError,
    parse_application,
)
from gitsync.application_status import status_schema

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
EXAMPLE_APPS = sorted((ROOT / "example-repo/applications").glob("*.yaml"))

# Every field under spec that gitsync/application.py reads; "[]" marks the items of a list.
SPEC_FIELDS = {
    "source",
    "source.repoURL",
    "source.targetRevision",
    "source.path",
    "source.directory",
    "source.directory.recurse",
    "source.directory.include",
    "source.directory.exclude",
    "source.directory.jsonnet",
    "source.directory.jsonnet.tlas",
    "source.directory.jsonnet.tlas[].name",
    "source.directory.jsonnet.tlas[].value",
    "source.directory.jsonnet.tlas[].code",
    "source.directory.jsonnet.extVars",
    "source.directory.jsonnet.extVars[].name",
    "source.directory.jsonnet.extVars[].value",
    "source.directory.jsonnet.extVars[].code",
    "source.directory.jsonnet.libs",
    "source.kustomize",
    "source.kustomize.images",
    "source.kustomize.namePrefix",
    "source.kustomize.nameSuffix",
    "source.kustomize.commonLabels",
    "source.kustomize.forceCommonLabels",
    "source.kustomize.labelWithoutSelector",
    "source.kustomize.labelIncludeTemplates",
    "source.kustomize.commonAnnotations",
    "source.kustomize.forceCommonAnnotations",
    "source.kustomize.commonAnnotationsEnvsubst",
    "source.kustomize.namespace",
    "source.kustomize.replicas",
    "source.kustomize.replicas[].name",
    "source.kustomize.replicas[].count",
    "source.kustomize.patches",
    "source.kustomize.patches[].patch",
    "source.kustomize.patches[].path",
    "source.kustomize.patches[].target",
    *(
        f"source.kustomize.patches[].target.{name}"
        for name in (
            "group",
            "version",
            "kind",
            "name",
            "namespace",
            "labelSelector",
            "annotationSelector",
        )
    ),
    "source.kustomize.patches[].options",
    "source.kustomize.patches[].options.allowNameChange",
    "source.kustomize.patches[].options.allowKindChange",
    "source.kustomize.components",
    "source.kustomize.ignoreMissingComponents",
    "source.helm",
    "source.helm.releaseName",
    "source.helm.valueFiles",
    "source.helm.values",
    "source.helm.valuesObject",
    "source.helm.ignoreMissingValueFiles",
    "source.helm.parameters",
    "source.helm.parameters[].name",
    "source.helm.parameters[].value",
    "source.helm.parameters[].forceString",
    "source.helm.skipCrds",
    "source.helm.namespace",
    "source.helm.kubeVersion",
    "source.helm.apiVersions",
    "source.secretRef",
    "source.secretRef.name",
    "source.chart",
    "destination",
    "destination.namespace",
    "destination.name",
    "syncWindows",
    "syncWindows[].kind",
    "syncWindows[].schedule",
    "syncWindows[].duration",
    "syncWindows[].timeZone",
    "syncWindows[].manualSync",
    "dependsOn",
    "dependsOn[].name",
    "dependsOn[].namespace",
    "syncPolicy",
    "syncPolicy.automated",
    "syncPolicy.automated.prune",
    "syncPolicy.automated.selfHeal",
    "syncPolicy.automated.allowEmpty",
    "syncPolicy.syncOptions",
    "syncPolicy.retry",
    "syncPolicy.retry.limit",
    "syncPolicy.retry.backoff",
    "syncPolicy.retry.backoff.duration",
    "syncPolicy.retry.backoff.factor",
    "syncPolicy.retry.backoff.maxDuration",
    "ignoreDifferences",
    "ignoreDifferences[].group",
    "ignoreDifferences[].kind",
    "ignoreDifferences[].name",
    "ignoreDifferences[].namespace",
    "ignoreDifferences[].jsonPointers",
    "ignoreDifferences[].managedFieldsManagers",
    "interval",
    "suspend",
    "serviceAccountName",
}
# spec.sources entries are full sources (one schema, a YAML anchor in the CRD), plus ref
SPEC_FIELDS |= {"sources", "sources[].ref"} | {
    f"sources[]{name[len('source') :]}" for name in SPEC_FIELDS if name.startswith("source.")
}
FREE_FORM = {  # kept by preserve-unknown-fields, or maps of strings (additionalProperties)
    f"{where}.{name}"
    for where in ("source", "sources[]")
    for name in (
        "helm.values",
        "helm.valuesObject",
        "kustomize.commonLabels",
        "kustomize.commonAnnotations",
    )
}
# Argo CD fields the CRD keeps (not prunes) only so that the parser can refuse them by name
UNSUPPORTED = {f"source.helm.{name}" for name in UNSUPPORTED_HELM_FIELDS} | {
    f"source.kustomize.{name}" for name in UNSUPPORTED_KUSTOMIZE_FIELDS
}
LISTED_UNSUPPORTED = {f"sources[].{name[len('source.') :]}" for name in UNSUPPORTED}
REFUSED_IN_SOURCE = {"source.ref"}  # the shared schema declares it; spec.source refuses it

_SOURCE = {"repoURL": "https://git.example.com/org/deploy.git", "targetRevision": "main"}
# Three documents, because a source takes at most one of helm, directory and kustomize.
HELM_FULL: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "full", "namespace": "gitsync"},
    "spec": {
        "source": {
            **_SOURCE,
            "path": "apps/chart",
            "helm": {
                "releaseName": "demo",
                "valueFiles": ["values-prod.yaml"],
                "valuesObject": {"replicaCount": 2, "image": {"tag": "1.25"}},
                "ignoreMissingValueFiles": True,
                "parameters": [
                    {"name": "image.tag", "value": "1.26"},
                    {"name": "port", "value": "80", "forceString": True},
                ],
                "skipCrds": True,
                "namespace": "demo-templates",
                "kubeVersion": "v1.29.3",
                "apiVersions": ["monitoring.coreos.com/v1", "apps/v1/Deployment"],
            },
            "secretRef": {"name": "git-credentials"},
        },
        "destination": {"namespace": "demo", "name": "in-cluster"},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
            "syncOptions": ["CreateNamespace=true", "PruneLast=false"],
            "retry": {
                "limit": -1,
                "backoff": {"duration": "5s", "factor": 1.5, "maxDuration": "3m"},
            },
        },
        "ignoreDifferences": [
            {
                "group": "apps",
                "kind": "Deployment",
                "name": "demo",
                "namespace": "demo",
                "jsonPointers": ["/spec/replicas"],
                "managedFieldsManagers": ["kube-controller-manager"],
            }
        ],
        "interval": "1h30m",
        "suspend": False,
        "serviceAccountName": "deployer",
        "syncWindows": [
            {
                "kind": "deny",
                "schedule": "0 22 * * 1-5",
                "duration": "1h30m",
                "timeZone": "Europe/Berlin",
                "manualSync": True,
            }
        ],
        "dependsOn": [{"name": "database"}, {"name": "cert-manager", "namespace": "platform"}],
    },
}
DIRECTORY_FULL: dict[str, Any] = {
    **HELM_FULL,
    "spec": {
        "source": {
            **_SOURCE,
            "directory": {
                "recurse": True,
                "include": "*.yaml",
                "exclude": "{a,b}.yaml",
                "jsonnet": {
                    "tlas": [{"name": "replicas", "value": "2", "code": True}],
                    "extVars": [{"name": "team", "value": "web", "code": False}],
                    "libs": ["vendor"],
                },
            },
        }
    },
}
KUSTOMIZE_FULL: dict[str, Any] = {
    **HELM_FULL,
    "spec": {
        "source": {
            **_SOURCE,
            "kustomize": {
                "images": ["web=registry.example.com/web:1.2.3", "sidecar@sha256:" + "a" * 64],
                "namePrefix": "prod-",
                "nameSuffix": "-v2",
                "commonLabels": {"team": "web"},
                "forceCommonLabels": True,
                "labelWithoutSelector": True,
                "labelIncludeTemplates": True,
                "commonAnnotations": {"example.com/owner": "web team"},
                "forceCommonAnnotations": False,
                "commonAnnotationsEnvsubst": False,
                "namespace": "web",
                "replicas": [{"name": "web", "count": 3}, {"name": "worker", "count": "2"}],
                "patches": [
                    {
                        "patch": "- op: replace\n  path: /spec/paused\n  value: false\n",
                        "target": {
                            "group": "apps",
                            "version": "v1",
                            "kind": "Deployment",
                            "name": "web",
                            "namespace": "web",
                            "labelSelector": "tier=front",
                            "annotationSelector": "example.com/patch=yes",
                        },
                        "options": {"allowNameChange": False, "allowKindChange": False},
                    },
                    {"path": "patches/memory.yaml"},
                ],
                "components": ["../../components/monitoring"],
                "ignoreMissingComponents": True,
            },
        }
    },
}
# Argo CD's values string (the object form of values is checked in the parser's tests)
HELM_VALUES_STRING: dict[str, Any] = {
    **HELM_FULL,
    "spec": {"source": {**_SOURCE, "helm": {"values": "replicaCount: 2\n"}}},
}
CHART_FULL: dict[str, Any] = {
    **HELM_FULL,
    "spec": {
        "source": {
            "repoURL": "https://charts.example.com/stable",
            "chart": "ingress-nginx",
            "targetRevision": ">=4.0.0 <5.0.0",
        }
    },
}
# Argo CD's multiple sources: every kind of source as an entry, and a ref its values come from
SOURCES_FULL: dict[str, Any] = {
    **HELM_FULL,
    "spec": {
        "sources": [
            {
                **HELM_FULL["spec"]["source"],
                "helm": {
                    **HELM_FULL["spec"]["source"]["helm"],
                    "valueFiles": ["$values/env/values.yaml"],
                },
            },
            DIRECTORY_FULL["spec"]["source"],
            {**KUSTOMIZE_FULL["spec"]["source"], "path": "kustomize"},
            {**HELM_VALUES_STRING["spec"]["source"], "path": "other-chart"},
            CHART_FULL["spec"]["source"],
            {**_SOURCE, "ref": "values"},
        ]
    },
}
FULL_DOCS = [
    HELM_FULL,
    DIRECTORY_FULL,
    KUSTOMIZE_FULL,
    HELM_VALUES_STRING,
    CHART_FULL,
    SOURCES_FULL,
]


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def root_schema() -> dict[str, Any]:
    [version] = load_crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = root_schema()["properties"]["spec"]
    return spec


# -- a validator for the keywords the CRD uses ----------------------------------------------

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
    "maxItems",
    "not",
    "anyOf",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}
_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def violations(value: object, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server would reject in ``value`` (unknown fields are pruned, not errors)."""
    unknown = set(schema) - _KEYWORDS
    assert not unknown, f"{path}: the test validator does not know {sorted(unknown)}"
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        return [f"{path}: expected {kind}, got {value!r}"]
    if schema.get("x-kubernetes-int-or-string") and not (
        _TYPES["integer"](value) or _TYPES["string"](value)
    ):
        return [f"{path}: expected an integer or a string, got {value!r}"]
    found: list[str] = []
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            found.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, dict):
        found += [
            f"{path}.{name}: required" for name in schema.get("required", []) if name not in value
        ]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += violations(value[name], sub, f"{path}.{name}")
        if "additionalProperties" in schema:
            for name, sub_value in value.items():
                found += violations(sub_value, schema["additionalProperties"], f"{path}.{name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += violations(item, schema["items"], f"{path}[{i}]")
    if "not" in schema and not violations(value, schema["not"], path):
        found.append(f"{path}: matches a forbidden combination {schema['not']}")
    if "anyOf" in schema and all(violations(value, sub, path) for sub in schema["anyOf"]):
        found.append(f"{path}: matches none of {schema['anyOf']}")
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
            if path not in FREE_FORM:
                yield from document_fields(sub, path)
    elif isinstance(value, list):
        for item in value:
            yield from document_fields(item, f"{prefix}[]")


def structural_problems(node: dict[str, Any], path: str, *, in_junctor: bool = False) -> list[str]:
    """The rules a v1 CRD schema must follow to be structural (what the API server enforces)."""
    problems: list[str] = []
    if in_junctor:
        banned = {"type", "description", "default", "nullable", "additionalProperties"}
        banned |= {k for k in node if k.startswith("x-kubernetes-")}
        problems += [
            f"{path}: {k} inside allOf/anyOf/oneOf/not" for k in sorted(banned & set(node))
        ]
    elif not (
        node.get("type")
        or node.get("x-kubernetes-preserve-unknown-fields") is True
        or node.get("x-kubernetes-int-or-string") is True
    ):
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}", in_junctor=in_junctor)
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[]", in_junctor=in_junctor)
    junctors = [*node.get("allOf", []), *node.get("anyOf", []), *node.get("oneOf", [])]
    if "not" in node:
        junctors.append(node["not"])
    for sub in junctors:
        problems += structural_problems(sub, f"{path}(junctor)", in_junctor=True)
        for name in sub.get("required", []):
            if not in_junctor and name not in node.get("properties", {}):
                problems.append(f"{path}: junctor requires undeclared field {name}")
    return problems


def set_field(doc: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = changed
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return changed


def base_for(field: str) -> dict[str, Any]:
    """The full document a changed field belongs in: kustomize's fields in the kustomize one."""
    return KUSTOMIZE_FULL if field.startswith("spec.source.kustomize.") else HELM_FULL


def parses(doc: dict[str, Any]) -> bool:
    try:
        parse_application(doc)
    except SpecError:
        return False
    return True


# -- the CRD itself --------------------------------------------------------------------------


def test_crd_names_and_version() -> None:
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "applications.gitsync.dev"
    spec = crd["spec"]
    assert spec["group"] == "gitsync.dev"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (
        "Application",
        "applications",
        "application",
    )
    assert names["shortNames"] == ["gsapp"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_status_subresource_and_printer_columns() -> None:
    [version] = load_crd()["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Sync"]["jsonPath"] == ".status.sync.status"
    assert columns["Health"]["jsonPath"] == ".status.health.status"
    assert columns["Revision"]["jsonPath"] == ".status.sync.revision"
    assert columns["Revision"].get("priority", 0) == 0
    assert columns["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }


def test_schema_is_structural() -> None:
    schema = root_schema()
    assert structural_problems(schema, "") == []
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert "x-kubernetes-preserve-unknown-fields" not in schema["properties"]["status"]


# -- the CRD's status and the status types agree -----------------------------------------------


def schema_disagreements(declared: Any, typed: Any, path: str = ".status") -> list[str]:
    """Where the CRD's status schema and the one generated from the types differ."""
    if declared.get("type") != typed.get("type"):
        return [f"{path}: CRD type {declared.get('type')}, types say {typed.get('type')}"]
    problems = []
    if typed["type"] == "array":
        problems += schema_disagreements(declared["items"], typed["items"], path + "[]")
    if typed["type"] == "object":
        have, want = declared.get("properties", {}), typed["properties"]
        problems += [f"{path}.{k}: in the CRD, not in the types" for k in have.keys() - want]
        problems += [f"{path}.{k}: in the types, pruned by the CRD" for k in want.keys() - have]
        for k in sorted(have.keys() & want.keys()):
            problems += schema_disagreements(have[k], want[k], f"{path}.{k}")
    return problems


def test_status_schema_is_the_one_the_types_generate() -> None:
    """The API server prunes what the status schema does not declare: a status field the
    reconciler writes but the CRD lacks would vanish on every write."""
    declared = root_schema()["properties"]["status"]
    generated = status_schema()
    block = yaml.safe_dump({"status": generated}, sort_keys=False)
    assert schema_disagreements(declared, generated) == [], "paste into the CRD:\n" + block
    assert declared == generated, "paste into the CRD:\n" + block


def test_disagreements_are_named() -> None:
    declared = copy.deepcopy(status_schema())
    del declared["properties"]["sync"]["properties"]["revision"]
    declared["properties"]["history"]["items"]["properties"]["id"] = {"type": "string"}
    declared["properties"]["reconciledAt"] = {"type": "string"}
    assert schema_disagreements(declared, status_schema()) == [
        ".status.reconciledAt: in the CRD, not in the types",
        ".status.history[].id: CRD type string, types say integer",
        ".status.sync.revision: in the types, pruned by the CRD",
    ]


def test_structural_check_catches_an_untyped_field() -> None:
    schema = copy.deepcopy(root_schema())
    del schema["properties"]["spec"]["properties"]["suspend"]["type"]
    assert structural_problems(schema, "") == [".spec.suspend: no type"]


def test_free_form_values_keep_unknown_fields() -> None:
    helm = spec_schema()["properties"]["source"]["properties"]["helm"]
    assert helm["properties"]["values"]["x-kubernetes-preserve-unknown-fields"] is True


# -- the CRD and parse_application agree -----------------------------------------------------


def test_schema_declares_exactly_the_spec_fields() -> None:
    declared = set(schema_fields(spec_schema()))
    assert sorted(SPEC_FIELDS - declared) == [], "accepted by gitsync but pruned by the API server"
    assert (
        sorted(declared - SPEC_FIELDS - UNSUPPORTED - LISTED_UNSUPPORTED - REFUSED_IN_SOURCE) == []
    ), "allowed by the CRD but rejected by gitsync"


@pytest.mark.parametrize("field", sorted(UNSUPPORTED))
def test_unsupported_argo_fields_reach_the_parser_and_are_refused_by_name(field: str) -> None:
    # kept by the CRD (pruning would accept and ignore them), then a spec error naming the field
    node = spec_schema()
    for part in field.split("."):
        node = node["properties"][part]
    assert node.get("x-kubernetes-preserve-unknown-fields") is True
    full = KUSTOMIZE_FULL if field.startswith("source.kustomize.") else HELM_FULL
    doc = set_field(full, f"spec.{field}", True)
    assert violations(doc, root_schema()) == []
    with pytest.raises(SpecError) as info:
        parse_application(doc)
    assert info.value.field == f"spec.{field}"
    assert "not supported by gitsync" in str(info.value)


@pytest.mark.parametrize(
    "doc",
    FULL_DOCS,
    ids=["helm", "directory", "kustomize", "helm-values-string", "chart", "sources"],
)
def test_parser_and_crd_accept_the_full_documents(doc: dict[str, Any]) -> None:
    parse_application(doc)
    assert violations(doc, root_schema()) == []


def test_full_documents_use_every_spec_field() -> None:
    used = set().union(*(document_fields(doc["spec"]) for doc in FULL_DOCS))
    assert used == SPEC_FIELDS


@pytest.mark.parametrize("path", EXAMPLE_APPS, ids=lambda p: p.stem)
def test_crd_accepts_the_example_applications(path: Path) -> None:
    assert violations(yaml.safe_load(path.read_text()), root_schema()) == []


def test_crd_allows_every_known_sync_option() -> None:
    for option in sorted(KNOWN_SYNC_OPTIONS):
        for flag in ("true", "false"):
            doc = set_field(HELM_FULL, "spec.syncPolicy.syncOptions", [f"{option}={flag}"])
            assert parses(doc)
            assert violations(doc, root_schema()) == [], option


def test_crd_admits_every_documented_sync_option_value() -> None:
    """What the CRD admits the parser decides: honoured, or a spec error naming why."""
    for name, spec in sync_options.OPTIONS.items():
        if sync_options.Level.APP not in spec.levels:
            continue
        for value in spec.values:
            doc = set_field(HELM_FULL, "spec.syncPolicy.syncOptions", [f"{name}={value}"])
            assert violations(doc, root_schema()) == [], (name, value)


ACCEPTED_BY_BOTH: list[tuple[str, object]] = [
    ("spec.interval", "90s"),
    ("spec.interval", "1.5m"),
    ("spec.syncPolicy.retry", {"limit": 100}),
    ("spec.syncPolicy.retry", {"backoff": {"factor": 10}}),
    ("spec.destination.namespace", ""),
    ("spec.destination", {}),
    ("spec.source.targetRevision", ">=1.2.0 <2.0.0"),
    ("spec.source.targetRevision", "0123abcd"),
    ("spec.source.targetRevision", "x" * 255),
    ("spec.source", {"repoURL": "oci://registry.example.com/charts/web", "targetRevision": "1.x"}),
    ("spec.source", {"repoURL": "https://c.example.com", "chart": "web", "targetRevision": "*"}),
    ("spec.source.kustomize.replicas", [{"name": "web", "count": "0"}]),
    ("spec.source.kustomize.commonAnnotations", {"example.com/cost": "$5"}),
    ("spec.source.kustomize.images", ["localhost:5000/web:1.0", "web=other"]),
]

REJECTED_BY_BOTH: list[tuple[str, object]] = [
    ("spec.interval", "3 minutes"),
    ("spec.interval", "-5m"),
    ("spec.interval", "5d"),
    ("spec.syncPolicy.syncOptions", ["Bogus=true"]),
    ("spec.syncPolicy.syncOptions", ["CreateNamespace=yes"]),
    ("spec.syncPolicy.syncOptions", ["CreateNamespace"]),
    ("spec.syncPolicy.retry", {"limit": 101}),
    ("spec.syncPolicy.retry", {"limit": -2}),
    ("spec.syncPolicy.retry", {"limit": "5"}),
    ("spec.syncPolicy.retry", {"backoff": {"factor": 0.5}}),
    ("spec.syncPolicy.retry", {"backoff": {"duration": "soon"}}),
    ("spec.syncPolicy.automated", {"prune": "yes"}),
    ("spec.destination.namespace", "Not_A_Label"),
    ("spec.destination.namespace", "a" * 64),
    ("spec.source.helm.releaseName", "Upper"),
    ("spec.source.helm.valueFiles", [""]),
    ("spec.source.targetRevision", ""),
    ("spec.source.targetRevision", "x" * 256),
    ("spec.source.repoURL", ""),
    ("spec.source.secretRef", {}),
    ("spec.source.secretRef", {"name": "Bad_Name"}),
    ("spec.source.kustomize", {}),  # next to helm: at most one source type
    ("spec.source.kustomize.namespace", "Not_A_Label"),
    ("spec.source.kustomize.images", ["x"] * 101),
    ("spec.source.kustomize.replicas", [{"name": "web"}]),
    ("spec.source.kustomize.replicas", [{"name": "web", "count": 1.5}]),
    ("spec.source.kustomize.commonLabels", {"team": 1}),
    ("spec.source.kustomize.commonLabels", {"team": "x" * 64}),
    ("spec.source.kustomize.components", [""]),
    ("spec.source.directory", {}),
    ("spec.ignoreDifferences", [{"jsonPointers": ["spec/replicas"]}]),
    ("spec.ignoreDifferences", [{"jsonPointers": [""]}]),  # the whole object: not a rule
    ("spec.ignoreDifferences", [{"managedFieldsManagers": [""]}]),
    ("spec.suspend", "yes"),
    ("spec.dependsOn", [{"namespace": "platform"}]),  # no name
    ("spec.dependsOn", [{"name": "Not_A_Name"}]),
    ("spec.dependsOn", [{"name": "db", "namespace": "a" * 64}]),
    ("spec.dependsOn", [{"name": f"db-{i}"} for i in range(33)]),
    ("spec.dependsOn", {"name": "db"}),
    ("spec.source", "https://git.example.com/org/deploy.git"),
    ("spec.source", {"repoURL": "https://c.example.com", "chart": "", "targetRevision": "1"}),
    ("spec.source", {"repoURL": "https://c.example.com", "chart": "a/b", "targetRevision": "1"}),
]


@pytest.mark.parametrize(("field", "value"), ACCEPTED_BY_BOTH, ids=repr)
def test_crd_and_parser_both_accept(field: str, value: object) -> None:
    doc = set_field(base_for(field), field, value)
    assert parses(doc)
    assert violations(doc, root_schema()) == []


@pytest.mark.parametrize(("field", "value"), REJECTED_BY_BOTH, ids=repr)
def test_crd_and_parser_both_reject(field: str, value: object) -> None:
    doc = set_field(base_for(field), field, value)
    assert not parses(doc)
    assert violations(doc, root_schema()) != []


@pytest.mark.parametrize("required", ["spec", "spec.source", "spec.source.repoURL"])
def test_required_fields(required: str) -> None:
    doc = copy.deepcopy(HELM_FULL)
    *parents, last = required.split(".")
    node = doc
    for part in parents:
        node = node[part]
    del node[last]
    assert not parses(doc)
    assert violations(doc, root_schema()) != []
