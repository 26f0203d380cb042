"""The `limits`, `delivery` and `acknowledgement` sections: how sends behave."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from receiver.config.types import (
    DEFAULT_ACK_EXPIRY,
    DEFAULT_RATE_LIMITS,
    Acknowledgement,
    Delivery,
    Limits,
)
from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader
from receiver.model import Channel, Severity

E = TypeVar("E", bound=enum.StrEnum)


def parse_limits(r: Reader, top: LineDict) -> Limits:
    m = r.section(top, "limits", "limits", ("max_body_bytes",))
    if not m:
        return Limits()
    return Limits(int(r.number(m, "max_body_bytes", "limits", Limits.max_body_bytes, 1024)))


def parse_delivery(r: Reader, top: LineDict) -> Delivery:
    keys = (
        "deadline",
        "attempts",
        "dedupe_ttl",
        "dedupe_max_entries",
        "rate_limits",
        "background_deadline",
        "sentry_alert_ttl",
        "call_timeout",
        "call_retry_after",
        "max_in_flight",
    )
    m = r.section(top, "delivery", "delivery", keys)
    if not m:
        return Delivery()
    d = Delivery()
    rates = _duration_table(
        r, m, "rate_limits", "delivery", DEFAULT_RATE_LIMITS, Channel, positive=False
    )
    return Delivery(
        deadline=_positive(r, m, "deadline", "delivery", d.deadline),
        attempts=int(r.number(m, "attempts", "delivery", d.attempts, 1)),
        dedupe_ttl=r.duration(m, "dedupe_ttl", "delivery", d.dedupe_ttl),
        dedupe_max_entries=int(
            r.number(m, "dedupe_max_entries", "delivery", d.dedupe_max_entries, 100)
        ),
        rate_limits=rates,
        background_deadline=r.duration(m, "background_deadline", "delivery", d.background_deadline),
        sentry_alert_ttl=r.duration(m, "sentry_alert_ttl", "delivery", d.sentry_alert_ttl),
        call_timeout=_call_timeout(r, m, d.call_timeout),
        call_retry_after=r.duration(m, "call_retry_after", "delivery", d.call_retry_after),
        max_in_flight=int(r.number(m, "max_in_flight", "delivery", d.max_in_flight, 1)),
    )


# Twilio takes a whole number of ring seconds, at most 600.
MAX_CALL_TIMEOUT = 600.0


def _call_timeout(r: Reader, m: LineDict, default: float) -> float:
    value = _positive(r, m, "call_timeout", "delivery", default)
    if value > MAX_CALL_TIMEOUT or value != int(value):
        where = r.line_of(m, "call_timeout")
        r.error(where, "delivery.call_timeout", "must be whole seconds, at most 600s (Twilio's)")
        return default
    return value


def parse_acknowledgement(r: Reader, top: LineDict) -> Acknowledgement:
    path = "acknowledgement"
    keys = ("expires_after", "links_valid_for", "silence_for")
    m = r.section(top, path, path, keys)
    if not m:
        return Acknowledgement()
    d = Acknowledgement()
    expiry = _duration_table(
        r, m, "expires_after", path, DEFAULT_ACK_EXPIRY, Severity, positive=True
    )
    return Acknowledgement(
        expires_after=expiry,
        links_valid_for=_positive(r, m, "links_valid_for", path, d.links_valid_for),
        silence_for=_positive(r, m, "silence_for", path, d.silence_for),
    )


def _duration_table(
    r: Reader,
    m: LineDict,
    key: str,
    path: str,
    defaults: Mapping[E, float],
    kind: type[E],
    *,
    positive: bool,
) -> dict[E, float]:
    """`{<member>: <duration>, ...}` over an enum, on top of `defaults`."""
    out = dict(defaults)
    where = f"{path}.{key}"
    table = r.section(m, key, where, [k.value for k in kind])
    for name in table:
        if name not in kind.__members__.values():
            continue  # already reported as an unknown key
        value = r.duration(table, name, where, 0.0)
        if positive and value <= 0:
            r.error(r.line_of(table, name), f"{where}.{name}", "must be more than 0")
        out[kind(name)] = value
    return out


def _positive(r: Reader, m: LineDict, key: str, path: str, default: float) -> float:
    value = r.duration(m, key, path, default)
    if value <= 0:
        r.error(r.line_of(m, key), f"{path}.{key}", "must be more than 0")
    return value
