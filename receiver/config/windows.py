"""Named time windows (business hours, follow-the-sun shifts): hours per weekday in a zone, nights
that run past midnight, and holidays on a date or on a day every year."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader, kind_of

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)$")
_MONTH_DAY = re.compile(r"^--(\d\d)-(\d\d)$")
# A window given by `weekdays` and `hours`: Monday to Friday unless it says otherwise.
DEFAULT_WEEKDAYS = frozenset(range(5))
MIDNIGHT = time(0, 0)


@dataclass(frozen=True)
class Hours:
    """Local wall-clock `start` to `end` from each of `weekdays` (0 is Monday).

    `end` is `time.max` for 24:00. An `end` at or before `start` is a night: it runs to `end` on
    the next morning, and belongs to the weekday of the evening it starts.
    """

    weekdays: frozenset[int]
    start: time
    end: time

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def covers(self, weekday: int, clock: time) -> bool:
        """Whether a local `clock` on a day of `weekday` is inside."""
        if self.overnight:
            evening = weekday in self.weekdays and clock >= self.start
            return evening or ((weekday - 1) % 7 in self.weekdays and clock < self.end)
        before_end = self.end == time.max or clock < self.end
        return weekday in self.weekdays and self.start <= clock and before_end


@dataclass(frozen=True)
class MonthDay:
    """A holiday on the same day every year (`--12-25`); `--02-29` only in leap years."""

    month: int
    day: int

    def isoformat(self) -> str:
        return f"--{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True)
class TimeWindow:
    """Named hours (e.g. business hours): a union of `hours`, minus holidays, in a zone.

    Everything is local wall-clock time in `timezone`, as Alertmanager's time intervals are, so a
    DST change moves no edge; a holiday closes the window for that whole local day.
    """

    name: str
    hours: tuple[Hours, ...]
    holidays: frozenset[date | MonthDay]
    timezone: ZoneInfo

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or MonthDay(day.month, day.day) in self.holidays

    def contains(self, when: datetime) -> bool:
        local = when.astimezone(self.timezone)
        if self.is_holiday(local.date()):
            return False
        clock = local.time()
        return any(h.covers(local.weekday(), clock) for h in self.hours)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the window was open at any moment in [start, end]."""
        if self.contains(start):
            return True
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        # Otherwise it opened inside: bounded by the group's lifetime, checked a day at a time.
        days = (end.astimezone(self.timezone).date() - start.astimezone(self.timezone).date()).days
        return any(
            start < at <= end and self.contains(at)
            for day in self._days(start, days + 2)
            for at in self._changes(day)
        )

    def next_opening(self, after: datetime, within: timedelta) -> datetime | None:
        """The first instant after `after` (and at most `within` later) at which the window
        opens, in UTC (in the zone, a time in a repeated hour would compare unequal)."""
        after = after.astimezone(UTC)
        for day in self._days(after, within.days + 2):
            opening = [
                at
                for at in self._changes(day)
                if after < at <= after + within
                and self.contains(at)
                and not self.contains(at - timedelta(microseconds=1))
            ]
            if opening:
                return min(opening)
        return None

    def _days(self, start: datetime, count: int) -> Iterator[date]:
        # From the local day before: the night that started then may still be running.
        first = start.astimezone(self.timezone).date() - timedelta(days=1)
        return (first + timedelta(days=n) for n in range(count + 1))

    def _changes(self, day: date) -> list[datetime]:
        """Instants on a local day at which the window may open, in order: where the wall clock
        reaches midnight or a start, and where the UTC offset changes (a start skipped by DST
        opens there; a clock set back may reopen a window that had closed)."""
        out = [
            at
            for clock in {MIDNIGHT, *(h.start for h in self.hours)}
            for at in _instants(day, clock, self.timezone)
        ]
        first, last = (
            datetime.combine(d, MIDNIGHT, self.timezone).astimezone(UTC)
            for d in (day, day + timedelta(days=1))
        )
        tz = self.timezone
        if first.astimezone(tz).utcoffset() != last.astimezone(tz).utcoffset():
            out.append(_offset_change(first, last, tz))
        return sorted(set(out))


def _instants(day: date, clock: time, tz: ZoneInfo) -> list[datetime]:
    """The instants (in UTC) whose local time is `clock` on `day`: none in a DST gap, two in a
    repeated hour."""
    naive = datetime.combine(day, clock)
    out = []
    for fold in (0, 1):
        at = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if at.astimezone(tz).replace(tzinfo=None) == naive:
            out.append(at)
    return out


def _offset_change(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first second in (lo, hi] with `hi`'s UTC offset (it differs from `lo`'s)."""
    low, high = int(lo.timestamp()), int(hi.timestamp())
    before = lo.astimezone(tz).utcoffset()
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == before:
            low = mid
        else:
            high = mid
    return datetime.fromtimestamp(high, UTC)


# -- parsing -----------------------------------------------------------------------------------


def parse_zone(r: Reader, m: LineDict, path: str, default: ZoneInfo) -> ZoneInfo:
    """`m.timezone`, an IANA name, or `default` when absent (or wrong, after the problem)."""
    name = r.string(m, "timezone", path)
    if name is None:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        r.error(r.line_of(m, "timezone"), f"{path}.timezone", f"unknown time zone {name!r}")
        return default


def parse_windows(r: Reader, top: LineDict, tz: ZoneInfo) -> dict[str, TimeWindow]:
    """`time_windows`: each either `weekdays` + `hours: "09:00-17:00"`, or `hours` as a list
    of `{weekdays, hours}` entries (hours per weekday); `tz` is the zone of those without one."""
    out = {}
    table = r.section(top, "time_windows", "time_windows")
    for name in table:
        path = f"time_windows.{name}"
        r.check_name(r.line_of(table, name), path, name)
        keys = ("weekdays", "hours", "holidays", "timezone")
        m = r.mapping(table[name], r.line_of(table, name), path, keys)
        if m is None:
            continue
        if isinstance(m.get("hours"), list):
            if "weekdays" in m:
                r.error(
                    r.line_of(m, "weekdays"),
                    f"{path}.weekdays",
                    "with a list of hours, give weekdays in each entry of hours instead",
                )
            hours = _hours_list(r, m, f"{path}.hours")
        else:
            hours = (_span(r, m, path, DEFAULT_WEEKDAYS),)
        holidays = frozenset(
            d
            for line, p, value in r.sequence(
                m.get("holidays"), r.line_of(m, "holidays"), f"{path}.holidays"
            )
            if (d := r.convert(line, p, value, _holiday)) is not None
        )
        out[name] = TimeWindow(name, hours, holidays, parse_zone(r, m, path, tz))
    return out


def _hours_list(r: Reader, m: LineDict, path: str) -> tuple[Hours, ...]:
    out = []
    items = r.sequence(m["hours"], r.line_of(m, "hours"), path)
    if not items:
        r.error(r.line_of(m, "hours"), path, "give at least one {weekdays, hours} entry")
    for line, item_path, item in items:
        entry = r.mapping(item, line, item_path, ("weekdays", "hours"))
        if entry is None:
            continue
        if entry.get("weekdays") in (None, []):
            r.error(r.line_of(entry, "weekdays"), f"{item_path}.weekdays", "required")
            continue
        out.append(_span(r, entry, item_path, frozenset()))
    return tuple(out)


def _span(r: Reader, m: LineDict, path: str, default_days: frozenset[int]) -> Hours:
    """`weekdays` (default `default_days`) and `hours` (default all day) of one mapping."""
    days = (
        frozenset(
            d
            for line, p, text in r.strings(m, "weekdays", path)
            for d in (r.convert(line, p, text, _weekdays) or ())
        )
        or default_days
    )
    start, end = MIDNIGHT, time.max
    text = r.string(m, "hours", path)
    if text is not None:
        span = r.convert(r.line_of(m, "hours"), f"{path}.hours", text, _hours)
        if span is not None:
            start, end = span
    return Hours(days, start, end)


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
    """`09:00-17:00`; `00:00-24:00` is all day; `22:00-06:00` ends the next morning."""
    m = _HOURS.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r}: hours look like 09:00-17:00 (or 22:00-06:00 overnight)")
    start = time(int(m[1]), int(m[2]))
    end = time(int(m[3]) % 24, int(m[4]))
    if int(m[3]) == 24 and end != MIDNIGHT:
        raise ValueError(f"{text!r}: the latest end is 24:00")
    if end == start and (int(m[3]), start) != (24, MIDNIGHT):
        raise ValueError(f"{text!r}: the end must differ from the start")
    # Until midnight is the rest of the day, not a night with no morning.
    return start, time.max if end == MIDNIGHT else end


def _holiday(value: Any) -> date | MonthDay:
    """`2026-12-25` (that day), or `--12-25` (ISO 8601 without a year: every year)."""
    if isinstance(value, str) and (m := _MONTH_DAY.match(value.strip())):
        month, day = int(m[1]), int(m[2])
        try:
            date(2000, month, day)  # a leap year: --02-29 is a day of some years
        except ValueError:
            raise ValueError(f"{value!r} is not a day of the year like --12-25") from None
        return MonthDay(month, day)
    return _date(value)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
        raise ValueError(f"{value!r} is not a date like 2026-12-25 (or --12-25, every year)")
    raise TypeError(f"expected a date like 2026-12-25, got {kind_of(value)}")
