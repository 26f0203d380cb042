"""The in-process store: one replica, the dry run and the tests. Bounded in size and time."""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from receiver.model import GroupMemory, SlackRef
from receiver.store.base import Claim, owner_token

DELIVERED = "delivered"


class MemoryStore:
    """Every value expires after its TTL; past `max_entries` the least recently written goes."""

    def __init__(
        self, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._values: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._owner = f"pending:{owner_token()}"

    def __len__(self) -> int:
        return len(self._values)

    def _get(self, key: str) -> Any:
        found = self._values.get(key)
        if found is None:
            return None
        value, expiry = found
        if expiry <= self._clock():
            del self._values[key]
            return None
        return value

    def _set(self, key: str, value: Any, ttl: float) -> None:
        self._values[key] = (value, self._clock() + ttl)
        self._values.move_to_end(key)
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)

    async def claim(self, key: str, covered_by: Sequence[str], ttl: float) -> Claim:
        state = await self.peek(key, covered_by)
        if state is not None:
            return state
        self._set(key, self._owner, ttl)
        return Claim.CLAIMED

    async def peek(self, key: str, covered_by: Sequence[str]) -> Claim | None:
        for k in (key, *covered_by):
            value = self._get(k)
            if value == DELIVERED:
                return Claim.DELIVERED
            if value is not None:
                return Claim.PENDING
        return None

    async def claim_many(
        self, claims: Sequence[tuple[str, Sequence[str]]], ttl: float
    ) -> list[Claim]:
        return [await self.claim(key, covered_by, ttl) for key, covered_by in claims]

    async def settle(self, outcomes: Sequence[tuple[str, bool]], ttl: float) -> None:
        for key, delivered in outcomes:
            if delivered:
                self._set(key, DELIVERED, ttl)
            elif self._get(key) == self._owner:
                del self._values[key]

    async def group(self, gid: str) -> GroupMemory | None:
        memory: GroupMemory | None = self._get(f"group:{gid}")
        return memory

    async def open_group(self, gid: str, memory: GroupMemory, ttl: float) -> GroupMemory:
        current = await self.group(gid)
        if current is not None and not current.resolved:
            return current
        self._set(f"group:{gid}", memory, ttl)
        return memory

    async def note_paged(self, gid: str, entries: Iterable[str], ttl: float) -> None:
        current = await self.group(gid)
        if current is not None:
            paged = current.paged | frozenset(entries)
            self._set(f"group:{gid}", dataclasses.replace(current, paged=paged), ttl)

    async def close_group(self, gid: str, ttl: float) -> None:
        current = await self.group(gid)
        if current is not None:
            self._set(f"group:{gid}", dataclasses.replace(current, resolved=True), ttl)

    async def pace(self, key: str, interval: float, now: float, latest: float) -> float | None:
        slot = max(now, self._get(f"pace:{key}") or now)
        if slot > latest:
            return None
        # Kept until the slot has passed; an idle destination costs nothing after that.
        self._set(f"pace:{key}", slot + interval, max(0.001, slot + interval - now))
        return slot

    async def slack_message(self, gid: str, destination: str) -> SlackRef | None:
        message: SlackRef | None = self._get(f"slack:{gid}:{destination}")
        return message

    async def remember_slack_message(
        self, gid: str, destination: str, message: SlackRef, ttl: float
    ) -> None:
        self._set(f"slack:{gid}:{destination}", message, ttl)

    async def remember_page(self, key: str, record: str, ttl: float) -> None:
        self._set(f"page:{key}", record, ttl)

    async def page(self, key: str) -> str | None:
        record: str | None = self._get(f"page:{key}")
        return record

    async def remember_link(self, link: str, token: str, ttl: float) -> None:
        self._set(f"link:{link}", token, ttl)

    async def link(self, link: str) -> str | None:
        token: str | None = self._get(f"link:{link}")
        return token

    async def close(self) -> None:
        self._values.clear()
