"""Fan-out to every target at once, each retried on its own, all under one deadline."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from receiver.channels.base import DeliveryError, Sender
from receiver.metrics import Metrics
from receiver.model import Channel, Notification

log = logging.getLogger("receiver.delivery")


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent: retrying cannot help
    RETRY = "retry"  # retryable failure remained at the deadline


@dataclass(frozen=True)
class Result:
    notification: Notification
    outcome: Outcome
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Report:
    results: tuple[Result, ...]

    @property
    def needs_retry(self) -> bool:
        """True when the sender should try again later (we answer 503)."""
        return any(r.outcome is Outcome.RETRY for r in self.results)


class Deliverer:
    def __init__(
        self, senders: Mapping[Channel, Sender], metrics: Metrics, deadline: float
    ) -> None:
        self.senders = senders
        self.metrics = metrics
        self.deadline = deadline

    async def deliver(self, notifications: Sequence[Notification]) -> Report:
        # gather() without cancelling siblings: one failing target never stops another.
        results = await asyncio.gather(*(self._one(n) for n in notifications))
        return Report(tuple(results))

    async def _one(self, n: Notification) -> Result:
        channel = n.channel.value
        self.metrics.notifications.labels(channel, n.severity.value).inc()
        sender = self.senders[n.channel]
        started = time.perf_counter()
        self.metrics.requests.labels(channel).inc()
        try:
            async with asyncio.timeout(self.deadline):
                await sender.send(n)
        except DeliveryError as e:
            return self._failed(n, e)
        except TimeoutError:
            return self._failed(
                n, DeliveryError("deadlineExceeded", "deadline exceeded", retryable=True)
            )
        finally:
            self.metrics.latency.labels(channel).observe(time.perf_counter() - started)
        return Result(n, Outcome.DELIVERED)

    def _failed(self, n: Notification, error: DeliveryError) -> Result:
        channel = n.channel.value
        self.metrics.requests_failed.labels(channel).inc()
        self.metrics.notifications_failed.labels(channel, n.severity.value, error.reason).inc()
        outcome = Outcome.RETRY if error.retryable else Outcome.FAILED
        log.warning(
            "delivery failed",
            extra={
                "channel": channel,
                "to": n.recipient.name,
                "route": n.route,
                "reason": error.reason,
                "detail": error.detail,
                "outcome": outcome.value,
            },
        )
        return Result(n, outcome, error.reason, error.detail)
