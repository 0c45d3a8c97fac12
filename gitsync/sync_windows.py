"""Sync windows: when automated (and manual) syncs may run, as Argo CD's AppProject has them.

A window is a cron ``schedule`` (5 fields) that opens it, a ``duration`` it stays open, and a
``timeZone`` the schedule is read in. ``kind: deny`` windows block syncs while open; ``kind:
allow`` windows, when any apply to an app, permit syncs only while one is open. Argo CD's rules,
so a project written for Argo CD behaves the same (``can_sync``):

* an open deny window blocks, whatever allow windows say (deny wins);
* else an open allow window permits;
* else, when allow windows exist, the sync is blocked until the next one opens;
* ``manualSync: true`` lets a *manual* sync through: on a deny window when every open deny
  window has it, on allow windows when any of them has it.

Windows come from two places. The operator's policy file (``gitsync.policy``: ``defaults`` and
``projects.<namespace>.syncWindows``) matches apps by ``applications`` (name globs),
``namespaces`` (destination namespace globs) and ``clusters`` (destination cluster name globs),
as Argo CD's do. An Application's own ``spec.syncWindows`` apply to itself. The two sets are
judged apart and a sync runs only when both permit: an app's own allow window cannot open what
its project's windows keep closed.

Pure (no I/O, the time is an argument), and the one module besides the scheduler that reads cron
with apscheduler's ``CronTrigger``. It sits below ``gitsync.application`` and ``gitsync.policy``,
which both parse windows with ``parse_sync_windows`` and turn its ``WindowError`` into their own
error naming the field.
"""

from __future__ import annotations

import datetime as dt
import enum
import fnmatch
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from gitsync.errors import TerminalError

MAX_WINDOWS = 50
MAX_WINDOW_DURATION = dt.timedelta(days=31)
MAX_GLOBS = 100
_DURATION = re.compile(r"^(?:(\d{1,4})h)?(?:(\d{1,6})m)?$")
_GLOB = re.compile(r"^[A-Za-z0-9*?\[\]\-.!_]{1,253}$")
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*,/\-?]{1,64}$")
_SCOPED_FIELDS = ("applications", "namespaces", "clusters")
_FIELDS = frozenset({"kind", "schedule", "duration", "timeZone", "manualSync", *_SCOPED_FIELDS})


class WindowError(TerminalError):
    """A window is invalid; ``field`` is the dotted path of the offending field."""

    def __init__(self, field_path: str, problem: str):
        self.field = field_path
        self.problem = problem
        super().__init__(f"{field_path}: {problem}")


class WindowKind(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class SyncWindow:
    kind: WindowKind
    schedule: str
    duration: dt.timedelta
    time_zone: str = "UTC"
    manual_sync: bool = False
    applications: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    scoped: bool = True
    """A policy window (matched by the globs); False: an app's own (applies to that app)."""

    def matches(self, app_name: str, destination_namespace: str, cluster: str) -> bool:
        """Whether the window applies to the app; an app's own window always does. A policy
        window with no globs matches nothing, as in Argo CD."""
        if not self.scoped:
            return True

        def hit(globs: tuple[str, ...], value: str) -> bool:
            return any(fnmatch.fnmatchcase(value, g) for g in globs)

        return (
            hit(self.applications, app_name)
            or hit(self.namespaces, destination_namespace)
            or hit(self.clusters, cluster)
        )

    def trigger(self) -> BaseTrigger:
        """The schedule as a trigger. When both the day of month and the day of week are
        restricted, cron (and Argo CD) fires on either (``0 0 1 * 1``: the 1st and every
        Monday) while one ``CronTrigger`` would need both, so the two are combined with OR."""
        minute, hour, day, month, weekday = self.schedule.split()
        zone = zoneinfo.ZoneInfo(self.time_zone)

        def cron(day: str, weekday: str) -> CronTrigger:
            return CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=_weekdays(weekday),
                timezone=zone,
            )

        if day != "*" and weekday != "*":
            return OrTrigger([cron(day, "*"), cron("*", weekday)])
        return cron(day, weekday)

    def open_until(self, now: dt.datetime) -> dt.datetime | None:
        """When the window, open at ``now``, closes (its latest opening within ``duration``
        before ``now``, plus ``duration``); None when it is closed at ``now``. The latest
        opening is found by bisection (a trigger only looks forwards), so a ``* * * * *``
        schedule with a long duration costs a few dozen lookups, not one per minute."""
        trigger = self.trigger()
        first = trigger.get_next_fire_time(None, now - self.duration)
        if first is None or first > now:
            return None
        latest, beyond = first, now + dt.timedelta(seconds=1)
        while beyond - latest > dt.timedelta(seconds=1):
            middle = latest + (beyond - latest) / 2
            fire = trigger.get_next_fire_time(None, middle)
            if fire is not None and fire <= now:
                latest = fire
            else:
                beyond = middle
        end: dt.datetime = latest + self.duration
        return end if end > now else None

    def opens_at(self, now: dt.datetime) -> dt.datetime | None:
        """The next time the window opens after ``now``."""
        fire: dt.datetime | None = self.trigger().get_next_fire_time(None, now)
        return fire


@dataclass(frozen=True)
class WindowVerdict:
    """What the windows say about a sync now: allowed, or blocked until ``until`` (None when
    no window will ever open) with a message saying which window blocks."""

    allowed: bool
    until: dt.datetime | None = None
    message: str = ""


ALLOWED = WindowVerdict(True)


def _describe(w: SyncWindow) -> str:
    return f"{w.kind} window '{w.schedule}' ({_duration_text(w.duration)}, {w.time_zone})"


def _duration_text(d: dt.timedelta) -> str:
    hours, minutes = divmod(int(d.total_seconds()) // 60, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def can_sync(windows: Sequence[SyncWindow], now: dt.datetime, *, manual: bool) -> WindowVerdict:
    """Argo CD's decision over the windows that apply to an app (see the module docstring)."""
    if not windows:
        return ALLOWED
    open_deny = [
        (w, end) for w in windows if w.kind == WindowKind.DENY if (end := w.open_until(now))
    ]
    if open_deny:
        if manual and all(w.manual_sync for w, _ in open_deny):
            return ALLOWED
        window, closes = max(open_deny, key=lambda pair: pair[1])
        return WindowVerdict(False, closes, f"blocked by the {_describe(window)}")
    allows = [w for w in windows if w.kind == WindowKind.ALLOW]
    if not allows or any(w.open_until(now) for w in allows):
        return ALLOWED
    if manual and any(w.manual_sync for w in allows):
        return ALLOWED
    opens = [t for w in allows if (t := w.opens_at(now)) is not None]
    return WindowVerdict(
        False,
        min(opens) if opens else None,
        "outside every allow window (" + ", ".join(map(_describe, allows)) + ")",
    )


def combined(*verdicts: WindowVerdict) -> WindowVerdict:
    """Blocked when any is; until the latest of the blocking ones' ends."""
    blocked = [v for v in verdicts if not v.allowed]
    if not blocked:
        return ALLOWED
    if any(v.until is None for v in blocked):
        return WindowVerdict(False, None, "; ".join(v.message for v in blocked))
    until = max(v.until for v in blocked if v.until is not None)
    return WindowVerdict(False, until, "; ".join(v.message for v in blocked))


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekdays(field: str) -> str:
    """A cron weekday field (0 or 7 is Sunday) as apscheduler's names: its ``from_crontab``
    counts from Monday, so ``1-5`` there would mean Tuesday to Saturday."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"bad weekday step {item!r}")
        if spec == "*":
            first, last = 0, 6
        else:
            low, _, high = spec.partition("-")
            first, last = _weekday(low), _weekday(high or low)
            if high and last == 0 and first > 0:
                last = 7  # 5-0, 5-7: Friday to Sunday
        if first > last:
            raise ValueError(f"weekday range {item!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    return ",".join(_WEEKDAY_NAMES[d] for d in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAY_NAMES and len(text) == 3:
        return _WEEKDAY_NAMES.index(text)
    raise ValueError(f"not a weekday: {text!r}")


# -- parsing -------------------------------------------------------------------------------------


def parse_sync_windows(value: object, path: str, *, scoped: bool) -> tuple[SyncWindow, ...]:
    """The windows of a ``syncWindows`` list; ``scoped``: a policy's, matched by globs (an
    app's own may not carry them). Raises ``WindowError`` naming the first bad field."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WindowError(path, f"expected a list, got {type(value).__name__}")
    if len(value) > MAX_WINDOWS:
        raise WindowError(path, f"at most {MAX_WINDOWS} windows")
    return tuple(_parse_window(item, f"{path}[{i}]", scoped=scoped) for i, item in enumerate(value))


def _parse_window(value: object, path: str, *, scoped: bool) -> SyncWindow:
    if not isinstance(value, Mapping):
        raise WindowError(path, f"expected an object, got {type(value).__name__}")
    for name in value:
        if name not in _FIELDS:
            raise WindowError(f"{path}.{name}", "unknown field")
        if not scoped and name in _SCOPED_FIELDS:
            raise WindowError(
                f"{path}.{name}", "an Application's own window applies to itself: no globs"
            )
    kind = value.get("kind")
    if kind not in tuple(WindowKind):
        raise WindowError(f"{path}.kind", f"expected allow or deny, got {kind!r}")
    schedule = _schedule(value.get("schedule"), f"{path}.schedule")
    duration = _duration(value.get("duration"), f"{path}.duration")
    time_zone = value.get("timeZone", "UTC")
    if not isinstance(time_zone, str) or not _zone_known(time_zone):
        raise WindowError(f"{path}.timeZone", f"not an IANA time zone name: {time_zone!r}")
    manual = value.get("manualSync", False)
    if not isinstance(manual, bool):
        raise WindowError(f"{path}.manualSync", f"expected true or false, got {manual!r}")
    globs = {name: _globs(value.get(name), f"{path}.{name}") for name in _SCOPED_FIELDS}
    window = SyncWindow(
        WindowKind(kind),
        schedule,
        duration,
        time_zone,
        manual,
        globs["applications"],
        globs["namespaces"],
        globs["clusters"],
        scoped=scoped,
    )
    try:
        window.trigger()
    except ValueError as exc:
        raise WindowError(f"{path}.schedule", f"not a cron schedule: {exc}") from None
    return window


def _schedule(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise WindowError(path, f"expected a cron schedule such as '0 22 * * *', got {value!r}")
    parts = value.split()
    if len(parts) != 5 or not all(_CRON_FIELD.match(p) for p in parts):
        raise WindowError(
            path, f"expected 5 cron fields (minute hour day month weekday): {value!r}"
        )
    return " ".join(parts)


def _duration(value: object, path: str) -> dt.timedelta:
    """Hours and minutes (``1h``, ``30m``, ``1h30m``): a window opens on a minute."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise WindowError(path, f"expected a duration such as '1h' or '30m', got {value!r}")
    hours, minutes = (int(g or 0) for g in match.groups())
    duration = dt.timedelta(hours=hours, minutes=minutes)
    if not dt.timedelta(minutes=1) <= duration <= MAX_WINDOW_DURATION:
        raise WindowError(path, f"between 1m and {MAX_WINDOW_DURATION.days} days")
    return duration


def _zone_known(name: str) -> bool:
    if len(name) > 64:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _globs(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_GLOBS:
        raise WindowError(path, f"expected a list of at most {MAX_GLOBS} globs")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _GLOB.match(item):
            raise WindowError(f"{path}[{i}]", f"not a name glob: {item!r}")
    return tuple(value)
