"""The diff between two deploys of an Application: what changed in the rendered manifests from
one history entry to another (``GET /api/v1/applications/<ns>/<name>/history/diff?from=&to=`` and
the page ``/apps/<ns>/<name>/history/diff``).

Both revisions are rendered by the controller's engine (``ControllerView.application_manifests``:
fetch and render with the app's current spec, renders cached per commit, nothing read from the
cluster) and compared object by object with gitsync's own diff (``gitsync.diff.diff_resource``,
the older render as one side and the newer as the other), so Secret values are masked exactly as
in the live diff: the rendered objects themselves never leave this module.

It is bounded like the live diff: at most ``concurrency`` renders-and-diffs at once per process
(more get 503), each object's diff and the whole document capped in characters. Errors say what
to do: an entry the history no longer keeps is a 404, a revision whose commit is gone from the
repository a 404 naming it, a failure that may pass a 503, any other fetch or render error a 502.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import flask

from gitsync.application import SpecError
from gitsync.application_status import ApplicationStatus, HistoryEntry
from gitsync.controller.interface import ControllerView, ManifestView
from gitsync.diff import diff_resource
from gitsync.errors import GitsyncError, TransientError
from gitsync.model import ResourceKey, SyncStatus
from gitsync.source import GitNotFoundError, redact_url
from gitsync.source.charts import ChartSourceTerminalError
from gitsync.web.diff import manages_secrets
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import Action
from gitsync.web.view import AppKey, Snapshot, detail, find, short_revision

MAX_OBJECT_DIFF_CHARS = 256 * 1024  # one object's unified diff
MAX_DIFF_DOCUMENT_CHARS = 1024 * 1024  # all of them together
MAX_LISTED_OBJECTS = 2000  # objects listed as changed (renders have their own document limits)

# what the history diff calls an object's change (the sync statuses it is computed as)
CHANGE = {
    SyncStatus.MISSING: "Added",  # only in the newer render
    SyncStatus.EXTRANEOUS: "Removed",  # only in the older render
    SyncStatus.OUT_OF_SYNC: "Changed",
    SyncStatus.UNKNOWN: "Unknown",  # too large or deep to compare (its error says)
}


class HistoryDiffError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_entry_id(name: str, raw: str | None) -> int:
    """A history entry's id from the query parameter ``name``."""
    if raw is None or not raw.strip():
        raise HistoryDiffError(400, f"{name} is required: a history entry's id (app history)")
    try:
        value = int(raw)
    except ValueError:
        raise HistoryDiffError(400, f"{name} must be a history entry's id (an integer)") from None
    if value < 1:
        raise HistoryDiffError(400, f"{name} must be a history entry's id (1 or more)")
    return value


def history_entry(obj: Mapping[str, Any], entry_id: int) -> HistoryEntry:
    status = ApplicationStatus.from_dict(obj.get("status"))
    for entry in status.history or ():
        if entry.id == entry_id:
            return entry
    ids = ", ".join(str(h.id) for h in status.history or ()) or "none"
    raise HistoryDiffError(
        404, f"no history entry #{entry_id} (the history keeps the newest deploys; ids: {ids})"
    )


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n... (diff truncated)\n"


def _side(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "revision": entry.revision[:256],
        "short": short_revision(entry.revision[:256]),
        "deployedAt": entry.deployed_at[:64],
        "result": entry.result[:32],
    }


def diff_document(
    key: AppKey,
    older: HistoryEntry,
    newer: HistoryEntry,
    older_manifests: Sequence[ManifestView],
    newer_manifests: Sequence[ManifestView],
) -> dict[str, Any]:
    """The diff of two renders as the API returns it: each object that differs (Added, Removed,
    Changed) with its masked unified diff, and how many are unchanged. Pure."""
    before: dict[ResourceKey, dict[str, Any]] = {m.key: m.obj for m in older_manifests}
    after: dict[ResourceKey, dict[str, Any]] = {m.key: m.obj for m in newer_manifests}
    sides = (f"#{older.id}", f"#{newer.id}")
    resources: list[dict[str, Any]] = []
    unchanged = 0
    budget = MAX_DIFF_DOCUMENT_CHARS
    truncated = False
    for rkey in sorted(before.keys() | after.keys(), key=str):
        # masked in the app's context, like its live diff: comparable with no other app's
        d = diff_resource(
            rkey, after.get(rkey), before.get(rkey), sides=sides, mask_scope=f"{key[0]}/{key[1]}"
        )
        if d.status == SyncStatus.SYNCED:
            unchanged += 1
            continue
        if len(resources) >= MAX_LISTED_OBJECTS:
            truncated = True
            continue
        text = _bounded(d.unified, MAX_OBJECT_DIFF_CHARS)
        if len(text) > budget:
            text, truncated = "", True
        budget -= len(text)
        fields = {
            "group": str(rkey.group),
            "kind": str(rkey.kind),
            "namespace": str(rkey.namespace),
            "name": str(rkey.name),
        }
        resources.append(
            {
                **fields,
                "id": "/".join(fields.values()),
                "change": CHANGE.get(d.status, str(d.status)),
                "diff": text,
                "changedPaths": list(d.changed_paths)[:200],
                "error": d.error[:2000] if d.error else None,
            }
        )
    return {
        "application": f"{key[0]}/{key[1]}",
        "from": _side(older),
        "to": _side(newer),
        "resources": resources,
        "unchanged": unchanged,
        "truncated": truncated,
    }


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (``__cause__`` and a ``StageError``'s ``cause``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 8:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        yield e
        cause = getattr(e, "cause", None)
        todo += [e.__cause__, cause if isinstance(cause, BaseException) else None]


def classify(exc: GitsyncError, entry: HistoryEntry) -> HistoryDiffError:
    """A failed render of ``entry`` as the error the client gets."""
    message = redact_url(str(exc))[:2000]
    causes = list(_causes(exc))
    if any(isinstance(e, GitNotFoundError | ChartSourceTerminalError) for e in causes):
        return HistoryDiffError(
            404,
            f"history entry #{entry.id}: revision {short_revision(entry.revision[:256])} is no "
            f"longer in the repository ({message})",
        )
    if any(isinstance(e, TransientError) for e in causes):
        return HistoryDiffError(503, f"history entry #{entry.id}: {message}; retry later")
    return HistoryDiffError(502, f"history entry #{entry.id}: {message}")


class HistoryDiffer:
    """Renders two history entries and diffs them, at most ``concurrency`` at once."""

    def __init__(self, controller: ControllerView, *, concurrency: int = 2):
        self.controller = controller
        self._slots = threading.BoundedSemaphore(concurrency)

    def diff(self, obj: Mapping[str, Any], key: AppKey, from_id: int, to_id: int) -> dict[str, Any]:
        older, newer = history_entry(obj, from_id), history_entry(obj, to_id)
        if not self._slots.acquire(blocking=False):
            raise HistoryDiffError(503, "too many diffs are being computed; retry in a few seconds")
        try:
            before = self._render(key, older)
            after = self._render(key, newer)
        finally:
            self._slots.release()
        return diff_document(key, older, newer, before, after)

    def _render(self, key: AppKey, entry: HistoryEntry) -> Sequence[ManifestView]:
        if not entry.revision:
            raise HistoryDiffError(409, f"history entry #{entry.id} records no revision")
        try:
            rendered = self.controller.application_manifests(key, entry.revision)
        except SpecError as exc:
            raise HistoryDiffError(409, f"the Application's spec is invalid: {exc}") from exc
        except GitsyncError as exc:
            raise classify(exc, entry) from exc
        if rendered is None:
            raise HistoryDiffError(404, f"no Application {key[0]}/{key[1]}")
        return rendered.manifests


def history_blueprint(
    controller: ControllerView, guard: Guard, snapshot: Snapshot, *, concurrency: int = 2
) -> flask.Blueprint:
    """The API route and the page of the history diff."""
    bp = flask.Blueprint("history", __name__)
    differ = HistoryDiffer(controller, concurrency=concurrency)

    def compute(obj: Mapping[str, Any], key: AppKey) -> dict[str, Any]:
        """The diff the request's ``?from=&to=`` ask for (``HistoryDiffError`` otherwise)."""
        args = flask.request.args
        unknown = sorted(set(args) - {"from", "to"})
        if unknown:
            raise HistoryDiffError(400, f"unknown query parameters: {', '.join(unknown)[:512]}")
        from_id = parse_entry_id("from", args.get("from"))
        to_id = parse_entry_id("to", args.get("to"))
        return differ.diff(obj, key, from_id, to_id)

    @bp.get("/api/v1/applications/<namespace>/<name>/history/diff")
    @guard.api_read
    @guard.allow(Action.GET)
    def api_diff(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(fresh=True), (namespace, name))
        if obj is None:
            return json_error(404, f"no Application {namespace}/{name}")
        if manages_secrets(obj) and not guard.allows(Action.DIFF_SECRETS, namespace):
            return guard.forbidden(Action.DIFF_SECRETS, namespace)  # as the live diff
        try:
            doc = compute(obj, (namespace, name))
        except HistoryDiffError as exc:
            headers = {"Retry-After": "2"} if exc.status == 503 else {}
            return json_error(exc.status, exc.message, **headers)
        return flask.jsonify(doc)

    @bp.get("/apps/<namespace>/<name>/history/diff")
    @guard.page
    @guard.allow(Action.GET)
    def page(namespace: str, name: str) -> Any:
        obj = find(snapshot.get(fresh=True), (namespace, name))
        if obj is None:
            flask.abort(404)
        if manages_secrets(obj) and not guard.allows(Action.DIFF_SECRETS, namespace):
            return guard.forbidden(Action.DIFF_SECRETS, namespace)  # as the live diff
        doc: dict[str, Any] | None = None
        error, status = "", 200
        try:
            doc = compute(obj, (namespace, name))
        except HistoryDiffError as exc:
            error, status = exc.message, exc.status
        return (
            flask.render_template("history_diff.html", app=detail(obj), diff=doc, error=error),
            status,
        )

    return bp
