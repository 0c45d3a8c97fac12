"""The resource tree of an Application: each object it manages with the live objects it owns.

A pure function (``build_tree``: objects in, JSON document out) so that the linking rules are
table-tested without a cluster; ``gitsync.controller.live_tree`` gathers the objects from the
watch cache and calls it.

Linking follows what Kubernetes garbage collection follows: a child hangs under the object whose
``metadata.uid`` its controller ``ownerReference`` names, in the same namespace (an owner
reference never crosses namespaces). A name alone never links - a Pod whose owner reference
carries another UID (a ReplicaSet deleted and re-created under the same name) is not attached
to the new one. The one exception is ``Endpoints``, which Kubernetes itself pairs with its
Service by namespace and name and which carries no owner reference.

gitsync's own ``Rollout`` (``gitsync.rollout``): its canary (or blue-green preview) Deployment
is owned by the Rollout's UID and shows under it; each ReplicaSet and Pod gets a ``role`` -
``canary`` / ``preview`` from the ``rollouts.gitsync.dev/role`` label the rollout puts on its
pods, and ``stable`` (canary strategy) or ``active`` (blue-green) below the Deployment a Rollout
of the same app names in ``spec.targetRef``.

Bounded by construction: at most ``MAX_CHILDREN`` children per node (the rest counted in
``more``), ``MAX_DEPTH`` levels, ``MAX_NODES`` nodes in all, every text cut to a length.
Orphans - objects in the app's namespaces that carry its tracking annotation but are not in its
status (no longer in Git), or that no known object owns - are listed only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitsync import health, kinds
from gitsync.model import ResourceKey
from gitsync.rollout.math import HASH_LABEL, ROLE_LABEL
from gitsync.sync.tracking import tracked_by

MAX_CHILDREN = 500
"""Children shown under one node; the rest are counted (``more``)."""
MAX_DEPTH = 6
MAX_NODES = 20_000
MAX_TEXT = 512

POD_TEMPLATE_HASH = "pod-template-hash"
SHOWN_LABELS = (ROLE_LABEL, HASH_LABEL, POD_TEMPLATE_HASH)
"""The labels a node carries into the document: those that tell a rollout's sides apart."""
WORKLOAD_KINDS = frozenset({"Pod", "ReplicaSet", "Job", "Deployment"})
"""Kinds whose objects count as orphans when nothing owns them (a loose Pod, a ReplicaSet whose
Deployment is gone); of any other kind only what carries the app's tracking is an orphan."""
HIDDEN_KINDS = frozenset({"ControllerRevision"})
"""Owned by StatefulSets and DaemonSets, but history, not something that runs."""


@dataclass(frozen=True)
class ManagedObject:
    """One object of the app's status (in Git): its sync status, the health the reconciler
    recorded, and its live state (None when it does not exist or is not watched)."""

    key: ResourceKey
    sync: str
    health: str
    health_message: str
    live: Mapping[str, Any] | None


def _map(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # the usual case, without the ABC check (a tree reads ~50,000 fields)
        return value
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object, limit: int = MAX_TEXT) -> str:
    if type(value) is str:
        text = value
    elif value is None or isinstance(value, Mapping | list):
        return ""
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _uid(obj: Mapping[str, Any]) -> str:
    return _text(_map(obj.get("metadata")).get("uid"), 64)


def _namespace(obj: Mapping[str, Any]) -> str:
    return _text(_map(obj.get("metadata")).get("namespace"), 253)


def owner_uid(obj: Mapping[str, Any]) -> str:
    """The UID of the object's owner: its controller reference, else its first reference."""
    refs = [_map(r) for r in _list(_map(obj.get("metadata")).get("ownerReferences"))]
    if not refs:
        return ""
    ref = next((r for r in refs if r.get("controller") is True), refs[0])
    return _text(ref.get("uid"), 64)


def age(created: str, now: datetime) -> str:
    """How long ago ``created`` (RFC 3339) was, as kubectl prints it: ``45s``, ``12m``, ``3h``,
    ``5d``; "" when it is not a timestamp."""
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def pod_summary(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Phase, ready containers (``1/2``), restarts, and why it is not ready: a container's
    waiting or terminated reason (``CrashLoopBackOff``, ``ImagePullBackOff``, ``Error``), else
    the Ready condition's reason, else the pod's own (``Evicted``)."""
    spec, status = _map(pod.get("spec")), _map(pod.get("status"))
    statuses = [_map(s) for s in _list(status.get("containerStatuses"))]
    init_statuses = [_map(s) for s in _list(status.get("initContainerStatuses"))]
    total = len(_list(spec.get("containers"))) or len(statuses)
    ready = sum(1 for s in statuses if s.get("ready") is True)
    restarts = sum(_int(s.get("restartCount")) for s in statuses + init_statuses)
    conditions = [_map(c) for c in _list(status.get("conditions"))]
    ready_condition = next((c for c in conditions if c.get("type") == "Ready"), {})
    reason = ""
    if ready_condition.get("status") != "True" and status.get("phase") != "Succeeded":
        for s in init_statuses + statuses:
            state = _map(s.get("state"))
            why = _map(state.get("waiting")).get("reason") or _map(state.get("terminated")).get(
                "reason"
            )
            if why and why not in ("PodInitializing", "Completed"):
                reason = _text(why, 128)
                break
        reason = reason or _text(ready_condition.get("reason") or status.get("reason"), 128)
    return {
        "phase": _text(status.get("phase"), 32) or "Pending",
        "ready": f"{ready}/{total}",
        "restarts": restarts,
        "reason": reason,
    }


@dataclass
class _Budget:
    nodes: int = 0


class _Index:
    """The live objects by (namespace, owner UID), and Endpoints by (namespace, name)."""

    def __init__(self, objects: Iterable[Mapping[str, Any]]):
        self.by_owner: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        self.endpoints: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.uids: set[tuple[str, str]] = set()
        self.objects: list[Mapping[str, Any]] = []
        for obj in objects:
            kind = obj.get("kind")
            if kind in HIDDEN_KINDS:
                continue
            self.objects.append(obj)
            ns = _namespace(obj)
            uid = _uid(obj)
            if uid:
                self.uids.add((ns, uid))
            if kind == "Endpoints" and obj.get("apiVersion") == "v1":
                name = _text(_map(obj.get("metadata")).get("name"), 253)
                self.endpoints[(ns, name)] = obj
            owner = owner_uid(obj)
            if owner:
                self.by_owner.setdefault((ns, owner), []).append(obj)

    def children(self, obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        ns, uid = _namespace(obj), _uid(obj)
        out = list(self.by_owner.get((ns, uid), ())) if uid else []
        if obj.get("kind") == "Service" and obj.get("apiVersion") == "v1":
            name = _text(_map(obj.get("metadata")).get("name"), 253)
            endpoints = self.endpoints.get((ns, name))
            if endpoints is not None:
                out.append(endpoints)
        return sorted(out, key=_order)


def _order(obj: Mapping[str, Any]) -> tuple[str, str]:
    return (_text(obj.get("kind"), 63), _text(_map(obj.get("metadata")).get("name"), 253))


def _stable_workloads(managed: Sequence[ManagedObject]) -> dict[tuple[str, str], str]:
    """(namespace, Deployment name) -> role, for each Deployment a gitsync Rollout of the app
    targets: ``stable`` for a canary, ``active`` for blue-green."""
    out: dict[tuple[str, str], str] = {}
    for m in managed:
        if not kinds.is_rollout(m.key.group, m.key.kind) or m.live is None:
            continue
        spec = _map(m.live.get("spec"))
        target = _map(spec.get("targetRef"))
        if target.get("kind", "Deployment") != "Deployment":
            continue
        role = "active" if "blueGreen" in _map(spec.get("strategy")) else "stable"
        out[(m.key.namespace, _text(target.get("name"), 253))] = role
    return out


Judge = Callable[[Mapping[str, Any]], health.Health]
"""How a live object's health is judged: ``gitsync.health.assess``, or a memo of it."""


class _Builder:
    def __init__(
        self,
        index: _Index,
        stable: Mapping[tuple[str, str], str],
        now: datetime,
        judge: Judge,
    ):
        self.judge = judge
        self.index = index
        self.stable = stable
        self.now = now
        self.budget = _Budget()
        self.attached: set[int] = set()

    def node(
        self,
        obj: Mapping[str, Any] | None,
        key: ResourceKey,
        *,
        depth: int,
        role: str,
        seen: frozenset[str],
    ) -> dict[str, Any]:
        self.budget.nodes += 1
        meta = _map((obj or {}).get("metadata"))
        labels = _map(meta.get("labels"))
        role = _text(labels.get(ROLE_LABEL), 32) or role
        if key.kind == "Deployment" and not role:
            role = self.stable.get((key.namespace, key.name), "")
        judged = self.judge(obj) if obj is not None else None
        out: dict[str, Any] = {
            "group": _text(key.group, 253),
            "kind": _text(key.kind, 253),
            "namespace": _text(key.namespace, 253),
            "name": _text(key.name, 253),
            "uid": _uid(obj or {}),
            "health": {
                "status": str(judged.status) if judged else "Missing",
                "message": _text(judged.message) if judged else "",
            },
            "createdAt": _text(meta.get("creationTimestamp"), 64),
            "age": age(_text(meta.get("creationTimestamp"), 64), self.now),
            "role": role,
            "labels": {k: _text(labels[k], 63) for k in SHOWN_LABELS if k in labels and role},
            "children": [],
            "more": 0,
        }
        if key.kind == "Pod" and key.group == "" and obj is not None:
            out["pod"] = pod_summary(obj)
        uid = out["uid"]
        if obj is None or depth >= MAX_DEPTH or uid in seen:
            return out
        children = self.index.children(obj)
        room = min(MAX_CHILDREN, max(0, MAX_NODES - self.budget.nodes))
        for child in children[:room]:
            self.attached.add(id(child))
            out["children"].append(
                self.node(
                    child,
                    ResourceKey.of(dict(child)),
                    depth=depth + 1,
                    role=role,
                    seen=seen | {uid},
                )
            )
        out["more"] = max(0, len(children) - room)
        return out


def build_tree(
    managed: Sequence[ManagedObject],
    live: Iterable[Mapping[str, Any]],
    *,
    app: str,
    now: datetime,
    orphans: bool = False,
    judge: Judge = health.assess,
) -> dict[str, Any]:
    """The tree document of app ``app`` (``<namespace>/<name>``).

    ``managed``: the app's objects (its status, in order); ``live``: the objects that may be
    their children or orphans (ReplicaSets, Pods, Jobs, EndpointSlices... of the app's
    namespaces); ``judge`` judges a live object's health. Returns ``{"nodes": [...],
    "orphans": [...] | None, "limits": {...}}``; each node as described in docs/api.md.
    """
    index = _Index(live)
    index.uids.update((m.key.namespace, _uid(m.live)) for m in managed if m.live is not None)
    builder = _Builder(index, _stable_workloads(managed), now, judge)
    nodes = []
    for m in managed[:MAX_NODES]:
        if m.live is not None:
            builder.attached.add(id(m.live))
        node = builder.node(m.live, m.key, depth=0, role="", seen=frozenset())
        node["managed"] = True
        node["sync"] = _text(m.sync, 32) or "Unknown"
        if m.live is None:  # not watched, or gone: the reconciler's judgement is what we have
            node["health"] = {
                "status": _text(m.health, 32) or "Missing",
                "message": _text(m.health_message),
            }
        nodes.append(node)
    document: dict[str, Any] = {
        "nodes": nodes,
        "orphans": None,
        "limits": {"childrenPerNode": MAX_CHILDREN, "depth": MAX_DEPTH, "nodes": MAX_NODES},
    }
    if orphans:
        document["orphans"] = _orphans(builder, managed, app)
    return document


def _orphans(builder: _Builder, managed: Sequence[ManagedObject], app: str) -> list[Any]:
    """Objects not attached under a managed one that carry the app's tracking (gone from Git),
    or workloads whose owner is not a known object (a child of nothing) and that no other app
    tracks, each with its own children."""
    index = builder.index
    keys = {m.key for m in managed}
    roots = []
    for obj in index.objects:
        if id(obj) in builder.attached:
            continue
        key = ResourceKey.of(dict(obj))
        owner = owner_uid(obj)
        tracker = tracked_by(dict(obj))
        tracked = tracker == app and key not in keys
        parentless = (
            key.kind in WORKLOAD_KINDS
            and not tracker  # another app's object is that app's business
            and (not owner or (key.namespace, owner) not in index.uids)
        )
        if tracked or parentless:
            roots.append(obj)
    out = []
    for obj in sorted(roots, key=_order)[:MAX_CHILDREN]:
        if builder.budget.nodes >= MAX_NODES:
            break
        node = builder.node(obj, ResourceKey.of(dict(obj)), depth=0, role="", seen=frozenset())
        node["managed"] = False
        out.append(node)
    return out
