"""Bounds on the objects the diff will walk, and the error raised when an object exceeds them.

The diff recurses over desired and live objects that come from Git and from the cluster, so a
pathological object (a CRD instance nested thousands of levels deep, a generated ConfigMap with
millions of entries) must not crash the reconcile loop with a ``RecursionError`` or stall it. The
walkers check these bounds as they go and raise ``ObjectTooComplex``; ``diff_resource`` turns that
into a per-resource ``Unknown`` status with a message, so one bad object does not hide the others.
"""

from __future__ import annotations

MAX_DEPTH = 100
"""Maximum nesting of maps and lists in one object (the root map is level 1)."""

MAX_NODES = 1_000_000
"""Maximum number of values (map entries and list items) walked for one desired/live pair."""


class ObjectTooComplex(ValueError):
    """The object is nested too deeply or is too large to diff.

    The message names the limit and where it was hit, never a value (values may be secret).
    """
