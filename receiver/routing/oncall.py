"""Who holds a rotation or role at a given time: pure functions of (config, time)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from receiver.config.rotations import Rotation
    from receiver.config.types import Config, RefKind, Route


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


def _scheduled(rotation: Rotation, at: datetime) -> tuple[str, datetime]:
    """The rotation's own schedule: holder and end of the turn.

    Turns are counted in local wall-clock time in the rotation's zone, then checked against the
    real instants of the handoffs either side, so a handoff inside a skipped or repeated DST hour
    is still exact.
    """
    tz = rotation.timezone
    at = at.astimezone(UTC)
    local = at.astimezone(tz).replace(tzinfo=None)
    turn = math.floor((local - rotation.handoff).total_seconds() / rotation.turn)

    def boundary(k: int) -> datetime:
        naive = rotation.handoff + timedelta(seconds=k * rotation.turn)
        return _aware(naive, tz).astimezone(UTC)

    while at < boundary(turn):
        turn -= 1
    while at >= boundary(turn + 1):
        turn += 1
    members = rotation.members
    return members[(turn + rotation.offset) % len(members)], boundary(turn + 1).astimezone(tz)


def shift(config: Config, name: str, at: datetime) -> Shift:
    """Who holds the rotation at `at`, until the next moment someone else does (in the rotation's
    zone), and who that is."""
    rotation = config.rotations[name]
    tz = rotation.timezone
    at = at.astimezone(UTC)  # datetimes in one zone compare by wall clock; instants do not lie
    person = _holder(rotation, at)
    override = any(o.start <= at < o.end for o in rotation.overrides)
    _, turn_end = _scheduled(rotation, at)
    # Where the holder can change: turn ends and override edges. Walk them in order, up to a
    # full cycle past the last override edge, to the first one where someone else holds it.
    edges = {e.astimezone(UTC) for o in rotation.overrides for e in (o.start, o.end) if e > at}
    horizon = max(edges, default=turn_end.astimezone(UTC))
    end, cycle = turn_end.astimezone(UTC), len(rotation.members)
    while end < horizon or cycle > 0:
        edges.add(end)
        if end >= horizon:
            cycle -= 1
        end = _scheduled(rotation, end)[1].astimezone(UTC)
    for edge in sorted(edges):
        following = _holder(rotation, edge)
        if following != person:
            return Shift(person, edge.astimezone(tz), following, override=override)
    return Shift(person, turn_end, person, override=override)  # one member: nobody else


def _holder(rotation: Rotation, at: datetime) -> str:
    at = at.astimezone(UTC)
    person, _ = _scheduled(rotation, at)
    for override in rotation.overrides:
        if override.start <= at < override.end:
            person = override.person  # the last one listed wins
    return person


def on_call(config: Config, rotation: str, at: datetime) -> str:
    return _holder(config.rotations[rotation], at)


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
