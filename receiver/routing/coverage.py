"""On-call gaps `check` looks for in the weeks ahead: a backup that is the person it backs up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receiver.config.types import Config
from receiver.routing.oncall import shift

# Even a short rotation gets this much look-ahead: overrides are usually planned weeks out.
MIN_HORIZON = timedelta(weeks=4)


@dataclass(frozen=True)
class Gap:
    rotation: str
    start: datetime
    end: datetime
    message: str

    def __str__(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M %Z}"
        return f"rotations.{self.rotation}: {span}: {self.message}"


def default_horizon(config: Config) -> timedelta:
    """One full cycle of the longest rotation (members times turn, after which its schedule
    repeats), and never less than 4 weeks."""
    cycles = [timedelta(seconds=len(r.members) * r.turn) for r in config.rotations.values()]
    return max([MIN_HORIZON, *cycles])


def gaps(config: Config, start: datetime, horizon: timedelta | None = None) -> list[Gap]:
    """Walk every handoff and override boundary from `start` for `horizon` (default: see
    `default_horizon`)."""
    out: list[Gap] = []
    # Instants in UTC: datetimes in one zone compare and add by wall clock, wrong across DST.
    start = start.astimezone(UTC)
    end = start + (default_horizon(config) if horizon is None else horizon)
    for name, rotation in config.rotations.items():
        if rotation.backs_up is None:
            continue
        at = start
        while at < end:
            mine = shift(config, name, at)
            theirs = shift(config, rotation.backs_up, at)
            until = min(mine.until.astimezone(UTC), theirs.until.astimezone(UTC), end)
            if mine.person == theirs.person:
                out.append(
                    Gap(
                        name,
                        at.astimezone(rotation.timezone),
                        until.astimezone(rotation.timezone),
                        f"{mine.person} holds both {name} and {rotation.backs_up}: "
                        "nobody backs them up",
                    )
                )
            at = until
    return out
