"""``IgnoreRule``: the user's way to say "this difference is expected, do not report it".

Mirrors Argo CD's ``ignoreDifferences``: a rule selects resources by group, kind, name and
namespace (``*`` or shell-style globs), and names what to ignore either by JSON pointer or by the
field managers whose fields should be trusted (see ``managed_fields``). Pointers are parsed once,
when the rule is built, so a bad pointer is a configuration error reported up front rather than a
silent no-op on every reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from gitsync.application import IgnoreDifference
from gitsync.diff.pointer import parse_pointer
from gitsync.model import ResourceKey

ANY = "*"


@dataclass(frozen=True)
class IgnoreRule:
    """Ignore ``json_pointers`` and the fields owned by ``managers`` on the matching resources.

    ``group`` is ``""`` for the core API group. Pointers must start with ``/``; they may use the
    ``~0``/``~1`` escapes and list indexes, and a path missing from an object is simply skipped.
    Pointers are removed in order, like a sequence of JSON-patch ``remove`` operations, so two
    indexes into the same list refer to the list as it is after the earlier removal.
    """

    group: str = ANY
    kind: str = ANY
    name: str = ANY
    namespace: str = ANY
    json_pointers: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()
    pointer_tokens: tuple[tuple[str, ...], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        # Accept any iterable of strings (e.g. lists from YAML) but store tuples: the rule is
        # frozen and hashable.
        object.__setattr__(self, "json_pointers", tuple(self.json_pointers))
        object.__setattr__(self, "managers", tuple(self.managers))
        tokens = []
        for pointer in self.json_pointers:
            parsed = parse_pointer(pointer)
            if not parsed:
                raise ValueError("an ignore rule cannot ignore the whole object (pointer '')")
            tokens.append(parsed)
        object.__setattr__(self, "pointer_tokens", tuple(tokens))

    @classmethod
    def from_difference(cls, rule: IgnoreDifference) -> IgnoreRule:
        """The matcher for an Application's ``ignoreDifferences`` entry, which
        ``gitsync.application`` parsed and validated (the one parser of the spec)."""
        return cls(
            rule.group, rule.kind, rule.name, rule.namespace, rule.json_pointers, rule.managers
        )

    def matches(self, key: ResourceKey) -> bool:
        return (
            _glob(self.group, key.group)
            and _glob(self.kind, key.kind)
            and _glob(self.name, key.name)
            and _glob(self.namespace, key.namespace)
        )


def _glob(pattern: str, value: str) -> bool:
    return pattern == ANY or fnmatchcase(value, pattern)
