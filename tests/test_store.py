"""The shared store's contract, on the in-process store and on a real redis-server alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from receiver.model import GroupMemory, SlackRef
from receiver.store.base import Claim, Store
from receiver.store.failopen import FailOpen, Lookup
from receiver.store.memory import MemoryStore
from receiver.store.redis import RedisStore
from tests.redis_process import RedisServer, redis_binary

FIRST = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores that share state, as two replicas would (one process's memory for `memory`)."""
    if request.param == "memory":
        shared = MemoryStore()
        yield shared, shared
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    a, b = RedisStore(server.url), RedisStore(server.url)
    yield a, b
    await a.close()
    await b.close()


async def test_a_claim_is_taken_once(stores: tuple[Store, Store]) -> None:
    """The first claim wins; the other sees it pending, then delivered once settled."""
    a, b = stores
    assert await a.claim("k", (), 5) is Claim.CLAIMED
    assert await b.claim("k", (), 5) is Claim.PENDING
    await a.settle([("k", True)], 60)
    assert await b.claim("k", (), 5) is Claim.DELIVERED
    assert await b.peek("k", ()) is Claim.DELIVERED


async def test_a_failed_send_releases_only_its_own_claim(redis_server: RedisServer) -> None:
    """A release frees the key for a retry, but never a claim another replica holds."""
    a, b = RedisStore(redis_server.url), RedisStore(redis_server.url)
    try:
        assert await a.claim("k", (), 5) is Claim.CLAIMED
        await b.settle([("k", False)], 5)  # not b's: stays
        assert await b.peek("k", ()) is Claim.PENDING
        await a.settle([("k", False)], 5)
        assert await b.peek("k", ()) is None
        assert await b.claim("k", (), 5) is Claim.CLAIMED
    finally:
        await a.close()
        await b.close()


async def test_a_more_urgent_delivery_covers_a_less_urgent_one(
    stores: tuple[Store, Store],
) -> None:
    """Sent as critical: the high version is covered; sent as high: critical is new."""
    a, b = stores
    assert await a.claim("x:critical", ("x:critical",), 5) is Claim.CLAIMED
    await a.settle([("x:critical", True)], 60)
    assert await b.claim("x:high", ("x:critical",), 5) is Claim.DELIVERED
    assert await b.claim("y:high", (), 5) is Claim.CLAIMED
    await b.settle([("y:high", True)], 60)
    assert await a.claim("y:critical", (), 5) is Claim.CLAIMED


async def test_claims_and_settlements_in_one_call(stores: tuple[Store, Store]) -> None:
    """Several claims at once (one round trip with Redis), then their settlements at once."""
    a, b = stores
    assert await a.claim("taken", (), 5) is Claim.CLAIMED
    states = await b.claim_many([("new", ()), ("taken", ()), ("other", ("taken",))], 5)
    assert states == [Claim.CLAIMED, Claim.PENDING, Claim.PENDING]
    await b.settle([("new", True)], 60)
    await a.settle([("taken", False)], 60)
    assert await a.claim_many([("new", ()), ("taken", ()), ("other", ())], 5) == [
        Claim.DELIVERED,
        Claim.CLAIMED,
        Claim.CLAIMED,
    ]


async def test_claims_expire(stores: tuple[Store, Store]) -> None:
    """A replica that dies mid-send leaves a claim that frees itself after its TTL."""
    a, b = stores
    assert await a.claim("k", (), 0.2) is Claim.CLAIMED
    await asyncio.sleep(0.35)
    assert await b.claim("k", (), 5) is Claim.CLAIMED


async def test_a_spell_is_opened_once_and_noted(stores: tuple[Store, Store]) -> None:
    """The first replica's spell stands; pages are added; resolving lets a new spell open."""
    a, b = stores
    assert await a.group("g") is None
    first = await a.open_group("g", GroupMemory("s1", FIRST), 60)
    later = await b.open_group("g", GroupMemory("s1", datetime(2026, 3, 16, 9, 5, tzinfo=UTC)), 60)
    assert first == later == GroupMemory("s1", FIRST)
    await a.note_paged("g", ["0:alice"], 60)
    await b.note_paged("g", ["1:bob"], 60)
    remembered = await b.group("g")
    assert remembered == GroupMemory("s1", FIRST, frozenset({"0:alice", "1:bob"}))
    assert remembered.was_paged("bob", 1)
    assert not remembered.was_paged("bob", 0)
    await a.close_group("g", 60)
    closed = await b.group("g")
    assert closed is not None
    assert closed.resolved
    reopened = await b.open_group("g", GroupMemory("s2", FIRST), 60)
    assert reopened == GroupMemory("s2", FIRST)
    assert await a.group("g") == GroupMemory("s2", FIRST)


async def test_pacing_is_shared(stores: tuple[Store, Store]) -> None:
    """Slots one interval apart whichever replica asks; none past `latest`."""
    a, b = stores
    now = 1_000_000.0
    assert await a.pace("sms:+1", 1.0, now, now + 5) == now
    assert await b.pace("sms:+1", 1.0, now, now + 5) == pytest.approx(now + 1)
    assert await a.pace("sms:+1", 1.0, now, now + 1.5) is None
    assert await b.pace("sms:+2", 1.0, now, now + 5) == now


async def test_the_slack_message_of_a_group(stores: tuple[Store, Store]) -> None:
    """The message that follows a group is found by any replica."""
    a, b = stores
    assert await b.slack_message("g", "incidents") is None
    await a.remember_slack_message("g", "incidents", SlackRef("C1", "1.000100"), 60)
    assert await b.slack_message("g", "incidents") == SlackRef("C1", "1.000100")


async def test_what_a_page_call_said(stores: tuple[Store, Store]) -> None:
    """Kept by the replica that placed the call, read by the one whose timer calls again."""
    a, b = stores
    assert await b.page("k") is None
    record = '{"twiml": "<Response><Say>Disk full. \u00e9</Say></Response>", "sms": "CRIT"}'
    await a.remember_page("k", record, 60)
    assert await b.page("k") == record
    await a.remember_page("short", record, 0.05)
    await asyncio.sleep(0.2)
    assert await b.page("short") is None


async def test_a_short_acknowledgement_link(stores: tuple[Store, Store]) -> None:
    """Kept by the replica that sent the SMS, found by the one the browser reaches; expires."""
    a, b = stores
    token = "eyJjaGFubmVsIjoic21zIn0.c2lnbmF0dXJl"
    assert await b.link("Ab3dEf9hIj") is None
    await a.remember_link("Ab3dEf9hIj", token, 60)
    assert await b.link("Ab3dEf9hIj") == token
    assert await b.link("ab3dEf9hIj") is None  # ids are case-sensitive
    await a.remember_link("Zz9yX8wV7u", token, 0.05)
    await asyncio.sleep(0.2)
    assert await b.link("Zz9yX8wV7u") is None


async def test_a_short_link_while_the_store_is_down(redis_server: RedisServer) -> None:
    """Kept in this replica when the shared store fails, so it still answers its own links; a
    link it does not hold is 'cannot say' (a 503 page), never 'unknown' (a 404)."""
    errors: list[str] = []
    store = FailOpen(RedisStore(redis_server.url), lambda op, _: errors.append(op), timeout=0.3)
    try:
        await store.remember_link("Kept1Kept1", "token-a", 60)
        assert await store.link("Kept1Kept1") == Lookup("token-a")
        assert await store.link("Never0Seen") == Lookup(None)
        redis_server.stop()
        await store.remember_link("Local1Only", "token-b", 60)
        assert await store.link("Local1Only") == Lookup("token-b")
        assert await store.link("Kept1Kept1") == Lookup(None, known=False)
    finally:
        await store.close()
    assert errors == ["ack_link"] * 3


async def test_a_password_in_the_url_works(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`redis://:password@host` authenticates; a wrong password is a store error, not a crash."""
    with RedisServer(redis_binary(), tmp_path_factory.mktemp("r"), password="s3cret/+") as server:
        good = RedisStore(server.url)
        bad = RedisStore(server.url.replace("s3cret", "wrong"))
        errors: list[tuple[str, str]] = []
        try:
            assert await good.claim("k", (), 5) is Claim.CLAIMED
            wrapped = FailOpen(bad, lambda op, detail: errors.append((op, detail)))
            assert await wrapped.claim("k", (), 5) is Claim.CLAIMED  # pages anyway
        finally:
            await good.close()
            await bad.close()
    assert [op for op, _ in errors] == ["claim"]
    assert "s3cret" not in errors[0][1]
    assert "wrong" not in errors[0][1]


async def test_a_store_that_is_down_or_hung_fails_open(redis_server: RedisServer) -> None:
    """Down: answered at once as 'send it'; hung: the same after the timeout; both reported."""
    errors: list[str] = []
    store = FailOpen(RedisStore(redis_server.url), lambda op, _: errors.append(op), timeout=0.3)
    try:
        redis_server.pause()
        assert await store.claim("k", (), 5) is Claim.CLAIMED
        recall = await store.recall("g")
        assert not recall.known
        redis_server.resume()
        redis_server.stop()
        assert await store.pace("sms:+1", 1.0, 10.0, 20.0) == 10.0
        await store.settle_many([("k", True)], 5)
        opened = await store.open_group("g", GroupMemory("s", FIRST), 60)
        assert opened == GroupMemory("s", FIRST)
        assert await store.slack_message("g", "d") is None
    finally:
        await store.close()
    assert errors == ["claim", "read_group", "pace", "settle", "write_group", "slack_message"]
