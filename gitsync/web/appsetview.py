"""The ApplicationSet documents the set pages and ``/api/v1/applicationsets`` show: pure
functions from ApplicationSet dicts (as the controller's watch cache holds them, status included)
and the Application dicts of the same controller.

As in ``gitsync.web.view``, nothing of the raw object is passed through: every value is picked,
typed and bounded, repo URLs lose their userinfo, and nothing raises on a malformed spec or
status - a set is shown even when its spec is the reason it fails. The generators are described,
not evaluated (a page load never fetches Git or lists clusters); the apps a set generated come
from its ``status.resources``, with sync and health read from the Applications themselves when
the controller has them (fresher than the set's status, which follows them a pass later).

Each generated app carries the ``parameters`` it was rendered from (the status's
``resources[].parameters``, bounded again here); ``rollingSync`` is the progressive sync's state
(``null`` for a set without one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gitsync.web.view import (
    AppKey,
    Listing,
    ListQuery,
    _list,
    _map,
    _message,
    _text,
    display_repo_url,
    short_revision,
    summary,
)

MAX_GENERATORS = 16  # described per set (the spec allows 16)
MAX_DEPTH = 3  # matrix/merge nesting described (the spec allows 3)
MAX_APPS = 1000  # generated apps listed on one set's page
MAX_PATHS = 8  # git directories/files named per generator
MAX_STEPS = 16  # rolling-sync steps shown (the spec allows 16)
MAX_PARAMETERS = 33  # parameters shown per app: the status's 32 and its "<n> more" entry
GENERATOR_KINDS = ("list", "git", "clusters", "matrix", "merge")


# -- generators --------------------------------------------------------------------------------


def describe_generator(value: object, depth: int = 0) -> dict[str, Any]:
    """One generator as ``{"type": ..., "summary": ..., "generators": [...]}`` (the last only
    for ``matrix``/``merge``); an unknown or malformed one has type ``unknown``."""
    gen = _map(value)
    kind = next((k for k in GENERATOR_KINDS if k in gen), "")
    body = _map(gen.get(kind))
    if kind == "list":
        count = len(_list(body.get("elements")))
        return {"type": "list", "summary": f"{count} element{'s' if count != 1 else ''}"}
    if kind == "git":
        return {"type": "git", "summary": _git_summary(body)}
    if kind == "clusters":
        return {"type": "clusters", "summary": _clusters_summary(body)}
    if kind in ("matrix", "merge"):
        children = _list(body.get("generators"))
        inner = (
            [describe_generator(c, depth + 1) for c in children[:MAX_GENERATORS]]
            if depth < MAX_DEPTH
            else []
        )
        joiner = " x " if kind == "matrix" else " + "
        text = joiner.join(c["type"] for c in inner) or f"{len(children)} generators"
        if kind == "merge" and _list(body.get("mergeKeys")):
            keys = ", ".join(_text(k, 64) for k in _list(body.get("mergeKeys"))[:MAX_PATHS])
            text += f" on {keys}"
        return {"type": kind, "summary": text, "generators": inner}
    return {"type": "unknown", "summary": ", ".join(_text(k, 64) for k in list(gen)[:4])}


def _paths(items: object, exclude_ok: bool) -> str:
    paths = []
    for item in _list(items)[:MAX_PATHS]:
        entry = _map(item)
        path = _text(entry.get("path"), 256)
        paths.append(("!" if exclude_ok and entry.get("exclude") is True else "") + path)
    more = len(_list(items)) - MAX_PATHS
    return ", ".join(paths) + (f" and {more} more" if more > 0 else "")


def _git_summary(body: Mapping[str, Any]) -> str:
    where = display_repo_url(_text(body.get("repoURL"), 1024))
    revision = _text(body.get("revision"), 256) or "HEAD"
    if "files" in body:
        return f"files {_paths(body.get('files'), False)} in {where} at {revision}"
    return f"directories {_paths(body.get('directories'), True)} in {where} at {revision}"


def _clusters_summary(body: Mapping[str, Any]) -> str:
    selector = _map(body.get("selector"))
    labels = ", ".join(
        f"{_text(k, 63)}={_text(v, 63)}"
        for k, v in list(_map(selector.get("matchLabels")).items())[:MAX_PATHS]
    )
    expressions = len(_list(selector.get("matchExpressions")))
    parts = [labels] if labels else []
    if expressions:
        parts.append(f"{expressions} expression{'s' if expressions != 1 else ''}")
    return "registered clusters" + (f" with {'; '.join(parts)}" if parts else "")


# -- sets --------------------------------------------------------------------------------------


def _conditions(status: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "type": _text(c.get("type"), 64),
            "status": _text(c.get("status"), 16),
            "reason": _text(c.get("reason"), 128),
            "message": _message(c.get("message")),
            "lastTransitionTime": _text(c.get("lastTransitionTime"), 64),
        }
        for c in map(_map, _list(status.get("conditions"))[:16])
    ]


def _health(conditions: Sequence[Mapping[str, str]]) -> str:
    """One word for the list: ``Error`` when ``ErrorOccurred`` is True, ``UpToDate`` when
    ``ResourcesUpToDate`` is, else ``Progressing`` (or ``Unknown`` before the first pass)."""
    by_type = {c["type"]: c["status"] for c in conditions}
    if by_type.get("ErrorOccurred") == "True":
        return "Error"
    if by_type.get("ResourcesUpToDate") == "True":
        return "UpToDate"
    return "Progressing" if by_type else "Unknown"


def set_summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One ApplicationSet as a row of the list (``GET /api/v1/applicationsets``)."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    conditions = _conditions(status)
    count = status.get("applicationCount")
    resources = _list(status.get("resources"))
    return {
        "namespace": _text(meta.get("namespace"), 253),
        "name": _text(meta.get("name"), 253),
        "generators": [
            describe_generator(g) for g in _list(spec.get("generators"))[:MAX_GENERATORS]
        ],
        "applicationCount": count if type(count) is int else len(resources),
        "status": _health(conditions),
        "conditions": conditions,
    }


def _generated(
    status: Mapping[str, Any], namespace: str, apps: Mapping[AppKey, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for item in map(_map, _list(status.get("resources"))[:MAX_APPS]):
        name = _text(item.get("name"), 253)
        app_namespace = _text(item.get("namespace"), 253) or namespace
        live = apps.get((app_namespace, name))
        sync = _text(item.get("status"), 32) or "Unknown"
        health = _text(_map(item.get("health")).get("status"), 32) or "Unknown"
        revision = ""
        if live is not None:
            row = summary(live)
            sync, health = row["sync"]["status"], row["health"]["status"]
            revision = row["revision"]["sha"]
        out.append(
            {
                "namespace": app_namespace,
                "name": name,
                "exists": live is not None,
                "sync": sync,
                "health": health,
                "revision": revision,
                "short": short_revision(revision),
                "message": _message(item.get("message"), 512),
                "parameters": _parameters(item.get("parameters")),
            }
        )
    return out


def _parameters(value: object) -> dict[str, str]:
    """An app's ``status.resources[].parameters``, bounded again: the status is the cluster's
    to write, and a hand-edited one is no more trusted than any other."""
    items = sorted(_map(value).items())[:MAX_PARAMETERS]
    return {_text(key, 256): _message(item, 256) for key, item in items}


def set_detail(obj: Mapping[str, Any], applications: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ApplicationSet in full (``GET /api/v1/applicationsets/<ns>/<name>``): the summary
    plus its generators, policy, template source and the apps it generated with their sync
    and health."""
    out = set_summary(obj)
    spec = _map(obj.get("spec"))
    policy = _map(spec.get("syncPolicy"))
    template = _map(spec.get("template"))
    source = _map(_map(template.get("spec")).get("source"))
    apps: dict[AppKey, Mapping[str, Any]] = {}
    for app in applications:
        meta = _map(app.get("metadata"))
        apps[(_text(meta.get("namespace"), 253), _text(meta.get("name"), 253))] = app
    out.update(
        goTemplate=spec.get("goTemplate") is True,
        syncPolicy={
            "applicationsSync": _text(policy.get("applicationsSync"), 32) or "sync",
            "preserveResourcesOnDeletion": policy.get("preserveResourcesOnDeletion") is True,
        },
        template={
            "name": _text(_map(template.get("metadata")).get("name"), 253),
            "repoURL": display_repo_url(_text(source.get("repoURL"), 1024)),
            "path": _text(source.get("path"), 1024),
            "targetRevision": _text(source.get("targetRevision"), 256),
        },
        applications=_generated(_map(obj.get("status")), out["namespace"], apps),
        rollingSync=_rolling_sync(_map(obj.get("status")).get("rollingSync")),
    )
    return out


def _rolling_sync(value: object) -> dict[str, Any] | None:
    """``status.rollingSync`` as the page shows it: the revision being rolled out, the last one
    every app was proven at, each step's phase and apps, and what stopped it; None without a
    rolling sync. Bounded and never raising, like the rest of the document."""
    body = _map(value)
    if not body:
        return None
    steps = []
    for step in _list(body.get("steps"))[:MAX_STEPS]:
        entry = _map(step)
        number = entry.get("step")
        steps.append(
            {
                "step": number if isinstance(number, int) and not isinstance(number, bool) else 0,
                "phase": _text(entry.get("phase"), 32),
                "applications": [
                    _text(a, 253) for a in _list(entry.get("applications"))[:MAX_APPS]
                ],
                "message": _message(entry.get("message")),
            }
        )
    revision = _text(body.get("revision"), 64)
    proven = _text(body.get("provenRevision"), 64)
    return {
        "revision": revision,
        "short": short_revision(revision),
        "provenRevision": proven,
        "provenShort": short_revision(proven),
        "steps": steps,
        "stoppedBy": [_text(a, 253) for a in _list(body.get("stoppedBy"))[:MAX_APPS]],
        "unmatched": [_text(a, 253) for a in _list(body.get("unmatched"))[:MAX_APPS]],
    }


# -- listing -----------------------------------------------------------------------------------


def _key(obj: Mapping[str, Any]) -> AppKey:
    meta = _map(obj.get("metadata"))
    return (_text(meta.get("namespace"), 253), _text(meta.get("name"), 253))


def list_sets(objs: Iterable[Mapping[str, Any]], query: ListQuery) -> Listing:
    """The sets whose ``namespace/name`` contains ``query.text``, sorted, one page of them
    (``?q=&page=&per_page=``; the app list's sync/health filters do not apply to sets)."""
    needle = query.text.lower()
    matching = sorted(
        (o for o in objs if needle in "/".join(_key(o)).lower()),
        key=_key,
    )
    start = (query.page - 1) * query.per_page
    items = [set_summary(o) for o in matching[start : start + query.per_page]]
    return Listing(items, query.page, query.per_page, len(matching))


def find_set(objs: Iterable[Mapping[str, Any]], key: AppKey) -> Mapping[str, Any] | None:
    return next((o for o in objs if _key(o) == key), None)
