"""Sync: the side-effecting stage. Applies, prunes and records the inventory - only through the
Kubernetes adapter. See ``syncer`` for the stages."""

from gitsync.sync.syncer import (
    Comparison,
    EmptyRenderError,
    ResourceResult,
    Syncer,
    SyncResult,
)

__all__ = ["Comparison", "EmptyRenderError", "ResourceResult", "SyncResult", "Syncer"]
