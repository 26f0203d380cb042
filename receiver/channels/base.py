"""The one protocol every channel implements, and the error it raises.

Errors:
    DeliveryError(retryable=True)   429, 5xx, timeouts, dropped connections: try again.
    DeliveryError(retryable=False)  any other 4xx, bad address, bad credentials: give up.
"""

from __future__ import annotations

from typing import Protocol

from receiver.model import Notification


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
    """Renders and sends one notification; raises DeliveryError on failure."""

    async def send(self, notification: Notification) -> None: ...


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
