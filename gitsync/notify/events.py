"""What happened to an Application, as notification events derived from its status.

Events are *level-derived*: ``events_of`` looks at one status (the one about to be written) and
says which facts hold - "revision R is live and Healthy", "the sync of R failed" - each naming the
revision it is about. Whether a fact was already reported is not decided here but by the dedupe
key (rule, provider, event, revision) recorded in the same status write (``gitsync.notify.plan``).
Deriving from the level rather than from the transition old -> new means a controller killed
between deciding and writing simply decides again after its restart, and a transition that
happened while nobody listened (no rule yet, the watch not loaded) is still reported once.

Pure: the status types and the event model only, no I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gitsync.application_status import ApplicationStatus
from gitsync.health.rollout import promoted_revision
from gitsync.kinds import is_rollout

FULL_SHA = re.compile(r"[0-9a-f]{40}")


class EventName(enum.StrEnum):
    """``spec.events`` of a NotificationRule (and ``sync-running``, Argo CD's
    ``on-sync-running``: a commit status goes ``pending`` with it)."""

    SYNC_RUNNING = "sync-running"
    SYNC_SUCCEEDED = "sync-succeeded"
    SYNC_FAILED = "sync-failed"
    DEPLOYED = "deployed"
    HEALTH_DEGRADED = "health-degraded"
    OUT_OF_SYNC = "out-of-sync"
    ROLLOUT_PAUSED = "rollout-paused"
    ROLLOUT_ABORTED = "rollout-aborted"
    ROLLOUT_PROMOTED = "rollout-promoted"
    HOOK_FAILED = "hook-failed"


class Severity(enum.StrEnum):
    """How a message looks (colour, emoji) and which commit state it sets."""

    INFO = "info"
    SUCCESS = "success"
    FAILURE = "failure"


SEVERITY = {
    EventName.SYNC_RUNNING: Severity.INFO,
    EventName.SYNC_SUCCEEDED: Severity.SUCCESS,
    EventName.SYNC_FAILED: Severity.FAILURE,
    EventName.DEPLOYED: Severity.SUCCESS,
    EventName.HEALTH_DEGRADED: Severity.FAILURE,
    EventName.OUT_OF_SYNC: Severity.INFO,
    EventName.ROLLOUT_PAUSED: Severity.INFO,
    EventName.ROLLOUT_ABORTED: Severity.FAILURE,
    EventName.ROLLOUT_PROMOTED: Severity.SUCCESS,
    EventName.HOOK_FAILED: Severity.FAILURE,
}

REASON_LIMIT = 1024


@dataclass(frozen=True)
class AppFacts:
    """What an event needs to know about the Application beyond its status."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    repo_url: str = ""
    automated: bool = True
    external_url: str = ""  # ``--external-url``: the UI's address as people reach it

    @property
    def ui_url(self) -> str:
        if not self.external_url:
            return ""
        return f"{self.external_url.rstrip('/')}/applications/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NotificationEvent:
    """One fact about one Application at one revision - everything a template may read."""

    name: EventName
    namespace: str
    app: str
    revision: str
    reason: str = ""  # why (the failed objects, the health message); "" when it went well
    commit_message: str = ""
    author: str = ""
    url: str = ""
    health: str = ""
    sync: str = ""

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.name]

    @property
    def short_revision(self) -> str:
        return self.revision[:12] if FULL_SHA.fullmatch(self.revision) else self.revision

    @property
    def is_commit(self) -> bool:
        """The revision is a Git commit (a commit status can be set on it; a chart's
        ``chart@version`` cannot)."""
        return bool(FULL_SHA.fullmatch(self.revision))


def events_of(app: AppFacts, status: ApplicationStatus) -> list[NotificationEvent]:
    """The facts ``status`` shows about ``app``, each at the revision it concerns."""
    source = status.source_revision
    sync = status.sync
    health = status.health.status if status.health else ""
    sync_status = sync.status if sync else ""

    def event(name: EventName, revision: str, reason: str = "") -> NotificationEvent:
        same_commit = source is not None and source.sha == revision
        return NotificationEvent(
            name=name,
            namespace=app.namespace,
            app=app.name,
            revision=revision,
            reason=reason[:REASON_LIMIT],
            commit_message=source.message if same_commit and source else "",
            author=source.author if same_commit and source else "",
            url=app.ui_url,
            health=health,
            sync=sync_status,
        )

    out: list[NotificationEvent] = []
    op = status.operation_state
    if op is not None and op.revision and not op.deletion_step:
        if op.phase == "Running":
            out.append(event(EventName.SYNC_RUNNING, op.revision))
        elif op.phase == "Succeeded":
            out.append(event(EventName.SYNC_SUCCEEDED, op.revision))
        elif op.phase == "Failed":
            failed = [r for r in op.resources or () if r.status == "SyncFailed"]
            named = "; ".join(f"{r.kind}/{r.name}: {r.message}" for r in failed[:5])
            out.append(event(EventName.SYNC_FAILED, op.revision, named or op.message))
        for hook in op.hooks or ():
            if hook.status == "Failed":
                reason = f"{hook.phase} hook {hook.kind}/{hook.name}: {hook.message}"
                out.append(event(EventName.HOOK_FAILED, op.revision, reason))
                break
    running = op is not None and op.phase == "Running"
    revision = sync.revision if sync else ""
    if revision and not running:
        if (
            sync_status == "Synced"
            and health == "Healthy"
            and status.last_applied_revision == revision
        ):
            out.append(event(EventName.DEPLOYED, revision))
        if health == "Degraded":
            message = status.health.message if status.health else ""
            out.append(event(EventName.HEALTH_DEGRADED, revision, message))
        if sync_status == "OutOfSync" and not app.automated:
            out.append(event(EventName.OUT_OF_SYNC, revision, "automated sync is off"))
        out.extend(_rollout_events(status, revision, event))
    return out


def _rollout_events(
    status: ApplicationStatus, revision: str, event: Callable[..., NotificationEvent]
) -> list[NotificationEvent]:
    """A Rollout the app manages waits for promotion (its health Suspended: phase Paused), was
    aborted (Degraded), or promoted the app's revision (Healthy, its health message naming that
    revision: ``gitsync.health.rollout.promoted_revision``), at the app's revision.

    Promoted is a level too: the Rollout stays Healthy at the revision it promoted, so the fact
    holds on every status write until Git moves on, and the dedupe key makes it one event. A
    later commit that leaves the Rollout's template alone does not restart a rollout, so the
    Rollout still names the earlier revision and nothing is promoted at the new one."""
    out: list[NotificationEvent] = []
    for row in status.resources or ():
        if not is_rollout(row.group, row.kind):
            continue
        if row.health.status == "Suspended":
            reason = f"Rollout {row.name} is waiting for promotion: {row.health.message}"
            out.append(event(EventName.ROLLOUT_PAUSED, revision, reason))
        elif row.health.status == "Degraded":
            reason = f"Rollout {row.name} was aborted: {row.health.message}"
            out.append(event(EventName.ROLLOUT_ABORTED, revision, reason))
        elif row.health.status == "Healthy" and promoted_revision(row.health.message) == revision:
            reason = f"Rollout {row.name} promoted revision {revision}"
            out.append(event(EventName.ROLLOUT_PROMOTED, revision, reason))
    return out
