"""Fan-out to every target at once, each retried on its own, all under one deadline.

A webhook's sends stop after `delivery.attempts` (Alertmanager retries what is left); a
`Background` deadline has nobody behind it, so its sends retry until the deadline and what is
still undelivered then is lost: logged at ERROR and counted.

A request that went out is never abandoned for another: the vendor may have it, and sending
again would page twice. The webhook is answered at its deadline (503 for a send still out), and
the send goes on, up to one more deadline, then settles its claim itself: delivered (Alertmanager's
retry, waiting on the claim, finds it done) or released (the retry sends it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from receiver.channels.base import DeliveryError, Sender
from receiver.config.types import Delivery
from receiver.metrics import ChannelCounters, Metrics
from receiver.model import Channel, Notification, SlackRef
from receiver.store.base import Claim, group_key
from receiver.store.failopen import FailOpen
from receiver.store.memory import MemoryStore

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
    posted: SlackRef | None = None  # the Slack message it wrote, when it can be edited later


@dataclass(frozen=True)
class Report:
    results: tuple[Result, ...]

    @property
    def needs_retry(self) -> bool:
        """True when the sender should try again later (we answer 503)."""
        return any(r.outcome is Outcome.RETRY for r in self.results)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, DeliveryError) and error.retryable


def _never_fails(op: str, detail: str) -> None:
    raise AssertionError(f"the in-process store failed: {op}: {detail}")


# How often a sender that found another replica's claim looks again.
CLAIM_POLL = 0.05
# A webhook's answer waits this much past its deadline for sends finishing right at it.
ANSWER_GRACE = 0.05


@dataclass
class _Batch:
    """The claims one `deliver` call settles together; a send finishing after the call returned
    (`open` False) settles its own."""

    held: list[tuple[str, bool]] = field(default_factory=list)
    open: bool = True


class Background(float):
    """A deadline in seconds for messages nobody upstream retries (a Sentry event the router
    delivers itself): no attempt cap, each target retried with capped backoff until the deadline,
    and one still undelivered then is lost (logged at ERROR, counted in
    `oncall_router_notifications_lost_total`). A float, so it passes unchanged through callers
    that only hand a deadline on (`Service.deliver`)."""

    __slots__ = ()


@dataclass
class Deliverer:
    """Long-lived: the store it claims in and paces with outlives each request."""

    senders: Mapping[Channel, Sender]
    metrics: Metrics
    policy: Delivery
    # In this process unless the service hands it the shared one (it never fails, so no errors).
    store: FailOpen = field(default_factory=lambda: FailOpen(MemoryStore(), _never_fails))
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called with each message this process is about to send (claimed, not a duplicate), before
    # the vendor can report on it: the service keeps what a page call said for a second call.
    # It must not raise.
    before_send: Callable[[Notification], Awaitable[None]] | None = None
    # Sends still out when their webhook was answered (see the module's docstring).
    outstanding: set[asyncio.Task[Result]] = field(default_factory=set)

    @property
    def _counters(self) -> dict[Channel, ChannelCounters]:
        return self.metrics.by_channel

    async def deliver(
        self,
        notifications: Sequence[Notification],
        deadline: float | None = None,
        *,
        background: bool = False,
    ) -> Report:
        """Send all at once; gather() without cancelling siblings, so no target waits on another.

        Every message is claimed before its send and settled after, all in one store call each
        (with Redis: one round trip for the claims, one for the settlements). `background=True`
        or a `Background` deadline (which passes through callers that only hand a deadline on,
        such as Service.deliver) lifts the attempt cap and counts what is lost."""
        background = background or isinstance(deadline, Background)
        latest = time.monotonic() + (deadline or self.policy.deadline)
        claims = [(n.key, n.covered_by) for n in notifications]
        states = await self.store.claim_many(claims, self._pending_ttl(latest)) if claims else []
        batch = _Batch()
        tasks = [
            asyncio.ensure_future(self._once(n, state, latest, batch, background))
            for n, state in zip(notifications, states, strict=True)
        ]
        try:
            if tasks:
                await asyncio.wait(
                    tasks, timeout=max(0.0, latest - time.monotonic()) + ANSWER_GRACE
                )
        except asyncio.CancelledError:
            # Shutdown (or a cancelled background delivery): the sends go with it, each
            # settling its claim and, in the background, counting itself lost.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            batch.open = False
            for task in tasks:
                if not task.done():
                    self.outstanding.add(task)
                    task.add_done_callback(self.outstanding.discard)
            if batch.held:
                await self.store.settle_many(batch.held, self.policy.dedupe_ttl)
        return Report(
            tuple(
                task.result() if task.done() else self._still_sending(n, background)
                for n, task in zip(notifications, tasks, strict=True)
            )
        )

    def _pending_ttl(self, latest: float) -> float:
        # A claim outlives a send that hangs past its webhook's deadline (see the module's
        # docstring), not much more: if its replica dies mid-send, Alertmanager's retry finds
        # the key free again.
        return max(self.policy.deadline, latest - time.monotonic()) + self.policy.deadline + 5.0

    def _still_sending(self, n: Notification, background: bool) -> Result:
        error = DeliveryError(
            "stillSending", "the vendor has not answered yet; not sent again", retryable=True
        )
        return self._failed(n, error, 1, background)

    async def _settle(self, batch: _Batch, key: str, delivered: bool) -> None:
        if batch.open:
            batch.held.append((key, delivered))
        else:
            await self.store.settle_many([(key, delivered)], self.policy.dedupe_ttl)

    async def _once(
        self,
        n: Notification,
        state: Claim,
        latest: float,
        batch: _Batch,
        background: bool,
    ) -> Result:
        """One send per idempotency key across every replica. A claim held by another sender
        (a replica, or an HA Alertmanager's twin webhook) is waited for until the deadline,
        then answered 503; the claims this one takes are settled by `deliver`."""
        while state is not Claim.CLAIMED:
            if state is Claim.DELIVERED:
                return self._deduplicated(n)
            waited = await self._wait_for_claim(n, latest, background)
            if waited is not None:
                return waited
            state = await self.store.claim(n.key, n.covered_by, self._pending_ttl(latest))
        if self.before_send is not None:
            await self.before_send(n)
        where = f"{group_key(n.group)}:{n.spell}"
        if n.editable:
            # A Slack channel: the group's message is edited rather than posted again.
            n = dataclasses.replace(
                n, follows=await self.store.slack_message(where, n.recipient.address)
            )
        try:
            result = await self._send(n, latest, background)
        except BaseException as e:
            if background and isinstance(e, asyncio.CancelledError):
                # Shutdown cut its retries short, and nobody else will send it.
                error = DeliveryError("other", "cut short by shutdown", retryable=True)
                self._failed(n, error, 0, background)
            await asyncio.shield(self._settle(batch, n.key, False))
            raise
        await self._settle(batch, n.key, result.outcome is Outcome.DELIVERED)
        if result.posted is not None:
            ttl = self.policy.dedupe_ttl
            await self.store.remember_slack_message(where, n.recipient.address, result.posted, ttl)
        return result

    async def _wait_for_claim(
        self, n: Notification, latest: float, background: bool
    ) -> Result | None:
        """Until the other sender settles: its delivery (a duplicate avoided), or None once the
        claim is released, so this one claims again. At the deadline, 503: retried later."""
        while time.monotonic() + CLAIM_POLL < latest:
            await asyncio.sleep(CLAIM_POLL)
            state = await self.store.peek(n.key, n.covered_by)
            if state is Claim.DELIVERED:
                self.metrics.claims_waited.labels("delivered").inc()
                return self._deduplicated(n)
            if state is None:
                self.metrics.claims_waited.labels("released").inc()
                return None
        self.metrics.claims_waited.labels("timeout").inc()
        error = DeliveryError("pending", "another sender holds this message", retryable=True)
        return self._failed(n, error, 0, background)

    def _deduplicated(self, n: Notification) -> Result:
        self._counters[n.channel].deduplicated.inc()
        return Result(n, Outcome.DEDUPLICATED)

    async def _send(self, n: Notification, latest: float, background: bool) -> Result:
        channel = n.channel
        self.metrics.sent[channel, n.severity].inc()
        interval = self.policy.rate_limits.get(n.channel, 0.0)
        if interval > 0:
            now = time.time()
            slot = await self.store.pace(
                f"{channel}:{n.recipient.address}", interval, now, now + latest - time.monotonic()
            )
            if slot is None:
                self._counters[channel].rate_limited.inc()
                return self._failed(
                    n,
                    DeliveryError(
                        "rateLimited", "destination busy until past the deadline", retryable=True
                    ),
                    0,
                    background,
                )
            if slot > now:
                self._counters[channel].rate_limited.inc()
                await asyncio.sleep(slot - now)
        try:
            # The first try skips tenacity: most sends succeed, and its set-up costs per send.
            posted = await self._attempt(n, latest)
            attempts = 1
        except DeliveryError as first:
            tries = [1]
            try:
                posted = await self._retry(n, latest, first, tries, background)
            except DeliveryError as e:
                return self._failed(n, e, tries[0], background)
            attempts = tries[0]
        self._delivered(n)
        return Result(n, Outcome.DELIVERED, attempts=attempts, posted=posted)

    async def _retry(
        self,
        n: Notification,
        latest: float,
        first: DeliveryError,
        tries: list[int],
        background: bool,
    ) -> SlackRef | None:
        """Tenacity takes over after a failed first try: backoff, Retry-After, the limits."""
        channel = n.channel
        posted = None
        stops: list[stop_base] = [stop_after_delay(max(0.0, latest - time.monotonic()))]
        if not background:
            # Alertmanager sends the group again after a 503; a background send has no such
            # second chance, so only its deadline stops it (the backoff is capped at 5 s).
            stops.append(stop_after_attempt(self.policy.attempts))
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_any(*stops),
            wait=self._wait(latest),
            before_sleep=lambda _: self._counters[channel].retries.inc(),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first  # already tried: tenacity decides whether and when to go again
                tries[0] += 1
                posted = await self._attempt(n, latest)
        return posted

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

    async def _attempt(self, n: Notification, latest: float) -> SlackRef | None:
        channel = n.channel
        self._counters[channel].requests.inc()
        started = time.perf_counter()
        try:
            # Never cut at the webhook's deadline (see the module's docstring): one more deadline
            # past it, a vendor that still has not answered is given up on.
            within = max(0.0, latest - time.monotonic()) + self.policy.deadline
            async with asyncio.timeout(within):
                return await self.senders[n.channel].send(n)
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

    def _failed(
        self, n: Notification, error: DeliveryError, attempts: int, background: bool = False
    ) -> Result:
        channel = n.channel.value
        self.metrics.notifications_failed.labels(channel, n.severity.value, error.reason).inc()
        outcome = Outcome.RETRY if error.retryable else Outcome.FAILED
        extra = {
            "channel": channel,
            "to": n.recipient.name,
            "route": n.route,
            "reason": error.reason,
            "detail": error.detail,
            "outcome": outcome.value,
            "attempts": attempts,
        }
        if background:
            # No Alertmanager behind it to send it again: this page is gone.
            self.metrics.notifications_lost.labels(channel, n.severity.value).inc()
            log.error("notification lost", extra=extra)
        else:
            log.warning("delivery failed", extra=extra)
        return Result(n, outcome, error.reason, error.detail, attempts)
