"""Protocols by type, not by string: the API group, versions and kinds live in ``gitsync.kinds``;
the canary vs blue-green choice is made once (``rollout.strategy``); trigger reasons are a
``Trigger`` enum. The source scan fails when a module spells the group or a version again."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from gitsync import kinds
from gitsync.controller.reconciler import HEAD_MAX_AGE, SHARED_HEAD_TRIGGERS, Trigger, head_max_age
from gitsync.model import ResourceKey, ResultCode
from gitsync.rollout import bluegreen
from gitsync.rollout import canary as core
from gitsync.rollout.spec import parse_rollout_spec
from gitsync.rollout.status import CANARY_ROLE, PREVIEW_ROLE
from gitsync.rollout.strategy import BLUE_GREEN, CANARY, strategy_of
from gitsync.sync import ResourceResult, SyncOutcome, SyncResult

PACKAGE = Path(kinds.__file__).parent


def spelled_elsewhere(is_wire_name: Callable[[object], bool]) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "kinds.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and callable(is_wire_name)
                and is_wire_name(node.value)
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    return found


def test_the_api_group_and_its_versions_are_spelled_only_in_kinds() -> None:
    def group_or_version(value: object) -> bool:
        return value == kinds.GROUP or (
            isinstance(value, str) and value.startswith(f"{kinds.GROUP}/v1")
        )

    assert spelled_elsewhere(group_or_version) == []


def test_kinds_recognise_gitsync_objects_only() -> None:
    assert kinds.API_VERSION == "gitsync.dev/v1alpha1"
    assert kinds.is_rollout("gitsync.dev", "Rollout")
    assert not kinds.is_rollout("argoproj.io", "Rollout")
    assert kinds.is_application("gitsync.dev", "Application")
    assert not kinds.is_application("argoproj.io", "Application")
    assert not kinds.is_rollout(None, None)


CANARY_SPEC = {
    "targetRef": {"kind": "Deployment", "name": "web"},
    "strategy": {
        "canary": {
            "stableService": "web",
            "canaryService": "web-canary",
            "trafficRouting": {"nginx": {"stableIngress": "web"}},
            "steps": [{"setWeight": 20}],
        }
    },
}
BLUE_GREEN_SPEC = {
    "targetRef": {"kind": "Deployment", "name": "web"},
    "strategy": {"blueGreen": {"activeService": "web", "previewService": "web-preview"}},
}


def test_a_canary_rollout_runs_the_canary_strategy() -> None:
    spec = parse_rollout_spec(CANARY_SPEC)
    strategy = strategy_of(spec)
    assert strategy is CANARY and strategy.start is core.start and strategy.step is core.step
    assert (strategy.second, strategy.role) == ("canary", CANARY_ROLE)
    assert strategy.pinned_services(spec) == {
        core.STABLE_SERVICE: "web",
        core.CANARY_SERVICE: "web-canary",
    }


def test_a_canary_without_a_router_pins_no_service() -> None:
    plain = {**CANARY_SPEC, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}
    spec = parse_rollout_spec(plain)
    assert strategy_of(spec).pinned_services(spec) == {}


def test_a_blue_green_rollout_runs_the_blue_green_strategy() -> None:
    spec = parse_rollout_spec(BLUE_GREEN_SPEC)
    strategy = strategy_of(spec)
    assert strategy is BLUE_GREEN
    assert strategy.start is bluegreen.start and strategy.step is bluegreen.step
    assert (strategy.second, strategy.role) == ("preview", PREVIEW_ROLE)
    assert strategy.pinned_services(spec) == {
        bluegreen.ACTIVE_SERVICE: "web",
        bluegreen.PREVIEW_SERVICE: "web-preview",
    }


@pytest.mark.parametrize("trigger", sorted(SHARED_HEAD_TRIGGERS))
def test_the_shared_head_triggers_are_trigger_members(trigger: str) -> None:
    assert isinstance(trigger, Trigger)
    assert head_max_age({trigger}) == HEAD_MAX_AGE


def test_triggers_keep_their_wire_names() -> None:
    # the queue merges them with web actions' reasons ("web:sync") and logs print them
    assert Trigger.INTERVAL == "interval" and Trigger.push("github") == "push:github"
    assert head_max_age({Trigger.push("github")}) == 0.0
    assert head_max_age({Trigger.MANUAL, Trigger.INTERVAL}) == 0.0


def test_a_sync_fails_by_its_outcome_not_by_carrying_a_message() -> None:
    key = ResourceKey("apps", "Deployment", "shop", "web")
    clean = SyncResult(revision="a" * 40)
    assert clean.outcome == SyncOutcome.SUCCEEDED and clean.phase == "Succeeded"
    clean.message = "3 objects applied"  # a message alone says nothing about the outcome
    assert clean.succeeded
    one_bad = SyncResult("a" * 40, [ResourceResult(key, ResultCode.SYNC_FAILED, "invalid", 0)])
    assert one_bad.outcome == SyncOutcome.FAILED and one_bad.phase == "Failed"
    stopped = SyncResult(revision="a" * 40)
    stopped.abort("wave 1 failed; later waves were not applied")
    assert stopped.outcome == SyncOutcome.FAILED and not stopped.succeeded
