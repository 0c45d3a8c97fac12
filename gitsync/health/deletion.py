"""An object on its way out is Progressing, whatever its kind: Argo CD's "Pending deletion".

Once ``metadata.deletionTimestamp`` is set the API server only keeps the object until its
finalizers are removed; its status describes a workload that is being torn down, so no kind's own
rule applies any more. Argo CD (gitops-engine's ``GetResourceHealth``) checks this before any
built-in or custom check, and so does ``assess`` - CEL checks included. The finalizers are named,
because a deletion that hangs is nearly always one of them waiting on its controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.model import HealthStatus

MAX_FINALIZERS_SHOWN = 5


def pending_deletion(obj: Mapping[str, Any]) -> Health | None:
    """Progressing "Pending deletion" when the object is being deleted, else None."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("deletionTimestamp"):
        return None
    finalizers = metadata.get("finalizers")
    names = (
        [f for f in finalizers if isinstance(f, str) and f] if isinstance(finalizers, list) else []
    )
    if not names:
        return Health(HealthStatus.PROGRESSING, "Pending deletion")
    shown = ", ".join(names[:MAX_FINALIZERS_SHOWN])
    more = (
        f" and {len(names) - MAX_FINALIZERS_SHOWN} more"
        if len(names) > MAX_FINALIZERS_SHOWN
        else ""
    )
    return Health(
        HealthStatus.PROGRESSING, f"Pending deletion; blocked by finalizers: {shown}{more}"
    )
