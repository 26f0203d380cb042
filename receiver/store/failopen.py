"""A store that cannot fail: each error or slow answer is reported and replaced by the answer
that pages (a duplicate page beats a page never sent)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from receiver.model import GroupMemory, SlackRef
from receiver.store.base import Claim, Store, StoreError
from receiver.store.memory import MemoryStore

T = TypeVar("T")
# Called with the operation (one of metrics.STORE_OPS) and what went wrong.
OnError = Callable[[str, str], None]


@dataclass(frozen=True)
class Recall:
    """What the store remembers of a group; `known` is False when the store could not say."""

    memory: GroupMemory | None
    known: bool = True


@dataclass(frozen=True)
class Lookup:
    """A short link's token (None: unknown or expired); `known` is False when the store could
    not say, which is no reason to tell a person their link is wrong."""

    token: str | None
    known: bool = True


async def _value(value: T) -> T:
    return value


class FailOpen:
    def __init__(self, store: Store, on_error: OnError, timeout: float = 1.0) -> None:
        self.store = store
        self.on_error = on_error
        self.timeout = timeout
        # While the shared store fails, claims are kept here: each replica then sends a message
        # at most once more (its own duplicate), not once per Alertmanager re-send.
        self.local = MemoryStore()

    async def _call(self, op: str, call: Awaitable[T], fallback: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except StoreError as e:
            self.on_error(op, str(e))
        except TimeoutError:
            self.on_error(op, f"no answer within {self.timeout:g}s")
        return await fallback()

    async def claim(self, key: str, covered_by: Sequence[str], ttl: float) -> Claim:
        call = self.store.claim(key, covered_by, ttl)
        return await self._call("claim", call, lambda: self.local.claim(key, covered_by, ttl))

    async def peek(self, key: str, covered_by: Sequence[str]) -> Claim | None:
        call = self.store.peek(key, covered_by)
        return await self._call("claim", call, lambda: self.local.peek(key, covered_by))

    async def claim_many(
        self, claims: Sequence[tuple[str, Sequence[str]]], ttl: float
    ) -> list[Claim]:
        call = self.store.claim_many(claims, ttl)
        return await self._call("claim", call, lambda: self.local.claim_many(claims, ttl))

    async def settle_many(self, outcomes: Sequence[tuple[str, bool]], ttl: float) -> None:
        call = self.store.settle(outcomes, ttl)
        await self._call("settle", call, lambda: self.local.settle(outcomes, ttl))

    async def recall(self, gid: str) -> Recall:
        unknown = Recall(None, known=False)
        found = await self._call("read_group", self._recall(gid), lambda: _value(unknown))
        return found

    async def _recall(self, gid: str) -> Recall:
        return Recall(await self.store.group(gid))

    async def open_group(self, gid: str, memory: GroupMemory, ttl: float) -> GroupMemory:
        return await self._call(
            "write_group", self.store.open_group(gid, memory, ttl), lambda: _value(memory)
        )

    async def note_paged(self, gid: str, entries: Iterable[str], ttl: float) -> None:
        await self._call(
            "write_group", self.store.note_paged(gid, entries, ttl), lambda: _value(None)
        )

    async def close_group(self, gid: str, ttl: float) -> None:
        await self._call("write_group", self.store.close_group(gid, ttl), lambda: _value(None))

    async def pace(self, key: str, interval: float, now: float, latest: float) -> float | None:
        # Unpaced rather than unsent: the vendor's own limit (429) is still honoured by retries.
        return await self._call(
            "pace", self.store.pace(key, interval, now, latest), lambda: _value(now)
        )

    async def slack_message(self, gid: str, destination: str) -> SlackRef | None:
        return await self._call(
            "slack_message", self.store.slack_message(gid, destination), lambda: _value(None)
        )

    async def remember_slack_message(
        self, gid: str, destination: str, message: SlackRef, ttl: float
    ) -> None:
        call = self.store.remember_slack_message(gid, destination, message, ttl)
        await self._call("slack_message", call, lambda: _value(None))

    async def remember_page(self, key: str, record: str, ttl: float) -> None:
        call = self.store.remember_page(key, record, ttl)
        await self._call("page_record", call, lambda: self.local.remember_page(key, record, ttl))

    async def page(self, key: str) -> str | None:
        # Kept here as well while the shared store fails, so this replica can still use it.
        call = self.store.page(key)
        return await self._call("page_record", call, lambda: self.local.page(key))

    async def remember_link(self, link: str, token: str, ttl: float) -> None:
        # Kept here as well while the shared store fails: this replica can still answer it.
        call = self.store.remember_link(link, token, ttl)
        await self._call("ack_link", call, lambda: self.local.remember_link(link, token, ttl))

    async def link(self, link: str) -> Lookup:
        return await self._call("ack_link", self._link(link), lambda: self._local_link(link))

    async def _link(self, link: str) -> Lookup:
        return Lookup(await self.store.link(link))

    async def _local_link(self, link: str) -> Lookup:
        token = await self.local.link(link)
        return Lookup(token) if token is not None else Lookup(None, known=False)

    async def close(self) -> None:
        await self._call("settle", self.store.close(), lambda: _value(None))
