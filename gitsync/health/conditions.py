"""Status conditions, and the fallback health check for kinds gitsync has no specific rule for.

Most controllers report state as ``status.conditions``: a list of ``{type, status, reason,
message}`` entries. The kind-specific checks look up the condition types their controllers write
(``Progressing``, ``Complete``, ``Available``...). Anything else - CRDs from operators, Flux
objects, cert-manager certificates - gets the fallback below, which follows the convention most
of them share:

1. If ``status.observedGeneration`` is behind ``metadata.generation``, the status is stale:
   Progressing.
2. The ``Ready`` condition (or, when there is none, ``Available``) decides:
   - ``True``    -> Healthy;
   - ``Unknown`` -> Progressing (the controller has not decided yet);
   - ``False``   -> Progressing when the reason says work is under way, Degraded otherwise.
     "Under way" means the reason contains, case-insensitively, one of ``IN_PROGRESS_MARKERS``
     (``Progressing``, ``Reconciling``, ``InProgress``, ``Pending``, ``Waiting``, ``Creating``,
     ``Updating``, ``Provisioning``). Flux reports ``Ready=False, reason=Progressing`` while it
     works; a reason such as ``InstallFailed`` or ``ValidationFailed`` has none of these words.
3. No such condition (ConfigMaps, Secrets, RBAC, objects without a status): Healthy, since the
   object exists and nothing claims otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import MalformedObject, generation_lag, mapping, objects, string
from gitsync.model import HealthStatus

IN_PROGRESS_MARKERS = (
    "progress",
    "reconcil",
    "pending",
    "waiting",
    "creating",
    "updating",
    "provisioning",
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of ``status.conditions``; ``status`` is "True", "False" or "Unknown"."""

    type: str
    status: str
    reason: str
    message: str

    @property
    def is_true(self) -> bool:
        return self.status == "True"

    @property
    def is_false(self) -> bool:
        return self.status == "False"

    def explanation(self) -> str:
        """``"Reason: message"``, or whichever of the two is set."""
        parts = [part for part in (self.reason, self.message) if part]
        return ": ".join(parts) if parts else f"{self.type} is {self.status}"


def parse_conditions(entries: Iterable[Mapping[str, Any]]) -> list[Condition]:
    """Conditions from their JSON form; an entry without a string ``type`` is malformed."""
    conditions: list[Condition] = []
    for entry in entries:
        kind = string(entry, "type")
        if not kind:
            raise MalformedObject(f"a condition has no type: {dict(entry)!r:.80}")
        # Status is a string in the API, but YAML written by hand turns True into a boolean.
        raw_status = entry.get("status")
        status = str(raw_status) if isinstance(raw_status, bool) else string(entry, "status")
        conditions.append(
            Condition(
                type=kind,
                status=status,
                reason=string(entry, "reason"),
                message=string(entry, "message"),
            )
        )
    return conditions


def status_conditions(obj: Mapping[str, Any]) -> list[Condition]:
    """The object's ``status.conditions``."""
    return parse_conditions(objects(obj, "status", "conditions"))


def find(conditions: Iterable[Condition], kind: str) -> Condition | None:
    """The first condition of the given type."""
    return next((c for c in conditions if c.type == kind), None)


def suggests_progress(reason: str) -> bool:
    """Whether a condition reason describes work under way rather than a failure."""
    lowered = reason.lower()
    return any(marker in lowered for marker in IN_PROGRESS_MARKERS)


def check_generic(obj: Mapping[str, Any]) -> Health:
    """Fallback for any kind without a specific check; the rules are in the module docstring."""
    # Only trust observedGeneration when the controller writes it: many CRDs never do, and a
    # missing field would otherwise read as 0 and keep them Progressing forever.
    lag = generation_lag(obj)
    if lag is not None and "observedGeneration" in mapping(obj, "status"):
        generation, observed = lag
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for the controller to observe generation {generation} (observed {observed})",
        )
    conditions = status_conditions(obj)
    condition = find(conditions, "Ready") or find(conditions, "Available")
    if condition is None:
        return Health(HealthStatus.HEALTHY, "")
    if condition.is_true:
        return Health(HealthStatus.HEALTHY, condition.message or f"{condition.type} is True")
    if condition.is_false:
        if suggests_progress(condition.reason):
            return Health(HealthStatus.PROGRESSING, condition.explanation())
        return Health(HealthStatus.DEGRADED, condition.explanation())
    return Health(HealthStatus.PROGRESSING, condition.explanation())
