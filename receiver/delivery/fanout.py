"""Fan-out to every target at once, each retried on its own, all under one deadline."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from receiver.channels.base import DeliveryError, Sender
from receiver.config.types import Delivery
from receiver.delivery.dedupe import DedupeStore, MemoryDedupe
from receiver.delivery.pacing import Pacer
from receiver.metrics import ChannelCounters, Metrics
from receiver.model import Channel, Notification

log = logging.getLogger("receiver.delivery")


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    DEDUPLICATED = "deduplicated"  # already delivered earlier: not sent again
    FAILED = "failed"  # permanent: retrying cannot help
    RETRY = "retry"  # a retryable failure remained at the deadline


@dataclass(frozen=True)
class Result:
    notification: Notification
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class Report:
    results: tuple[Result, ...]

    @property
    def needs_retry(self) -> bool:
        """True when the sender should try again later (we answer 503)."""
        return any(r.outcome is Outcome.RETRY for r in self.results)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, DeliveryError) and error.retryable


@dataclass
class Deliverer:
    """Long-lived: its dedupe store and pacer outlive each request."""

    senders: Mapping[Channel, Sender]
    metrics: Metrics
    policy: Delivery
    dedupe: DedupeStore = field(default=None)  # type: ignore[assignment]
    pacer: Pacer = field(default_factory=Pacer)
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _inflight: dict[str, asyncio.Future[Result]] = field(default_factory=dict)

    @property
    def _counters(self) -> dict[Channel, ChannelCounters]:
        return self.metrics.by_channel

    def __post_init__(self) -> None:
        if self.dedupe is None:
            self.dedupe = MemoryDedupe(self.policy.dedupe_ttl, self.policy.dedupe_max_entries)

    async def deliver(
        self, notifications: Sequence[Notification], deadline: float | None = None
    ) -> Report:
        """Send all at once; gather() without cancelling siblings, so no target waits on another."""
        latest = time.monotonic() + (deadline or self.policy.deadline)
        results = await asyncio.gather(*(self._once(n, latest) for n in notifications))
        return Report(tuple(results))

    async def _once(self, n: Notification, latest: float) -> Result:
        """One send per idempotency key, even when an HA pair posts the same group twice at once."""
        channel = n.channel
        if await self.dedupe.seen(n.key):
            self._counters[channel].deduplicated.inc()
            return Result(n, Outcome.DEDUPLICATED)
        running = self._inflight.get(n.key)
        if running is not None:
            first = await asyncio.shield(running)
            if first.outcome in (Outcome.DELIVERED, Outcome.DEDUPLICATED):
                self._counters[channel].deduplicated.inc()
                return Result(n, Outcome.DEDUPLICATED)
            return first
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._inflight[n.key] = future
        try:
            result = await self._send(n, latest)
            if result.outcome is Outcome.DELIVERED:
                await self.dedupe.remember(n.key)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # marks it retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(result)
        finally:
            del self._inflight[n.key]
        return result

    async def _send(self, n: Notification, latest: float) -> Result:
        channel = n.channel
        self.metrics.sent[channel, n.severity].inc()
        interval = self.policy.rate_limits.get(n.channel, 0.0)
        if interval > 0:
            pacing_key = f"{channel}:{n.recipient.address}"
            delay = self.pacer.reserve(pacing_key, interval, latest)
            if delay is None:
                self._counters[channel].rate_limited.inc()
                return self._failed(
                    n,
                    DeliveryError(
                        "rateLimited", "destination busy until past the deadline", retryable=True
                    ),
                    0,
                )
            if delay > 0:
                self._counters[channel].rate_limited.inc()
                await asyncio.sleep(delay)
        try:
            # The first try skips tenacity: most sends succeed, and its set-up costs per send.
            await self._attempt(n, latest)
            attempts = 1
        except DeliveryError as first:
            tries = [1]
            try:
                await self._retry(n, latest, first, tries)
            except DeliveryError as e:
                return self._failed(n, e, tries[0])
            attempts = tries[0]
        self._delivered(n)
        return Result(n, Outcome.DELIVERED, attempts=attempts)

    async def _retry(
        self, n: Notification, latest: float, first: DeliveryError, tries: list[int]
    ) -> None:
        """Tenacity takes over after a failed first try: backoff, Retry-After, the limits."""
        channel = n.channel
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.policy.attempts)
            | stop_after_delay(max(0.0, latest - time.monotonic())),
            wait=self._wait(latest),
            before_sleep=lambda _: self._counters[channel].retries.inc(),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first  # already tried: tenacity decides whether and when to go again
                tries[0] += 1
                await self._attempt(n, latest)

    def _wait(self, latest: float) -> Callable[[RetryCallState], float]:
        backoff = wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            delay = backoff(state)
            if isinstance(error, DeliveryError) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            remaining = latest - time.monotonic()
            if delay >= remaining:
                # No point sleeping past the deadline: give up now and let the caller answer 503.
                assert isinstance(error, DeliveryError)  # only those are retried
                raise error
            return delay

        return wait

    async def _attempt(self, n: Notification, latest: float) -> None:
        channel = n.channel
        self._counters[channel].requests.inc()
        started = time.perf_counter()
        try:
            # One attempt gets at most half the deadline, so a request stuck (say, waiting for a
            # pooled connection under a storm) is retried instead of eating the whole deadline.
            within = min(latest - time.monotonic(), self.policy.deadline / 2)
            async with asyncio.timeout(max(0.0, within)):
                await self.senders[n.channel].send(n)
        except TimeoutError:
            self._counters[channel].requests_failed.inc()
            raise DeliveryError(
                "deadlineExceeded", "no answer before the deadline", retryable=True
            ) from None
        except DeliveryError:
            self._counters[channel].requests_failed.inc()
            raise
        except Exception as e:
            # A bug of ours (rendering, say) must cost one target, not the whole webhook.
            self._counters[channel].requests_failed.inc()
            log.exception("sender crashed", extra={"channel": channel.value, "route": n.route})
            raise DeliveryError(
                "other", f"internal error: {type(e).__name__}", retryable=False
            ) from None
        finally:
            self._counters[channel].latency.observe(time.perf_counter() - started)

    def _delivered(self, n: Notification) -> None:
        # The first page only: escalation pages are late by design.
        firing = n.firing if n.level == 0 else ()
        if firing:  # a group with a firing alert has status FIRING
            age = (self.wall_clock() - min(a.starts_at for a in firing)).total_seconds()
            age_series = self.metrics.series(self.metrics.alert_to_page, n.severity.value)
            age_series.observe(max(0.0, age))

    def _failed(self, n: Notification, error: DeliveryError, attempts: int) -> Result:
        channel = n.channel.value
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
                "attempts": attempts,
            },
        )
        return Result(n, outcome, error.reason, error.detail, attempts)
