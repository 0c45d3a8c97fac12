"""The sync stage on the real control plane: dry-run, partial failure, ownership-safe prune,
CRDs before their custom resources, hooks."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from gitsync.application import parse_application
from gitsync.kube import KubeClient
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from gitsync.sync.inventory import Inventory

pytestmark = pytest.mark.integration


def app_for(
    namespace: str,
    *,
    prune: bool = True,
    options: tuple[str, ...] = (),
    ignore: list[dict[str, Any]] | None = None,
) -> Any:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"sync-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {
                    "automated": {"prune": prune},
                    "syncOptions": [f"{o}=true" for o in options],
                },
                **({"ignoreDifferences": ignore} if ignore is not None else {}),
            },
        }
    )


def cm(name: str, **extra: Any) -> RenderedManifest:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    obj.update(extra)
    return RenderedManifest(ResourceKey.of(obj), obj, "test.yaml")


def codes(result: Any) -> dict[str, ResultCode]:
    return {r.key.name: r.code for r in result.results}


def test_dry_run_changes_nothing_and_reports_what_would(kube: KubeClient, namespace: str) -> None:
    app = app_for(namespace)
    result = Syncer(kube).sync(app, [cm("a"), cm("b")], revision="r1", dry_run=True)
    assert result.succeeded and result.dry_run
    assert codes(result) == {"a": ResultCode.SYNCED, "b": ResultCode.SYNCED}
    assert all("dry run" in r.message for r in result.results)
    assert kube.list("v1", "ConfigMap", namespace, label_selector="!kube-root-ca")[
        "items"
    ] == [] or all(
        o["metadata"]["name"] not in {"a", "b"}
        for o in kube.list("v1", "ConfigMap", namespace)["items"]
    )
    assert Inventory(kube, namespace, app.name).load() == {}


def test_ignore_differences_from_the_spec_hide_a_live_change(
    kube: KubeClient, namespace: str
) -> None:
    """The Application's parsed ``ignoreDifferences`` reach the diff: a field someone else
    changed live is OutOfSync, and Synced once a rule names it."""
    manifests = [cm("settings")]
    Syncer(kube).sync(app_for(namespace), manifests, revision="r1")
    kube.patch("v1", "ConfigMap", "settings", {"data": {"k": "edited"}}, namespace=namespace)

    plain = Syncer(kube).compare(app_for(namespace), manifests)
    rule = {"kind": "ConfigMap", "name": "settings", "jsonPointers": ["/data/k"]}
    ignoring = Syncer(kube).compare(app_for(namespace, ignore=[rule]), manifests)

    assert [d.changed_paths for d in plain.diffs] == [("/data/k",)]
    assert not plain.in_sync
    assert ignoring.in_sync, ignoring.diffs


def test_one_bad_object_does_not_stop_the_others(kube: KubeClient, namespace: str) -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad"},
        "spec": {"type": "NoSuchType", "ports": [{"port": 80, "protocol": "TCP"}]},
    }
    manifests = [cm("good-1"), RenderedManifest(ResourceKey.of(bad), bad, "bad.yaml"), cm("good-2")]
    result = Syncer(kube).sync(app_for(namespace), manifests, revision="r1")
    assert not result.succeeded and result.phase == "Failed"
    by_name = {r.key.name: r for r in result.results}
    assert by_name["bad"].code == ResultCode.SYNC_FAILED and "NoSuchType" in by_name["bad"].message
    assert (
        by_name["good-1"].code == ResultCode.SYNCED and by_name["good-2"].code == ResultCode.SYNCED
    )
    assert kube.get("v1", "ConfigMap", "good-2", namespace) is not None


def test_prune_respects_ownership_and_opt_out(kube: KubeClient, namespace: str) -> None:
    app = app_for(namespace)
    syncer = Syncer(kube)
    keep_me = cm(
        "keep-me", metadata={"name": "keep-me", "annotations": {"gitsync.dev/prune": "false"}}
    )
    assert syncer.sync(
        app, [cm("a"), cm("stolen"), keep_me, cm("gone-already")], revision="r1"
    ).succeeded
    # someone else takes over "stolen": it no longer carries this app's tracking annotation
    kube.patch(
        "v1",
        "ConfigMap",
        "stolen",
        {"metadata": {"annotations": {"gitsync.dev/tracking": "other/app:/ConfigMap:x/stolen"}}},
        namespace=namespace,
    )
    kube.delete("v1", "ConfigMap", "gone-already", namespace)
    result = syncer.sync(app, [cm("a")], revision="r2", prune=True)
    by_name = {r.key.name: r for r in result.results}
    assert (
        by_name["stolen"].code == ResultCode.PRUNE_SKIPPED
        and "not owned" in by_name["stolen"].message
    )
    assert by_name["keep-me"].code == ResultCode.PRUNE_SKIPPED
    assert by_name["gone-already"].code == ResultCode.PRUNED
    assert kube.get("v1", "ConfigMap", "stolen", namespace) is not None
    assert kube.get("v1", "ConfigMap", "keep-me", namespace) is not None
    inventory = {k.name for k in Inventory(kube, namespace, app.name).load()}
    assert inventory == {"a", "keep-me"}  # not-owned objects leave the inventory; opted-out stay


def test_an_object_with_a_matching_name_but_not_applied_by_us_is_never_pruned(
    kube: KubeClient, namespace: str
) -> None:
    app = app_for(namespace)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "theirs", "namespace": namespace},
        }
    )
    syncer = Syncer(kube)
    assert syncer.sync(app, [cm("ours")], revision="r1").succeeded
    result = syncer.sync(app, [cm("ours")], revision="r2", prune=True)
    assert "theirs" not in codes(result)
    assert kube.get("v1", "ConfigMap", "theirs", namespace) is not None


def test_prune_without_prune_policy_keeps_extraneous_in_inventory(
    kube: KubeClient, namespace: str
) -> None:
    app = app_for(namespace, prune=False)
    syncer = Syncer(kube)
    syncer.sync(app, [cm("a"), cm("b")], revision="r1")
    result = syncer.sync(app, [cm("a")], revision="r2")
    assert "b" not in codes(result)
    assert kube.get("v1", "ConfigMap", "b", namespace) is not None
    comparison = syncer.compare(app, [cm("a")])
    assert {k.name for k in comparison.extraneous} == {"b"}
    assert not comparison.in_sync


def test_crd_is_established_before_its_custom_resources(kube: KubeClient, namespace: str) -> None:
    group = f"t{secrets.token_hex(3)}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": "Widget",
                "plural": "widgets",
                "singular": "widget",
                "listKind": "WidgetList",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    manifests = [
        RenderedManifest(ResourceKey.of(widget), widget, "w.yaml"),
        RenderedManifest(ResourceKey.of(crd), crd, "crd.yaml"),
    ]
    # a CRD is cluster-scoped: the built-in default policy refuses it, so the test grants it
    crds = Policy.from_yaml(
        "defaults: {clusterResources: "
        "[{group: apiextensions.k8s.io, kind: CustomResourceDefinition}]}"
    )
    try:
        result = Syncer(kube, policy=crds).sync(app_for(namespace), manifests, revision="r1")
        assert result.succeeded, result.results
        assert kube.get(f"{group}/v1", "Widget", "w1", namespace) is not None
    finally:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")


def test_helm_test_hooks_are_not_applied(kube: KubeClient, namespace: str) -> None:
    hook = cm("hook-test", metadata={"name": "hook-test", "annotations": {"helm.sh/hook": "test"}})
    manifests = [
        cm("normal"),
        RenderedManifest(hook.key, hook.obj, "helm:templates/test.yaml", hook="test"),
    ]
    result = Syncer(kube).sync(app_for(namespace), manifests, revision="r1")
    assert codes(result) == {"normal": ResultCode.SYNCED}
    assert kube.get("v1", "ConfigMap", "hook-test", namespace) is None
