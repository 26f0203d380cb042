"""The on-call part of the routing file: rotations with overrides, and named time windows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader, kind_of, parse_duration

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)$")
# A Monday: handoffs default to Monday 09:00 local time, weekly.
DEFAULT_HANDOFF = datetime(2024, 1, 1, 9, 0)
MIN_YEAR, MAX_YEAR = 1970, 2999


@dataclass(frozen=True)
class Override:
    """Someone else holds the rotation from `start` until `end` (a swap, a holiday)."""

    person: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Rotation:
    """Members take turns of `turn` seconds, counted in local wall-clock time from `handoff`.

    `handoff` is naive local time in the routing file's time zone, so a DST change never moves a
    handoff. A rotation that `backs_up` another without members of its own uses that rotation's
    list one turn ahead: the next person in line.
    """

    name: str
    members: tuple[str, ...]
    handoff: datetime = DEFAULT_HANDOFF
    turn: float = 7 * 86400.0
    overrides: tuple[Override, ...] = ()
    backs_up: str | None = None
    offset: int = 0


@dataclass(frozen=True)
class TimeWindow:
    """Named hours (e.g. business hours): weekdays and a daily span, minus holidays, in a zone."""

    name: str
    weekdays: frozenset[int]
    start: time
    end: time
    holidays: frozenset[date]
    timezone: ZoneInfo

    def contains(self, when: datetime) -> bool:
        local = when.astimezone(self.timezone)
        if local.date() in self.holidays or local.weekday() not in self.weekdays:
            return False
        return self.start <= local.time() < self.end

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the window was open at any moment in [start, end]."""
        if self.contains(start) or self.contains(end):
            return True
        day = start.astimezone(self.timezone).date()
        last = end.astimezone(self.timezone).date()
        while day <= last:  # bounded by the group's lifetime, checked a day at a time
            if day not in self.holidays and day.weekday() in self.weekdays:
                opens = datetime.combine(day, self.start, self.timezone)
                if start <= opens <= end:
                    return True
            day += timedelta(days=1)
        return False


def local_time(value: Any, tz: ZoneInfo) -> datetime:
    """A YAML time: `2026-12-24 09:00` (local to `tz`), or with an offset; always aware."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a time like 2026-12-24 09:00") from None
    else:
        raise TypeError(f"expected a time like 2026-12-24 09:00, got {kind_of(value)}")
    # Far-off years are typos, and overflow once moved between time zones.
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise ValueError(f"{value!r}: the year must be from {MIN_YEAR} to {MAX_YEAR}")
    return when.replace(tzinfo=tz) if when.tzinfo is None else when


def _local_naive(value: Any, tz: ZoneInfo) -> datetime:
    """A handoff: naive local wall-clock time in `tz`."""
    return local_time(value, tz).astimezone(tz).replace(tzinfo=None)


def parse_rotations(
    r: Reader, top: LineDict, people: Mapping[str, object], tz: ZoneInfo
) -> dict[str, Rotation]:
    out: dict[str, Rotation] = {}
    table = r.section(top, "rotations", "rotations")
    backs: dict[str, tuple[int, str]] = {}
    for name in table:
        path = f"rotations.{name}"
        r.check_name(r.line_of(table, name), path, name)
        keys = ("members", "handoff", "turn", "overrides", "backs_up")
        m = r.mapping(table[name], r.line_of(table, name), path, keys)
        if m is None:
            continue
        members = r.members(m, "members", path, people)
        backs_up = r.string(m, "backs_up", path)
        if backs_up is not None:
            backs[name] = (r.line_of(m, "backs_up"), backs_up)
        elif not members:
            r.error(m.line, f"{path}.members", "a rotation needs at least one member")
        handoff = DEFAULT_HANDOFF
        if "handoff" in m:
            parsed = r.convert(
                r.line_of(m, "handoff"),
                f"{path}.handoff",
                m["handoff"],
                lambda v: _local_naive(v, tz),
            )
            if parsed is not None:
                handoff = parsed
        turn = r.duration(m, "turn", path, 7 * 86400.0)
        if turn < 3600:
            r.error(r.line_of(m, "turn"), f"{path}.turn", "a turn is at least 1h")
            turn = 7 * 86400.0
        overrides = _overrides(r, m, path, people, tz)
        out[name] = Rotation(name, members, handoff, turn, overrides, backs_up)
    for name, (line, other) in backs.items():
        path = f"rotations.{name}.backs_up"
        base = out.get(other)
        if base is None or other == name:
            r.error(line, path, f"unknown rotation {other!r}")
            continue
        if base.backs_up is not None and not base.members:
            r.error(line, path, f"{other!r} itself backs up another rotation")
            continue
        own = out[name]
        if not own.members:
            # No list of its own: the primary's list, one ahead, on the primary's schedule.
            out[name] = Rotation(
                name, base.members, base.handoff, base.turn, own.overrides, other, offset=1
            )
    return out


def _overrides(
    r: Reader, m: LineDict, path: str, people: Mapping[str, object], tz: ZoneInfo
) -> tuple[Override, ...]:
    out = []
    items = r.sequence(m.get("overrides"), r.line_of(m, "overrides"), f"{path}.overrides")
    for line, item_path, item in items:
        o = r.mapping(item, line, item_path, ("person", "from", "until"))
        if o is None:
            continue
        person = r.string(o, "person", item_path, required=True)
        if person is not None and person not in people:
            r.error(r.line_of(o, "person"), f"{item_path}.person", f"unknown person {person!r}")
        bounds = []
        for key in ("from", "until"):
            if key not in o:
                r.error(o.line, f"{item_path}.{key}", "required")
                continue
            bounds.append(
                r.convert(
                    r.line_of(o, key), f"{item_path}.{key}", o[key], lambda v: local_time(v, tz)
                )
            )
        if person is None or len(bounds) != 2:
            continue
        start, end = bounds
        if start is None or end is None:
            continue
        if end <= start:
            r.error(r.line_of(o, "until"), f"{item_path}.until", "must be after from")
            continue
        out.append(Override(person, start, end))
    return tuple(out)


def parse_windows(r: Reader, top: LineDict, tz: ZoneInfo) -> dict[str, TimeWindow]:
    out = {}
    table = r.section(top, "time_windows", "time_windows")
    for name in table:
        path = f"time_windows.{name}"
        r.check_name(r.line_of(table, name), path, name)
        m = r.mapping(
            table[name], r.line_of(table, name), path, ("weekdays", "hours", "holidays", "timezone")
        )
        if m is None:
            continue
        days = frozenset(
            d
            for line, p, text in r.strings(m, "weekdays", path)
            for d in (r.convert(line, p, text, _weekdays) or ())
        ) or frozenset(range(5))
        start, end = time(0, 0), time.max
        hours = r.string(m, "hours", path)
        if hours is not None:
            span = r.convert(r.line_of(m, "hours"), f"{path}.hours", hours, _hours)
            if span is not None:
                start, end = span
        holidays = frozenset(
            d
            for line, p, value in r.sequence(
                m.get("holidays"), r.line_of(m, "holidays"), f"{path}.holidays"
            )
            if (d := r.convert(line, p, value, _date)) is not None
        )
        zone = tz
        if (zone_name := r.string(m, "timezone", path)) is not None:
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                r.error(
                    r.line_of(m, "timezone"), f"{path}.timezone", f"unknown time zone {zone_name!r}"
                )
        out[name] = TimeWindow(name, days, start, end, holidays, zone)
    return out


def _weekdays(text: str) -> frozenset[int]:
    """`monday`, or a range `monday-friday` / `monday:friday` (Alertmanager's spelling)."""
    parts = re.split(r"\s*[-:]\s*", text.strip().lower())
    try:
        indexes = [WEEKDAYS.index(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"{text!r}: weekdays are monday..sunday, or a range monday-friday"
        ) from None
    if len(indexes) == 1:
        return frozenset(indexes)
    first, last = indexes[0], indexes[-1]
    if len(indexes) != 2 or last < first:
        raise ValueError(f"{text!r}: a range runs forwards, e.g. monday-friday")
    return frozenset(range(first, last + 1))


def _hours(text: str) -> tuple[time, time]:
    m = _HOURS.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r}: hours look like 09:00-17:00")
    start = time(int(m[1]), int(m[2]))
    end = time.max if (int(m[3]), int(m[4])) == (24, 0) else time(int(m[3]) % 24, int(m[4]))
    if end <= start:
        raise ValueError(f"{text!r}: the end must be after the start")
    return start, end


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
        raise ValueError(f"{value!r} is not a date like 2026-12-25")
    raise TypeError(f"expected a date like 2026-12-25, got {kind_of(value)}")


__all__ = ["Override", "Rotation", "TimeWindow", "local_time", "parse_duration"]
