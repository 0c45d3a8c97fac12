"""HorizontalPodAutoscaler health from the autoscaler's conditions, for every API version.

``autoscaling/v2`` (and the older ``v2beta1``/``v2beta2``) report ``status.conditions``.
``autoscaling/v1`` has no conditions field; the API server carries the same conditions as a JSON
string in the ``autoscaling.alpha.kubernetes.io/conditions`` annotation, so that is read instead.

- No conditions yet -> Progressing: the autoscaler has not evaluated the object.
- ``AbleToScale=False`` -> Degraded: it cannot read or update the target's scale subresource.
- ``ScalingActive=False`` -> Degraded (``FailedGetResourceMetric``, ``InvalidSelector``, ...),
  except reason ``ScalingDisabled``, which the autoscaler reports when the target was scaled to
  zero on purpose: Suspended.
- Otherwise Healthy; ``ScalingLimited`` (hitting min/max replicas) is working as configured.
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


def check_hpa(obj: Mapping[str, Any]) -> Health:
    """Health of an ``autoscaling`` HorizontalPodAutoscaler (v1, v2beta1, v2beta2, v2)."""
    conditions = _conditions(obj)
    if not conditions:
        return Health(HealthStatus.PROGRESSING, "Waiting for the autoscaler to report conditions")
    able = find(conditions, "AbleToScale")
    if able is not None and able.is_false:
        return Health(HealthStatus.DEGRADED, f"Cannot scale: {able.explanation()}")
    active = find(conditions, "ScalingActive")
    if active is not None and active.is_false:
        if active.reason == "ScalingDisabled":
            return Health(HealthStatus.SUSPENDED, f"Autoscaling disabled: {active.explanation()}")
        return Health(HealthStatus.DEGRADED, f"Autoscaling is not active: {active.explanation()}")
    current = integer(obj, "status", "currentReplicas")
    desired = integer(obj, "status", "desiredReplicas")
    message = f"{current} current replicas, {desired} desired"
    limited = find(conditions, "ScalingLimited")
    if limited is not None and limited.is_true and limited.reason:
        message += f" ({limited.reason})"
    return Health(HealthStatus.HEALTHY, message)
