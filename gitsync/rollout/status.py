"""The Rollout's status and the names (labels, annotations) a rollout writes and reads.

Everything a rollout must remember across a controller restart lives in the Rollout's
``status`` - the step it is at, the pause deadline, when it last made progress, which promote /
abort / retry requests it has already handled - so a restarted controller continues exactly where
the last one stopped: a timed pause ends at its original deadline, a handled promote is not
applied twice. ``RolloutStatus`` is that status as a frozen value; ``to_dict``/``from_dict``
convert to and from the custom resource (camelCase keys, empty values omitted).

Requests from people are annotations on the Rollout, so they work from kubectl as well as from
``gitsync rollout ...``:

* ``rollouts.gitsync.dev/promote: <nonce>`` ends the pause the rollout is at (or the next one it
  reaches); ``<nonce>;full`` skips all remaining steps;
* ``rollouts.gitsync.dev/abort: <nonce>`` aborts the rollout in progress;
* ``rollouts.gitsync.dev/retry: <nonce>`` starts an aborted revision again.

Each request is handled once: the nonce is recorded in status (``lastHandledPromote`` ...), so
writing a new value is a new request and a stale annotation does nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from gitsync.rollout.analysis import AnalysisRun
from gitsync.rollout.math import HASH_LABEL, ROLE_LABEL

PROMOTE_ANNOTATION = "rollouts.gitsync.dev/promote"
ABORT_ANNOTATION = "rollouts.gitsync.dev/abort"
RETRY_ANNOTATION = "rollouts.gitsync.dev/retry"
STABLE_HASH_ANNOTATION = "rollouts.gitsync.dev/stable-hash"
"""On the stable Deployment: the hash of the rendered pod template it runs (``math.template_hash``).
Written by the sync layer when it applies a template directly, and by the rollout when it promotes
a canary; compared with the rendered template's hash to decide whether a rollout takes over."""
OWNER_ANNOTATION = "rollouts.gitsync.dev/rollout"
"""On the canary Deployment: the name of the Rollout that created it (never touch another's)."""
FULL_PROMOTE_SUFFIX = ";full"
CANARY_ROLE = "canary"
PREVIEW_ROLE = "preview"
"""``rollouts.gitsync.dev/role`` of the blue-green preview Deployment's pods."""
ROLLOUT_FIELD_MANAGER = "gitsync-rollout"

__all__ = [
    "ABORT_ANNOTATION",
    "CANARY_ROLE",
    "FULL_PROMOTE_SUFFIX",
    "HASH_LABEL",
    "OWNER_ANNOTATION",
    "PREVIEW_ROLE",
    "PROMOTE_ANNOTATION",
    "RETRY_ANNOTATION",
    "ROLE_LABEL",
    "ROLLOUT_FIELD_MANAGER",
    "STABLE_HASH_ANNOTATION",
    "Phase",
    "RolloutStatus",
    "format_time",
    "parse_time",
]


class Phase(enum.StrEnum):
    """``status.phase``; ``gitsync.health.rollout`` maps Paused to Suspended."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    DEGRADED = "Degraded"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    """The moment an RFC 3339 timestamp names, or None for "" or anything unparsable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_CAMEL = {
    "phase": "phase",
    "message": "message",
    "current_step_index": "currentStepIndex",
    "current_weight": "currentWeight",
    "stable_hash": "stableHash",
    "canary_hash": "canaryHash",
    "git_revision": "gitRevision",
    "pause_until": "pauseUntil",
    "aborted_hash": "abortedHash",
    "replicas": "replicas",
    "ready_canary": "readyCanaryReplicas",
    "ready_stable": "readyStableReplicas",
    "last_progress_time": "lastProgressTime",
    "handled_promote": "lastHandledPromote",
    "handled_abort": "lastHandledAbort",
    "handled_retry": "lastHandledRetry",
    "observed_generation": "observedGeneration",
    "scale_down_at": "scaleDownAt",
    "analysis_runs": "analysisRuns",
}
ALWAYS_WRITTEN = frozenset({"phase", "current_step_index", "current_weight", "observed_generation"})


@dataclass(frozen=True)
class RolloutStatus:
    """The persisted state of one Rollout (see the module docstring).

    ``current_weight`` is the share of ready pods that run the canary template while steps run,
    measured from pods (``math.actual_weight``); 100 once a rollout completed (everything runs
    the desired template) and measured again after an abort (falls to 0 as the canary goes).
    ``canary_hash`` is the template being rolled out ("" when none is); ``aborted_hash`` the one
    that was aborted and is not retried until Git renders another template or a retry request.
    ``replicas`` is N, the Deployment's size from Git, which the rollout shares out.

    Blue-green (``gitsync.rollout.bluegreen``) also keeps ``scale_down_at``: when the old pods
    scale down after a promotion (stored at the switch, so a restart neither resets nor skips it).

    ``analysis_runs`` are the metric runs of analysis steps, with their measurements
    (``gitsync.rollout.analysis``, bounded there); cleared when a new template starts or a retry.
    """

    phase: str = ""
    message: str = ""
    current_step_index: int = 0
    current_weight: int = 0
    stable_hash: str = ""
    canary_hash: str = ""
    git_revision: str = ""
    pause_until: str = ""
    aborted_hash: str = ""
    replicas: int = 0
    ready_canary: int = 0
    ready_stable: int = 0
    last_progress_time: str = ""
    handled_promote: str = ""
    handled_abort: str = ""
    handled_retry: str = ""
    observed_generation: int = 0
    scale_down_at: str = ""
    analysis_runs: tuple[AnalysisRun, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "analysis_runs":
                if value:
                    out[_CAMEL[f.name]] = [run.to_dict() for run in value]
            elif f.name in ALWAYS_WRITTEN or value not in ("", 0):
                out[_CAMEL[f.name]] = value
        if not self.phase:
            out.pop("phase")
        return out

    @classmethod
    def from_dict(cls, doc: object) -> RolloutStatus:
        """Tolerant: a field of the wrong type reads as its default (status is ours to rewrite)."""
        if not isinstance(doc, Mapping):
            return cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = doc.get(_CAMEL[f.name])
            if f.name == "analysis_runs":
                runs = [AnalysisRun.from_dict(r) for r in raw] if isinstance(raw, list) else []
                values[f.name] = tuple(r for r in runs if r is not None)
            elif f.type == "int":
                if isinstance(raw, int) and not isinstance(raw, bool):
                    values[f.name] = raw
            elif isinstance(raw, str):
                values[f.name] = raw
        return cls(**values)

    @property
    def in_progress(self) -> bool:
        """A canary is being rolled out (not finished, not aborted)."""
        return bool(self.canary_hash) and self.phase in (Phase.PROGRESSING, Phase.PAUSED)


STATUS_FIELDS = tuple(_CAMEL.values())
"""Every key ``to_dict`` may write; the CRD's status schema declares exactly these."""
