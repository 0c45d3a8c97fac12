"""``spec.source.kustomize``: Argo CD's overrides parse into typed values, every bad value is a
spec error naming its field, and the fields gitsync does not implement are refused by name."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitsync.application import (
    MAX_KUSTOMIZE_ENTRIES,
    UNSUPPORTED_KUSTOMIZE_FIELDS,
    KustomizeImage,
    KustomizePatch,
    KustomizePatchTarget,
    KustomizeReplica,
    KustomizeSource,
    SpecError,
    parse_application,
    parse_kustomize_image,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
DOC: dict[str, Any] = {
    "apiVersion": "gitsync.dev/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "web", "namespace": "gitsync"},
    "spec": {
        "source": {
            "repoURL": "https://git.example.com/org/deploy.git",
            "path": "overlays/prod",
            "kustomize": {},
        },
        "destination": {"namespace": "web"},
    },
}
WHERE = "spec.source.kustomize"


def parse(kustomize: dict[str, Any]) -> KustomizeSource:
    doc = copy.deepcopy(DOC)
    doc["spec"]["source"]["kustomize"] = kustomize
    parsed = parse_application(doc).source.kustomize
    assert parsed is not None
    return parsed


def test_an_empty_kustomize_object_asks_for_kustomize_and_overrides_nothing() -> None:
    parsed = parse({})
    assert parsed == KustomizeSource()
    assert not parsed.has_overrides


def test_every_field_parses_into_its_typed_value() -> None:
    parsed = parse(
        {
            "images": ["web=registry.example.com/web:1.2.3", f"sidecar@{DIGEST}"],
            "namePrefix": "prod-",
            "nameSuffix": "-v2",
            "commonLabels": {"team": "web", "example.com/tier": "front"},
            "forceCommonLabels": True,
            "labelWithoutSelector": True,
            "labelIncludeTemplates": True,
            "commonAnnotations": {"example.com/owner": "the web team", "cost": "$5"},
            "forceCommonAnnotations": True,
            "commonAnnotationsEnvsubst": False,
            "namespace": "web-prod",
            "replicas": [{"name": "web", "count": 3}, {"name": "worker", "count": "0"}],
            "patches": [
                {
                    "patch": "- op: add\n  path: /metadata/labels/x\n  value: y\n",
                    "target": {"group": "apps", "kind": "Deployment", "labelSelector": "a=b"},
                    "options": {"allowNameChange": True},
                },
                {"path": "patches/memory.yaml"},
            ],
            "components": ["../../components/monitoring", "extra"],
            "ignoreMissingComponents": True,
        }
    )
    assert parsed == KustomizeSource(
        images=(
            KustomizeImage("web", new_name="registry.example.com/web", new_tag="1.2.3"),
            KustomizeImage("sidecar", digest=DIGEST),
        ),
        name_prefix="prod-",
        name_suffix="-v2",
        common_labels={"team": "web", "example.com/tier": "front"},
        force_common_labels=True,
        label_without_selector=True,
        label_include_templates=True,
        common_annotations={"example.com/owner": "the web team", "cost": "$5"},
        force_common_annotations=True,
        namespace="web-prod",
        replicas=(KustomizeReplica("web", 3), KustomizeReplica("worker", 0)),
        patches=(
            KustomizePatch(
                patch="- op: add\n  path: /metadata/labels/x\n  value: y\n",
                target=KustomizePatchTarget(group="apps", kind="Deployment", label_selector="a=b"),
                allow_name_change=True,
            ),
            KustomizePatch(path="patches/memory.yaml"),
        ),
        components=("../../components/monitoring", "extra"),
        ignore_missing_components=True,
    )
    assert parsed.has_overrides


@pytest.mark.parametrize(
    ("entry", "image"),
    [
        ("nginx:1.25", KustomizeImage("nginx", new_tag="1.25")),
        (
            "nginx=registry.example.com/nginx:1.25",
            KustomizeImage("nginx", "registry.example.com/nginx", "1.25"),
        ),
        ("nginx=mirror/nginx", KustomizeImage("nginx", new_name="mirror/nginx")),
        (f"nginx@{DIGEST}", KustomizeImage("nginx", digest=DIGEST)),
        (f"nginx=mirror/nginx@{DIGEST}", KustomizeImage("nginx", "mirror/nginx", digest=DIGEST)),
        (
            "localhost:5000/team/app:v2.0_rc-1",
            KustomizeImage("localhost:5000/team/app", new_tag="v2.0_rc-1"),
        ),
        (
            "localhost:5000/app=localhost:5001/app",
            KustomizeImage("localhost:5000/app", "localhost:5001/app"),
        ),
        (
            "ghcr.io/stefanprodan/podinfo:6.6.0",
            KustomizeImage("ghcr.io/stefanprodan/podinfo", new_tag="6.6.0"),
        ),
    ],
)
def test_image_overrides_read_as_kustomize_edit_set_image_does(
    entry: str, image: KustomizeImage
) -> None:
    assert parse_kustomize_image(entry, "x") == image


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("", "expected an image"),
        (7, "expected an image"),
        ("x" * 513, "expected an image"),
        ("nginx", "changes nothing"),
        ("localhost:5000/app", "changes nothing"),
        ("Nginx:1.25", "is not an image name"),
        ("nginx:", "is not an image tag"),
        ("nginx:bad tag", "is not an image tag"),
        ("nginx:-1", "is not an image tag"),
        ("nginx@md5:zz", "is not a digest"),
        (f"nginx:1.25@{DIGEST}", "a tag or a digest, not both"),
        ("nginx=:1.25", "is not an image name"),
        ("NGINX=nginx:1", "is not an image name"),
        ("nginx:${ARGOCD_APP_REVISION}", "build environment"),
        ("--help=x", "is not an image name"),
    ],
)
def test_bad_image_overrides_are_refused(entry: object, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        parse_kustomize_image(entry, "spec.source.kustomize.images[0]")
    assert info.value.field == "spec.source.kustomize.images[0]"


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"bogus": 1}, f"{WHERE}.bogus", "unknown field"),
    ({"images": "nginx:1"}, f"{WHERE}.images", "expected a list"),
    ({"images": ["nginx:1", "nginx:2"]}, f"{WHERE}.images[1]", "given twice"),
    ({"images": ["a:1"] * (MAX_KUSTOMIZE_ENTRIES + 1)}, f"{WHERE}.images", "at most 100"),
    ({"namePrefix": "Prod-"}, f"{WHERE}.namePrefix", "name prefix"),
    ({"namePrefix": "-prod"}, f"{WHERE}.namePrefix", "name prefix"),
    ({"namePrefix": 1}, f"{WHERE}.namePrefix", "expected a string"),
    ({"nameSuffix": "-v2-"}, f"{WHERE}.nameSuffix", "name suffix"),
    ({"nameSuffix": "x" * 64}, f"{WHERE}.nameSuffix", "name suffix"),
    ({"namespace": "Web_Prod"}, f"{WHERE}.namespace", "DNS label"),
    ({"commonLabels": ["team=web"]}, f"{WHERE}.commonLabels", "expected an object"),
    ({"commonLabels": {"team": 1}}, f"{WHERE}.commonLabels.team", "expected a string"),
    ({"commonLabels": {"team": "x" * 64}}, f"{WHERE}.commonLabels.team", "not a label value"),
    ({"commonLabels": {"team": "a b"}}, f"{WHERE}.commonLabels.team", "not a label value"),
    ({"commonLabels": {"bad key": "x"}}, f"{WHERE}.commonLabels.bad key", "not a label"),
    ({"commonLabels": {"Bad_Prefix/x": "y"}}, f"{WHERE}.commonLabels.Bad_Prefix/x", "not a label"),
    ({"commonLabels": {"rev": "$ARGOCD_APP_REVISION"}}, f"{WHERE}.commonLabels.rev", "build env"),
    (
        {"commonLabels": {f"k{i}": "v" for i in range(MAX_KUSTOMIZE_ENTRIES + 1)}},
        f"{WHERE}.commonLabels",
        "at most 100",
    ),
    ({"commonAnnotations": {"a": None}}, f"{WHERE}.commonAnnotations.a", "expected a string"),
    (
        {"commonAnnotations": {"rev": "${ARGOCD_APP_REVISION}"}, "commonAnnotationsEnvsubst": True},
        f"{WHERE}.commonAnnotations.rev",
        "build environment",
    ),
    (
        {"commonAnnotations": {f"k{i}": "v" * 4000 for i in range(70)}},
        f"{WHERE}.commonAnnotations",
        "262144 bytes",
    ),
    ({"forceCommonLabels": "yes"}, f"{WHERE}.forceCommonLabels", "true or false"),
    ({"labelWithoutSelector": 1}, f"{WHERE}.labelWithoutSelector", "true or false"),
    ({"commonAnnotationsEnvsubst": "true"}, f"{WHERE}.commonAnnotationsEnvsubst", "true or false"),
    ({"replicas": [{"count": 1}]}, f"{WHERE}.replicas[0].name", "is required"),
    ({"replicas": [{"name": "web"}]}, f"{WHERE}.replicas[0].count", "replica count"),
    ({"replicas": [{"name": "web", "count": -1}]}, f"{WHERE}.replicas[0].count", "replica count"),
    ({"replicas": [{"name": "web", "count": "-1"}]}, f"{WHERE}.replicas[0].count", "count"),
    ({"replicas": [{"name": "web", "count": True}]}, f"{WHERE}.replicas[0].count", "count"),
    ({"replicas": [{"name": "web", "count": 2**31}]}, f"{WHERE}.replicas[0].count", "count"),
    ({"replicas": [{"name": "Web", "count": 1}]}, f"{WHERE}.replicas[0].name", "DNS"),
    (
        {"replicas": [{"name": "web", "count": 1}, {"name": "web", "count": 2}]},
        f"{WHERE}.replicas[1].name",
        "given twice",
    ),
    ({"replicas": [{"name": "web", "count": 1, "x": 1}]}, f"{WHERE}.replicas[0].x", "unknown"),
    ({"patches": [{}]}, f"{WHERE}.patches[0]", "set one of patch, path"),
    ({"patches": [{"patch": "a: b", "path": "p.yaml"}]}, f"{WHERE}.patches[0].path", "only one"),
    ({"patches": [{"patch": "  \n"}]}, f"{WHERE}.patches[0].patch", "must not be empty"),
    ({"patches": [{"patch": "x" * (256 * 1024 + 1)}]}, f"{WHERE}.patches[0].patch", "at most"),
    ({"patches": [{"path": "/etc/passwd"}]}, f"{WHERE}.patches[0].path", "relative"),
    ({"patches": [{"path": "../base/p.yaml"}]}, f"{WHERE}.patches[0].path", "'..'"),
    ({"patches": [{"path": "."}]}, f"{WHERE}.patches[0].path", "patch file"),
    (
        {"patches": [{"patch": "a: b", "target": {"kind": "X", "bogus": 1}}]},
        f"{WHERE}.patches[0].target.bogus",
        "unknown field",
    ),
    (
        {"patches": [{"patch": "a: b", "target": {"name": "a\nb"}}]},
        f"{WHERE}.patches[0].target.name",
        "one line",
    ),
    (
        {"patches": [{"patch": "a: b", "options": {"allowNameChange": "yes"}}]},
        f"{WHERE}.patches[0].options.allowNameChange",
        "true or false",
    ),
    (
        {"patches": [{"patch": "a: b", "options": {"force": True}}]},
        f"{WHERE}.patches[0].options.force",
        "unknown field",
    ),
    ({"components": "c"}, f"{WHERE}.components", "expected a list"),
    ({"components": [""]}, f"{WHERE}.components[0]", "expected a directory"),
    ({"components": [3]}, f"{WHERE}.components[0]", "expected a directory"),
    ({"components": ["/abs/c"]}, f"{WHERE}.components[0]", "relative"),
    ({"ignoreMissingComponents": "yes"}, f"{WHERE}.ignoreMissingComponents", "true or false"),
]


@pytest.mark.parametrize(("kustomize", "field", "problem"), BAD_FIELDS, ids=lambda v: repr(v)[:60])
def test_bad_kustomize_fields_are_spec_errors_naming_the_field(
    kustomize: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        parse(kustomize)
    assert info.value.field == field


def test_literal_dollars_in_annotations_are_kept_without_envsubst() -> None:
    # Argo CD substitutes annotations only with commonAnnotationsEnvsubst: without it, as here
    assert parse({"commonAnnotations": {"cost": "$5"}}).common_annotations == {"cost": "$5"}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_KUSTOMIZE_FIELDS))
def test_argo_fields_gitsync_lacks_are_refused_by_name(name: str) -> None:
    with pytest.raises(SpecError, match="not supported by gitsync") as info:
        parse({name: "v5.4.0"})
    assert info.value.field == f"{WHERE}.{name}"


def test_kustomize_overrides_in_a_listed_source_are_parsed_too() -> None:
    doc = copy.deepcopy(DOC)
    source = doc["spec"].pop("source")
    source["kustomize"] = {"namePrefix": "x-", "images": ["web:2"]}
    doc["spec"]["sources"] = [source]
    [parsed] = parse_application(doc).sources
    assert parsed.kustomize == KustomizeSource(
        images=(KustomizeImage("web", new_tag="2"),), name_prefix="x-"
    )
