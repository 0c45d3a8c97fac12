"""Taking over what Argo CD deployed, and Argo CD's annotations on main resources, on the real
control plane: objects another field manager created with Argo CD's tracking (annotation or
instance label) are adopted in place - no DELETE in the API server's audit log, same UIDs,
gitsync owning the fields, a Deployment keeping its ReplicaSet; what Argo tracked but Git does
not render is not pruned; an object Argo deployed for an app of another name is left alone;
``argocd.argoproj.io/sync-wave`` orders the writes; ``IgnoreExtraneous`` keeps the app Synced."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from gitsync.application import parse_application
from gitsync.kube import KubeClient
from gitsync.model import ResourceKey, ResultCode
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer
from gitsync.sync.tracking import TRACKING_ANNOTATION
from tests.support.audit import AuditLog
from tests.support.manifests import web_deployment
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
INSTANCE = "app.kubernetes.io/instance"


def app_named(namespace: str, name: str) -> Any:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True}},
            },
        }
    )


def config_map(name: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


def as_argo_deployed(obj: dict[str, Any], namespace: str, *, tracking: str = "") -> dict[str, Any]:
    """``obj`` as Argo CD would have left it: its tracking annotation (or the instance label when
    ``tracking`` is "label"), in ``namespace``."""
    out = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    if tracking == "label":
        out["metadata"]["labels"] = {INSTANCE: "web"}
    else:
        annotations = dict(out["metadata"].get("annotations") or {})
        annotations[ARGO_TRACKING] = tracking
        out["metadata"]["annotations"] = annotations
    return out


def manifest(obj: dict[str, Any]) -> RenderedManifest:
    return RenderedManifest(ResourceKey.of(obj), obj, "test.yaml")


def uid(kube: KubeClient, api_version: str, kind: str, name: str, namespace: str) -> str:
    live = kube.get(api_version, kind, name, namespace)
    assert live is not None, f"{kind} {name} is gone"
    return str(live["metadata"]["uid"])


def managers(live: dict[str, Any]) -> dict[str, str]:
    """field manager -> the JSON of the fields it owns."""
    return {
        str(m["manager"]): json.dumps(m.get("fieldsV1", {}))
        for m in live["metadata"].get("managedFields", [])
    }


def replica_sets(kube: KubeClient, namespace: str) -> set[str]:
    return {rs["metadata"]["uid"] for rs in kube.list("apps/v1", "ReplicaSet", namespace)["items"]}


def pods(kube: KubeClient, namespace: str) -> set[str]:
    return {p["metadata"]["uid"] for p in kube.list("v1", "Pod", namespace)["items"]}


def settled_writes(audit: AuditLog, since: int, namespace: str, kube: KubeClient) -> list[Any]:
    """The writes in ``namespace`` since ``since``, once a marker written last has reached the
    (asynchronously written) audit log - the positive control of "no DELETE"."""
    marker = f"marker-{secrets.token_hex(3)}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": marker, "namespace": namespace},
        },
        field_manager="test",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        writes = [w for w in audit.writes(since) if w.namespace == namespace]
        if any(w.name == marker for w in writes):
            return writes
        time.sleep(0.2)
    raise AssertionError("the marker never reached the audit log")


def test_objects_argo_cd_deployed_are_adopted_in_place(
    kube: KubeClient, namespace: str, audit: AuditLog
) -> None:
    tracking_id = f"web:apps/Deployment:{namespace}/web"
    kube.apply(
        as_argo_deployed(web_deployment("nginx:1.25", 1), namespace, tracking=tracking_id),
        field_manager="argocd-controller",
    )
    # Argo CD's default, client-side apply: an Update by its field manager
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        query={"fieldManager": "argocd-controller"},
        body=as_argo_deployed(config_map("settings"), namespace, tracking="label"),
    )
    leftover = f"web:/ConfigMap:{namespace}/leftover"
    kube.apply(
        as_argo_deployed(config_map("leftover"), namespace, tracking=leftover),
        field_manager="kubectl",
    )
    before_rs = wait_for(lambda: replica_sets(kube, namespace), timeout=60, what="a ReplicaSet")
    before_pods = wait_for(lambda: pods(kube, namespace), timeout=60, what="the pod")
    before = {
        name: uid(kube, api, kind, name, namespace)
        for api, kind, name in [
            ("apps/v1", "Deployment", "web"),
            ("v1", "ConfigMap", "settings"),
            ("v1", "ConfigMap", "leftover"),
        ]
    }
    since = audit.mark()

    result = Syncer(kube).sync(
        app_named(namespace, "web"),
        [manifest(web_deployment("nginx:1.25", 1)), manifest(config_map("settings"))],
        revision="r1",
    )

    assert result.succeeded, result.results
    assert {r.key.name: r.code for r in result.results} == {
        "web": ResultCode.SYNCED,
        "settings": ResultCode.SYNCED,
    }
    writes = settled_writes(audit, since, namespace, kube)
    assert not [w for w in writes if w.verb in ("delete", "deletecollection")], writes
    assert before == {
        name: uid(kube, api, kind, name, namespace)
        for api, kind, name in [
            ("apps/v1", "Deployment", "web"),
            ("v1", "ConfigMap", "settings"),
            ("v1", "ConfigMap", "leftover"),  # Argo tracked it, gitsync's inventory does not
        ]
    }
    web = kube.get("apps/v1", "Deployment", "web", namespace)
    settings = kube.get("v1", "ConfigMap", "settings", namespace)
    assert web is not None and settings is not None
    assert web["metadata"]["annotations"][TRACKING_ANNOTATION].startswith(f"{namespace}/web:")
    assert '"f:image"' in managers(web)["gitsync"]  # the fields moved to gitsync
    assert "argocd-controller" not in managers(web)
    assert '"f:k"' in managers(settings)["gitsync"]
    assert "argocd-controller" not in managers(settings)
    adopted = "configured, adopted from argocd-controller"
    assert {r.key.name: r.message for r in result.results} == {"web": adopted, "settings": adopted}
    # same template: no rollout (the Deployment's generation does move: an annotation changed)
    assert replica_sets(kube, namespace) == before_rs
    assert pods(kube, namespace) == before_pods


def test_an_object_argo_cd_deployed_for_another_app_is_left_alone(
    kube: KubeClient, namespace: str
) -> None:
    other = f"billing:/ConfigMap:{namespace}/settings"
    kube.apply(
        as_argo_deployed(config_map("settings"), namespace, tracking=other), field_manager="kubectl"
    )
    changed = config_map("settings") | {"data": {"k": "mine"}}

    result = Syncer(kube).sync(app_named(namespace, "web"), [manifest(changed)], revision="r1")

    refused = result.results[0]
    assert refused.code == ResultCode.SYNC_FAILED
    assert "billing (Argo CD)" in refused.message
    live = kube.get("v1", "ConfigMap", "settings", namespace)
    assert live is not None and live["data"] == {"k": "settings"}
    assert TRACKING_ANNOTATION not in live["metadata"]["annotations"]


def test_argo_sync_waves_order_the_writes(
    kube: KubeClient, namespace: str, audit: AuditLog
) -> None:
    since = audit.mark()
    waves = {"late": "2", "early": "-1", "middle": "0"}
    objs = [config_map(n, **{"argocd.argoproj.io/sync-wave": w}) for n, w in waves.items()]

    result = Syncer(kube).sync(
        app_named(namespace, "waves"), [manifest(o) for o in objs], revision="r1"
    )

    assert result.succeeded, result.results
    assert {r.key.name: r.wave for r in result.results} == {"late": 2, "early": -1, "middle": 0}
    writes = settled_writes(audit, since, namespace, kube)
    applied = [w.name for w in writes if w.name in waves and w.verb == "patch"]
    assert applied == ["early", "middle", "late"]


@pytest.mark.parametrize("ignore_extraneous", [True, False], ids=["ignored", "counted"])
def test_ignore_extraneous_keeps_the_app_synced_with_the_extra_object_present(
    kube: KubeClient, namespace: str, ignore_extraneous: bool
) -> None:
    app = app_named(namespace, "extra")
    extra = (
        config_map("extra", **{"argocd.argoproj.io/compare-options": "IgnoreExtraneous"})
        if ignore_extraneous
        else config_map("extra")
    )
    first = Syncer(kube).sync(app, [manifest(config_map("kept")), manifest(extra)], revision="r1")
    assert first.succeeded, first.results

    comparison = Syncer(kube).compare(app, [manifest(config_map("kept"))])

    assert list(comparison.extraneous) == [ResourceKey("", "ConfigMap", namespace, "extra")]
    assert comparison.in_sync is ignore_extraneous
    assert kube.get("v1", "ConfigMap", "extra", namespace) is not None
