"""``gitsync app ...``: the command line against a running controller's JSON API (docs/api.md).

A CI job or a person on call asks the controller that already watches the Applications, rather
than reading the cluster itself: the API's documents are what the UI shows, with secrets masked and
URLs redacted, and its roles decide who may act. Three parts, kept apart so two are pure:

* ``ApiClient`` - the one place that talks HTTP (stdlib ``urllib``): every answer is bounded in
  bytes and time, redirects are refused (a bearer token must never follow one to another host),
  and every error names the server and never the token. The token comes from ``$GITSYNC_TOKEN``
  or a file, never from a flag, so it does not show in ``ps``.
* ``wait_decision`` - whether an Application document has reached what ``app wait`` waits for,
  reached a state it will not leave by itself, or neither yet. Pure, for table tests.
* the formatters - tables (``table`` / ``wide``) and ``json`` / ``yaml``; ``json`` prints the
  API's document unchanged, so it round-trips through the API's schema.

Exit codes follow what ``argocd app wait`` users script against: 0 reached, 1 a failure state
(Degraded, a failed operation, Stalled; for ``app diff``: differences), 2 a usage, connection or
API error, 3 a timeout.
"""

from __future__ import annotations

import enum
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 3

MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a diff of many objects at 256 KiB each fits
REQUEST_TIMEOUT = 30.0
MAX_ERROR_TEXT = 300
MAX_PAGES = 100  # 100 pages of 1,000 Applications
STREAM_CHUNK_BYTES = 64 * 1024
STREAM_SILENCE_SECONDS = 330.0  # a follow stream may be quiet; the server ends it at its limit


class ClientError(Exception):
    """A request that failed; the message names the server, never the token."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.transient = transient


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h``, ``1m30s`` -> seconds; ``ValueError`` otherwise."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or parts is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h)")
    hours, minutes, seconds = parts.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def split_app(text: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` -> the pair; ``ValueError`` naming the expected form otherwise."""
    namespace, sep, name = text.partition("/")
    valid = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
    if not sep or not valid.fullmatch(namespace) or not valid.fullmatch(name):
        raise ValueError(f"expected NAMESPACE/NAME, got {text!r}")
    return namespace, name


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the API never redirects, and following one would send the
    bearer token wherever the answer points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class ApiClient:
    server: str
    token: str = ""
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    timeout: float = REQUEST_TIMEOUT
    max_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--server must be an http(s):// URL, got {self.server!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("--server must not carry credentials: set GITSYNC_TOKEN instead")
        if (self.ca_file or self.insecure_skip_tls_verify) and parts.scheme != "https":
            raise ValueError("--ca-file and --insecure-skip-tls-verify need an https:// --server")
        if self.ca_file and self.insecure_skip_tls_verify:
            raise ValueError("--ca-file and --insecure-skip-tls-verify exclude each other")

    def _opener(self) -> urllib.request.OpenerDirector:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return urllib.request.build_opener(
            _NoRedirects(),
            urllib.request.HTTPSHandler(context=context),
        )

    def get(self, path: str, **query: str | int) -> Any:
        return self._request("GET", path, query=query)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._request("POST", path, body=body)

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        where, opened = self._open(method, path, query, body, self.timeout)
        with opened as resp:
            try:
                raw = resp.read(self.max_bytes + 1)
            except OSError as exc:
                raise ClientError(f"{where}: the answer broke off: {exc}", transient=True) from None
        if len(raw) > self.max_bytes:
            raise ClientError(f"{where}: the answer is larger than {self.max_bytes} bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(
                f"{where}: the answer is not JSON (is this the gitsync API?)"
            ) from None

    def stream(
        self,
        path: str,
        query: Mapping[str, str | int],
        write: Callable[[bytes], object],
        *,
        silence: float = STREAM_SILENCE_SECONDS,
    ) -> int:
        """GET a text stream (a Pod's log) and hand it to ``write`` as it arrives, in chunks of
        at most ``STREAM_CHUNK_BYTES``; returns the bytes passed. The server bounds the stream's
        size and duration; here a read silent for ``silence`` seconds ends it."""
        where, opened = self._open("GET", path, query, None, silence, accept="text/plain")
        passed = 0
        with opened as resp:
            while True:
                try:
                    chunk = resp.read1(STREAM_CHUNK_BYTES)
                except OSError as exc:
                    raise ClientError(f"{where}: the stream broke off: {exc}") from None
                if not chunk:
                    return passed
                passed += len(chunk)
                write(chunk)

    def _open(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        timeout: float,
        *,
        accept: str = "application/json",
    ) -> tuple[str, Any]:
        """The request sent: ``(where, response)``, or ``ClientError`` naming the server."""
        url = self.server.rstrip("/") + "/api/v1" + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, method=method)  # noqa: S310 - http(s), checked above
        request.add_header("Accept", accept)
        if body is not None:
            request.data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        where = f"{method} {url}"
        try:
            return where, self._opener().open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise _http_error(where, exc, self.max_bytes) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(
                f"{where}: cannot reach the server: {str(reason)[:MAX_ERROR_TEXT]}",
                transient=True,
            ) from None


def _http_error(where: str, exc: urllib.error.HTTPError, max_bytes: int) -> ClientError:
    status = exc.code
    if 300 <= status < 400:
        return ClientError(
            f"{where}: answered {status} (a redirect, not followed: is --server the gitsync "
            "API's address?)",
            status=status,
        )
    message = ""
    try:
        doc = json.loads(exc.read(min(max_bytes, 64 * 1024)))
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            message = doc["error"][:MAX_ERROR_TEXT]
    except (ValueError, OSError):
        pass
    hint = {
        401: "not authenticated: set GITSYNC_TOKEN or --token-file",
        403: "forbidden: the token's role may not do this (actions need an operator or admin token "
        "for the Application's project)",
    }.get(status, "")
    text = "; ".join(part for part in (message, hint) if part) or exc.reason or "error"
    return ClientError(
        f"{where}: {status} {text}", status=status, transient=status >= 500 or status == 429
    )


# -- wait ------------------------------------------------------------------------------------


class WaitState(enum.Enum):
    REACHED = "reached"
    FAILED = "failed"
    WAITING = "waiting"


@dataclass(frozen=True)
class WaitGoal:
    sync: bool = True
    health: bool = True
    revision: str = ""  # a commit SHA (or a prefix of one), or a chart version; "" for any


@dataclass(frozen=True)
class WaitDecision:
    state: WaitState
    reason: str


def _condition(doc: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for c in doc.get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return {}


def _at_revision(revision: str, goal: WaitGoal) -> bool:
    if not goal.revision:
        return True
    return bool(revision) and (revision.startswith(goal.revision) or revision == goal.revision)


def wait_decision(doc: Mapping[str, Any], goal: WaitGoal) -> WaitDecision:
    """Where the Application ``doc`` (the API's detail document) stands against ``goal``.

    A failure counts only at the revision waited for: right after a push the app still shows the
    previous revision's state, which says nothing about the new one.
    """
    sync = doc.get("sync") or {}
    health = doc.get("health") or {}
    operation = doc.get("operation") or {}
    sync_status = str(sync.get("status") or "Unknown")
    health_status = str(health.get("status") or "Unknown")
    at_revision = _at_revision(str(sync.get("revision") or ""), goal)
    stalled = _condition(doc, "Stalled")
    if doc.get("stalled") or stalled.get("status") == "True":
        return WaitDecision(
            WaitState.FAILED,
            f"Stalled: {stalled.get('reason') or ''} {stalled.get('message') or ''}".strip(),
        )
    phase = str(operation.get("phase") or "")
    if phase in ("Failed", "Error") and _at_revision(str(operation.get("revision") or ""), goal):
        return WaitDecision(
            WaitState.FAILED, f"operation {phase}: {operation.get('message') or ''}".strip()
        )
    if goal.health and at_revision and health_status == "Degraded":
        return WaitDecision(
            WaitState.FAILED, f"health Degraded: {health.get('message') or ''}".strip()
        )
    missing = []
    revision = str(sync.get("revision") or "")[:12]
    of_revision = f" at {revision}" if revision else ""
    if not at_revision:
        of_revision += f" (waiting for {goal.revision[:12]})"
    if goal.sync and not (sync_status == "Synced" and at_revision):
        missing.append(f"sync {sync_status}{of_revision}")
    if goal.health and not (health_status == "Healthy" and at_revision):
        missing.append(f"health {health_status}" + ("" if goal.sync else of_revision))
    if phase == "Running":
        missing.append("an operation is running")
    if missing:
        return WaitDecision(WaitState.WAITING, ", ".join(missing))
    return WaitDecision(WaitState.REACHED, f"{sync_status} and {health_status}")


# -- output ----------------------------------------------------------------------------------

OUTPUTS = ("table", "wide", "json", "yaml")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, like kubectl; empty cells as ``-``. Cells are single
    lines: text from Git or the cluster cannot start a new row."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    lines = [
        "   ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(header), *cells]
    ]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())  # no newlines, tabs or control whitespace inside a cell
    return text or "-"


def dump(doc: Any, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def format_list(items: Sequence[Mapping[str, Any]], *, wide: bool) -> str:
    header = ["NAMESPACE", "NAME", "SYNC", "HEALTH", "REVISION", "LAST SYNCED"]
    if wide:
        header += ["REPO", "PATH", "TARGET", "AUTOMATION", "OPERATION"]
    rows = []
    for item in items:
        row: list[object] = [
            item.get("namespace"),
            item.get("name"),
            (item.get("sync") or {}).get("status"),
            (item.get("health") or {}).get("status"),
            (item.get("revision") or {}).get("short"),
            item.get("lastSyncedAt"),
        ]
        if wide:
            row += [
                item.get("repoURL"),
                item.get("path"),
                item.get("targetRevision"),
                item.get("automation"),
                (item.get("operation") or {}).get("phase"),
            ]
        rows.append(row)
    return table(header, rows)


def _fields(fields: list[tuple[str, object]], conditions: Sequence[Mapping[str, Any]]) -> str:
    """``Field: value`` lines, aligned, then one line per condition."""
    for c in conditions:
        fields.append(
            (
                f"Condition {c.get('type')}",
                f"{c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip(),
            )
        )
    width = max(len(k) for k, _ in fields) + 1
    return "".join(f"{(k + ':').ljust(width)} {_cell(v)}\n" for k, v in fields)


def format_detail(doc: Mapping[str, Any], *, wide: bool) -> str:
    """``app get``: the summary as ``Field: value`` lines, then the objects with their status."""
    revision = doc.get("revision") or {}
    operation = doc.get("operation") or {}
    health = doc.get("health") or {}
    fields: list[tuple[str, object]] = [
        ("Name", f"{doc.get('namespace')}/{doc.get('name')}"),
        ("Repo", doc.get("repoURL")),
        ("Path", doc.get("path")),
        ("Target", doc.get("targetRevision")),
        ("Revision", f"{revision.get('short') or '-'} {revision.get('message') or ''}".strip()),
        ("Sync", (doc.get("sync") or {}).get("status")),
        ("Health", f"{health.get('status')} {health.get('message') or ''}".strip()),
        ("Automation", doc.get("automation")),
        (
            "Operation",
            f"{operation.get('phase') or '-'} {operation.get('message') or ''}".strip(),
        ),
    ]
    out = _fields(fields, doc.get("conditions") or ())
    header = ["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH", "MESSAGE"]
    if wide:
        header += ["LAST RESULT", "RESULT MESSAGE"]
    rows = []
    for r in doc.get("resources") or ():
        r_health = r.get("health") or {}
        row: list[object] = [
            r.get("group"),
            r.get("kind"),
            r.get("namespace"),
            r.get("name"),
            r.get("status"),
            r_health.get("status"),
            r_health.get("message"),
        ]
        if wide:
            result = r.get("lastResult") or {}
            row += [result.get("status"), result.get("message")]
        rows.append(row)
    return out + "\n" + table(header, rows)


def format_duration(seconds: object) -> str:
    """A deploy's duration as the app page shows it (``12s``, ``3m 4s``); "" when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    if seconds < 60:
        return f"{int(seconds)}s"
    return f"{int(seconds // 60)}m {int(seconds % 60)}s"


def format_history(history: Sequence[Mapping[str, Any]], *, wide: bool) -> str:
    """``app history``: the columns of the app page's timeline (the result's message in -o wide)."""
    header = ["ID", "REVISION", "AUTHOR", "DEPLOYED AT", "DURATION", "RESULT", "INITIATED BY"]
    header.append("MESSAGE")
    if wide:
        header += ["RESULT MESSAGE"]
    rows = []
    for h in history:
        row: list[object] = [
            h.get("id"),
            h.get("revision") if wide else h.get("short"),
            h.get("author"),
            h.get("deployedAt"),
            format_duration(h.get("durationSeconds")),
            h.get("result"),
            h.get("initiatedBy"),
            str(h.get("message") or "").split("\n", 1)[0],
        ]
        if wide:
            row.append(h.get("resultMessage"))
        rows.append(row)
    return table(header, rows)


def format_events(items: Sequence[Mapping[str, Any]], *, wide: bool) -> str:
    """``app events``: newest first, like ``kubectl events`` (one line each, message last)."""
    header = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]
    if wide:
        header[4:4] = ["NAMESPACE", "SOURCE", "FIRST SEEN"]
    rows = []
    for e in items:
        inv = e.get("involvedObject") or {}
        row: list[object] = [
            e.get("lastTimestamp"),
            e.get("type"),
            e.get("reason"),
            f"{inv.get('kind')}/{inv.get('name')}",
            e.get("count"),
            e.get("message"),
        ]
        if wide:
            row[4:4] = [inv.get("namespace"), e.get("source"), e.get("firstTimestamp")]
        rows.append(row)
    return table(header, rows)


def format_diff(doc: Mapping[str, Any]) -> str:
    """``app diff``: each object's status, then its unified diff."""
    out = []
    for r in doc.get("resources") or ():
        out.append(f"===== {r.get('id')} ({r.get('status')})\n")
        if r.get("error"):
            out.append(f"error: {r.get('error')}\n")
        if r.get("diff"):
            text = str(r["diff"])
            out.append(text if text.endswith("\n") else text + "\n")
    for error in doc.get("errors") or ():
        out.append(f"error: {error}\n")
    if doc.get("inSync"):
        out.append(f"{doc.get('application')}: in sync\n")
    return "".join(out)


# -- ApplicationSets (``gitsync appset``) ------------------------------------------------------

SET_OUTPUTS = ("table", "json", "yaml")


def _generators(items: object) -> str:
    gens = items if isinstance(items, list) else []
    return "; ".join(f"{g.get('type')} {g.get('summary') or ''}".strip() for g in gens)


def format_set_list(items: Sequence[Mapping[str, Any]]) -> str:
    header = ["NAMESPACE", "NAME", "APPS", "STATUS", "GENERATORS"]
    rows = [
        [
            item.get("namespace"),
            item.get("name"),
            item.get("applicationCount"),
            item.get("status"),
            _generators(item.get("generators")),
        ]
        for item in items
    ]
    return table(header, rows)


def format_set_detail(doc: Mapping[str, Any]) -> str:
    """``appset get``: the set as ``Field: value`` lines, then its Applications."""
    policy = doc.get("syncPolicy") or {}
    fields: list[tuple[str, object]] = [
        ("Name", f"{doc.get('namespace')}/{doc.get('name')}"),
        ("Status", doc.get("status")),
        ("Generators", _generators(doc.get("generators"))),
        ("Policy", policy.get("applicationsSync")),
        ("Applications", doc.get("applicationCount")),
    ]
    out = _fields(fields, doc.get("conditions") or ())
    header = ["NAMESPACE", "NAME", "SYNC", "HEALTH", "REVISION", "MESSAGE"]
    rows = [
        [
            a.get("namespace"),
            a.get("name"),
            a.get("sync"),
            a.get("health"),
            a.get("short"),
            a.get("message"),
        ]
        for a in doc.get("applications") or ()
    ]
    out += "\n" + table(header, rows)
    lines = [_parameter_line(a) for a in doc.get("applications") or ()]
    if any(lines):
        out += "\nPARAMETERS\n" + "\n".join(line for line in lines if line) + "\n"
    return out


MAX_PARAMETER_LINE = 120  # characters of one app's ``k=v, ...`` line in ``appset get``


def _parameter_line(app: Mapping[str, Any]) -> str:
    """One generated app's parameters as ``name: k=v, ...`` on one line (values from Git cannot
    start a new one), cut to ``MAX_PARAMETER_LINE``."""
    params = app.get("parameters") or {}
    if not isinstance(params, Mapping) or not params:
        return ""
    pairs = ", ".join(f"{_cell(k)}={_cell(v)}" for k, v in params.items())
    text = f"{_cell(app.get('name'))}: {pairs}"
    return text if len(text) <= MAX_PARAMETER_LINE else text[: MAX_PARAMETER_LINE - 1] + "…"
