"""Payload parsers: each turns one webhook body into an AlertGroup or raises PayloadError.

One module per sender (`alertmanager`, `sentry`); the shared shape checks live here.

May import: model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


class PayloadError(ValueError):
    """The body is not a payload this source sends; answered with 400."""


def obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be a JSON object")
    return value


def text(value: Any, where: str, *, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"{where} must be a string")
    return _encodable(str(value))


def _encodable(value: str) -> str:
    """JSON allows lone surrogates ("\\ud800") that nothing downstream can encode.

    They become "?" rather than a 400: refusing the payload would lose the page.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def str_map(value: Any, where: str) -> dict[str, str]:
    """A label or annotation set: JSON object of strings (numbers are tolerated)."""
    if value is None:
        return {}
    return {_encodable(k): text(v, f"{where}.{k!r}") for k, v in obj(value, where).items()}


_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def timestamp(value: Any, where: str) -> datetime:
    """RFC 3339 (nanoseconds are cut to micros) or epoch seconds; always UTC-aware."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(f"{where} is not a valid time") from None
        if not _EARLIEST <= parsed <= _LATEST:
            raise PayloadError(f"{where} is out of range: {value!r}")
        return parsed
    raw = text(value, where)
    cleaned = raw.strip()
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise PayloadError(f"{where} is not an RFC 3339 time: {raw[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not _EARLIEST <= parsed <= _LATEST:
        # Alertmanager and Sentry send real times; year 1 or 9999 would break time arithmetic.
        raise PayloadError(f"{where} is out of range: {raw[:40]!r}")
    return parsed.astimezone(UTC)
