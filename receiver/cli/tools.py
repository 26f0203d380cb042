"""What every subcommand shares: the usage error and time parsing."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


class UsageError(ValueError):
    """A bad argument or input file: the command prints it and exits 2."""


def parse_time(text: str | None, tz: tzinfo) -> datetime:
    """ISO 8601; a time without an offset is in the routing file's time zone; None is now."""
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time") from None
    return when.replace(tzinfo=tz) if when.tzinfo is None else when
