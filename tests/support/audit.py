"""Reading the test API server's audit log, so tests count writes where they land.

The control plane (``gitsync.localenv.controlplane``) writes it to ``audit_log_path`` with
``AUDIT_POLICY``; reading it is only ever a test's business, so the reader lives here.

The engine promises "zero writes when nothing changed" and the HA controller promises "only the
leader writes". Counting on the client side would only prove what the client believes it sent;
the kube-apiserver's own audit log (Metadata level, mutating verbs only) records every write with
its user agent, user and whether it was a dry run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class AuditEvent:
    verb: str
    user: str
    user_agent: str
    uri: str
    code: int
    resource: str
    namespace: str
    name: str
    subresource: str

    @property
    def dry_run(self) -> bool:
        return "dryRun=" in self.uri

    @property
    def refresh_request(self) -> bool:
        """A PATCH of an Application object itself (not its status): a refresh request, as
        `gitsync refresh` or a replica handing a push to the one that reconciles the app."""
        return is_refresh_request(self.verb, self.resource, self.subresource)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditEvent:
        ref = doc.get("objectRef") or {}
        return cls(
            verb=str(doc.get("verb", "")),
            user=str((doc.get("user") or {}).get("username", "")),
            user_agent=str(doc.get("userAgent", "")),
            uri=str(doc.get("requestURI", "")),
            code=int((doc.get("responseStatus") or {}).get("code") or 0),
            resource=str(ref.get("resource", "")),
            namespace=str(ref.get("namespace", "")),
            name=str(ref.get("name", "")),
            subresource=str(ref.get("subresource", "")),
        )


def is_refresh_request(verb: str, resource: str, subresource: str) -> bool:
    """A PATCH of an Application object itself (not a subresource): a refresh request."""
    return verb == "patch" and resource == "applications" and not subresource


class AuditLog:
    """The API server's audit log file; ``mark()`` then ``writes(since=mark)``."""

    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def events(self, since: int = 0) -> list[AuditEvent]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(since)
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if doc.get("stage") == "ResponseComplete":
                out.append(AuditEvent.from_json(doc))
        return out

    def writes(
        self, since: int = 0, *, user_agent: str = "", include_dry_run: bool = False
    ) -> list[AuditEvent]:
        """Persisted mutating requests, optionally only from exactly one user agent."""
        return [
            e
            for e in self.events(since)
            if e.verb in MUTATING_VERBS
            and (include_dry_run or not e.dry_run)
            and (not user_agent or e.user_agent == user_agent)
        ]
