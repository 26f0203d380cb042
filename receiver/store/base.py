"""The store's contract, shared by the in-process and the Redis implementation."""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Protocol

from receiver.model import AlertGroup, GroupMemory, SlackRef


class StoreError(Exception):
    """The store failed or did not answer in time; the caller pages anyway."""


class Claim(enum.StrEnum):
    CLAIMED = "claimed"  # ours: send it, then settle
    DELIVERED = "delivered"  # sent before (here or by another replica): do not send
    PENDING = "pending"  # another sender holds it right now: wait for it


def group_key(group: AlertGroup) -> str:
    """A group's key in the store: its source and Alertmanager group key, hashed."""
    text = f"{group.source.value}\n{group.group_key}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def owner_token() -> str:
    """Marks this process's claims, so it releases only its own."""
    return os.urandom(8).hex()


class Store(Protocol):
    async def claim(self, key: str, covered_by: Sequence[str], ttl: float) -> Claim:
        """Atomically: DELIVERED or PENDING if `key` or a key in `covered_by` holds that state,
        else take `key` as pending for `ttl` seconds (CLAIMED)."""
        ...

    async def peek(self, key: str, covered_by: Sequence[str]) -> Claim | None:
        """The state `claim` would see, without taking anything (None: free)."""
        ...

    async def claim_many(
        self, claims: Sequence[tuple[str, Sequence[str]]], ttl: float
    ) -> list[Claim]:
        """`claim` for each (key, covered_by), in one call."""
        ...

    async def settle(self, outcomes: Sequence[tuple[str, bool]], ttl: float) -> None:
        """After the sends: each (key, delivered) remembered delivered for `ttl` seconds, or
        its claim released (only if it is still ours)."""
        ...

    async def group(self, gid: str) -> GroupMemory | None: ...

    async def open_group(self, gid: str, memory: GroupMemory, ttl: float) -> GroupMemory:
        """Remember a spell unless one is remembered already; returns the one that stands."""
        ...

    async def note_paged(self, gid: str, entries: Iterable[str], ttl: float) -> None:
        """Add "<level>:<person>" entries to the group's spell and extend its TTL."""
        ...

    async def close_group(self, gid: str, ttl: float) -> None:
        """The spell's resolved notices went out: the next firing starts a new spell."""
        ...

    async def pace(self, key: str, interval: float, now: float, latest: float) -> float | None:
        """Reserve the next send slot of a destination: its time (epoch seconds), or None if it
        falls after `latest`. Slots are at least `interval` apart across every replica."""
        ...

    async def slack_message(self, gid: str, destination: str) -> SlackRef | None: ...

    async def remember_slack_message(
        self, gid: str, destination: str, message: SlackRef, ttl: float
    ) -> None: ...

    async def remember_page(self, key: str, record: str, ttl: float) -> None:
        """Keep what a page said (receiver.web.receipts), for a second call or an SMS later."""
        ...

    async def page(self, key: str) -> str | None: ...

    async def remember_link(self, link: str, token: str, ttl: float) -> None:
        """Keep the token a short acknowledgement link stands for (receiver.ack.short_links)."""
        ...

    async def link(self, link: str) -> str | None:
        """The token of a short link; None when unknown or expired."""
        ...

    async def close(self) -> None: ...
