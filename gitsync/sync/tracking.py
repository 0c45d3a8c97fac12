"""How gitsync marks what it owns, and prepares a manifest for server-side apply.

Ownership is proved twice before anything is deleted: the object is in the app's inventory
(``gitsync.sync.inventory``) *and* its ``gitsync.dev/tracking`` annotation names this app and this
exact object (app namespace/name plus group/kind/namespace/name, so a copied manifest with the
annotation but another name or kind does not count). An object whose annotation is missing or
names someone else is never pruned, even if its name matches.

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
