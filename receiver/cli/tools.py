"""What every subcommand shares: the usage error and time parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from receiver.config.types import Config
from receiver.config.yaml_source import parse_duration


class UsageError(ValueError):
    """A bad argument or input file: the command prints it and exits 2."""


def parse_time(text: str | None, tz: tzinfo) -> datetime:
    """ISO 8601; a time without an offset is in the routing file's time zone; None is now.

    The answer is in UTC: a duration added to it is real elapsed time. Added to a datetime in a
    zone with DST it would be wall-clock time, and could land on an hour that does not exist.
    """
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time") from None
    return (when.replace(tzinfo=tz) if when.tzinfo is None else when).astimezone(UTC)


def parse_span(text: str, option: str) -> timedelta:
    """A positive duration such as `13w`, `90d` or `36h`."""
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None
    if seconds <= 0:
        raise UsageError(f"{option}: must be more than 0")
    return timedelta(seconds=seconds)


def pick_team(config: Config, name: str) -> Config:
    """`--team NAME`: that team's view of the routing file."""
    team = config.team_named(name) if config.teams else None
    if team is None:
        names = ", ".join(t.team for t in config.teams) or "none: the file has no teams"
        raise UsageError(f"--team {name!r}: unknown team (teams: {names})")
    return team
