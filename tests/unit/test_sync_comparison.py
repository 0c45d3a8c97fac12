"""``Comparison``: an application's resources as the sync layer sees them - what is rendered now
(each with its diff or error) plus inventory entries no longer rendered (prune candidates). Its
verdicts (``diffs``, ``in_sync``, ``errors``) are pure, so they are tested here without a cluster;
the integration tests show ``Syncer.compare`` fills it from a real one."""

from __future__ import annotations

from typing import Any

from gitsync.diff import ResourceDiff
from gitsync.model import ResourceKey, SyncStatus
from gitsync.sync import Comparison
from gitsync.sync.inventory import InventoryEntry
from gitsync.sync.syncer import Item


def key(name: str) -> ResourceKey:
    return ResourceKey("apps", "Deployment", "shop", name)


def item(name: str, status: SyncStatus | None, error: str = "") -> Item:
    obj: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment"}
    diff = None if status is None else ResourceDiff(key(name), status)
    return Item(key(name), obj, wave=0, diff=diff, error=error)


def entry(name: str) -> InventoryEntry:
    return InventoryEntry("apps/v1", "Deployment", "shop", name)


def test_rendered_diffs_and_leftovers_sorted_by_key() -> None:
    comparison = Comparison(
        items=[item("web", SyncStatus.SYNCED), item("api", SyncStatus.MISSING)],
        extraneous={key("old"): entry("old"), key("aaa-old"): entry("aaa-old")},
        inventory={},
    )

    assert [(d.key.name, d.status) for d in comparison.diffs] == [
        ("aaa-old", SyncStatus.EXTRANEOUS),
        ("api", SyncStatus.MISSING),
        ("old", SyncStatus.EXTRANEOUS),
        ("web", SyncStatus.SYNCED),
    ]
    assert not comparison.in_sync


def test_in_sync_only_when_every_rendered_resource_is_synced_and_nothing_is_left_over() -> None:
    synced = [item("web", SyncStatus.SYNCED), item("api", SyncStatus.SYNCED)]
    assert Comparison(synced, {}, {}).in_sync
    assert Comparison([], {}, {}).in_sync

    assert not Comparison(synced, {key("old"): entry("old")}, {}).in_sync
    assert not Comparison([*synced, item("db", SyncStatus.OUT_OF_SYNC)], {}, {}).in_sync


def test_an_item_that_could_not_be_compared_is_never_in_sync() -> None:
    """A failed dry run leaves no diff (or a Synced one from the rendered manifest): the error
    decides, so a resource the cluster refused cannot pass as Synced."""
    refused = item("web", SyncStatus.SYNCED, error="dry-run apply failed: forbidden")
    not_compared = item("api", None, error="no kind 'Widget' in the cluster")
    comparison = Comparison([refused, not_compared], {}, {})

    assert not Comparison([refused], {}, {}).in_sync
    assert not Comparison([not_compared], {}, {}).in_sync
    assert not Comparison([item("db", None)], {}, {}).in_sync
    assert comparison.errors == [
        (key("web"), "dry-run apply failed: forbidden"),
        (key("api"), "no kind 'Widget' in the cluster"),
    ]
    assert [d.key for d in comparison.diffs] == [key("web")]
