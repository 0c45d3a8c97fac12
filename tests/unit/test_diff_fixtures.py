"""Table test: every case in tests/fixtures/diff/ through ``diff_resource`` (see the README
there)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from gitsync.application import parse_ignore_differences
from gitsync.diff import IgnoreRule, ResourceDiff, diff_resource, normalize
from gitsync.model import ResourceKey, SyncStatus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "diff"
CASES = sorted(FIXTURES.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert isinstance(case, dict) and "expect" in case, f"{path.name}: no expect"
    return case


def patch_checkable(path: Path) -> bool:
    """Full-mode pairs outside Secrets (whose patch values are masked)."""
    case = load(path)
    desired, live = case.get("desired"), case.get("live")
    return (
        desired is not None
        and live is not None
        and case.get("dry_run", True)
        and desired.get("kind") != "Secret"
    )


PATCH_CASES = [path for path in CASES if patch_checkable(path)]


def ignore_rules(case: dict[str, Any]) -> list[IgnoreRule]:
    """The case's Argo-style entries through the Application's parser, as the syncer gets them."""
    return [IgnoreRule.from_difference(d) for d in parse_ignore_differences(case.get("ignore"))]


def run(case: dict[str, Any]) -> ResourceDiff:
    desired, live = case.get("desired"), case.get("live")
    shown = desired if desired is not None else live
    assert isinstance(shown, dict), "a case needs desired or live"
    key = ResourceKey.of(shown)
    ignore = ignore_rules(case)
    # A resource that is not rendered is compared only when the inventory says gitsync applied it
    # (the sync layer's Comparison picks those); a case without either compares nothing.
    assert desired is not None or case.get("inventory"), "not rendered and not in the inventory"
    return diff_resource(
        key,
        desired,
        live,
        ignore=ignore,
        desired_is_dry_run=case.get("dry_run", True),
        mask_scope="t/app",
    )


def test_fixture_directory_has_cases() -> None:
    assert len(CASES) >= 10, f"no diff fixtures found in {FIXTURES}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_fixture(path: Path) -> None:
    case = load(path)
    expect = case["expect"]
    diff = run(case)

    assert diff.status == SyncStatus(expect["status"]), diff.error or diff.unified
    assert sorted(diff.changed_paths) == sorted(expect.get("changed_paths", []))
    assert diff.error is None
    if diff.status is SyncStatus.SYNCED:
        assert diff.patch == []
        assert diff.unified == ""
    else:
        assert [op["path"] for op in diff.patch] == list(diff.changed_paths)
        assert diff.unified.startswith(f"--- live/{diff.key}\n+++ desired/{diff.key}\n")

    for secret in case.get("must_not_reveal") or ():
        encoded = base64.b64encode(secret.encode()).decode()
        for text in (diff.unified, json.dumps(diff.patch), repr(diff)):
            assert secret not in text
            assert encoded not in text


@pytest.mark.parametrize("path", PATCH_CASES, ids=lambda p: p.stem)
def test_patch_turns_live_into_desired(path: Path) -> None:
    """Applying the patch to normalized live yields normalized desired."""
    case = load(path)
    desired, live = case["desired"], case["live"]
    diff = run(case)
    ignore = ignore_rules(case)
    live_fields = (live.get("metadata") or {}).get("managedFields", [])
    live_n = normalize(live, ignore=ignore, managed_fields=live_fields)
    desired_n = normalize(desired, ignore=ignore, managed_fields=live_fields)
    assert live_n is not None and desired_n is not None
    if "ownerReferences" not in desired_n.get("metadata", {}):
        live_n["metadata"].pop("ownerReferences", None)
    assert jsonpatch.apply_patch(live_n, diff.patch) == desired_n
