"""The one protocol every channel implements, and the error it raises.

Errors:
    DeliveryError(retryable=True)   429, 5xx, timeouts, dropped connections: try again.
    DeliveryError(retryable=False)  any other 4xx, bad address, bad credentials: give up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Protocol

from receiver.model import Notification, SlackRef

DETAIL_LIMIT = 200


class DeliveryError(Exception):
    """A send failed. `reason` is a metric label; `detail` must never hold a secret."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class Sender(Protocol):
    """Renders and sends one notification; raises DeliveryError on failure.

    Returns the Slack message it posted or updated through the Web API (which a later change of
    the group edits), else None.
    """

    async def send(self, notification: Notification) -> SlackRef | None: ...


def reason_for_status(status: int) -> str:
    """Alertmanager's failure-reason vocabulary for an HTTP status."""
    if status in (401, 403):
        return "authError"
    if status == 429:
        return "rateLimited"
    if 400 <= status < 500:
        return "clientError"
    if status >= 500:
        return "serverError"
    return "other"


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), never negative."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def short(text: str, scrub: Iterable[str] = ()) -> str:
    """One line of at most DETAIL_LIMIT characters, with every secret taken out."""
    for secret in scrub:
        text = text.replace(secret, "[REDACTED]")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"
