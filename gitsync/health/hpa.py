"""HorizontalPodAutoscaler health from the autoscaler's conditions, for every API version.

``autoscaling/v2`` (and the older ``v2beta1``/``v2beta2``) report ``status.conditions``.
``autoscaling/v1`` has no conditions field; the API server carries the same conditions as a JSON
string in the ``autoscaling.alpha.kubernetes.io/conditions`` annotation, so that is read instead.

The verdicts are Argo CD's (gitops-engine ``health_hpa.go``):

- No conditions yet -> Progressing: the autoscaler has not evaluated the object.
- ``AbleToScale=False`` because it cannot read or update the target's scale (``FailedGetScale``,
  ``FailedUpdateScale``) -> Degraded.
- ``AbleToScale=True`` -> Healthy: the autoscaler controls its target. A metric it cannot read
  (``ScalingActive=False``) does not change that - right after a sync the metrics of new pods are
  routinely missing for a minute, and a Degraded would fail the sync wave - but its reason and
  message are put in the health message so a lasting one is seen.
- Without ``AbleToScale``: ``ScalingActive=False`` for ``FailedGetResourceMetric`` or
  ``InvalidSelector`` -> Degraded; ``ScalingLimited=True`` (at min/max replicas) -> Healthy.
- Anything else (``AbleToScale=False`` while backing off, say) -> Progressing.

Where gitsync differs: ``ScalingActive=False`` with reason ``ScalingDisabled`` (the target was
scaled to zero on purpose, so autoscaling is off) is Suspended, where Argo CD says Healthy. And the
verdict does not depend on the order the conditions are listed in; Argo CD takes the first
condition that matches a rule, which is the same for the order the autoscaler writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import Condition, find, parse_conditions, status_conditions
from gitsync.health.fields import MalformedObject, integer, mapping, object_list, string
from gitsync.model import HealthStatus

V1_CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"


def _conditions(obj: Mapping[str, Any]) -> list[Condition]:
    conditions = status_conditions(obj)
    if conditions:
        return conditions
    annotations = mapping(obj, "metadata", "annotations")
    if V1_CONDITIONS_ANNOTATION not in annotations:
        return []
    text = string(annotations, V1_CONDITIONS_ANNOTATION)
    try:
        decoded: object = json.loads(text)
    except ValueError as error:
        raise MalformedObject(
            f"annotation {V1_CONDITIONS_ANNOTATION} is not JSON: {text!r:.80}"
        ) from error
    return parse_conditions(object_list(decoded, f"annotation {V1_CONDITIONS_ANNOTATION}"))


FAILED_SCALE_REASONS = frozenset({"FailedGetScale", "FailedUpdateScale"})
FAILED_METRIC_REASONS = frozenset({"FailedGetResourceMetric", "InvalidSelector"})


def _replicas(obj: Mapping[str, Any]) -> str:
    current = integer(obj, "status", "currentReplicas")
    desired = integer(obj, "status", "desiredReplicas")
    return f"{current} current replicas, {desired} desired"


def check_hpa(obj: Mapping[str, Any]) -> Health:
    """Health of an ``autoscaling`` HorizontalPodAutoscaler (v1, v2beta1, v2beta2, v2)."""
    conditions = _conditions(obj)
    if not conditions:
        return Health(HealthStatus.PROGRESSING, "Waiting for the autoscaler to report conditions")
    able = find(conditions, "AbleToScale")
    active = find(conditions, "ScalingActive")
    limited = find(conditions, "ScalingLimited")
    if able is not None and able.is_false and able.reason in FAILED_SCALE_REASONS:
        return Health(HealthStatus.DEGRADED, f"Cannot scale: {able.explanation()}")
    if active is not None and active.is_false and active.reason == "ScalingDisabled":
        return Health(HealthStatus.SUSPENDED, f"Autoscaling disabled: {active.explanation()}")
    if able is not None and able.is_true:
        message = _replicas(obj)
        if limited is not None and limited.is_true and limited.reason:
            message += f" ({limited.reason})"
        if active is not None and active.is_false:
            message += f"; autoscaling is not active: {active.explanation()}"
        return Health(HealthStatus.HEALTHY, message)
    if active is not None and active.is_false and active.reason in FAILED_METRIC_REASONS:
        return Health(HealthStatus.DEGRADED, f"Autoscaling is not active: {active.explanation()}")
    if limited is not None and limited.is_true:
        return Health(HealthStatus.HEALTHY, f"{_replicas(obj)} ({limited.explanation()})")
    waiting = next((c for c in conditions if not c.is_true), None)
    detail = f": {waiting.type} {waiting.explanation()}" if waiting is not None else ""
    return Health(HealthStatus.PROGRESSING, f"Waiting to autoscale{detail}")
