"""Status conditions, and the fallback health check for kinds gitsync has no specific rule for.

Most controllers report state as ``status.conditions``: a list of ``{type, status, reason,
message}`` entries. The kind-specific checks look up the condition types their controllers write
(``Progressing``, ``Complete``, ``Available``...). Anything else - CRDs from operators, Flux
objects, cert-manager certificates - gets the fallback below. It follows kstatus (the status
conventions of sigs.k8s.io/cli-utils that Flux and most operators write to) and the Flux checks
Argo CD ships, in this order:

1. ``spec.suspend: true`` -> Suspended (Flux's convention for a paused object; Argo CD's Flux
   checks say the same).
2. ``status.observedGeneration`` behind ``metadata.generation``: the status is stale, Progressing.
   Only when the controller writes the field: many CRDs never do, and a missing field would
   otherwise read as 0 and keep them Progressing forever. Some write it as a string (Argo
   Rollouts): ``"3"`` compares as 3, and a value that is no number at all is ignored rather than
   making the object Unknown.
3. ``Stalled=True`` -> Degraded: kstatus' "failed", the controller has given up until the spec
   changes.
4. ``Reconciling=True`` -> Progressing, unless ``Ready`` is ``False`` for a failure reason: then
   the controller is retrying a failure (Flux's ``ProgressingWithRetry``), Degraded.
5. The ``Ready`` condition (or, when there is none, ``Available``) decides:
   - ``True``    -> Healthy;
   - ``Unknown`` -> Progressing (the controller has not decided yet);
   - ``False``   -> Progressing when the reason says work is under way, Degraded otherwise.
     "Under way" means the reason contains, case-insensitively, one of ``IN_PROGRESS_MARKERS``
     (``Progressing``, ``Reconciling``, ``InProgress``, ``Pending``, ``Waiting``, ``Creating``,
     ``Updating``, ``Provisioning``). A reason such as ``InstallFailed`` or ``ArtifactFailed`` has
     none of these words.
6. No such condition: a Flux object (API group ``*.toolkit.fluxcd.io``) is Progressing - Flux
   always writes ``Ready``, so its controller has not reconciled the object yet. Anything else
   (ConfigMaps, Secrets, RBAC, objects without a status) is Healthy, since the object exists and
   nothing claims otherwise.

Argo CD has no such fallback: a kind without a check of its own gets no health there. Its Flux
checks call every ``Ready=False`` Degraded; rule 5 keeps reasons that say work is under way
Progressing, so a sync wave waits for them instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.fields import MalformedObject, lenient_integer, objects, string
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


FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"


def _api_group(obj: Mapping[str, Any]) -> str:
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or "/" not in api_version:
        return ""
    return api_version.partition("/")[0]


def _stale_generation(obj: Mapping[str, Any]) -> Health | None:
    generation = lenient_integer(obj, "metadata", "generation")
    observed = lenient_integer(obj, "status", "observedGeneration")
    if generation is None or observed is None or observed >= generation:
        return None
    return Health(
        HealthStatus.PROGRESSING,
        f"Waiting for the controller to observe generation {generation} (observed {observed})",
    )


def check_generic(obj: Mapping[str, Any]) -> Health:
    """Fallback for any kind without a specific check; the rules are in the module docstring."""
    kind = obj.get("kind")
    kind = kind if isinstance(kind, str) and kind else "object"
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and spec.get("suspend") is True:
        return Health(HealthStatus.SUSPENDED, f"{kind} is suspended")
    stale = _stale_generation(obj)
    if stale is not None:
        return stale
    conditions = status_conditions(obj)
    stalled = find(conditions, "Stalled")
    if stalled is not None and stalled.is_true:
        return Health(HealthStatus.DEGRADED, f"Stalled: {stalled.explanation()}")
    ready = find(conditions, "Ready")
    reconciling = find(conditions, "Reconciling")
    if reconciling is not None and reconciling.is_true:
        if ready is not None and ready.is_false and not suggests_progress(ready.reason):
            return Health(HealthStatus.DEGRADED, ready.explanation())
        return Health(HealthStatus.PROGRESSING, reconciling.explanation())
    condition = ready or find(conditions, "Available")
    if condition is None:
        if _api_group(obj).endswith(FLUX_GROUP_SUFFIX):
            return Health(HealthStatus.PROGRESSING, f"Waiting for Flux to reconcile the {kind}")
        return Health(HealthStatus.HEALTHY, "")
    if condition.is_true:
        return Health(HealthStatus.HEALTHY, condition.message or f"{condition.type} is True")
    if condition.is_false:
        if suggests_progress(condition.reason):
            return Health(HealthStatus.PROGRESSING, condition.explanation())
        return Health(HealthStatus.DEGRADED, condition.explanation())
    return Health(HealthStatus.PROGRESSING, condition.explanation())
