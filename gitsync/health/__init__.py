"""Health assessment: a pure function from a live Kubernetes object to ``Health``.

Health is computed from the object alone - no API calls, no clock, no ``kubernetes`` import -
so it can be table-tested from YAML fixtures and run anywhere (controller, CLI, web). The rules
follow what Kubernetes itself considers a finished rollout (``kubectl rollout status``) and the
conventions Argo CD popularised; each kind has its own module, chosen by ``registry.CHECKS``, and
everything else falls back to its ``Ready``/``Available`` condition (``conditions.check_generic``).
Checks declared as CEL expressions (``custom``: the operator's, and bundled ones for popular CRDs)
are consulted by the registry too, with the precedence ``custom`` describes.

An object being deleted is Progressing ("Pending deletion") before any kind's rule is asked, as
in Argo CD (``deletion``).

``assess`` never raises on odd input: an absent object is Missing, and a field of the wrong type
(``status`` that is a string, ``replicas: "three"``) is Unknown with a message naming the field.

Owns: health per kind. May import: model, kinds, errors and the standard library only - plus
PyYAML in ``custom`` (declared checks are text) and the CEL evaluator in ``cel`` (import-linter:
``pure-cores``, ``cel``, and ``health-layers`` inside the package).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health, aggregate
from gitsync.health.custom import CustomChecks, installed
from gitsync.health.deletion import pending_deletion
from gitsync.health.fields import MalformedObject, as_mapping
from gitsync.health.registry import CHECKS, check_for
from gitsync.model import HealthStatus, ResourceKey

__all__ = ["CHECKS", "Health", "aggregate", "assess"]


def assess(obj: Mapping[str, Any] | None, checks: CustomChecks | None = None) -> Health:
    """The health of one live object; None (or an empty object) means it does not exist.

    ``checks``: the declared checks to consult; by default the process's (``custom.install``).
    """
    if obj is None:
        return Health(HealthStatus.MISSING, "Resource does not exist")
    live = as_mapping(obj)
    if live is None:
        return Health(HealthStatus.UNKNOWN, f"Not a Kubernetes object: {obj!r:.80}")
    if not live:
        return Health(HealthStatus.MISSING, "Resource does not exist")
    if live.get("metadata") is not None and as_mapping(live["metadata"]) is None:
        return Health(HealthStatus.UNKNOWN, "Cannot assess health: metadata is not an object")
    deleting = pending_deletion(live)
    if deleting is not None:
        return deleting
    key = ResourceKey.of(dict(live))
    try:
        return check_for(key.group, key.kind, checks if checks is not None else installed())(live)
    except MalformedObject as error:
        return Health(HealthStatus.UNKNOWN, f"Cannot assess health of {key.kind}: {error}")
