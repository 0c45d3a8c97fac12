"""What the web layer reads from the controller, and the shapes it shows: pure functions from
Application dicts (as the controller stores them, ``status`` included) to the JSON API's documents.

The pages and the JSON API render the *same* documents (``summary`` and ``detail``), so a field the
page shows is a field the API has, and the browser's live updates need no second source. The raw
Application object is never passed through: every value is picked, typed and bounded here, repo
URLs lose their userinfo, and links are only ever made for ``http(s)`` URLs. Status written by
someone else may be malformed - nothing here raises on a missing or mistyped field.

Two things here outlive a request, because the list is polled every two seconds by every open
tab: ``Snapshot`` shares one read of the Applications, and ``Summaries`` keeps each Application's
row until its ``resourceVersion`` changes.

``ControllerView`` is the controller as the web layer sees it: defined on the controller's side
(``gitsync.controller.interface``, the only part of the controller the web layer may import) and
implemented by ``gitsync.controller.Controller``; unit tests pass an in-memory one.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from gitsync.application import split_oci_chart_url
from gitsync.application_status import (
    READY,
    STALLED,
    ApplicationStatus,
    DependencyWait,
    HealthSummary,
    ObjectRef,
    OperationState,
    ResourceResult,
    SourceRevision,
    SyncSummary,
    SyncWindowState,
)
from gitsync.controller.interface import AUTOMATION_PAUSED
from gitsync.model import HealthStatus
from gitsync.model import short_revision as model_short_revision
from gitsync.source import redact_url
from gitsync.web.selector import (
    LabelRequirement,
    SelectorError,
    format_selector,
    parse_selector,
)

AppKey = tuple[str, str]  # (namespace, name)

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 1000
MAX_TEXT = 2048  # any one free-text value shown (commit message, condition message, ...)
MAX_ANNOTATION = 512
MAX_WAITS = 5  # spec.dependsOn entries a page names as waited for
MAX_LABELS = 64  # labels of an Application a row carries (the list filters on them)
MAX_FILTER_VALUES = 16  # values of one list filter (``?namespace=a,b,...``)


# -- small readers that never raise -----------------------------------------------------------


def short_revision(revision: str) -> str:
    """A revision as pages show it (7 digits of a commit, as forges show them)."""
    return model_short_revision(revision, 7)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _text(value: object, limit: int = MAX_TEXT) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _message(value: object, limit: int = MAX_TEXT) -> str:
    """Free text from status (errors quote URLs): bounded, with passwords in URLs redacted."""
    return redact_url(_text(value, limit))


def status_class(status: str) -> str:
    """A CSS-safe class suffix for a status value: ``OutOfSync`` -> ``outofsync``."""
    return re.sub(r"[^a-z]", "", status.lower()) or "unknown"


# -- URLs --------------------------------------------------------------------------------------


def display_repo_url(url: str) -> str:
    """A repo URL fit to show (``gitsync.source.redact_url``): for http(s) the whole userinfo
    goes (a token is often the user name), for ssh any password; ``git@host:path`` stays."""
    return redact_url(_text(url, 1024))


def http_link(url: str) -> str | None:
    """``url`` when it is a plain ``http(s)://host/...`` URL that is safe as an ``href``; else
    None (``javascript:``, ``data:``, ``file:``, ``ssh://``, scp-like and malformed URLs)."""
    if not url or any(c in url for c in "\x00\r\n\t \\\"'<>`"):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc:  # never link a URL that carries credentials
        return None
    return url


# -- documents ---------------------------------------------------------------------------------


def _ready(status: ApplicationStatus) -> dict[str, str]:
    c = status.condition(READY)
    if c is None:
        return {"status": "Unknown", "reason": "", "message": ""}
    return {
        "status": _text(c.status, 16),
        "reason": _text(c.reason, 128),
        "message": _message(c.message),
    }


def _last_synced(status: ApplicationStatus) -> str:
    op = status.operation_state or OperationState()
    if op.finished_at:
        return _text(op.finished_at, 64)
    history = status.history or ()
    return _text(history[-1].deployed_at, 64) if history else ""


def summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One Application as a row of the list (``GET /api/v1/applications``)."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    source = _map(spec.get("source"))
    status = ApplicationStatus.from_dict(obj.get("status"))
    sync = status.sync or SyncSummary()
    health = status.health or HealthSummary()
    source_rev = status.source_revision or SourceRevision()
    annotations = _map(meta.get("annotations"))
    sha = _text(source_rev.sha or sync.revision, 64)
    repo = _text(source.get("repoURL"), 1024)
    op = status.operation_state or OperationState()
    policy = _map(spec.get("syncPolicy"))
    automated = policy.get("automated")
    stalled_condition = status.condition(STALLED)
    stalled = stalled_condition is not None and stalled_condition.is_true
    paused = AUTOMATION_PAUSED in annotations or status.automation_paused is True
    suspended = spec.get("suspend") is True
    window = status.sync_window
    waiting = status.waiting_for or ()
    return {
        "namespace": _text(meta.get("namespace"), 253),
        "name": _text(meta.get("name"), 253),
        "labels": _labels(meta),
        "repoURL": display_repo_url(repo),
        "repoLink": http_link(repo),
        "path": _text(source.get("path") or ".", 1024),
        "sourceType": _text(status.source_type, 16),
        "chart": _text(source.get("chart") or split_oci_chart_url(repo)[1], 253),
        "chartVersion": _text(sha.rpartition("@")[2] if "@" in sha else "", 64),
        "targetRevision": _text(source.get("targetRevision") or "HEAD", 256),
        "revision": {
            "sha": sha,
            "short": short_revision(sha),
            "digest": _text(source_rev.digest, 80),
            "ref": _text(source_rev.ref, 256),
            "message": _text(source_rev.message),
            "author": _text(source_rev.author, 256),
            "date": _text(source_rev.date, 64),
        },
        "sync": {
            "status": _text(sync.status, 32) or "Unknown",
            "revision": _text(sync.revision, 64),
        },
        "health": {
            "status": _text(health.status, 32) or "Unknown",
            "message": _message(health.message),
        },
        "ready": _ready(status),
        "stalled": stalled,
        "lastSyncedAt": _last_synced(status),
        "operation": {
            "phase": _text(op.phase, 32),
            "message": _message(op.message),
        },
        "automated": isinstance(automated, Mapping),
        "automationPaused": paused,
        "suspended": suspended,
        "automation": _automation(automated, paused=paused, suspended=suspended)
        + _window_text(window)
        + _waiting_text(waiting),
        "syncWindow": None
        if window is None
        else {"until": _text(window.until, 32), "message": _message(window.message)},
        "waitingFor": [
            {
                "namespace": _text(w.namespace, 63),
                "name": _text(w.name, 253),
                "reason": _message(w.reason, 256),
            }
            for w in waiting[:MAX_WAITS]
        ],
    }


def _labels(meta: Mapping[str, Any]) -> dict[str, str]:
    """The Application's labels (what ``?label=`` selects on), bounded like any status text."""
    labels = islice(_map(meta.get("labels")).items(), MAX_LABELS)
    return {_text(k, 317): _text(v, 63) for k, v in labels if isinstance(v, str)}


def _depends_on(
    spec: Mapping[str, Any], meta: Mapping[str, Any], waiting: Sequence[DependencyWait]
) -> list[dict[str, str]]:
    """``spec.dependsOn`` as the app page lists it: each dependency and what the app waits for
    on it ("" when it does not wait)."""
    own = _text(meta.get("namespace"), 63)
    why = {(w.namespace, w.name): w.reason for w in waiting}
    out = []
    for item in _list(spec.get("dependsOn"))[:32]:
        entry = _map(item)
        namespace = _text(entry.get("namespace"), 63) or own
        name = _text(entry.get("name"), 253)
        if name:
            reason = _message(why.get((namespace, name), ""), 256)
            out.append({"namespace": namespace, "name": name, "waitingFor": reason})
    return out


def _waiting_text(waiting: Sequence[DependencyWait]) -> str:
    """What waiting for ``spec.dependsOn`` entries adds to the app's automation text."""
    if not waiting:
        return ""
    shown = "; ".join(
        f"{_text(w.namespace, 63)}/{_text(w.name, 253)} ({_text(w.reason, 256)})"
        for w in waiting[:MAX_WAITS]
    )
    more = len(waiting) - MAX_WAITS
    return f"; waiting for {shown}" + (f" and {more} more" if more > 0 else "")


def _window_text(window: SyncWindowState | None) -> str:
    """What a sync window blocking the app adds to its automation text."""
    if window is None:
        return ""
    return "; blocked by a sync window" + (
        f" until {_text(window.until, 32)}" if window.until else ""
    )


def _automation(automated: object, *, paused: bool, suspended: bool) -> str:
    """How changes in Git reach the cluster, in words."""
    if not isinstance(automated, Mapping):
        return "manual sync"
    if suspended:
        return "automated sync suspended (spec.suspend)"
    if paused:
        return "automated sync paused"
    options = [n for n, k in (("prune", "prune"), ("self-heal", "selfHeal")) if automated.get(k)]
    return "automated" + (f" ({', '.join(options)})" if options else "")


def duration_seconds(started: str, finished: str) -> int | None:
    """Whole seconds between two RFC 3339 times (a deploy's duration; status times have
    second resolution); None when either is missing or malformed (history entries written
    before ``deployStartedAt`` was recorded) or the order is reversed (a clock step)."""
    try:
        begin = datetime.fromisoformat(started)
        end = datetime.fromisoformat(finished)
        seconds = (end - begin).total_seconds()
    except (TypeError, ValueError):
        return None
    return round(seconds) if seconds >= 0 else None


def _resource_id(r: ObjectRef) -> str:
    return "/".join(_text(part, 253) for part in (r.group, r.kind, r.namespace, r.name))


def _resource(r: ObjectRef) -> dict[str, str]:
    return {
        "group": _text(r.group, 253),
        "kind": _text(r.kind, 253),
        "namespace": _text(r.namespace, 253),
        "name": _text(r.name, 253),
    }


def detail(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One Application in full (``GET /api/v1/applications/<ns>/<name>``): the summary plus its
    objects, the current operation, the deploy history and the conditions."""
    out = summary(obj)
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = ApplicationStatus.from_dict(obj.get("status"))
    op = status.operation_state or OperationState()
    op_results = {_resource_id(r): r for r in op.resources or ()}
    resources = []
    for r in status.resources or ():
        result = op_results.get(_resource_id(r), ResourceResult())
        resources.append(
            {
                **_resource(r),
                "id": _resource_id(r),
                "status": _text(r.status, 32) or "Unknown",
                "health": {
                    "status": _text(r.health.status, 32),
                    "message": _message(r.health.message, 512),
                },
                "lastResult": {
                    "status": _text(result.status, 32),
                    "message": _message(result.message, 512),
                },
            }
        )
    history: list[dict[str, Any]] = [
        {
            "id": h.id,
            "revision": _text(h.revision, 64),
            "short": short_revision(_text(h.revision, 64)),
            "digest": _text(h.digest, 80),
            "message": _text(h.message),
            "author": _text(h.author, 256),
            "deployedAt": _text(h.deployed_at, 64),
            "result": _text(h.result, 32),
            "resultMessage": _message(h.result_message, 512),
            "initiatedBy": _text(h.initiated_by, 64),
            "deployStartedAt": _text(h.deploy_started_at, 64),
            "durationSeconds": duration_seconds(h.deploy_started_at, h.deployed_at),
        }
        for h in status.history or ()
    ]
    history.sort(key=lambda h: -h["id"])
    policy = _map(spec.get("syncPolicy"))
    automated = _map(policy.get("automated"))
    annotations = {
        _text(k, 253): _text(v, MAX_ANNOTATION) for k, v in _map(meta.get("annotations")).items()
    }
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    out.update(
        dependsOn=_depends_on(spec, meta, status.waiting_for or ()),
        resources=resources,
        operation={
            "id": _text(op.id, 64),
            "phase": _text(op.phase, 32),
            "revision": _text(op.revision, 64),
            "initiatedBy": _text(op.initiated_by, 64),
            "startedAt": _text(op.started_at, 64),
            "finishedAt": _text(op.finished_at, 64),
            "message": _message(op.message),
            "resources": [
                {
                    **_resource(r),
                    "status": _text(r.status, 32),
                    "message": _message(r.message, 512),
                }
                for r in op.resources or ()
            ],
            "hooks": [
                {
                    **_resource(h),
                    "phase": _text(h.phase, 32),
                    "status": _text(h.status, 32),
                    "message": _message(h.message, 512),
                    "durationMs": h.duration_ms,
                }
                for h in op.hooks or ()
            ],
        },
        history=history,
        conditions=[
            {
                "type": _text(c.type, 64),
                "status": _text(c.status, 16),
                "reason": _text(c.reason, 128),
                "message": _message(c.message),
                "lastTransitionTime": _text(c.last_transition_time, 64),
            }
            for c in status.conditions or ()
        ],
        syncPolicy={
            "automated": isinstance(policy.get("automated"), Mapping),
            "prune": automated.get("prune") is True,
            "selfHeal": automated.get("selfHeal") is True,
        },
        lastAppliedRevision=_text(status.last_applied_revision, 64),
        annotations=dict(sorted(annotations.items())),
    )
    return out


# -- listing -----------------------------------------------------------------------------------


APP_SYNC_STATUSES = ("Synced", "OutOfSync", "Unknown")  # an Application's (not an object's)

LIST_PARAMETERS = frozenset(
    ("q", "sync", "health", "namespace", "project", "repo", "label", "page", "per_page")
)
"""What ``GET /api/v1/applications`` reads; anything else is an error naming it."""


def unknown_parameters(names: Iterable[str]) -> list[str]:
    """The query parameters of a list request that ``ListQuery`` does not read, sorted."""
    return sorted({n for n in names if n not in LIST_PARAMETERS})


def normalized_repo(url: str) -> str:
    """A repository URL as the list's ``repo`` filter compares it: as shown (no credentials),
    lower case, without a trailing ``/`` or ``.git`` - so ``--repo`` need not match the spelling
    in the spec."""
    text = display_repo_url(url).strip().lower().rstrip("/")
    return text.removesuffix(".git")


@dataclass(frozen=True)
class ListQuery:
    """Filters and page of the list: ``?q=&sync=&health=&namespace=&project=&repo=&label=&page=
    &per_page=``. Every filter holds when all of its given dimensions do; within one dimension
    any of its comma-separated values will do (``health=degraded,missing``).

    ``namespace`` is the Application's namespace. ``project`` is gitsync's project, which *is*
    the Application's namespace (``gitsync.policy``), so it filters the same field - Argo CD's
    spelling, for links and scripts that say project."""

    text: str = ""
    sync: tuple[str, ...] = ()
    health: tuple[str, ...] = ()
    namespace: tuple[str, ...] = ()
    project: tuple[str, ...] = ()
    repo: tuple[str, ...] = ()
    labels: tuple[LabelRequirement, ...] = ()
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    problem: str = field(default="", compare=False)  # lenient parse: what was left out, and why

    @classmethod
    def parse(cls, args: Mapping[str, str] | Any, *, strict: bool) -> ListQuery:
        """From query parameters. ``strict`` (the API): a bad number is a ``ValueError``;
        otherwise (pages) it falls back to the default. A bad label selector is a
        ``SelectorError`` (a ``ValueError``) for the API; a page lists without it and shows
        ``problem``."""

        def number(name: str, default: int, low: int, high: int) -> int:
            raw = args.get(name)
            if raw in (None, ""):
                return default
            try:
                value = int(raw)
            except ValueError:
                if strict:
                    raise ValueError(f"{name} must be an integer") from None
                return default
            if not low <= value <= high:
                if strict:
                    raise ValueError(f"{name} must be between {low} and {high}")
                return min(max(value, low), high)
            return value

        getlist: Callable[[str], list[str]] = getattr(
            args, "getlist", lambda n: [args.get(n) or ""]
        )

        def values(name: str, *, fold: bool = True) -> tuple[str, ...]:
            out: list[str] = []
            for raw in getlist(name):
                out += [v.strip() for v in str(raw).split(",") if v.strip()]
            return tuple((v.lower() if fold else v) for v in out[:MAX_FILTER_VALUES])

        def statuses(name: str, known: tuple[str, ...]) -> tuple[str, ...]:
            found = values(name)
            wrong = [v for v in found if v not in {k.lower() for k in known}]
            if strict and wrong:
                raise ValueError(
                    f"{name} {wrong[0][:64]!r} is not one of {', '.join(known)} (any case)"
                )
            return found

        selectors = [_text(raw, 1024) for raw in getlist("label") if str(raw).strip()]
        problem = ""
        try:
            labels = tuple(r for s in selectors[:MAX_FILTER_VALUES] for r in parse_selector(s))
        except SelectorError as exc:
            if strict:
                raise
            labels, problem = (), str(exc)
        return cls(
            text=_text(args.get("q") or "", 256).strip(),
            sync=statuses("sync", APP_SYNC_STATUSES),
            health=statuses("health", tuple(HealthStatus)),
            namespace=values("namespace", fold=False),
            project=values("project", fold=False),
            repo=tuple(normalized_repo(v) for v in values("repo", fold=False)),
            labels=labels,
            problem=problem,
            page=number("page", 1, 1, 1_000_000),
            per_page=number("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
        )

    @property
    def filtered(self) -> bool:
        return bool(
            self.sync
            or self.health
            or self.text
            or self.namespace
            or self.project
            or self.repo
            or self.labels
        )

    @property
    def selector(self) -> str:
        """The label requirements as one selector (``tier=front,!legacy``)."""
        return format_selector(self.labels)

    def matches(self, row: Mapping[str, Any], *, ignore: str = "") -> bool:
        """Whether the row passes every filter; ``ignore`` ("sync" or "health") leaves that
        dimension out (its counters: see ``count_statuses``)."""
        if ignore != "sync" and self.sync and row["sync"]["status"].lower() not in self.sync:
            return False
        if (
            ignore != "health"
            and self.health
            and row["health"]["status"].lower() not in self.health
        ):
            return False
        if self.namespace and row["namespace"] not in self.namespace:
            return False
        if self.project and row["namespace"] not in self.project:
            return False
        if self.repo and normalized_repo(row["repoURL"]) not in self.repo:
            return False
        labels = row.get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        if self.text:
            needle = self.text.lower()
            haystack = " ".join(
                (
                    f"{row['namespace']}/{row['name']}",
                    row["repoURL"],
                    row["path"],
                    row["revision"]["sha"][:12],
                )
            ).lower()
            if needle not in haystack:
                return False
        return True

    def params(self, **override: Any) -> dict[str, Any]:
        """The query as URL parameters (non-defaults only), with ``override`` applied (a value
        of None or "" drops that parameter)."""
        out: dict[str, Any] = {}
        if self.text:
            out["q"] = self.text
        for name in ("sync", "health", "namespace", "project", "repo"):
            if getattr(self, name):
                out[name] = ",".join(getattr(self, name))
        if self.labels:
            out["label"] = self.selector
        if self.per_page != DEFAULT_PER_PAGE:
            out["per_page"] = self.per_page
        if self.page != 1:
            out["page"] = self.page
        out.update(override)
        return {k: v for k, v in out.items() if v not in (None, "")}


@dataclass(frozen=True)
class StatusCounts:
    """How many Applications have each sync and each health status, for the list's counters.

    Each dimension is counted over the Applications that pass every *other* filter: with
    ``?health=Degraded&namespace=team-a`` the health counters say how many of team-a's apps are
    Healthy, Degraded, ... (so clicking another one shows that many), and the sync counters how
    many of team-a's *degraded* apps are Synced or OutOfSync. A dimension's own filter never
    shrinks its own counters to one non-zero entry."""

    sync: dict[str, int]
    health: dict[str, int]

    def document(self) -> dict[str, dict[str, int]]:
        return {"sync": dict(self.sync), "health": dict(self.health)}


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int
    # the Applications the items were made from, in the same order (for ``annotate_rows``)
    objects: Sequence[Mapping[str, Any]] = field(default=(), repr=False, compare=False)
    counts: StatusCounts | None = None  # the Application list's counters

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def document(self) -> dict[str, Any]:
        doc = {
            "items": self.items,
            "page": self.page,
            "perPage": self.per_page,
            "total": self.total,
            "pages": self.pages,
        }
        if self.counts is not None:
            doc["counts"] = self.counts.document()
        return doc


class Summaries:
    """``summary`` of each Application, kept while the Application is unchanged.

    The list page and its poll (every two seconds, per browser tab) filter and count every
    Application; summarising 1,000 of them afresh was most of each request's time and garbage.
    The API server gives every write of an object, status included, a new
    ``metadata.resourceVersion``, so ``(uid, resourceVersion)`` names one content of one
    Application and its summary stays right until that pair changes. Objects without both
    (``--config`` Applications, whose status lives in a ConfigMap) are summarised every time.

    The rows handed out are shared between requests: callers copy a row before changing it.
    """

    def __init__(self, limit: int = 20_000):
        self._limit = limit
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str, dict[str, Any]]] = {}  # uid -> (version, row)

    def get(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = _map(obj.get("metadata"))
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not (isinstance(uid, str) and uid and isinstance(version, str) and version):
            return summary(obj)
        with self._lock:
            kept = self._rows.get(uid)
        if kept is not None and kept[0] == version:
            return kept[1]
        row = summary(obj)
        with self._lock:
            self._rows.pop(uid, None)  # re-inserted last: the oldest entries go first
            self._rows[uid] = (version, row)
            if len(self._rows) > self._limit:  # deleted Applications' rows
                for old in list(islice(self._rows, len(self._rows) // 2)):
                    del self._rows[old]
        return row

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


def _list_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """What the list is sorted by: the summary's ``namespace`` and ``name``."""
    meta = _map(obj.get("metadata"))
    return (_text(meta.get("namespace"), 253), _text(meta.get("name"), 253))


def _statuses(obj: Mapping[str, Any]) -> tuple[str, str]:
    """The sync and health status of an Application as its ``summary`` shows them, read
    without summarising it (the counters of an unfiltered list read every Application)."""
    status = _map(obj.get("status"))
    sync = _text(_map(status.get("sync")).get("status"), 32) or "Unknown"
    health = _text(_map(status.get("health")).get("status"), 32) or "Unknown"
    return sync, health


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))


def list_applications(
    objs: Iterable[Mapping[str, Any]], query: ListQuery, summaries: Summaries | None = None
) -> Listing:
    """Summaries of the Applications matching ``query``, sorted by namespace/name, one page,
    with the sync and health counters (``StatusCounts``).

    Sorting needs only each Application's key, so it comes first; without a filter only the
    page's rows are summarised (the counters read two fields of each). ``summaries`` keeps rows
    across calls. The items are the caller's own (``annotate_rows`` adds to them)."""
    summarise = summary if summaries is None else summaries.get
    ordered = sorted(objs, key=_list_key)
    start = (query.page - 1) * query.per_page
    end = start + query.per_page
    if query.filtered:
        every = [(o, summarise(o)) for o in ordered]
        matching = [(o, row) for o, row in every if query.matches(row)]
        counts = StatusCounts(
            sync=_count(r["sync"]["status"] for _, r in every if query.matches(r, ignore="sync")),
            health=_count(
                r["health"]["status"] for _, r in every if query.matches(r, ignore="health")
            ),
        )
        total = len(matching)
        page_objs = [o for o, _ in matching[start:end]]
        rows = [row for _, row in matching[start:end]]
    else:
        statuses = [_statuses(o) for o in ordered]
        counts = StatusCounts(
            sync=_count(s for s, _ in statuses), health=_count(h for _, h in statuses)
        )
        total = len(ordered)
        page_objs = ordered[start:end]
        rows = [summarise(o) for o in page_objs]
    items = [dict(row) for row in rows]
    return Listing(items, query.page, query.per_page, total, page_objs, counts)


def find(objs: Sequence[Mapping[str, Any]], key: AppKey) -> Mapping[str, Any] | None:
    for o in objs:
        meta = _map(o.get("metadata"))
        if (meta.get("namespace"), meta.get("name")) == key:
            return o
    return None


class Snapshot:
    """``application_objects()`` shared for ``ttl`` seconds: many browser tabs polling every two
    seconds cost one read of the store per ``ttl``, not one per request (with ``--config`` each
    read is one GET per Application)."""

    def __init__(
        self,
        read: Callable[[], list[dict[str, Any]]],
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._objs: list[dict[str, Any]] = []

    def get(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """The Applications; ``fresh`` reads the store now (a page load, after an action) and
        renews the shared copy, so only polling ever sees data up to ``ttl`` old."""
        with self._lock:
            now = self._clock()
            if fresh or self._ttl <= 0 or now - self._at >= self._ttl:
                self._objs = self._read()
                self._at = now
            return self._objs

    def invalidate(self) -> None:
        with self._lock:
            self._at = float("-inf")
