"""Who holds a rotation or role at a given time: pure functions of (config, time)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from receiver.config import Config, RefKind, Rotation, Route


@dataclass(frozen=True)
class Shift:
    """Who holds a rotation at some moment, until when, and who comes next."""

    person: str
    until: datetime
    next_person: str
    override: bool = False


def _aware(naive: datetime, tz: ZoneInfo) -> datetime:
    # fold=0: a handoff inside a repeated (fall-back) hour happens the first time round.
    return naive.replace(tzinfo=tz, fold=0)


def _scheduled(rotation: Rotation, at: datetime, tz: ZoneInfo) -> tuple[str, datetime]:
    """The rotation's own schedule: holder and end of the turn, in local wall-clock time."""
    local = at.astimezone(tz).replace(tzinfo=None)
    elapsed = (local - rotation.handoff).total_seconds()
    turn = math.floor(elapsed / rotation.turn)
    members = rotation.members
    person = members[(turn + rotation.offset) % len(members)]
    end = rotation.handoff + timedelta(seconds=(turn + 1) * rotation.turn)
    return person, _aware(end, tz)


def shift(config: Config, name: str, at: datetime) -> Shift:
    rotation = config.rotations[name]
    tz = config.timezone
    person, until = _scheduled(rotation, at, tz)
    active = None
    for override in rotation.overrides:
        if override.start <= at < override.end:
            active = override  # the last one listed wins
        elif at < override.start < until:
            until = override.start  # an override starts before the turn ends
    if active is not None:
        person, until = active.person, min(until, active.end)
    following = _holder(rotation, until, tz)
    return Shift(person, until, following, override=active is not None)


def _holder(rotation: Rotation, at: datetime, tz: ZoneInfo) -> str:
    person, _ = _scheduled(rotation, at, tz)
    for override in rotation.overrides:
        if override.start <= at < override.end:
            person = override.person
    return person


def on_call(config: Config, rotation: str, at: datetime) -> str:
    return _holder(config.rotations[rotation], at, config.timezone)


def members_of(config: Config, ref_kind: RefKind, ref: str, at: datetime) -> tuple[str, ...]:
    """People a person/group/rotation reference resolves to at `at`."""
    if ref_kind == "person":
        return (ref,)
    if ref_kind == "group":
        return config.groups[ref]
    if ref_kind == "rotation":
        return (on_call(config, ref, at),)
    raise ValueError(f"{ref_kind} does not name people")


def in_window(config: Config, window: str | None, at: datetime) -> bool:
    """True when no window is required, or `at` falls inside the named one."""
    return window is None or config.windows[window].contains(at)


def window_was_open(config: Config, window: str | None, start: datetime, end: datetime) -> bool:
    """True when no window is required, or the named one was open at some time in [start, end]."""
    return window is None or config.windows[window].overlaps(start, end)


def escalation_level(route: Route, age: float) -> int:
    """How many ladder steps a group firing for `age` seconds has reached (0 = first page)."""
    return sum(1 for step in route.escalation if age >= step.after)
