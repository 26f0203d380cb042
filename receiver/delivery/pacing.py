"""Per-destination pacing: messages to one Slack channel or phone queue up instead of bursting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """Hands out send slots at least `interval` apart for each destination key.

    A caller that would wait past its deadline gets no slot (None), so the sender can answer 503
    and let Alertmanager retry later: the message is queued upstream, never dropped.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, key: str, interval: float, latest: float) -> float | None:
        """Seconds to wait for this key's next slot, or None if that is after `latest`."""
        if interval <= 0:
            return 0.0
        now = self._clock()
        slot = max(now, self._next.get(key, now))
        if slot > latest:
            return None
        self._next[key] = slot + interval
        self._forget_idle(now)
        return slot - now

    async def wait(self, key: str, interval: float, latest: float) -> bool:
        delay = self.reserve(key, interval, latest)
        if delay is None:
            return False
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    def _forget_idle(self, now: float) -> None:
        # Keys whose slot has passed carry no information; keep the map small.
        if len(self._next) > 1024:
            for key in [k for k, t in self._next.items() if t <= now]:
                del self._next[key]
