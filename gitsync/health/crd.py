"""CustomResourceDefinition health: are its names accepted and is the API served?

A CRD is usable once kube-apiserver serves its resource: ``Established=True``. The rules are Argo
CD's (gitops-engine ``health_customresourcedefinition.go``):

- no conditions yet -> Progressing;
- ``Terminating=True`` -> Progressing (its custom resources are being removed);
- ``NamesAccepted=False`` -> Degraded: the plural or kind clashes with another CRD's;
- not ``Established`` -> Degraded, except while kube-apiserver is still installing it (reason
  ``Installing``, or none yet): Progressing. Argo CD calls that moment Degraded too; gitsync
  does not, because a CRD applied in a sync wave is checked right after the apply, and a wave
  must not fail on the second it takes kube-apiserver to serve the new API;
- ``NonStructuralSchema=True`` -> Degraded: the schema breaks the structural rules;
- otherwise Healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsync.health.assessment import Health
from gitsync.health.conditions import find, status_conditions
from gitsync.model import HealthStatus

INSTALLING_REASONS = frozenset({"", "Installing"})


def check_crd(obj: Mapping[str, Any]) -> Health:
    """Health of an ``apiextensions.k8s.io`` CustomResourceDefinition (v1 or v1beta1)."""
    conditions = status_conditions(obj)
    if not conditions:
        return Health(HealthStatus.PROGRESSING, "Waiting for kube-apiserver to accept the CRD")
    terminating = find(conditions, "Terminating")
    if terminating is not None and terminating.is_true:
        return Health(
            HealthStatus.PROGRESSING, f"CRD is being terminated: {terminating.explanation()}"
        )
    names = find(conditions, "NamesAccepted")
    if names is not None and names.is_false:
        return Health(
            HealthStatus.DEGRADED, f"CRD names have not been accepted: {names.explanation()}"
        )
    established = find(conditions, "Established")
    if established is None or not established.is_true:
        reason = established.reason if established is not None else ""
        detail = f": {established.explanation()}" if established is not None else ""
        if reason in INSTALLING_REASONS:
            return Health(HealthStatus.PROGRESSING, f"CRD is being established{detail}")
        return Health(HealthStatus.DEGRADED, f"CRD is not established{detail}")
    violations = find(conditions, "NonStructuralSchema")
    if violations is not None and violations.is_true:
        return Health(HealthStatus.DEGRADED, f"Schema violations found: {violations.explanation()}")
    return Health(HealthStatus.HEALTHY, "CRD is established")
