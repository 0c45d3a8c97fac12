"""How gitsync marks what it owns, and prepares a manifest for server-side apply.

Ownership is proved twice before anything is deleted: the object is in the app's inventory
(``gitsync.sync.inventory``) *and* its ``gitsync.dev/tracking`` annotation names this app and this
exact object (app namespace/name plus group/kind/namespace/name, so a copied manifest with the
annotation but another name or kind does not count). An object whose annotation is missing or
names someone else is never pruned, even if its name matches.

Objects Argo CD deployed carry its tracking instead: the annotation
``argocd.argoproj.io/tracking-id`` (``<app>:<group>/<kind>:<namespace>/<name>``, ``<app>`` being
``<argocd-namespace>_<name>`` for apps outside Argo's namespace) or the legacy label
``app.kubernetes.io/instance: <app>``. gitsync adopts such an object - a server-side apply with
``force``, so field ownership moves and the object is never deleted - when the Argo CD app has
the gitsync Application's name (the migration: same app, new controller). An object Argo tracked
for a *differently named* app is someone else's: ``argo_claim`` names that app and the syncer
treats the object as shared (taken over only when the operator allows it). On adoption the
syncer drops the managedFields entries of Argo's field manager (``ARGO_FIELD_MANAGER``), so
gitsync alone owns the fields and a field Git later removes is removed. Argo's tracking
never makes an object prunable: only gitsync's inventory and annotation do.

``prepare`` also works around a kube-apiserver 1.20 server-side-apply bug: list entries of
``ports`` in Services and containers are keyed by (port, protocol), and an entry without
``protocol`` fails with "associative list with keys has an element that omits key field
protocol". The server would default it to TCP anyway, so setting it explicitly changes nothing
else (and makes the same manifests work on every version).
"""

from __future__ import annotations

from typing import Any

from gitsync.model import ResourceKey
from gitsync.render import copy_object

TRACKING_ANNOTATION = "gitsync.dev/tracking"
ARGO_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE_LABEL = "app.kubernetes.io/instance"
MAX_ARGO_TRACKING_CHARS = 1024
ARGO_FIELD_MANAGER = "argocd-controller"
"""The field manager Argo CD's application controller writes with (client- and server-side)."""


def tracking_id(app: str, key: ResourceKey) -> str:
    """``<app-namespace>/<app-name>:<group>/<kind>:<namespace>/<name>``."""
    return f"{app}:{key.group}/{key.kind}:{key.namespace}/{key.name}"


def owned_by(live: dict[str, Any], app: str, key: ResourceKey) -> bool:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return annotations.get(TRACKING_ANNOTATION) == tracking_id(app, key)


def tracked_by(live: dict[str, Any]) -> str:
    """The app (``<namespace>/<name>``) the object's tracking annotation names; "" if none."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(TRACKING_ANNOTATION)
    if not isinstance(value, str):
        return ""
    return value.partition(":")[0]


def argo_tracking_app(value: object, key: ResourceKey) -> str:
    """The Argo CD app (its name) an ``argocd.argoproj.io/tracking-id`` value names for the
    object ``key``; "" when it is malformed or names another object (a copied annotation:
    Argo CD does not count it either)."""
    if not isinstance(value, str) or len(value) > MAX_ARGO_TRACKING_CHARS:
        return ""
    app, sep, rest = value.partition(":")
    group_kind, sep2, namespaced_name = rest.partition(":")
    if not (app and sep and sep2):
        return ""
    group, _, kind = group_kind.partition("/")
    namespace, _, name = namespaced_name.rpartition("/")
    if (group, kind, namespace, name) != (key.group, key.kind, key.namespace, key.name):
        return ""
    return app.rpartition("_")[2]  # "<argocd-namespace>_<name>": app names have no "_"


def argo_managers(live: dict[str, Any]) -> bool:
    """Whether Argo CD's field manager still owns fields of ``live``."""
    fields = (live.get("metadata") or {}).get("managedFields")
    return isinstance(fields, list) and any(
        isinstance(m, dict) and m.get("manager") == ARGO_FIELD_MANAGER for m in fields
    )


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def argo_claim(
    live: dict[str, Any], desired: dict[str, Any], key: ResourceKey, app_name: str
) -> str:
    """The Argo CD app that tracks ``live`` when it is not ``app_name`` (the gitsync
    Application's name), else "". The instance label counts only when the render does not set
    the same value itself (Helm charts set it to their release name)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(ARGO_TRACKING_ANNOTATION) if isinstance(annotations, dict) else None
    if raw is not None:
        argo_app = argo_tracking_app(raw, key)
    else:
        label = _labels(live).get(ARGO_INSTANCE_LABEL)
        mine = _labels(desired).get(ARGO_INSTANCE_LABEL)
        argo_app = label if isinstance(label, str) and label != mine else ""
    return argo_app if argo_app and argo_app != app_name else ""


def other_owner(
    live: dict[str, Any], desired: dict[str, Any], key: ResourceKey, *, app: str, app_name: str
) -> str:
    """Who else owns ``live``: the gitsync app (``ns/name``) its tracking names if not ``app``,
    else the Argo CD app that claims it (``argo_claim``), "" when nobody else does."""
    owner = tracked_by(live)
    if owner:
        return "" if owner == app else owner
    argo = argo_claim(live, desired, key, app_name)
    return f"{argo} (Argo CD)" if argo else ""


def _default_port_protocols(ports: Any) -> None:
    if isinstance(ports, list):
        for port in ports:
            if isinstance(port, dict) and "protocol" not in port:
                port["protocol"] = "TCP"


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    kind = obj.get("kind")
    if kind == "Pod":
        return [spec]
    template = spec.get("template")
    if kind == "CronJob":
        job_template = spec.get("jobTemplate")
        job_spec = job_template.get("spec") if isinstance(job_template, dict) else None
        template = job_spec.get("template") if isinstance(job_spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return [template["spec"]]
    return []


def prepare(
    obj: dict[str, Any], *, app: str, namespaced: bool, default_namespace: str
) -> tuple[ResourceKey, dict[str, Any]]:
    """A copy of ``obj`` ready to apply: namespace resolved, tracking annotation set, port
    protocols explicit. Returns the object's final key with it."""
    out: dict[str, Any] = copy_object(obj)  # parsed YAML/JSON: the cheap deep copy
    meta = out.setdefault("metadata", {})
    if namespaced:
        if not meta.get("namespace"):
            meta["namespace"] = default_namespace
    else:
        meta.pop("namespace", None)
    key = ResourceKey.of(out)
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[TRACKING_ANNOTATION] = tracking_id(app, key)
    if out.get("kind") == "Service" and isinstance(out.get("spec"), dict):
        _default_port_protocols(out["spec"].get("ports"))
    for pod_spec in _pod_specs(out):
        for field in ("containers", "initContainers"):
            for container in pod_spec.get(field) or []:
                if isinstance(container, dict):
                    _default_port_protocols(container.get("ports"))
    return key, out
