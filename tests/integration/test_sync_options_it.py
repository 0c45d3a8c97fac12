"""Per-resource sync options and shared resources on the real control plane: an immutable Job
template without and with Replace/Force, Prune=false under both prefixes, an unknown option,
SkipDryRunOnMissingResource, and two apps rendering the same ConfigMap (with
FailOnSharedResource: nothing written, as the API server's audit log shows)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import yaml

from gitsync.application import parse_application
from gitsync.application_status import SHARED_RESOURCE_WARNING
from gitsync.controller.controller import ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from gitsync.sync.ordering import WAVE_ANNOTATION
from gitsync.sync.syncer import honours_field_validation
from gitsync.sync.tracking import TRACKING_ANNOTATION
from tests.support.apps import app_status, application, configmap_repo, configmap_value
from tests.support.audit import AuditLog
from tests.support.crds import gadget_crd
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ARGO = "argocd.argoproj.io/sync-options"
OURS = "gitsync.dev/sync-options"


def app_for(
    namespace: str, *options: str, name: str = "", ignore: list[dict[str, Any]] | None = None
) -> Any:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name or f"opt-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True}, "syncOptions": list(options)},
                "ignoreDifferences": ignore or [],
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


def test_validate_false_is_refused_by_name_where_the_server_cannot_honour_it(
    kube: KubeClient, namespace: str
) -> None:
    """The test control plane is Kubernetes 1.20: it ignores ``fieldValidation``, so
    ``Validate=false`` would be accepted and do nothing - the object's SyncFailed says why."""
    version = str(kube.request("GET", "/version")["gitVersion"])
    result = Syncer(kube).sync(
        app_for(namespace), [cm("loose", **{ARGO: "Validate=false"}), cm("strict")], revision="r1"
    )
    loose = result_of(result, "loose")
    if honours_field_validation(version):
        assert loose.code == ResultCode.SYNCED, loose
    else:
        assert loose.code == ResultCode.SYNC_FAILED
        assert "Validate=false cannot be honoured" in loose.message and version in loose.message
        assert kube.get("v1", "ConfigMap", "loose", namespace) is None
    assert result_of(result, "strict").code == ResultCode.SYNCED


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


def writes_until(audit: AuditLog, since: int, namespace: str, marker: str) -> list[Any]:
    """The writes in ``namespace`` since ``since`` sent with the user agent that wrote
    ``marker`` (the test's client, which the syncer uses too; the controller-manager, which
    fills a new namespace with its ServiceAccount and root CA, is left out), once
    the marker has landed in the log - written asynchronously: the positive control of "no
    write"."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        writes = [w for w in audit.writes(since) if w.namespace == namespace]
        mine = [w for w in writes if w.name == marker]
        if mine:
            return [w for w in writes if w.user_agent == mine[0].user_agent]
        time.sleep(0.2)
    raise AssertionError(f"the write of {marker} never reached the audit log")


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
    writes = writes_until(audit, since, namespace, "marker")
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


# -- shared resources through `gitsync serve` ------------------------------------------------


def shared_config_repo(git_server: GitServer) -> GitRepo:
    """A second repository that renders the ConfigMap ``config`` of ``configmap_repo``, with
    another value."""
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}
    return git_server.create_repo(
        f"shared-{secrets.token_hex(3)}",
        files={"app/cm.yaml": yaml.safe_dump({**obj, "data": {"value": "theirs"}})},
    )


def tracked_by_app(kube: KubeClient, namespace: str) -> str:
    live = kube.get("v1", "ConfigMap", "config", namespace) or {}
    return str((live.get("metadata") or {}).get("annotations", {}).get(TRACKING_ANNOTATION, ""))


def shared_warning(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    conditions = app_status(kube, namespace, name).get("conditions") or []
    return next((c for c in conditions if c.get("type") == SHARED_RESOURCE_WARNING), None)


def config_result(kube: KubeClient, namespace: str, app: str) -> dict[str, Any] | None:
    """The ConfigMap ``config``'s result in the app's last sync operation, once there is one."""
    op = app_status(kube, namespace, app).get("operationState") or {}
    return next((r for r in op.get("resources") or () if r.get("name") == "config"), None)


def without_self_heal(name: str, namespace: str, url: str) -> dict[str, Any]:
    """An app that syncs new commits but does not revert drift (no fight over the object)."""
    return application(name, namespace, url, syncPolicy={"automated": {"prune": True}})


@pytest.mark.parametrize("takeover", [False, True], ids=["default", "takeover-allowed"])
def test_serve_reports_a_shared_config_map_and_takes_it_over_only_when_allowed(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, takeover: bool
) -> None:
    first_repo, second_repo = configmap_repo(git_server), shared_config_repo(git_server)
    serve(*(["--allow-shared-resource-takeover"] if takeover else []))
    kube.create(without_self_heal("first", namespace, first_repo.file_url()))
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=60, what="first's sync")
    kube.create(application("second", namespace, second_repo.file_url()))
    if takeover:
        wait_for(
            lambda: tracked_by_app(kube, namespace).startswith(f"{namespace}/second:"),
            timeout=60,
            what="the takeover",
        )
        assert configmap_value(kube, namespace) == "theirs"
        taken = wait_for(
            lambda: config_result(kube, namespace, "second"), timeout=30, what="second's result"
        )
        assert taken["status"] == "Synced"
        assert f"taken over from Application {namespace}/first" in taken["message"]
        return
    condition = wait_for(
        lambda: shared_warning(kube, namespace, "second"), timeout=60, what="second's warning"
    )
    assert f"tracked by Application {namespace}/first" in condition["message"]
    refused = wait_for(
        lambda: config_result(kube, namespace, "second"), timeout=60, what="second's result"
    )
    assert refused["status"] == "SyncFailed"
    assert "--allow-shared-resource-takeover" in refused["message"]
    assert configmap_value(kube, namespace) == "v1"
    assert tracked_by_app(kube, namespace).startswith(f"{namespace}/first:")


# -- PruneLast per resource, RespectIgnoreDifferences, PrunePropagationPolicy ----------------


def waved(name: str, wave: int, **annotations: str) -> RenderedManifest:
    return cm(name, **{WAVE_ANNOTATION: str(wave), **annotations})


@pytest.mark.parametrize("own_prune_last", [False, True], ids=["in-its-wave", "prune-last"])
def test_an_object_s_own_prune_last_is_pruned_after_every_wave(
    kube: KubeClient, namespace: str, own_prune_last: bool
) -> None:
    app = app_for(namespace)
    syncer = Syncer(kube, poll_interval=0.1)
    leaving = waved("leaving", 0, **({ARGO: "PruneLast=true"} if own_prune_last else {}))
    assert syncer.sync(app, [leaving, waved("stays", 0)], revision="r1").succeeded
    result = syncer.sync(app, [waved("stays", 0), waved("late", 5)], revision="r2")
    order = [r.key.name for r in result.results if r.key.name in ("leaving", "late")]
    assert result_of(result, "leaving").code == ResultCode.PRUNED
    assert order == (["late", "leaving"] if own_prune_last else ["leaving", "late"])


@pytest.mark.parametrize("respect", [False, True], ids=["as-git-says", "respected"])
def test_respect_ignore_differences_keeps_an_ignored_field_s_live_value(
    kube: KubeClient, namespace: str, respect: bool
) -> None:
    app = app_for(
        namespace,
        f"RespectIgnoreDifferences={str(respect).lower()}",
        ignore=[{"kind": "ConfigMap", "jsonPointers": ["/data/k"]}],
    )
    syncer = Syncer(kube)
    assert syncer.sync(app, [cm("tuned")], revision="r1").succeeded
    kube.patch(
        "v1",
        "ConfigMap",
        "tuned",
        {"data": {"k": "tuned-live"}},
        namespace=namespace,
        field_manager="operator",
    )
    changed = cm("tuned")
    changed.obj["data"] = {"k": "tuned", "other": "new"}  # a change elsewhere forces a write
    assert syncer.sync(app, [changed], revision="r2").succeeded
    live = kube.get("v1", "ConfigMap", "tuned", namespace)
    assert live is not None and live["data"]["other"] == "new"
    assert live["data"]["k"] == ("tuned-live" if respect else "tuned")


def test_prune_propagation_policy_orphan_keeps_the_dependents(
    kube: KubeClient, namespace: str
) -> None:
    """A ConfigMap owned (ownerReference) by a pruned ConfigMap: the garbage collector deletes it
    with the default policy, and leaves it with ``PrunePropagationPolicy=orphan``."""
    results = {}
    for policy in ("background", "orphan"):
        app = app_for(namespace, f"PrunePropagationPolicy={policy}")
        syncer = Syncer(kube)
        owner_name, child_name = f"owner-{policy}", f"child-{policy}"
        assert syncer.sync(app, [cm(owner_name)], revision="r1").succeeded
        owner = kube.get("v1", "ConfigMap", owner_name, namespace)
        assert owner is not None
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": child_name,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "name": owner_name,
                            "uid": owner["metadata"]["uid"],
                        }
                    ],
                },
            },
            namespace=namespace,
        )
        pruned = syncer.sync(app, [cm(f"keep-{policy}")], revision="r2")
        assert result_of(pruned, owner_name).code == ResultCode.PRUNED
        results[policy] = child_name
    wait_for(
        lambda: kube.get("v1", "ConfigMap", results["background"], namespace) is None,
        timeout=60,
        what="the garbage collector deleting the background prune's dependent",
    )
    orphan = kube.get("v1", "ConfigMap", results["orphan"], namespace)
    assert orphan is not None and not orphan["metadata"].get("ownerReferences")
