"""Rolling sync of an ApplicationSet: the strategy's parsing and the pins each pass decides -
"a new revision reaches prod only after staging is Healthy at that revision" as pure logic."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.application import SpecError
from gitsync.appset.rolling import AppState, StepPhase, decide, parse_promotion, promotion_for
from gitsync.appset.spec import RollingSync, parse_application_set, parse_strategy

OLD = "a" * 40
NEW = "b" * 40


def strategy(*steps: dict[str, Any]) -> RollingSync:
    return parse_strategy({"type": "RollingSync", "rollingSync": {"steps": list(steps)}})


def env(*values: str, **extra: Any) -> dict[str, Any]:
    return {"matchExpressions": [{"key": "env", "operator": "In", "values": list(values)}], **extra}


STAGING_THEN_PROD = strategy(env("staging"), env("prod"))


def app(
    name: str, env_label: str, pinned: str, *, at: str = "", health: str = "Healthy"
) -> AppState:
    """An app pinned to ``pinned`` whose status reports revision ``at`` (default: the pin)."""
    revision = at or pinned
    return AppState(name, {"env": env_label}, pinned, revision, "Synced", health)


def test_a_new_revision_goes_to_staging_first_and_prod_keeps_the_old_one() -> None:
    apps = [app("staging", "staging", OLD), app("prod", "prod", OLD)]
    rollout = decide(STAGING_THEN_PROD, apps, NEW, proven=OLD)
    assert rollout.pins == {"staging": NEW, "prod": OLD}
    assert [s.phase for s in rollout.steps] == [StepPhase.PROGRESSING, StepPhase.WAITING]
    assert rollout.steps[1].message == "waits for step 1"


@pytest.mark.parametrize(
    "staging",
    [
        AppState("staging", {"env": "staging"}, NEW, OLD, "Synced", "Healthy"),  # not synced yet
        AppState("staging", {"env": "staging"}, NEW, NEW, "OutOfSync", "Healthy"),
        AppState("staging", {"env": "staging"}, NEW, NEW, "Synced", "Progressing"),
    ],
    ids=["old-revision", "out-of-sync", "progressing"],
)
def test_prod_waits_until_staging_is_synced_and_healthy_at_the_new_revision(
    staging: AppState,
) -> None:
    rollout = decide(STAGING_THEN_PROD, [staging, app("prod", "prod", OLD)], NEW, proven=OLD)
    assert rollout.pins["prod"] == OLD


def test_prod_moves_once_staging_is_healthy_at_the_new_revision() -> None:
    apps = [app("staging", "staging", NEW), app("prod", "prod", OLD)]
    rollout = decide(STAGING_THEN_PROD, apps, NEW, proven=OLD)
    assert rollout.pins == {"staging": NEW, "prod": NEW}
    assert [s.phase for s in rollout.steps] == [StepPhase.DONE, StepPhase.PROGRESSING]
    assert not rollout.complete


def test_the_proven_revision_is_the_one_every_app_is_healthy_at() -> None:
    """Read from the apps, so a push that comes before any pass saw the rollout complete still
    finds the revision it completed at."""
    settled = [app("staging", "staging", OLD), app("prod", "prod", OLD)]
    assert decide(STAGING_THEN_PROD, settled, NEW, proven="").proven == OLD
    apart = [app("staging", "staging", NEW), app("prod", "prod", OLD)]
    assert decide(STAGING_THEN_PROD, apart, NEW, proven=OLD).proven == OLD
    assert decide(STAGING_THEN_PROD, apart, NEW, proven="").proven == ""


def test_the_rollout_is_complete_when_every_step_is_healthy_at_the_revision() -> None:
    apps = [app("staging", "staging", NEW), app("prod", "prod", NEW)]
    rollout = decide(STAGING_THEN_PROD, apps, NEW, proven=OLD)
    assert rollout.complete


def test_a_degraded_staging_app_stops_the_rollout_and_is_named() -> None:
    apps = [
        app("staging-a", "staging", NEW, health="Degraded"),
        app("staging-b", "staging", OLD),
        app("prod", "prod", OLD),
    ]
    rollout = decide(strategy(env("staging", maxUpdate=1), env("prod")), apps, NEW, proven=OLD)
    assert rollout.pins == {"staging-a": NEW, "staging-b": OLD, "prod": OLD}
    assert rollout.stopped_by == ("staging-a",)
    assert [s.phase for s in rollout.steps] == [StepPhase.STOPPED, StepPhase.STOPPED]
    assert "staging-a Degraded at " + NEW in rollout.steps[0].message


def test_degraded_at_the_old_revision_does_not_stop_a_new_one() -> None:
    """A fix pushed after a bad revision must reach staging; prod still waits for it."""
    apps = [app("staging", "staging", OLD, health="Degraded"), app("prod", "prod", OLD)]
    rollout = decide(STAGING_THEN_PROD, apps, NEW, proven=OLD)
    assert rollout.pins == {"staging": NEW, "prod": OLD}
    assert rollout.stopped_by == ()


def test_an_app_pinned_to_the_revision_is_never_pulled_back() -> None:
    apps = [
        app("staging", "staging", NEW, health="Degraded"),
        app("prod", "prod", NEW, at=OLD, health="Progressing"),
    ]
    rollout = decide(STAGING_THEN_PROD, apps, NEW, proven=OLD)
    assert rollout.pins == {"staging": NEW, "prod": NEW}


@pytest.mark.parametrize(("max_update", "first_pass"), [(1, 1), (2, 2), ("50%", 2), ("10%", 1)])
def test_max_update_limits_the_apps_in_flight(max_update: int | str, first_pass: int) -> None:
    apps = [app(f"s{i}", "staging", OLD) for i in range(4)]
    rolled = strategy(env("staging", maxUpdate=max_update))
    first = decide(rolled, apps, NEW, proven=OLD)
    assert sorted(n for n, p in first.pins.items() if p == NEW) == [
        f"s{i}" for i in range(first_pass)
    ]
    # the first ones still syncing: nothing more moves; once Healthy, the next ones do
    syncing = [
        AppState(a.name, a.labels, first.pins[a.name], OLD, "Synced", "Healthy") for a in apps
    ]
    assert decide(rolled, syncing, NEW, proven=OLD).pins == first.pins
    healthy = [app(a.name, "staging", first.pins[a.name]) for a in apps]
    second = decide(rolled, healthy, NEW, proven=OLD)
    assert sum(p == NEW for p in second.pins.values()) == min(4, 2 * first_pass)


def test_a_paused_step_waits_for_an_approval_of_that_very_revision() -> None:
    paused = strategy(env("staging"), env("prod", pause={}))
    apps = [app("staging", "staging", NEW), app("prod", "prod", OLD)]
    waiting = decide(paused, apps, NEW, proven=OLD)
    assert waiting.pins["prod"] == OLD
    assert waiting.steps[1].phase is StepPhase.PAUSED
    assert decide(paused, apps, NEW, proven=OLD, approved=(2, OLD)).pins["prod"] == OLD
    assert decide(paused, apps, NEW, proven=OLD, approved=(1, NEW)).pins["prod"] == OLD
    assert decide(paused, apps, NEW, proven=OLD, approved=(2, NEW)).pins["prod"] == NEW


def test_an_app_no_step_matches_keeps_its_pin_and_is_reported() -> None:
    apps = [app("staging", "staging", OLD), app("qa", "qa", OLD)]
    rollout = decide(STAGING_THEN_PROD, apps, NEW, proven=OLD)
    assert rollout.pins["qa"] == OLD
    assert rollout.unmatched == ("qa",)


def test_a_new_app_of_a_later_step_gets_the_proven_revision_or_waits() -> None:
    new_prod = AppState("prod", {"env": "prod"}, "")
    apps = [app("staging", "staging", OLD), new_prod]
    assert decide(STAGING_THEN_PROD, apps, NEW, proven=OLD).pins["prod"] == OLD
    first = decide(STAGING_THEN_PROD, apps, NEW, proven="")
    assert "prod" not in first.pins
    assert "created once its step is reached" in first.held["prod"]


def test_an_app_belongs_to_the_first_step_it_matches_and_not_in_is_honoured() -> None:
    rolled = strategy(
        {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
        env("prod", "staging"),
    )
    apps = [app("staging", "staging", OLD), app("prod", "prod", OLD)]
    rollout = decide(rolled, apps, NEW, proven=OLD)
    assert rollout.steps[0].applications == ("staging",)
    assert rollout.pins == {"staging": NEW, "prod": OLD}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"type": "AllAtOnce", "rollingSync": {"steps": [env("a")]}}, "spec.strategy.type"),
        ({"type": "RollingSync", "rollingSync": {"steps": []}}, "spec.strategy.rollingSync.steps"),
        ({"type": "RollingSync", "deletionOrder": "Reverse"}, "spec.strategy.deletionOrder"),
        (
            {"type": "RollingSync", "rollingSync": {"steps": [env("a", maxUpdate=0)]}},
            "spec.strategy.rollingSync.steps[0].maxUpdate",
        ),
        (
            {"type": "RollingSync", "rollingSync": {"steps": [env("a", maxUpdate="0%")]}},
            "spec.strategy.rollingSync.steps[0].maxUpdate",
        ),
        (
            {"type": "RollingSync", "rollingSync": {"steps": [env("a", maxUpdate="120%")]}},
            "spec.strategy.rollingSync.steps[0].maxUpdate",
        ),
        (
            {"type": "RollingSync", "rollingSync": {"steps": [env("a", pause={"duration": "1h"})]}},
            "spec.strategy.rollingSync.steps[0].pause",
        ),
        (
            {"type": "RollingSync", "rollingSync": {"steps": [{"matchExpressions": []}]}},
            "spec.strategy.rollingSync.steps[0].matchExpressions",
        ),
        (
            {
                "type": "RollingSync",
                "rollingSync": {
                    "steps": [{"matchExpressions": [{"key": "env", "operator": "Exists"}]}]
                },
            },
            "spec.strategy.rollingSync.steps[0].matchExpressions[0].operator",
        ),
        (
            {"type": "RollingSync", "rollingSync": {"steps": [env("a", matchLabels={})]}},
            "spec.strategy.rollingSync.steps[0].matchLabels",
        ),
    ],
)
def test_a_bad_strategy_is_an_error_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_strategy(doc)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(f"2@{NEW}", (2, NEW)), (None, None), ("", None), ("two@x", None), (f"2@{NEW}@x", None)],
)
def test_the_promote_annotation(value: str | None, parsed: tuple[int, str] | None) -> None:
    assert parse_promotion(value) == parsed


def _set(**spec: Any) -> dict[str, Any]:
    template = {"metadata": {"name": "a"}, "spec": {"source": {"repoURL": "https://g/r.git"}}}
    generators = [{"list": {"elements": [{"env": "staging"}]}}]
    return {"spec": {"generators": generators, "template": template, **spec}}


def test_the_set_takes_a_rolling_sync_but_not_with_a_policy_that_does_not_update() -> None:
    rolling = {"type": "RollingSync", "rollingSync": {"steps": [env("staging", maxUpdate="50%")]}}
    parsed = parse_application_set(_set(strategy=rolling)).strategy
    assert parsed is not None and parsed.steps[0].max_update_percent == 50
    for policy in ("create-only", "create-delete"):
        with pytest.raises(SpecError) as caught:
            parse_application_set(_set(strategy=rolling, syncPolicy={"applicationsSync": policy}))
        assert caught.value.field == "spec.strategy" and policy in caught.value.problem


# -- gitsync appset promote --------------------------------------------------------------------


ROLLING_STATUS = {
    "revision": "a" * 40,
    "steps": [
        {"step": 1, "phase": "Done", "applications": ["web-staging"]},
        {"step": 2, "phase": "Paused", "applications": ["web-prod"]},
    ],
}


def test_promote_approves_the_paused_step_for_the_revision_being_rolled_out() -> None:
    assert promotion_for(ROLLING_STATUS) == f"2@{'a' * 40}"
    assert promotion_for(ROLLING_STATUS, 1) == f"1@{'a' * 40}"
    assert parse_promotion(promotion_for(ROLLING_STATUS)) == (2, "a" * 40)


@pytest.mark.parametrize(
    ("status", "step", "error"),
    [
        (None, None, "no rolling sync in progress"),
        ({"revision": "a" * 40, "steps": []}, None, "no rolling sync in progress"),
        (
            {**ROLLING_STATUS, "steps": [{"step": 1, "phase": "Progressing"}]},
            None,
            "no step is paused",
        ),
        (ROLLING_STATUS, 3, "no step 3"),
    ],
)
def test_promote_says_why_nothing_can_be_approved(
    status: Any, step: int | None, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        promotion_for(status, step)
