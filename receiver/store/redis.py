"""The shared store in Redis (`REDIS_URL`): every replica sees the same claims, spells and pacing.

Each operation is one round trip: a Lua script where a read decides a write (claims, spells,
pacing), a pipeline otherwise. Every key carries a TTL, so Redis needs no persistence and a
`volatile-ttl` eviction policy is safe.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from receiver.model import GroupMemory, SlackRef
from receiver.store.base import Claim, StoreError, owner_token

PREFIX = "oncall-router"
DELIVERED = "delivered"
MAX_CONNECTIONS = 32

# KEYS: the key, then the keys that cover it. ARGV: owner, ttl in ms.
_CLAIM = """
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    if v == 'delivered' then return 'delivered' end
    return 'pending'
  end
end
if ARGV[1] == '' then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'claimed'
"""
# KEYS: the claim. ARGV: owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: spell hash, paged set. ARGV: spell, first paged (epoch s), ttl in ms.
_OPEN = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HGET', KEYS[1], 'resolved') ~= '1' then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'spell', ARGV[1], 'first', ARGV[2], 'resolved', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS: pacing key. ARGV: now, interval, latest (epoch s).
_PACE = """
local now = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if slot < now then slot = now end
if slot > tonumber(ARGV[3]) then return false end
local after = slot + tonumber(ARGV[2])
local ttl = math.max(1, math.ceil((after - now) * 1000))
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', ttl)
return string.format('%.6f', slot)
"""


@contextlib.asynccontextmanager
async def _errors() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as e:
        # The message names host and port at most; the URL (with its password) is never in it.
        raise StoreError(f"{type(e).__name__}: {e}") from None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    def __init__(self, url: str, timeout: float = 0.5) -> None:
        # No retries inside the client: the caller has a deadline and pages anyway on failure.
        # A bounded pool that queues for a connection (up to the timeout) instead of failing
        # with "Too many connections" when a burst of webhooks all ask at once.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        # from_pool: the client owns the pool, so closing it closes every connection.
        self.client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._owner = f"pending:{owner_token()}"
        self._claim = self.client.register_script(_CLAIM)
        self._release = self.client.register_script(_RELEASE)
        self._open = self.client.register_script(_OPEN)
        self._pace = self.client.register_script(_PACE)
        self._scripts_loaded = False

    @staticmethod
    def _group_keys(gid: str) -> tuple[str, str]:
        return f"{PREFIX}:group:{gid}", f"{PREFIX}:paged:{gid}"

    async def ping(self) -> None:
        async with _errors():
            await self.client.ping()

    async def claim(self, key: str, covered_by: Sequence[str], ttl: float) -> Claim:
        keys = [f"{PREFIX}:claim:{k}" for k in (key, *covered_by)]
        async with _errors():
            state = await self._claim(keys=keys, args=[self._owner, _ms(ttl)])
        return Claim(state)

    async def peek(self, key: str, covered_by: Sequence[str]) -> Claim | None:
        keys = [f"{PREFIX}:claim:{k}" for k in (key, *covered_by)]
        async with _errors():
            state = await self._claim(keys=keys, args=["", 0])
        return None if state is None else Claim(state)

    async def _load_scripts(self) -> None:
        """Scripts in a pipeline go by EVALSHA: loaded once here, because redis-py would
        otherwise ask SCRIPT EXISTS before every pipeline (a round trip more per webhook)."""
        if not self._scripts_loaded:
            for script in (self._claim, self._release):
                await self.client.script_load(script.script)
            self._scripts_loaded = True

    async def claim_many(
        self, claims: Sequence[tuple[str, Sequence[str]]], ttl: float
    ) -> list[Claim]:
        async with _errors():
            await self._load_scripts()
            async with self.client.pipeline(transaction=False) as pipe:
                for key, covered_by in claims:
                    keys = [f"{PREFIX}:claim:{k}" for k in (key, *covered_by)]
                    pipe.evalsha(self._claim.sha, len(keys), *keys, self._owner, _ms(ttl))
                states = await self._execute(pipe)
        return [Claim(state) for state in states]

    async def settle(self, outcomes: Sequence[tuple[str, bool]], ttl: float) -> None:
        async with _errors():
            await self._load_scripts()
            async with self.client.pipeline(transaction=False) as pipe:
                for key, delivered in outcomes:
                    name = f"{PREFIX}:claim:{key}"
                    if delivered:
                        pipe.set(name, DELIVERED, px=_ms(ttl))
                    else:
                        pipe.evalsha(self._release.sha, 1, name, self._owner)
                await self._execute(pipe)

    async def _execute(self, pipe: Pipeline) -> list[Any]:
        try:
            result: list[Any] = await pipe.execute()
        except NoScriptError:
            # Redis restarted and forgot them: load again next time (this call fails open).
            self._scripts_loaded = False
            raise
        return result

    async def group(self, gid: str) -> GroupMemory | None:
        spell_key, paged_key = self._group_keys(gid)
        async with _errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(spell_key)
            pipe.smembers(paged_key)
            fields, paged = await pipe.execute()
        if not fields or "spell" not in fields:
            return None
        try:
            first = datetime.fromtimestamp(float(fields["first"]), UTC)
        except (KeyError, ValueError, OverflowError):
            return None  # not ours or damaged: as if nothing were remembered
        return GroupMemory(
            spell=fields["spell"],
            first_paged=first,
            paged=frozenset(paged),
            resolved=fields.get("resolved") == "1",
        )

    async def open_group(self, gid: str, memory: GroupMemory, ttl: float) -> GroupMemory:
        keys = list(self._group_keys(gid))
        args: list[str | int] = [memory.spell, f"{memory.first_paged.timestamp():.6f}", _ms(ttl)]
        async with _errors():
            opened = await self._open(keys=keys, args=args)
        if opened:
            return memory
        return await self.group(gid) or memory

    async def note_paged(self, gid: str, entries: Iterable[str], ttl: float) -> None:
        spell_key, paged_key = self._group_keys(gid)
        items = list(entries)
        async with _errors(), self.client.pipeline(transaction=False) as pipe:
            if items:
                pipe.sadd(paged_key, *items)
            pipe.pexpire(paged_key, _ms(ttl))
            pipe.pexpire(spell_key, _ms(ttl))
            await pipe.execute()

    async def close_group(self, gid: str, ttl: float) -> None:
        spell_key, paged_key = self._group_keys(gid)
        async with _errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.hset(spell_key, "resolved", "1")
            pipe.pexpire(spell_key, _ms(ttl))
            pipe.pexpire(paged_key, _ms(ttl))
            await pipe.execute()

    async def pace(self, key: str, interval: float, now: float, latest: float) -> float | None:
        async with _errors():
            slot = await self._pace(
                keys=[f"{PREFIX}:pace:{key}"], args=[f"{now:.6f}", interval, f"{latest:.6f}"]
            )
        return None if slot is None else float(slot)

    async def slack_message(self, gid: str, destination: str) -> SlackRef | None:
        async with _errors():
            value = await self.client.get(f"{PREFIX}:slack:{gid}:{destination}")
        try:
            channel, ts, stage = json.loads(str(value))
            return SlackRef(str(channel), str(ts), str(stage))
        except (ValueError, TypeError):
            return None  # absent, or not ours: a new message

    async def remember_slack_message(
        self, gid: str, destination: str, message: SlackRef, ttl: float
    ) -> None:
        value = json.dumps([message.channel, message.ts, message.stage])
        async with _errors():
            await self.client.set(f"{PREFIX}:slack:{gid}:{destination}", value, px=_ms(ttl))

    async def remember_page(self, key: str, record: str, ttl: float) -> None:
        await self._put(f"page:{key}", record, ttl)

    async def page(self, key: str) -> str | None:
        return await self._text(f"page:{key}")

    async def remember_link(self, link: str, token: str, ttl: float) -> None:
        await self._put(f"link:{link}", token, ttl)

    async def link(self, link: str) -> str | None:
        return await self._text(f"link:{link}")

    async def _put(self, key: str, value: str, ttl: float) -> None:
        async with _errors():
            await self.client.set(f"{PREFIX}:{key}", value, px=_ms(ttl))

    async def _text(self, key: str) -> str | None:
        async with _errors():
            value = await self.client.get(f"{PREFIX}:{key}")
        return None if value is None else str(value)

    async def close(self) -> None:
        await self.client.aclose()
