"""tests/redis_process.py: a real redis-server that answers, restarts empty, hangs and asks for
a password, as seen through redis.asyncio (the client the shared store uses)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

from tests.redis_process import RedisServer, redis_binary


def client(url: str, socket_timeout: float = 2.0) -> aioredis.Redis:
    """A client that fails at once instead of retrying, so each test sees the server's state."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )


async def test_set_and_get(redis_server: RedisServer) -> None:
    """A key set with a TTL reads back; the URL and port name the server."""
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    async with asyncio.timeout(10), client(redis_server.url) as r:
        assert await r.set("dedupe:group-1", "paged", ex=60) is True
        assert await r.get("dedupe:group-1") == b"paged"
        assert 0 < await r.ttl("dedupe:group-1") <= 60


async def test_stop_then_start_answers_again_on_the_same_port(redis_server: RedisServer) -> None:
    """Down: commands fail fast. Back on the same port: the same client answers, data gone."""
    port = redis_server.port
    async with asyncio.timeout(20), client(redis_server.url) as r:
        await r.set("dedupe:group-1", "paged", ex=60)
        redis_server.stop()
        with pytest.raises(ConnectionError):
            await r.get("dedupe:group-1")
        redis_server.start()
        assert redis_server.port == port
        assert await r.ping() is True
        assert await r.get("dedupe:group-1") is None  # no persistence: a restart starts empty


async def test_pause_makes_commands_time_out(redis_server: RedisServer) -> None:
    """SIGSTOPped, a command times out after the socket timeout; resumed, it answers again."""
    async with asyncio.timeout(10), client(redis_server.url, socket_timeout=0.3) as r:
        assert await r.ping() is True
        redis_server.pause()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await r.get("dedupe:group-1")
        assert time.monotonic() - started < 2
        redis_server.resume()
        assert await r.ping() is True


async def test_password_in_the_url_is_required(tmp_path: Path) -> None:
    """With requirepass, no password or a wrong one is refused; the one in `.url` works."""
    password = "s3cret:with/odd@chars"
    with RedisServer(redis_binary(), tmp_path / "redis", password=password) as server:
        assert server.url == f"redis://:s3cret%3Awith%2Fodd%40chars@127.0.0.1:{server.port}/0"
        async with asyncio.timeout(10):
            async with client(f"redis://127.0.0.1:{server.port}/0") as anonymous:
                with pytest.raises(AuthenticationError):
                    await anonymous.ping()
            async with client(f"redis://:wrong@127.0.0.1:{server.port}/0") as wrong:
                with pytest.raises(AuthenticationError):
                    await wrong.ping()
            async with client(server.url) as r:
                await r.set("dedupe:group-1", "paged", ex=60)
                assert await r.get("dedupe:group-1") == b"paged"


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    """A server that cannot start fails the test with redis-server's own words."""
    with RedisServer(redis_binary(), tmp_path / "first") as first:
        taken = RedisServer(redis_binary(), tmp_path / "second", port=first.port)
        try:
            with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with.*in use"):
                taken.start()  # the first answers on the port, but it is not this process
        finally:
            taken.close()


def test_stop_while_paused_then_start(redis_server: RedisServer) -> None:
    """A paused server still stops promptly (SIGCONT first), and starts again."""
    redis_server.pause()
    started = time.monotonic()
    redis_server.stop()
    assert time.monotonic() - started < 3
    assert redis_server.process is not None
    assert redis_server.process.returncode == 0
    redis_server.start()
    assert redis_server.answering_pid() == redis_server.running().pid
