"""Diffing a whole application: every desired resource, plus the inventory's leftovers.

An application's resources are the union of what is rendered now (desired) and what gitsync
applied before (the inventory the sync layer records). A rendered resource is compared with its
live object (Missing when there is none); an inventory resource that is no longer rendered is
Extraneous - a candidate for pruning - unless the caller looked it up and found it gone. Live
objects that are in neither set are not this application's and are not reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitsync.diff.ignore import IgnoreRule
from gitsync.diff.resource import ResourceDiff, diff_resource, extraneous
from gitsync.model import ResourceKey, SyncStatus


@dataclass(frozen=True)
class DiffResult:
    """The per-resource diffs of one application, sorted by key."""

    resources: tuple[ResourceDiff, ...]

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "resources", tuple(sorted(self.resources, key=lambda diff: diff.key))
        )

    @property
    def in_sync(self) -> bool:
        """Every resource is Synced (Missing, Extraneous, OutOfSync and Unknown are not)."""
        return all(diff.status is SyncStatus.SYNCED for diff in self.resources)

    def by_status(self, status: SyncStatus) -> list[ResourceDiff]:
        return [diff for diff in self.resources if diff.status is status]


def diff_app(
    desired: Mapping[ResourceKey, dict[str, Any]],
    live: Mapping[ResourceKey, dict[str, Any] | None],
    inventory: Iterable[ResourceKey] = (),
    *,
    ignore: Sequence[IgnoreRule] = (),
    rendered_only: Collection[ResourceKey] = (),
) -> DiffResult:
    """Diff every desired resource and every inventory resource no longer desired.

    ``live`` maps keys to live objects; a desired key that is absent or None is Missing. An
    inventory key that is not desired is Extraneous, except when ``live`` maps it to None (looked
    up, already gone: nothing to prune). A key absent from ``live`` is reported Extraneous with
    an empty unified diff rather than silently dropped, so a forgotten lookup cannot leak an object.
    ``rendered_only`` names desired keys whose desired object is the rendered manifest because the
    dry run was unavailable; they are compared in subset mode (see ``diff_resource``).
    """
    rendered_only = frozenset(rendered_only)
    diffs = [
        diff_resource(
            key,
            obj,
            live.get(key),
            ignore=ignore,
            desired_is_dry_run=key not in rendered_only,
        )
        for key, obj in desired.items()
    ]
    for key in dict.fromkeys(inventory):
        if key in desired:
            continue
        if key not in live:
            diffs.append(extraneous(key, None))
        elif live[key] is not None:
            diffs.append(diff_resource(key, None, live[key], ignore=ignore))
    return DiffResult(tuple(diffs))
