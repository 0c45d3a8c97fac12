"""In what order objects are applied: sync waves, then kind stages within a wave.

A wave is the integer in the ``gitsync.dev/sync-wave`` annotation, or Argo CD's
``argocd.argoproj.io/sync-wave`` (gitsync's wins when both are set; read by
``gitsync.render.hooks.declared_wave``, the same reading hooks get; default 0); lower waves go first
and each must be healthy before the next starts. Within a wave, kinds go in stages - Namespaces
and CRDs first (CRDs must be Established before their custom resources can be applied), then the
identity and configuration that workloads reference, then Services, then workloads, then the rest.
Objects inside one stage do not depend on each other, so the sync layer applies them in parallel.
Hooks (Argo CD's, and Helm's mapped to them) are not ordered here: they never reach the waves of
main resources, ``gitsync.sync.hooks`` runs them in their phases. Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gitsync.render.hooks import WAVE_ANNOTATIONS, HookSpecError, declared_wave

WAVE_ANNOTATION = WAVE_ANNOTATIONS[0]

STAGES: tuple[frozenset[str], ...] = (
    frozenset({"Namespace", "CustomResourceDefinition"}),
    frozenset(
        {
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ResourceQuota",
            "LimitRange",
            "NetworkPolicy",
            "PodSecurityPolicy",
            "PriorityClass",
            "StorageClass",
            "PersistentVolume",
        }
    ),
    frozenset({"ConfigMap", "Secret", "PersistentVolumeClaim"}),
    frozenset({"Service"}),
    frozenset(
        {
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "ReplicationController",
            "Pod",
            "Job",
            "CronJob",
        }
    ),
)
REST_STAGE = len(STAGES)


class WaveError(ValueError):
    """A sync-wave annotation is not an integer."""


def stage_of(kind: str) -> int:
    for index, kinds in enumerate(STAGES):
        if kind in kinds:
            return index
    return REST_STAGE


def wave_of(obj: dict[str, Any]) -> int:
    try:
        return declared_wave(obj)
    except HookSpecError as exc:
        raise WaveError(str(exc)) from None


@dataclass(frozen=True)
class Wave:
    number: int
    stages: tuple[
        tuple[Any, ...], ...
    ]  # items grouped by stage, in stage order, empty stages dropped

    def items(self) -> list[Any]:
        return [item for stage in self.stages for item in stage]


def plan_waves(items: Iterable[Any], *, wave: Any = None, kind: Any = None) -> list[Wave]:
    """Group ``items`` into waves and stages. ``wave(item)`` and ``kind(item)`` read an item;
    by default items are objects (dicts)."""
    wave_fn = wave or wave_of
    kind_fn = kind or (lambda obj: str(obj.get("kind", "")))
    grouped: dict[int, dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        grouped[wave_fn(item)][stage_of(kind_fn(item))].append(item)
    return [
        Wave(number, tuple(tuple(stages[s]) for s in sorted(stages)))
        for number, stages in sorted(grouped.items())
    ]
