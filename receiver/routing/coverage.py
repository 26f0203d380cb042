"""On-call gaps `check` looks for in the weeks ahead: a backup that is the person it backs up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.config.types import Config
from receiver.routing.oncall import shift


@dataclass(frozen=True)
class Gap:
    rotation: str
    start: datetime
    end: datetime
    message: str

    def __str__(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M %Z}"
        return f"rotations.{self.rotation}: {span}: {self.message}"


def gaps(config: Config, start: datetime, days: int = 28) -> list[Gap]:
    """Walk every handoff and override boundary from `start` for `days`."""
    out: list[Gap] = []
    end = start + timedelta(days=days)
    for name, rotation in config.rotations.items():
        if rotation.backs_up is None:
            continue
        at = start
        while at < end:
            mine = shift(config, name, at)
            theirs = shift(config, rotation.backs_up, at)
            until = min(mine.until, theirs.until, end)
            if mine.person == theirs.person:
                out.append(
                    Gap(
                        name,
                        at.astimezone(config.timezone),
                        until.astimezone(config.timezone),
                        f"{mine.person} holds both {name} and {rotation.backs_up}: "
                        "nobody backs them up",
                    )
                )
            at = until
    return out
