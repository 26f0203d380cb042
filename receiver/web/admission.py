"""Admission: a bounded number of webhooks worked on at once, and none started too late.

Under a burst the router must not take on more than it can finish: every webhook it starts
competes for the same CPU, so all of them would miss the deadline together (and Alertmanager's
retries would pile on). A webhook waits for one of `max_in_flight` slots at most a quarter of the
delivery deadline, so one that starts has the rest of it to deliver; one that cannot start in
that time, or finds the queue already full, is answered 503 at once — Alertmanager sends it
again later, and nothing is lost. Health, readiness and metrics never wait here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from receiver.metrics import Metrics

# A webhook waits for a slot at most this share of the delivery deadline.
START_SHARE = 0.25


class Shed(Exception):
    """No slot within the wait: answer 503 now."""


class Admission:
    def __init__(self, max_in_flight: int, metrics: Metrics) -> None:
        self.limit = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._waiting = 0
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[float]:
        """Hold a slot while working; yields the seconds spent waiting for it."""
        if self._waiting >= self.limit:
            raise Shed(f"{self._waiting} webhooks already waiting to start")
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._waiting += 1
        self._metrics.webhooks_queued.inc()
        try:
            async with asyncio.timeout(deadline * START_SHARE):
                await self._slots.acquire()
        except TimeoutError:
            raise Shed(f"no slot free within {deadline * START_SHARE:g}s") from None
        finally:
            self._waiting -= 1
            self._metrics.webhooks_queued.dec()
        self._metrics.webhooks_in_flight.inc()
        try:
            yield loop.time() - started
        finally:
            self._slots.release()
            self._metrics.webhooks_in_flight.dec()
