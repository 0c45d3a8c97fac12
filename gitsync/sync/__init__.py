"""Sync: the side-effecting stage. Applies, prunes and records the inventory - only through the
Kubernetes adapter. See ``syncer`` for the stages.

Owns: apply, prune, the inventory, impersonation of an app's ServiceAccount. May import: diff,
health, render, source, kube, policy, application, model, kinds, errors, logs. Never engine,
controller or above (import-linter: ``layers``).
"""

from gitsync.sync.identity import Impersonation, NoServiceAccountError
from gitsync.sync.syncer import (
    POLICY_DENIED,
    Comparison,
    EmptyRenderError,
    ResourceResult,
    Syncer,
    SyncOutcome,
    SyncResult,
)

__all__ = [
    "POLICY_DENIED",
    "Comparison",
    "EmptyRenderError",
    "Impersonation",
    "NoServiceAccountError",
    "ResourceResult",
    "SyncOutcome",
    "SyncResult",
    "Syncer",
]
