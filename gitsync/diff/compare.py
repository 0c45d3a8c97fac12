"""The structural comparison of two normalized objects, and the copies rendered for display.

``Comparison`` walks desired and live together once and records where they differ, as RFC 6902
operations that turn live into desired (``add``/``remove``/``replace`` with pointer tokens; values
are filled in later, and only for objects that differ). It is hand-written rather than
``jsonpatch.make_patch`` for three reasons: the patch, ``changed_paths`` and the sync status must
agree exactly; JSON equality is not Python equality (``true`` is not ``1``, but ``1`` is ``1.0``);
and the walk enforces ``MAX_DEPTH``/``MAX_NODES`` as it goes, so a hostile object yields an error
status instead of a ``RecursionError``. Equal objects - the common case - cost one pass and no
allocation beyond the path stack.

Lists are compared by position: a changed item shows as changes inside it, and a length change as
``add``s or ``remove``s at the tail (removals from the highest index down, so the patch applies in
order). In subset mode a key present only in live is not a difference; list lengths still must
match, since a list written in a manifest is normally owned whole.

``render`` makes the display copy for objects that do differ: numbers canonical (``1.0`` becomes
``1``), keys strings, nothing shared with the caller's objects.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from gitsync.diff.limits import MAX_DEPTH, MAX_NODES, ObjectTooComplex
from gitsync.diff.pointer import format_pointer

Change = tuple[str, tuple[str, ...]]
"""(op, tokens): op is ``add``, ``remove`` or ``replace``; tokens lead from the root."""

_MAX_PATH_IN_MESSAGE = 160


class Comparison:
    """One walk over a desired/live pair. Use ``changes_between``."""

    __slots__ = ("changes", "nodes", "path", "subset")

    def __init__(self, *, subset: bool) -> None:
        self.subset = subset
        self.changes: list[Change] = []
        self.path: list[str] = []
        self.nodes = 0

    def compare(self, desired: Any, live: Any, depth: int) -> None:
        if isinstance(desired, dict):
            if isinstance(live, dict):
                self._maps(desired, live, depth)
                return
        elif isinstance(desired, list):
            if isinstance(live, list):
                self._lists(desired, live, depth)
                return
        elif not isinstance(live, dict | list):
            if not json_equal(desired, live):
                self._record("replace")
            return
        self.measure(desired, depth)
        self.measure(live, depth)
        self._record("replace")

    def _maps(self, desired: dict[Any, Any], live: dict[Any, Any], depth: int) -> None:
        self._enter(depth, len(desired) + len(live))
        path = self.path
        for key, d_value in desired.items():
            if key in live:
                l_value = live[key]
                if d_value.__class__ is str and l_value.__class__ is str:
                    # The common leaf, kept out of the recursion.
                    if d_value != l_value:
                        path.append(_token(key))
                        self._record("replace")
                        path.pop()
                    continue
                path.append(_token(key))
                self.compare(d_value, l_value, depth + 1)
                path.pop()
            else:
                path.append(_token(key))
                self.measure(d_value, depth + 1)
                self._record("add")
                path.pop()
        if self.subset:
            return
        for key, l_value in live.items():
            if key not in desired:
                path.append(_token(key))
                self.measure(l_value, depth + 1)
                self._record("remove")
                path.pop()

    def _lists(self, desired: list[Any], live: list[Any], depth: int) -> None:
        self._enter(depth, len(desired) + len(live))
        path = self.path
        common = min(len(desired), len(live))
        for i in range(common):
            path.append(str(i))
            self.compare(desired[i], live[i], depth + 1)
            path.pop()
        for i in range(len(live) - 1, common - 1, -1):
            path.append(str(i))
            self.measure(live[i], depth + 1)
            self._record("remove")
            path.pop()
        for i in range(common, len(desired)):
            path.append(str(i))
            self.measure(desired[i], depth + 1)
            self._record("add")
            path.pop()

    def measure(self, value: Any, depth: int) -> None:
        """Check the bounds of a sub-tree that only one side has, without recursion."""
        stack = [(value, depth)]
        while stack:
            node, level = stack.pop()
            if isinstance(node, dict):
                self._enter(level, len(node))
                stack.extend((child, level + 1) for child in node.values())
            elif isinstance(node, list):
                self._enter(level, len(node))
                stack.extend((child, level + 1) for child in node)

    def _enter(self, depth: int, size: int) -> None:
        if depth >= MAX_DEPTH:
            raise ObjectTooComplex(
                f"object nests deeper than {MAX_DEPTH} levels, under {self._where()}"
            )
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise ObjectTooComplex(f"object has more than {MAX_NODES} values to compare")

    def _record(self, op: str) -> None:
        self.changes.append((op, tuple(self.path)))

    def _where(self) -> str:
        where = format_pointer(self.path) or "/"
        if len(where) > _MAX_PATH_IN_MESSAGE:
            return where[:_MAX_PATH_IN_MESSAGE] + "..."
        return where


def changes_between(desired: Any, live: Any, *, subset: bool = False) -> list[Change]:
    """The operations turning ``live`` into ``desired``; empty when they are equal.

    Raises ``ObjectTooComplex`` when the pair exceeds ``MAX_DEPTH`` or ``MAX_NODES``.
    """
    comparison = Comparison(subset=subset)
    comparison.compare(desired, live, 0)
    return comparison.changes


def check_bounds(value: Any) -> None:
    """Raise ``ObjectTooComplex`` if one object alone exceeds the bounds (e.g. a Missing one)."""
    Comparison(subset=False).measure(value, 0)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON scalars: equal numbers are equal whatever their type, but booleans
    equal only booleans; NaN equals NaN so that an object always equals itself."""
    if a.__class__ is bool or b.__class__ is bool:
        return a.__class__ is b.__class__ and a == b
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def _token(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


_PLAIN_SCALARS = (str, int, bool, type(None), datetime.date, bytes)


def render(value: Any, shape: Any = None, *, subset: bool = False) -> Any:
    """A private deep copy of ``value`` for display: integral floats become ints, map keys
    become strings, unknown scalar types become their ``str``.

    With ``subset``, maps keep only the keys ``shape`` (the desired side) has, recursively, so a
    subset-mode diff shows live projected onto the fields desired declares.
    Only call on objects whose bounds were already checked.
    """
    if isinstance(value, dict):
        if subset and isinstance(shape, dict):
            return {
                _token(k): render(v, shape[k], subset=True) for k, v in value.items() if k in shape
            }
        return {_token(k): render(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if subset and isinstance(shape, list):
            return [
                render(v, shape[i], subset=True) if i < len(shape) else render(v)
                for i, v in enumerate(value)
            ]
        return [render(v) for v in value]
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, _PLAIN_SCALARS):
        return value
    return str(value)
