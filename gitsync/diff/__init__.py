"""The diff core: what would applying the desired state change in the cluster?

Pure functions over plain dicts - no I/O, no Kubernetes client - so every rule is tested from
fixture files. The sync layer feeds it desired objects (server-side-apply dry-run results, so
server defaults never show as differences) and live objects, and gets back one ``ResourceDiff`` per
resource: a ``SyncStatus``, an RFC 6902 patch, a unified YAML diff and the changed JSON pointers,
with Secret values masked. Which resources an application has (rendered now, or left in its
inventory) is the sync layer's question (``gitsync.sync.Comparison``), not this package's.

Modules, bottom up: ``limits`` (bounds), ``pointer`` (RFC 6901), ``ignore`` (``IgnoreRule``),
``managed_fields`` (fields owned by a field manager), ``normalize`` (what is compared),
``masking`` (Secret values), ``compare`` (the structural walk) and ``resource`` (one resource).

Owns: comparing one desired and one live object. May import: application (the spec's ignore rules),
model, errors, logs and the standard library only - no adapter, no subprocess, no socket (import-
linter: ``pure-cores``).
"""

from gitsync.diff.ignore import IgnoreRule
from gitsync.diff.limits import MAX_DEPTH, MAX_NODES, ObjectTooComplex
from gitsync.diff.masking import mask_secret
from gitsync.diff.normalize import (
    GITSYNC_BOOKKEEPING_KEYS,
    IGNORED_ANNOTATIONS,
    IGNORED_LABELS,
    normalize,
)
from gitsync.diff.resource import ResourceDiff, diff_resource

__all__ = [
    "GITSYNC_BOOKKEEPING_KEYS",
    "IGNORED_ANNOTATIONS",
    "IGNORED_LABELS",
    "MAX_DEPTH",
    "MAX_NODES",
    "IgnoreRule",
    "ObjectTooComplex",
    "ResourceDiff",
    "diff_resource",
    "mask_secret",
    "normalize",
]
