"""Sync windows' math and Argo CD's precedence rules, at chosen instants: a cron schedule opens a
window for its duration in its time zone; an open deny window blocks (until it closes) whatever
allow windows say; allow windows, when any exist, permit only while one is open (blocked until
the next opens); ``manualSync`` lets manual syncs through. Also how windows are matched to apps,
and that a bad window is refused naming its field - in the Application spec and the policy."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gitsync.application import SpecError, parse_application
from gitsync.policy import Policy, PolicyError
from gitsync.sync_windows import (
    SyncWindow,
    WindowError,
    WindowKind,
    can_sync,
    combined,
    parse_sync_windows,
)

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """An instant in UTC, ``2026-12-07 22:30`` (a Monday)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(kind: str, schedule: str, duration: str, **extra: Any) -> SyncWindow:
    doc = {"kind": kind, "schedule": schedule, "duration": duration, **extra}
    return parse_sync_windows([doc], "w", scoped=False)[0]


NIGHT_DENY = window("deny", "0 22 * * *", "2h")  # 22:00-24:00 UTC every day


@pytest.mark.parametrize(
    ("now", "closes"),
    [
        ("2026-12-07 21:59:59", None),
        ("2026-12-07 22:00:00", "2026-12-08 00:00:00"),
        ("2026-12-07 23:59:00", "2026-12-08 00:00:00"),
        ("2026-12-08 00:00:00", None),
        ("2026-12-08 12:00:00", None),
    ],
)
def test_a_window_is_open_for_its_duration_after_each_opening(now: str, closes: str | None) -> None:
    assert NIGHT_DENY.open_until(at(now)) == (at(closes) if closes else None)


def test_the_schedule_is_read_in_the_windows_time_zone() -> None:
    berlin = window("deny", "0 9 * * *", "1h", timeZone="Europe/Berlin")  # 08:00 UTC in winter
    assert berlin.open_until(at("2026-12-07 08:30")) == at("2026-12-07 09:00")
    assert berlin.open_until(at("2026-12-07 09:30")) is None
    summer = at("2026-07-07 07:30")  # CEST: 09:00 Berlin is 07:00 UTC
    assert berlin.open_until(summer) == at("2026-07-07 08:00")


def test_cron_weekdays_count_from_sunday() -> None:
    """Cron's 1-5 is Monday to Friday (apscheduler on its own would read Tuesday to
    Saturday); 0 and 7 are Sunday."""
    weekdays = window("allow", "0 8 * * 1-5", "1h")
    assert weekdays.open_until(at("2026-12-07 08:30"))  # Monday
    assert weekdays.open_until(at("2026-12-11 08:30"))  # Friday
    assert not weekdays.open_until(at("2026-12-12 08:30"))  # Saturday
    sunday = window("allow", "0 8 * * 0", "1h")
    assert sunday.open_until(at("2026-12-13 08:30"))
    assert window("allow", "0 8 * * 7", "1h").open_until(at("2026-12-13 08:30"))
    assert not sunday.open_until(at("2026-12-07 08:30"))


def test_day_of_month_and_weekday_both_given_mean_either_as_in_cron() -> None:
    """``0 8 1 * 1``: the 1st of the month *or* a Monday (cron's rule when both day fields are
    restricted), not only a Monday that is the 1st."""
    first_or_monday = window("deny", "0 8 1 * 1", "1h")
    assert first_or_monday.open_until(at("2026-12-07 08:30"))  # Monday the 7th
    assert first_or_monday.open_until(at("2026-12-01 08:30"))  # Tuesday the 1st
    assert not first_or_monday.open_until(at("2026-12-08 08:30"))  # Tuesday the 8th
    assert first_or_monday.opens_at(at("2026-12-08 09:00")) == at("2026-12-14 08:00")


def test_overlapping_openings_close_after_the_latest() -> None:
    """Every minute for 2 hours: open, and closing 2h after the last opening (found by
    bisection, not by walking 120 openings)."""
    busy = window("deny", "* * * * *", "2h")
    assert busy.open_until(at("2026-12-07 10:00:30")) == at("2026-12-07 12:00")


@pytest.mark.parametrize(
    ("windows", "now", "manual", "allowed", "until"),
    [
        ([], "2026-12-07 22:30", False, True, None),
        ([NIGHT_DENY], "2026-12-07 22:30", False, False, "2026-12-08 00:00"),
        ([NIGHT_DENY], "2026-12-07 21:30", False, True, None),
        # deny wins over an open allow window
        (
            [NIGHT_DENY, window("allow", "0 0 * * *", "24h")],
            "2026-12-07 22:30",
            False,
            False,
            "2026-12-08 00:00",
        ),
        # allow windows exist and none is open: blocked until the next opens
        (
            [window("allow", "0 6 * * *", "1h")],
            "2026-12-07 22:30",
            False,
            False,
            "2026-12-08 06:00",
        ),
        ([window("allow", "0 6 * * *", "1h")], "2026-12-08 06:30", False, True, None),
        # manualSync on the deny window lets a manual sync through, not an automated one
        (
            [window("deny", "0 22 * * *", "2h", manualSync=True)],
            "2026-12-07 22:30",
            True,
            True,
            None,
        ),
        (
            [window("deny", "0 22 * * *", "2h", manualSync=True)],
            "2026-12-07 22:30",
            False,
            False,
            "2026-12-08 00:00",
        ),
        ([NIGHT_DENY], "2026-12-07 22:30", True, False, "2026-12-08 00:00"),
        # every open deny window must allow manual syncs
        (
            [window("deny", "0 22 * * *", "2h", manualSync=True), NIGHT_DENY],
            "2026-12-07 22:30",
            True,
            False,
            "2026-12-08 00:00",
        ),
        # outside allow windows, manualSync on one of them lets manual syncs through
        (
            [window("allow", "0 6 * * *", "1h", manualSync=True)],
            "2026-12-07 22:30",
            True,
            True,
            None,
        ),
    ],
    ids=[
        "no-windows",
        "deny-open",
        "deny-closed",
        "deny-wins-over-allow",
        "outside-allow",
        "inside-allow",
        "manual-in-manualsync-deny",
        "automated-in-manualsync-deny",
        "manual-in-plain-deny",
        "manual-needs-every-open-deny",
        "manual-outside-manualsync-allow",
    ],
)
def test_can_sync_follows_argo_cd(
    windows: list[SyncWindow], now: str, manual: bool, allowed: bool, until: str | None
) -> None:
    verdict = can_sync(windows, at(now), manual=manual)
    assert verdict.allowed is allowed
    assert verdict.until == (at(until) if until else None)
    if not allowed:
        assert "window '0" in verdict.message


def test_combined_blocks_when_either_set_blocks_until_the_later_end() -> None:
    deny = can_sync([NIGHT_DENY], at("2026-12-07 22:30"), manual=False)
    allow = can_sync([window("allow", "0 6 * * *", "1h")], at("2026-12-07 22:30"), manual=False)
    both = combined(deny, allow)
    assert not both.allowed and both.until == at("2026-12-08 06:00")
    assert combined(can_sync([], at("2026-12-07 22:30"), manual=False)).allowed


def test_policy_windows_match_apps_by_globs() -> None:
    (w,) = parse_sync_windows(
        [{"kind": "deny", "schedule": "0 22 * * *", "duration": "1h", "applications": ["shop-*"]}],
        "w",
        scoped=True,
    )
    assert w.matches("shop-web", "prod", "")
    assert not w.matches("blog", "prod", "")
    (by_ns,) = parse_sync_windows(
        [{"kind": "deny", "schedule": "0 22 * * *", "duration": "1h", "namespaces": ["prod"]}],
        "w",
        scoped=True,
    )
    assert by_ns.matches("blog", "prod", "") and not by_ns.matches("blog", "dev", "")
    (none,) = parse_sync_windows(
        [{"kind": "deny", "schedule": "0 22 * * *", "duration": "1h"}], "w", scoped=True
    )
    assert not none.matches("blog", "prod", "")  # no glob: matches nothing, as in Argo CD
    assert WindowKind(w.kind) == WindowKind.DENY


@pytest.mark.parametrize(
    ("doc", "field", "problem"),
    [
        ({"kind": "maybe", "schedule": "* * * * *", "duration": "1h"}, "w[0].kind", "allow or"),
        ({"kind": "deny", "schedule": "* * * *", "duration": "1h"}, "w[0].schedule", "5 cron"),
        ({"kind": "deny", "schedule": "61 * * * *", "duration": "1h"}, "w[0].schedule", "cron"),
        ({"kind": "deny", "schedule": "0 0 * * 9", "duration": "1h"}, "w[0].schedule", "cron"),
        ({"kind": "deny", "schedule": "* * * * *", "duration": "1d"}, "w[0].duration", "1h"),
        ({"kind": "deny", "schedule": "* * * * *", "duration": "900h"}, "w[0].duration", "31"),
        (
            {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "timeZone": "Mars/Base"},
            "w[0].timeZone",
            "IANA",
        ),
        (
            {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "manualSync": "yes"},
            "w[0].manualSync",
            "true or false",
        ),
        (
            {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "andOperator": True},
            "w[0].andOperator",
            "unknown field",
        ),
        (
            {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["x"]},
            "w[0].applications",
            "applies to itself",
        ),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(
    doc: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(WindowError) as info:
        parse_sync_windows([doc], "w", scoped=False)
    assert info.value.field == field
    assert problem in info.value.problem


def test_the_application_spec_carries_its_own_windows() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {
            "source": {"repoURL": "https://git.example.com/shop.git"},
            "syncWindows": [{"kind": "deny", "schedule": "0 22 * * *", "duration": "1h"}],
        },
    }
    assert parse_application(doc).sync_windows[0].schedule == "0 22 * * *"
    doc["spec"]["syncWindows"][0]["duration"] = "soon"
    with pytest.raises(SpecError) as info:
        parse_application(doc)
    assert info.value.field == "spec.syncWindows[0].duration"


def test_the_policy_carries_project_and_default_windows() -> None:
    policy = Policy.from_yaml(
        """
defaults:
  syncWindows:
    - {kind: deny, schedule: "0 3 * * *", duration: 1h, namespaces: ["*"]}
projects:
  team-a:
    syncWindows:
      - {kind: allow, schedule: "0 8 * * 1-5", duration: 10h, applications: ["*"]}
"""
    )
    assert [w.kind for w in policy.sync_windows("team-a")] == ["allow", "deny"]
    assert [w.kind for w in policy.sync_windows("team-b")] == ["deny"]
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml("projects: {team-a: {syncWindows: [{kind: deny}]}}")
    assert info.value.field == "projects.team-a.syncWindows[0].schedule"
