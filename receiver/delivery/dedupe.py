"""Remembers delivered sends for a while: Alertmanager's retries and repeats page nobody twice."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class DedupeStore(Protocol):
    """A shared implementation (Redis: SET key NX EX ttl) lets several replicas agree."""

    async def seen(self, key: str) -> bool: ...

    async def remember(self, key: str) -> None: ...


class MemoryDedupe:
    """In-process store, bounded in size (oldest forgotten first) and in time (TTL)."""

    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def seen(self, key: str) -> bool:
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[key]
            return False
        return True

    async def remember(self, key: str) -> None:
        self._expiry[key] = self._clock() + self.ttl
        self._expiry.move_to_end(key)
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
