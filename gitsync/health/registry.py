"""Which health check applies to which kind, keyed by (API group, kind).

Keyed by group and kind - not apiVersion - because a check reads fields common to every served
version of a kind (the HPA check handles its version differences itself). Legacy groups that once
served the same kinds (``extensions`` for Deployment, DaemonSet, ReplicaSet and Ingress) map to the
same check. Kinds not listed fall back to ``check_generic`` (Ready/Available conditions).

Declared checks (``gitsync.health.custom``) come first and last: the operator's override any
check here, and the bundled ones cover kinds that have no check here, before the fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from gitsync import kinds
from gitsync.health.apiservice import check_apiservice
from gitsync.health.application import check_application
from gitsync.health.argo_rollout import check_argo_rollout
from gitsync.health.argo_workflow import check_argo_workflow
from gitsync.health.assessment import Health
from gitsync.health.conditions import check_generic
from gitsync.health.crd import check_crd
from gitsync.health.cronjob import check_cronjob
from gitsync.health.custom import CustomChecks
from gitsync.health.daemonset import check_daemonset
from gitsync.health.deployment import check_deployment
from gitsync.health.hpa import check_hpa
from gitsync.health.ingress import check_ingress
from gitsync.health.job import check_job
from gitsync.health.pod import check_pod
from gitsync.health.pvc import check_pvc
from gitsync.health.replicaset import check_replicaset
from gitsync.health.rollout import check_rollout
from gitsync.health.service import check_service
from gitsync.health.statefulset import check_statefulset

ARGO_GROUP = "argoproj.io"

HealthCheck = Callable[[Mapping[str, Any]], Health]
"""A pure function from a live object to its health; may raise ``MalformedObject``."""


CHECKS: Mapping[tuple[str, str], HealthCheck] = MappingProxyType(
    {
        ("apps", "Deployment"): check_deployment,
        ("extensions", "Deployment"): check_deployment,
        ("apps", "StatefulSet"): check_statefulset,
        ("apps", "DaemonSet"): check_daemonset,
        ("extensions", "DaemonSet"): check_daemonset,
        ("apps", "ReplicaSet"): check_replicaset,
        ("extensions", "ReplicaSet"): check_replicaset,
        ("", "Pod"): check_pod,
        ("", "Service"): check_service,
        ("", "PersistentVolumeClaim"): check_pvc,
        ("networking.k8s.io", "Ingress"): check_ingress,
        ("extensions", "Ingress"): check_ingress,
        ("batch", "Job"): check_job,
        ("batch", "CronJob"): check_cronjob,
        ("autoscaling", "HorizontalPodAutoscaler"): check_hpa,
        ("apiregistration.k8s.io", "APIService"): check_apiservice,
        ("apiextensions.k8s.io", "CustomResourceDefinition"): check_crd,
        (kinds.GROUP, kinds.APPLICATION): check_application,
        (kinds.GROUP, kinds.ROLLOUT): check_rollout,
        # Argo CD's Application reports its health like gitsync's; Argo Rollouts and Workflows
        # have their own status shapes.
        (ARGO_GROUP, "Application"): check_application,
        (ARGO_GROUP, "Rollout"): check_argo_rollout,
        (ARGO_GROUP, "Workflow"): check_argo_workflow,
    }
)


def check_for(group: str, kind: str, declared: CustomChecks | None = None) -> HealthCheck:
    """The check for a kind: the operator's declared check, else the code check here, else a
    bundled declared check, else the generic conditions-based fallback."""
    user = declared.user_check(group, kind) if declared is not None else None
    if user is not None:
        return user.assess
    code = CHECKS.get((group, kind))
    if code is not None:
        return code
    bundled = declared.bundled_check(group, kind) if declared is not None else None
    return bundled.assess if bundled is not None else check_generic
