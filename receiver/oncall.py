"""Who holds a rotation or role at a given time: pure functions of (config, time)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from receiver.config import Config, RefKind


def members_of(config: Config, ref_kind: RefKind, ref: str, now: datetime) -> tuple[str, ...]:
    """People a person/group/rotation reference resolves to at `now`."""
    if ref_kind == "person":
        return (ref,)
    if ref_kind == "group":
        return config.groups[ref]
    if ref_kind == "rotation":
        return (on_call(config, ref, now),)
    raise ValueError(f"{ref_kind} does not name people")


def on_call(config: Config, rotation: str, now: datetime) -> str:
    """Until schedules are configured, the first member holds the rotation."""
    del now  # the schedule is a function of time once rotations have turns
    return config.rotations[rotation].members[0]
