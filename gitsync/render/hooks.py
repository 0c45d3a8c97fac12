"""What a manifest declares about hooks: its phases, delete policies and wave. Pure, no I/O.

Repositories written for Argo CD must work unchanged, so a hook is declared by
``argocd.argoproj.io/hook`` or ``gitsync.dev/hook`` (same values, comma-separated phases) and its
clean-up by ``hook-delete-policy`` under either prefix. Helm charts declare hooks with
``helm.sh/hook``; they are mapped the way Argo CD maps them (crd-install, pre-install and
pre-upgrade -> PreSync, post-install and post-upgrade -> PostSync, pre-delete and post-delete ->
only when the app is deleted, rollback and test hooks -> never applied), with
``helm.sh/hook-weight`` as the wave and ``helm.sh/hook-delete-policy`` translated. An explicit
Argo CD / gitsync annotation wins over Helm's, as in Argo CD.

The declaration is read here, below the sync layer, because the render must refuse what cannot be
synced while it still knows the file and line: an unknown phase or policy, and
``metadata.generateName`` on an object that is not a hook (a main resource needs a stable name to
be compared, tracked and pruned; a hook is created anew each time, so a generated name is fine).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

HOOK_ANNOTATIONS = ("gitsync.dev/hook", "argocd.argoproj.io/hook")
DELETE_POLICY_ANNOTATIONS = (
    "gitsync.dev/hook-delete-policy",
    "argocd.argoproj.io/hook-delete-policy",
)
WAVE_ANNOTATIONS = ("gitsync.dev/sync-wave", "argocd.argoproj.io/sync-wave")
"""A wave, on hooks and main resources alike; when both are set, gitsync's own wins (a
repository moving from Argo CD overrides a wave without editing Argo's annotation)."""
HELM_HOOK = "helm.sh/hook"
HELM_WEIGHT = "helm.sh/hook-weight"
HELM_DELETE_POLICY = "helm.sh/hook-delete-policy"
MAX_WAVE = 1_000_000
E = TypeVar("E", bound=enum.StrEnum)


class HookPhase(enum.StrEnum):
    """When a hook runs (Argo CD's phase names)."""

    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"
    SKIP = "Skip"  # never applied
    PRE_DELETE = "PreDelete"  # only when the app is deleted
    POST_DELETE = "PostDelete"  # only when the app is deleted


SYNC_PHASES = frozenset(
    {HookPhase.PRE_SYNC, HookPhase.SYNC, HookPhase.POST_SYNC, HookPhase.SYNC_FAIL}
)
"""The phases a sync operation runs; the others are never applied by a sync."""


class DeletePolicy(enum.StrEnum):
    """When a hook object is deleted (Argo CD's names)."""

    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    BEFORE_HOOK_CREATION = "BeforeHookCreation"


HELM_PHASES: dict[str, HookPhase] = {
    "crd-install": HookPhase.PRE_SYNC,  # Helm 2's; Argo CD maps it so
    "pre-install": HookPhase.PRE_SYNC,
    "pre-upgrade": HookPhase.PRE_SYNC,
    "post-install": HookPhase.POST_SYNC,
    "post-upgrade": HookPhase.POST_SYNC,
    "pre-delete": HookPhase.PRE_DELETE,
    "post-delete": HookPhase.POST_DELETE,
    "pre-rollback": HookPhase.SKIP,
    "post-rollback": HookPhase.SKIP,
    "test": HookPhase.SKIP,
    "test-success": HookPhase.SKIP,
    "test-failure": HookPhase.SKIP,
}
HELM_DELETE_POLICIES: dict[str, DeletePolicy] = {
    "before-hook-creation": DeletePolicy.BEFORE_HOOK_CREATION,
    "hook-succeeded": DeletePolicy.HOOK_SUCCEEDED,
    "hook-failed": DeletePolicy.HOOK_FAILED,
}


class HookSpecError(ValueError):
    """A hook annotation names an unknown phase or policy, or a wave that is not an integer."""


@dataclass(frozen=True)
class HookSpec:
    """A manifest's hook declaration."""

    phases: frozenset[HookPhase]
    delete_policies: frozenset[DeletePolicy]
    wave: int = 0

    def runs_in(self, phase: HookPhase) -> bool:
        return phase in self.phases

    @property
    def skipped(self) -> bool:
        """Never applied by a sync (Skip, or only deletion phases)."""
        return not (self.phases & SYNC_PHASES)


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _first(annotations: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        if annotations.get(name) is not None:
            return name, str(annotations[name])
    return None


def _values(raw: str) -> list[str]:
    return [v.strip() for v in raw.split(",") if v.strip()]


def _parse_wave(name: str, raw: str) -> int:
    try:
        wave = int(raw.strip())
    except ValueError:
        raise HookSpecError(f"annotation {name} must be an integer, got {raw!r}") from None
    if abs(wave) > MAX_WAVE:
        raise HookSpecError(f"annotation {name} is out of range: {raw!r}")
    return wave


def declared_wave(obj: Mapping[str, Any]) -> int:
    """The wave ``WAVE_ANNOTATIONS`` declare (gitsync's first), 0 when neither is set. Raises
    ``HookSpecError`` naming the annotation whose value is not an integer in range."""
    found = _first(_annotations(obj), WAVE_ANNOTATIONS)
    return _parse_wave(*found) if found is not None else 0


def _enum_values(name: str, raw: str, mapping: Mapping[str, E]) -> frozenset[E]:
    out: set[E] = set()
    for value in _values(raw):
        if value not in mapping:
            known = ", ".join(mapping)
            raise HookSpecError(f"annotation {name}: unknown value {value!r} (known: {known})")
        out.add(mapping[value])
    if not out:
        raise HookSpecError(f"annotation {name} is empty")
    return frozenset(out)


def hook_spec(obj: Mapping[str, Any]) -> HookSpec | None:
    """The object's hook declaration, or None when it is a main resource. Raises
    ``HookSpecError`` naming the annotation and the value it does not know."""
    annotations = _annotations(obj)
    declared = _first(annotations, HOOK_ANNOTATIONS)
    helm = annotations.get(HELM_HOOK)
    if declared is None and helm is None:
        return None
    if declared is not None:
        name, raw = declared
        phases = _enum_values(name, raw, {p.value: p for p in HookPhase})
        policy = _first(annotations, DELETE_POLICY_ANNOTATIONS)
        policy_map: Mapping[str, DeletePolicy] = {p.value: p for p in DeletePolicy}
    else:
        phases = _enum_values(HELM_HOOK, str(helm), HELM_PHASES)
        policy = _first(annotations, (HELM_DELETE_POLICY,))
        policy_map = HELM_DELETE_POLICIES
    policies = (
        _enum_values(policy[0], policy[1], policy_map)
        if policy is not None
        else frozenset({DeletePolicy.BEFORE_HOOK_CREATION})
    )
    wave_names = WAVE_ANNOTATIONS if declared is not None else (HELM_WEIGHT, *WAVE_ANNOTATIONS)
    found = _first(annotations, wave_names)
    wave = _parse_wave(*found) if found is not None else 0
    return HookSpec(phases, policies, wave)


def generate_name(obj: Mapping[str, Any]) -> str:
    """``metadata.generateName`` when the object has no ``metadata.name``, else ""."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("name"):
        return ""
    value = meta.get("generateName")
    return value if isinstance(value, str) else ""
