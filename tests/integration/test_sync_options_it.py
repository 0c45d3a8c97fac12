"""Per-resource sync options and shared resources on the real control plane: an immutable Job
template without and with Replace/Force, Prune=false under both prefixes, an unknown option,
SkipDryRunOnMissingResource, and two apps rendering the same ConfigMap (with
FailOnSharedResource: nothing written, as the API server's audit log shows)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from gitsync.application import parse_application
from gitsync.controller.controller import ensure_crd
from gitsync.kube import KubeClient
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from gitsync.sync.tracking import TRACKING_ANNOTATION
from tests.support.audit import AuditLog
from tests.support.crds import gadget_crd

pytestmark = pytest.mark.integration

ARGO = "argocd.argoproj.io/sync-options"
OURS = "gitsync.dev/sync-options"


def app_for(namespace: str, *options: str, name: str = "") -> Any:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name or f"opt-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True}, "syncOptions": list(options)},
            },
        }
    )


def manifest(obj: dict[str, Any]) -> RenderedManifest:
    return RenderedManifest(ResourceKey.of(obj), obj, "test.yaml")


def cm(name: str, **annotations: str) -> RenderedManifest:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}
    )


def job(command: str, **annotations: str) -> RenderedManifest:
    return manifest(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "annotations": annotations},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "m", "image": "busybox", "command": [command]}],
                    }
                },
            },
        }
    )


def result_of(result: Any, name: str) -> Any:
    return next(r for r in result.results if r.key.name == name)


def command_of(kube: KubeClient, namespace: str) -> tuple[str, str]:
    live = kube.get("batch/v1", "Job", "migrate", namespace)
    assert live is not None
    container = live["spec"]["template"]["spec"]["containers"][0]
    return live["metadata"]["uid"], container["command"][0]


# -- immutable fields: Replace / Force -------------------------------------------------------


def test_an_immutable_change_without_replace_or_force_fails_naming_the_field(
    kube: KubeClient, namespace: str
) -> None:
    app = app_for(namespace)
    syncer = Syncer(kube)
    assert syncer.sync(app, [job("v1")], revision="r1").succeeded
    uid, _ = command_of(kube, namespace)
    result = syncer.sync(app, [job("v2")], revision="r2")
    failed = result_of(result, "migrate")
    assert failed.code == ResultCode.SYNC_FAILED
    assert "spec.template" in failed.message and "field is immutable" in failed.message
    assert "Replace=true or Force=true" in failed.message
    assert command_of(kube, namespace) == (uid, "v1")


@pytest.mark.parametrize(
    ("annotations", "app_options"),
    [
        ({ARGO: "Replace=true"}, ()),
        ({OURS: "Force=true"}, ()),
        ({ARGO: "Force=true,Replace=true"}, ()),
        ({"kustomize.toolkit.fluxcd.io/force": "enabled"}, ()),
        ({}, ("Replace=true",)),
    ],
    ids=["replace", "force", "argo-force-replace", "flux-force", "app-replace"],
)
def test_replace_or_force_re_creates_a_job_whose_template_changed(
    kube: KubeClient, namespace: str, annotations: dict[str, str], app_options: tuple[str, ...]
) -> None:
    app = app_for(namespace, *app_options)
    syncer = Syncer(kube, poll_interval=0.1)
    assert syncer.sync(app, [job("v1", **annotations)], revision="r1").succeeded
    old_uid, _ = command_of(kube, namespace)
    result = syncer.sync(app, [job("v2", **annotations)], revision="r2")
    done = result_of(result, "migrate")
    assert (done.code, done.message) == (ResultCode.SYNCED, "re-created"), done
    uid, command = command_of(kube, namespace)
    assert command == "v2" and uid != old_uid


def test_replace_puts_a_mutable_change_in_place(kube: KubeClient, namespace: str) -> None:
    app = app_for(namespace)
    syncer = Syncer(kube)
    syncer.sync(app, [cm("settings", **{ARGO: "Replace=true"})], revision="r1")
    before = kube.get("v1", "ConfigMap", "settings", namespace)
    assert before is not None
    changed = cm("settings", **{ARGO: "Replace=true"})
    changed.obj["data"] = {"k": "new"}
    result = syncer.sync(app, [changed], revision="r2")
    assert result_of(result, "settings").message == "replaced"
    after = kube.get("v1", "ConfigMap", "settings", namespace)
    assert after is not None and after["data"] == {"k": "new"}
    assert after["metadata"]["uid"] == before["metadata"]["uid"]


# -- prune and per-resource errors ----------------------------------------------------------


@pytest.mark.parametrize("annotation", [ARGO, OURS])
def test_prune_false_keeps_an_object_that_left_git(
    kube: KubeClient, namespace: str, annotation: str
) -> None:
    app = app_for(namespace)
    syncer = Syncer(kube)
    kept = cm("kept", **{annotation: "Prune=false"})
    assert syncer.sync(app, [kept, cm("gone")], revision="r1").succeeded
    result = syncer.sync(app, [cm("other")], revision="r2")
    assert result_of(result, "kept").code == ResultCode.PRUNE_SKIPPED
    assert "Prune=false" in result_of(result, "kept").message
    assert result_of(result, "gone").code == ResultCode.PRUNED
    assert kube.get("v1", "ConfigMap", "kept", namespace) is not None
    assert kube.get("v1", "ConfigMap", "gone", namespace) is None


def test_an_unknown_option_on_a_resource_fails_that_object_naming_it(
    kube: KubeClient, namespace: str
) -> None:
    result = Syncer(kube).sync(
        app_for(namespace), [cm("odd", **{ARGO: "Frobnicate=true"}), cm("fine")], revision="r1"
    )
    odd = result_of(result, "odd")
    assert (
        odd.code == ResultCode.SYNC_FAILED and "Frobnicate" in odd.message and ARGO in odd.message
    )
    assert result_of(result, "fine").code == ResultCode.SYNCED
    assert kube.get("v1", "ConfigMap", "odd", namespace) is None


def test_skip_dry_run_on_missing_resource_applies_a_kind_served_by_then(
    kube: KubeClient, namespace: str
) -> None:
    """The CRD is not in the sync: someone else creates it between compare and apply. With the
    option the custom resource is created; without it the compare already failed it."""
    group = f"t{secrets.token_hex(3)}.example.com"
    crd = gadget_crd(group)

    def gadget(name: str, **annotations: str) -> RenderedManifest:
        meta: dict[str, Any] = {"name": name, "annotations": annotations}
        return manifest({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": meta})

    app = app_for(namespace)
    syncer = Syncer(kube)
    skipping = [gadget("g1", **{ARGO: "SkipDryRunOnMissingResource=true"})]
    comparison = syncer.compare(app, skipping)
    plain = syncer.compare(app, [gadget("g2")])
    assert not comparison.errors and plain.errors
    try:
        ensure_crd(kube, crd)  # applied, then waited for until Established
        result = syncer.sync(app, skipping, revision="r1", comparison=comparison)
        assert result.succeeded, result.results
        assert kube.get(f"{group}/v1", "Gadget", "g1", namespace) is not None
        failed = syncer.sync(app, [gadget("g2")], revision="r2", comparison=plain)
        assert result_of(failed, "g2").code == ResultCode.SYNC_FAILED
    finally:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"gadgets.{group}")


# -- shared resources -----------------------------------------------------------------------


def test_a_config_map_another_app_tracks_is_reported_shared_and_left_alone(
    kube: KubeClient, namespace: str
) -> None:
    first, second = app_for(namespace, name="first"), app_for(namespace, name="second")
    assert Syncer(kube).sync(first, [cm("common")], revision="r1").succeeded
    comparison = Syncer(kube).compare(second, [cm("common")])
    assert comparison.shared == {
        ResourceKey("", "ConfigMap", namespace, "common"): f"{namespace}/first"
    }
    result = Syncer(kube).sync(second, [cm("common")], revision="r1", comparison=comparison)
    refused = result_of(result, "common")
    assert refused.code == ResultCode.SYNC_FAILED and f"{namespace}/first" in refused.message
    live = kube.get("v1", "ConfigMap", "common", namespace)
    assert live is not None
    assert live["metadata"]["annotations"][TRACKING_ANNOTATION].startswith(f"{namespace}/first:")

    taken = Syncer(kube, allow_shared_takeover=True).sync(second, [cm("common")], revision="r2")
    assert result_of(taken, "common").code == ResultCode.SYNCED
    assert f"taken over from Application {namespace}/first" in result_of(taken, "common").message
    live = kube.get("v1", "ConfigMap", "common", namespace)
    assert live is not None
    assert live["metadata"]["annotations"][TRACKING_ANNOTATION].startswith(f"{namespace}/second:")


def wait_for_write(audit: AuditLog, since: int, namespace: str, name: str) -> list[Any]:
    """The writes in ``namespace`` since ``since``, once the write of ``name`` has landed in
    the log (the API server writes it asynchronously): a positive control for "no write"."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        writes = [w for w in audit.writes(since, include_dry_run=False) if w.namespace == namespace]
        if any(w.name == name for w in writes):
            return writes
        time.sleep(0.2)
    raise AssertionError(f"the write of {name} never reached the audit log")


def test_fail_on_shared_resource_fails_the_sync_before_any_write(
    kube: KubeClient, namespace: str, audit: AuditLog
) -> None:
    first = app_for(namespace, name="first")
    second = app_for(namespace, "FailOnSharedResource=true", name="second")
    assert Syncer(kube).sync(first, [cm("common")], revision="r1").succeeded
    since = audit.mark()
    result = Syncer(kube, allow_shared_takeover=True).sync(
        second, [cm("fresh"), cm("common")], revision="r1"
    )
    assert not result.succeeded and "FailOnSharedResource" in result.message
    assert result_of(result, "common").code == ResultCode.SYNC_FAILED
    kube.apply(
        cm("marker").obj | {"metadata": {"name": "marker", "namespace": namespace}},
        field_manager="test",
    )
    writes = wait_for_write(audit, since, namespace, "marker")
    assert [(w.resource, w.name) for w in writes] == [("configmaps", "marker")]
    assert kube.get("v1", "ConfigMap", "fresh", namespace) is None


def test_cluster_scoped_policy_is_untouched_by_options(kube: KubeClient, namespace: str) -> None:
    """A sync option never widens the destination policy: Replace=true on a Namespace the
    default policy refuses is still refused."""
    ns = manifest(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": f"x-{secrets.token_hex(3)}",
                "annotations": {ARGO: "Replace=true"},
            },
        }
    )
    result = Syncer(kube, policy=Policy()).sync(app_for(namespace), [ns], revision="r1")
    assert result.results[0].code == ResultCode.SYNC_FAILED
    assert "denied by destination policy" in result.results[0].message
