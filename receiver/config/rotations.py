"""The on-call part of the routing file: rotations with overrides, each in its own time zone.

Named time windows are in `windows`; `TimeWindow` and `parse_windows` are re-exported here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from receiver.config.windows import WEEKDAYS, TimeWindow, parse_windows, parse_zone
from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader, kind_of, parse_duration

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

    `handoff` is naive local time in `timezone` (the rotation's own, else its team's, else the
    file's), so a DST change never moves a handoff. A rotation that `backs_up` another without
    members of its own uses that rotation's list one turn ahead (the next person in line), on
    its schedule and in its zone.
    """

    name: str
    members: tuple[str, ...]
    timezone: ZoneInfo
    handoff: datetime = DEFAULT_HANDOFF
    turn: float = 7 * 86400.0
    overrides: tuple[Override, ...] = ()
    backs_up: str | None = None
    offset: int = 0


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
    """`rotations`; `tz` is the zone of those that name none (the team's, else the file's)."""
    out: dict[str, Rotation] = {}
    table = r.section(top, "rotations", "rotations")
    backs: dict[str, tuple[int, str]] = {}
    bodies: dict[str, tuple[LineDict, str]] = {}
    for name in table:
        path = f"rotations.{name}"
        r.check_name(r.line_of(table, name), path, name)
        keys = ("members", "timezone", "handoff", "turn", "overrides", "backs_up")
        m = r.mapping(table[name], r.line_of(table, name), path, keys)
        if m is None:
            continue
        members = r.members(m, "members", path, people)
        backs_up = r.string(m, "backs_up", path)
        if backs_up is not None:
            backs[name] = (r.line_of(m, "backs_up"), backs_up)
        elif not members:
            r.error(m.line, f"{path}.members", "a rotation needs at least one member")
        zone = parse_zone(r, m, path, tz)
        if backs_up is not None and not members and "timezone" in m:
            r.error(
                r.line_of(m, "timezone"),
                f"{path}.timezone",
                f"a rotation without members follows {backs_up!r}, its schedule and its zone; "
                "set the zone there",
            )
        handoff = DEFAULT_HANDOFF
        if "handoff" in m:
            parsed = r.convert(
                r.line_of(m, "handoff"),
                f"{path}.handoff",
                m["handoff"],
                partial(_local_naive, tz=zone),
            )
            if parsed is not None:
                handoff = parsed
        turn = r.duration(m, "turn", path, 7 * 86400.0)
        if turn < 3600:
            r.error(r.line_of(m, "turn"), f"{path}.turn", "a turn is at least 1h")
            turn = 7 * 86400.0
        out[name] = Rotation(name, members, zone, handoff, turn, (), backs_up)
        bodies[name] = (m, path)
    followers = {name for name, rotation in out.items() if name in backs and not rotation.members}
    for name, (line, other) in backs.items():
        path = f"rotations.{name}.backs_up"
        base = out.get(other)
        if base is None or other == name:
            r.error(line, path, f"unknown rotation {other!r}")
            continue
        if other in followers:
            r.error(line, path, f"{other!r} itself backs up another rotation")
            continue
        if name in followers:
            # No list of its own: the primary's list, one ahead, on its schedule and in its zone.
            out[name] = replace(base, name=name, backs_up=other, offset=1)
    # Overrides are local times in the rotation's zone, which a follower has only now.
    for name, (m, path) in bodies.items():
        zone = out[name].timezone
        out[name] = replace(out[name], overrides=_overrides(r, m, path, people, zone))
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


__all__ = [
    "WEEKDAYS",
    "Override",
    "Rotation",
    "TimeWindow",
    "local_time",
    "parse_duration",
    "parse_windows",
]
