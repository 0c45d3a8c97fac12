"""``spec.dependsOn``: whether an Application's dependencies are Ready, and dependency cycles.

Flux orders Kustomizations this way; gitsync does it for Applications. A dependency is *Ready at
its current revision* when its last reconcile saw the spec it has now (``observedGeneration``), no
sync operation of it is running, its Ready condition is True (Synced and Healthy) and - when it
follows the same repository and revision as the dependent - it is Synced at the very commit the
dependent is about to deploy. The last rule is Flux's too: a push that changes both a database and
the API needing it reaches the API only once the database is Healthy at that commit, not while the
database still shows Healthy at the commit before.

Everything here is pure and reads Applications as the store holds them (plain dicts, read
tolerantly: a dependency with an invalid spec is its own problem; only its status matters here).
The reconciler asks ``waits`` before an automated sync and ``find_cycle`` before anything else;
the controller keeps a ``DependentsIndex`` and queues the dependents of an Application whose
readiness changed, so a waiting app costs nothing until its dependency moves (no polling).

Tenancy: projects are namespaces. A dependency in another namespace is allowed (a shared platform
app, as in Flux) but only its readiness is read: the wait says ``not Ready`` whatever the reason
and whether or not the app exists - one bit, never another team's health messages or revisions.
``gitsync serve --no-cross-namespace-refs`` (Flux's flag) makes such an entry a spec error. A
cycle's message names the apps on it that are in the app's own namespace or that it declared
itself; any other shows only its namespace.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gitsync.application import MAX_DEPENDENCIES, Application
from gitsync.application_status import READY, ApplicationStatus, DependencyWait
from gitsync.model import AppKey
from gitsync.source import normalize_url

NOT_READY = "not Ready"
"""The one reason shown for a dependency in another namespace (see the module docstring)."""
MAX_REASON = 256
MAX_CYCLE_SEARCH = 10_000
"""Applications a cycle search visits at most (each once): bounds a pass over a huge graph."""

Lookup = Callable[[AppKey], Mapping[str, Any] | None]
SourceKey = tuple[str, str]  # normalized repoURL, targetRevision


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _short(revision: str) -> str:
    return revision if "@" in revision else revision[:12]


def _git_source(url: object, target: object) -> SourceKey | None:
    if not isinstance(url, str) or not url or url.lower().startswith("oci://"):
        return None
    if not isinstance(target, str):
        return None
    try:
        return normalize_url(url), target or "HEAD"
    except ValueError:
        return None


def source_key(spec: Mapping[str, Any]) -> SourceKey | None:
    """The Git repository and ``targetRevision`` a one-source Application follows (None for
    ``spec.sources``, a chart, or an unreadable source): two apps with the same key resolve the
    same commit."""
    source = _map(spec.get("source"))
    if spec.get("sources") is not None or source.get("chart"):
        return None
    return _git_source(source.get("repoURL"), source.get("targetRevision") or "HEAD")


def app_source_key(app: Application) -> SourceKey | None:
    """``source_key`` of a parsed Application."""
    if app.sources or app.source.is_chart:
        return None
    return _git_source(app.source.repo_url, app.source.target_revision)


def readiness(obj: Mapping[str, Any] | None, follows: tuple[SourceKey, str] | None = None) -> str:
    """Why the Application ``obj`` is not Ready at its current revision ("" when it is).
    ``follows``: the dependent's source and the commit it is about to deploy, which a dependency
    following the same source must be Synced at."""
    if obj is None:
        return "not found"
    meta = _map(obj.get("metadata"))
    if meta.get("deletionTimestamp"):
        return "being deleted"
    status = ApplicationStatus.from_dict(obj.get("status"))
    generation = meta.get("generation")
    if isinstance(generation, int) and status.observed_generation != generation:
        return "its current spec is not reconciled yet"
    op = status.operation_state
    if op is not None and op.phase == "Running":
        return f"syncing revision {_short(op.revision)}"
    ready = status.condition(READY)
    if ready is None:
        return "not reconciled yet"
    if not ready.is_true:
        return ready.reason or NOT_READY
    revision = status.sync.revision if status.sync else ""
    if follows is None or source_key(_map(obj.get("spec"))) != follows[0]:
        return ""
    if revision != follows[1]:
        return f"Ready at {_short(revision)}, not yet at {_short(follows[1])}"
    return ""


def waits(app: Application, lookup: Lookup, revision: str) -> tuple[DependencyWait, ...]:
    """The ``spec.dependsOn`` entries of ``app`` that are not Ready, with why, before it syncs
    ``revision``; ``lookup`` reads an Application (None: there is none)."""
    own = app_source_key(app)
    follows = (own, revision) if own is not None else None
    out = []
    for ref in app.depends_on:
        reason = readiness(lookup((ref.namespace, ref.name)), follows)
        if reason:
            if ref.namespace != app.namespace:
                reason = NOT_READY
            out.append(DependencyWait(ref.namespace, ref.name, reason[:MAX_REASON]))
    return tuple(out)


def dependencies_of(obj: Mapping[str, Any] | None) -> tuple[AppKey, ...]:
    """The Applications ``obj``'s ``spec.dependsOn`` names, read tolerantly (an entry that is
    not well formed is skipped: the app's own reconcile reports it) and bounded."""
    if obj is None:
        return ()
    namespace = _map(obj.get("metadata")).get("namespace")
    entries = _map(obj.get("spec")).get("dependsOn")
    if not isinstance(namespace, str) or not isinstance(entries, list):
        return ()
    out: list[AppKey] = []
    for item in entries[:MAX_DEPENDENCIES]:
        entry = _map(item)
        name, ns = entry.get("name"), entry.get("namespace") or namespace
        if isinstance(name, str) and name and isinstance(ns, str):
            out.append((ns, name))
    return tuple(out)


def find_cycle(
    start: AppKey, lookup: Lookup, *, limit: int = MAX_CYCLE_SEARCH
) -> tuple[AppKey, ...] | None:
    """The shortest chain of ``spec.dependsOn`` from ``start`` back to itself (``start`` first
    and last), or None. Breadth first, each Application read at most once and at most ``limit``
    of them, so a large or cyclic graph elsewhere costs a bounded walk and cannot loop."""
    parent: dict[AppKey, AppKey] = {}
    queue: deque[AppKey] = deque([start])
    seen = {start}
    while queue and len(seen) <= limit:
        key = queue.popleft()
        for dep in dependencies_of(lookup(key)):
            if dep == start:
                chain = [key]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                return (start, *reversed(chain[:-1]), start) if key != start else (start, start)
            if dep not in seen:
                seen.add(dep)
                parent[dep] = key
                queue.append(dep)
    return None


def describe_cycle(cycle: Sequence[AppKey], app: Application) -> str:
    """``team-a/api -> team-a/db -> team-a/api`` as ``app`` may see it: apps of another
    namespace that it did not declare itself show only their namespace."""
    declared = {(r.namespace, r.name) for r in app.depends_on}
    return " -> ".join(
        f"{ns}/{name}" if ns == app.namespace or (ns, name) in declared else f"{ns}/..."
        for ns, name in cycle
    )


def fingerprint(obj: Mapping[str, Any] | None) -> tuple[object, ...]:
    """What the dependents of ``obj`` read of it: a change means they decide again."""
    if obj is None:
        return ()
    status = ApplicationStatus.from_dict(obj.get("status"))
    return (
        _map(obj.get("metadata")).get("generation"),
        readiness(obj),
        status.sync.revision if status.sync else "",
        dependencies_of(obj),
    )


class DependentsIndex:
    """Which Applications depend on which, fed with every Application the controller sees (watch
    events, and after each reconcile for apps from a file), so that a change of one queues
    exactly its dependents. Thread-safe: watch threads and workers both feed it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dependencies: dict[AppKey, tuple[AppKey, ...]] = {}
        self._dependents: dict[AppKey, set[AppKey]] = {}
        self._seen: dict[AppKey, tuple[object, ...]] = {}

    def observe(self, key: AppKey, obj: Mapping[str, Any] | None) -> set[AppKey]:
        """Record the Application ``key`` as it is now (None: deleted); the apps depending on
        it when what they read of it changed (their waits or cycles may have ended). An app
        nobody depends on costs no status read."""
        deps = dependencies_of(obj)
        with self._lock:
            for old in self._dependencies.pop(key, ()):
                self._dependents.get(old, set()).discard(key)
            if obj is not None:
                self._dependencies[key] = deps
                for dep in deps:
                    self._dependents.setdefault(dep, set()).add(key)
            dependents = set(self._dependents.get(key, ()))
            if not dependents:
                self._seen.pop(key, None)
                return set()
        mark = fingerprint(obj)
        with self._lock:
            changed = self._seen.get(key) != mark
            if obj is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = mark
        return dependents if changed else set()
