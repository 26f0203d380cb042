"""Hostile clients against the real server stack (`server.start`, a real socket on 127.0.0.1):
bytes that are not UTF-8, a gzip bomb, idle, dripping and crowding connections, oversized
headers, and acknowledgement tokens used on a channel they were not issued for.

Raw bytes go through asyncio.open_connection, since HTTP clients refuse to send most of them.
The router is not a dry run and has every secret set; its vendors print into a buffer and its
Alertmanager is a closed loopback port (acknowledgement lookups fail at once, and it pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import resource
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from receiver.ack import tokens
from receiver.config.settings import Settings
from receiver.config.types import Config
from receiver.model import Channel, Severity
from receiver.web import server
from receiver.web.app import create_app
from receiver.web.server import ConnectionLimits, connection_cap, fd_reserve, start
from receiver.web.service import Service
from tests.fakes.slack import slack_signature
from tests.helpers import NOW, dry_run_router, fixture_bytes, metric, shipped_config

HOST = "127.0.0.1"
AUTH_TOKEN = "receiver-auth-token-0123"
SENTRY_SECRET = "sentry-client-secret-0123"
SIGNING_SECRET = "slack-signing-secret-0123"
TWILIO_TOKEN = "twilio-auth-token-0123"
ACK_SECRET = "ack-secret-0123456789"
LEGACY_TOKEN = "legacy-token-0123"
PUBLIC_URL = "https://oncall.example.com"
CLOSED = "http://127.0.0.1:9"  # nothing listens: Alertmanager and Slack fail at once
SETTINGS = Settings(
    receiver_auth_token=AUTH_TOKEN,
    sentry_client_secret=SENTRY_SECRET,
    slack_signing_secret=SIGNING_SECRET,
    slack_api_url=f"{CLOSED}/api",
    twilio_auth_token=TWILIO_TOKEN,
    ack_secret=ACK_SECRET,
    alertmanager_url=CLOSED,
    public_url=PUBLIC_URL,
)
FIRING = fixture_bytes("alertmanager-firing-critical.json")
REFUSED = "oncall_router_acknowledgements_refused_total"
# Generous for loopback, far below the seconds the findings measured.
PROBE_LIMIT = 0.5


@dataclasses.dataclass
class Router:
    service: Service
    port: int


@contextlib.asynccontextmanager
async def running(limits: ConnectionLimits | None = None) -> AsyncIterator[Router]:
    """The router, served by `server.start` on a free loopback port, stopped afterwards."""
    service, _ = dry_run_router(legacy_config(), SETTINGS, dry_run=False)
    runner = await start(create_app(service), HOST, 0, limits or ConnectionLimits())
    try:
        yield Router(service, runner.addresses[0][1])
    finally:
        await runner.cleanup()


def legacy_config() -> Config:
    config = shipped_config()
    return dataclasses.replace(
        config, sentry=dataclasses.replace(config.sentry, legacy_token=LEGACY_TOKEN)
    )


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return json.loads(self.body)

    def error(self) -> str:
        """The `error` of a JSON error body, which must also carry a `detail`."""
        document = self.json()
        assert set(document) == {"error", "detail"}, document
        assert document["detail"], document
        error: str = document["error"]
        return error


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, body)


async def exchange(port: int, request: bytes) -> Answer:
    """Send raw bytes, read until the server closes (requests say `Connection: close`)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        await writer.drain()
        return parse(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()


def http(method: str, target: bytes, headers: dict[bytes, bytes], body: bytes = b"") -> bytes:
    """A request as bytes; header values may hold any byte."""
    fields = {b"Host": b"router", b"Connection": b"close", **headers}
    if body or method == "POST":
        fields[b"Content-Length"] = str(len(body)).encode()
    lines = [method.encode() + b" " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in fields.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def webhook(body: bytes = FIRING, token: str = AUTH_TOKEN) -> bytes:
    headers = {b"Authorization": f"Bearer {token}".encode(), b"Content-Type": b"application/json"}
    return http("POST", b"/webhooks/alertmanager", headers, body)


def records(
    caplog: pytest.LogCaptureFixture, message: str | None = None
) -> list[logging.LogRecord]:
    """The router's own log records at warning or above (optionally with this message)."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("receiver")
        and r.levelno >= logging.WARNING
        and (message is None or r.getMessage() == message)
    ]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback, and no error from aiohttp or asyncio (whose plain-text 500 path logs both).
    The router's own errors are allowed: Alertmanager is a closed port here."""
    bad = [
        r
        for r in caplog.records
        if r.exc_info or (r.levelno >= logging.ERROR and not r.name.startswith("receiver"))
    ]
    assert bad == [], [(r.name, r.getMessage()) for r in bad]


def slack_headers(body: bytes, signature: bytes | None = None) -> dict[bytes, bytes]:
    ts = str(int(NOW.timestamp()))
    sig = signature or slack_signature(SIGNING_SECRET, ts, body).encode()
    return {
        b"Content-Type": b"application/x-www-form-urlencoded",
        b"X-Slack-Request-Timestamp": ts.encode(),
        b"X-Slack-Signature": sig,
    }


def twilio_signature(path: str, params: dict[str, str]) -> str:
    return str(RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params))


SENTRY_BODY = b'{"action": "created", "data": {}}'
SENTRY_SIGNATURE = hmac.new(SENTRY_SECRET.encode(), SENTRY_BODY, hashlib.sha256).hexdigest()
SLACK_BODY = urlencode({"payload": "{}"}).encode()
SMS = {"From": "+447700900101", "Body": "ACK"}
SMS_FORM = urlencode(SMS).encode()
FORM = b"application/x-www-form-urlencoded"

# (what, path, headers, body, status, error): each header a hostile client can fill with bytes
# that are not UTF-8 (decoded by aiohttp into lone surrogates, which `.encode()` refuses).
NON_UTF8_HEADERS = [
    (
        "Authorization",
        b"/webhooks/alertmanager",
        {b"Authorization": b"Bearer \xff\xfe\xc3(", b"Content-Type": b"application/json"},
        FIRING,
        401,
        "unauthorized",
    ),
    (
        "Authorization scheme",
        b"/webhooks/alertmanager",
        {b"Authorization": b"\xffearer x", b"Content-Type": b"application/json"},
        FIRING,
        401,
        "unauthorized",
    ),
    (
        "Sentry-Hook-Signature",
        b"/webhooks/sentry",
        {
            b"Sentry-Hook-Signature": b"\xff" * 64,
            b"Sentry-Hook-Resource": b"issue",
            b"Content-Type": b"application/json",
        },
        SENTRY_BODY,
        401,
        "unauthorized",
    ),
    (
        "Sentry-Hook-Resource",
        b"/webhooks/sentry",
        {
            b"Sentry-Hook-Signature": SENTRY_SIGNATURE.encode(),
            b"Sentry-Hook-Resource": b"iss\xffue",
            b"Content-Type": b"application/json",
        },
        SENTRY_BODY,
        400,
        "invalid_payload",
    ),
    (
        "Content-Type",
        b"/webhooks/alertmanager",
        {b"Authorization": f"Bearer {AUTH_TOKEN}".encode(), b"Content-Type": b"appl\xffn/json"},
        FIRING,
        415,
        "unsupported_media_type",
    ),
    (
        "X-Slack-Signature",
        b"/webhooks/slack/actions",
        slack_headers(SLACK_BODY, b"v0=\xff\xfe" + b"0" * 62),
        SLACK_BODY,
        401,
        "unauthorized",
    ),
    (
        "X-Slack-Request-Timestamp",
        b"/webhooks/slack/actions",
        {**slack_headers(SLACK_BODY), b"X-Slack-Request-Timestamp": b"17\xff"},
        SLACK_BODY,
        401,
        "unauthorized",
    ),
    (
        "X-Twilio-Signature",
        b"/webhooks/twilio/sms",
        {b"Content-Type": FORM, b"X-Twilio-Signature": b"\xff\xfe=="},
        SMS_FORM,
        403,
        "forbidden",
    ),
    (
        "legacy token in the path",
        b"/webhooks/sentry/legacy/%FF%FE",
        {b"Content-Type": b"application/json"},
        SENTRY_BODY,
        401,
        "unauthorized",
    ),
]


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "error"),
    [case[1:] for case in NON_UTF8_HEADERS],
    ids=[case[0] for case in NON_UTF8_HEADERS],
)
async def test_non_utf8_header_is_a_json_4xx_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
    path: bytes,
    headers: dict[bytes, bytes],
    body: bytes,
    status: int,
    error: str,
) -> None:
    """Bytes that are not UTF-8 in a checked header: its 4xx in JSON, one log line, no 500."""
    caplog.set_level(logging.INFO)
    async with running() as router:
        answer = await exchange(router.port, http("POST", path, headers, body))
    assert (answer.status, answer.error()) == (status, error)
    assert "x-request-id" in answer.headers
    assert len(records(caplog)) == 1, [r.getMessage() for r in records(caplog)]
    no_traceback(caplog)


UNREADABLE_FORMS = [
    ("charset=bogus", FORM + b"; charset=bogus", SMS_FORM, 400),
    ("latin-1 declared", FORM + b"; charset=latin-1", SMS_FORM, 400),
    ("bytes not UTF-8", FORM, b"From=%2B447700900101&Body=ACK \xff\xfe", 400),
    ("multipart", b"multipart/form-data; boundary=x", b"--x--\r\n", 400),
    # Readable, but the percent-escapes are not UTF-8: decoded with replacement, unsigned.
    ("escapes not UTF-8", FORM, b"From=%FF%FE&Body=%C3%28", 403),
]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [case[1:] for case in UNREADABLE_FORMS],
    ids=[case[0] for case in UNREADABLE_FORMS],
)
@pytest.mark.parametrize("path", ["/webhooks/twilio/sms", "/webhooks/twilio/voice?token=x"])
async def test_unreadable_twilio_form_is_a_json_4xx(
    caplog: pytest.LogCaptureFixture, path: str, content_type: bytes, body: bytes, status: int
) -> None:
    """A Twilio form in a bogus charset, or with bytes that are not UTF-8: 400/403 JSON."""
    caplog.set_level(logging.INFO)
    # Signed as Twilio would sign the fields, so only the body's bytes are wrong.
    headers = {
        b"Content-Type": content_type,
        b"X-Twilio-Signature": twilio_signature(path, SMS).encode(),
    }
    async with running() as router:
        answer = await exchange(router.port, http("POST", path.encode(), headers, body))
        channel = "sms" if "sms" in path else "call"
        reason = "malformed" if status == 400 else "badSignature"
        assert metric(router.service, REFUSED, {"channel": channel, "reason": reason}) == 1
    assert answer.status == status
    assert answer.error() == ("invalid_body" if status == 400 else "forbidden")
    assert len(records(caplog)) == 1
    no_traceback(caplog)


async def test_signed_utf8_form_still_passes_the_gate() -> None:
    """The same form, readable and signed, gets past the checks (so the 4xx above are real)."""
    path = "/webhooks/twilio/sms"
    headers = {b"Content-Type": FORM, b"X-Twilio-Signature": twilio_signature(path, SMS).encode()}
    async with running() as router:
        answer = await exchange(router.port, http("POST", path.encode(), headers, SMS_FORM))
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/xml")


# 1 GiB of zeros as 1 MB of gzip, built without holding the gigabyte: after a full flush
# deflate starts afresh, so every further MiB of zeros compresses to the same bytes. The trailer
# is the CRC-32 and size of those 2**30 zero bytes (zlib.crc32(bytes(1 << 30)) == 0x5B64C2B0).
_MIB = 1 << 20
_GIB_OF_ZEROS_CRC32 = 0x5B64C2B0


def gzip_bomb() -> bytes:
    """1 MB of gzip that inflates to 1 GiB of zeros."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(_MIB)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    last = deflate.compress(zeros) + deflate.flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", _GIB_OF_ZEROS_CRC32, (1024 * _MIB) & 0xFFFFFFFF)
    return header + first + again * 1022 + last + trailer


def test_the_gzip_bomb_is_one() -> None:
    """The bomb is well-formed gzip: ~1 MB, its first 32 MiB inflate to zeros."""
    bomb = gzip_bomb()
    assert 1_000_000 < len(bomb) < 1_200_000
    inflate = zlib.decompressobj(31)
    out = inflate.decompress(bomb[: len(bomb) // 16], 32 * _MIB)
    assert len(out) == 32 * _MIB
    assert out.count(0) == len(out)


async def test_gzip_bomb_is_415_while_health_probes_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Four 1 MB gzip bombs, unauthenticated: each 415 unread, and /-/healthy answers fast."""
    caplog.set_level(logging.INFO)
    bomb = gzip_bomb()
    headers = {b"Content-Type": b"application/json", b"Content-Encoding": b"gzip"}
    request = http("POST", b"/webhooks/alertmanager", headers, bomb)
    latencies: list[float] = []

    async def probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
        while not stop.is_set() or len(latencies) < 10:
            started = time.perf_counter()
            async with session.get(url) as response:
                assert response.status == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    async with running() as router, aiohttp.ClientSession() as session:
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(session, f"http://{HOST}:{router.port}/-/healthy", stop))
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(send_bomb(router.port, request) for _ in range(4))), 10
            )
            await asyncio.sleep(0.3)  # the drain of the unread bodies, after the answers
        finally:
            stop.set()
            await asyncio.wait_for(prober, 10)
    assert [(a.status, a.error()) for a in answers] == [(415, "unsupported_content_encoding")] * 4
    assert max(latencies) < PROBE_LIMIT, latencies
    no_traceback(caplog)


async def send_bomb(port: int, request: bytes) -> Answer:
    """Write the whole request (the server may stop reading), then read the answer."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        with contextlib.suppress(ConnectionError):
            for offset in range(0, len(request), 64 * 1024):
                writer.write(request[offset : offset + 64 * 1024])
                await writer.drain()
        return parse(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()


async def test_identity_encoding_is_accepted() -> None:
    """`Content-Encoding: identity` is no compression: the webhook is handled (200)."""
    request = webhook().replace(
        b"Connection: close", b"Connection: close\r\nContent-Encoding: identity"
    )
    async with running() as router:
        answer = await exchange(router.port, request)
    assert answer.status == 200, answer


@contextlib.contextmanager
def sockets_left_open(
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> Iterator[None]:
    try:
        yield
    finally:
        for _, writer in streams:
            writer.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True if the server closed this (silent) connection: EOF within a moment."""
    try:
        return await asyncio.wait_for(reader.read(), 0.2) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_idle_connections_beyond_the_cap_do_not_block_a_webhook(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three times the cap in idle connections: the oldest are closed, a webhook gets 200."""
    monkeypatch.setattr(server, "FRESH_GRACE", 0.0)  # as if each had idled long enough
    caplog.set_level(logging.INFO)
    cap, idle = 4, 12
    limits = ConnectionLimits(max_connections=cap, idle_timeout=30)
    async with running(limits) as router:
        streams = [await asyncio.open_connection(HOST, router.port) for _ in range(idle)]
        with sockets_left_open(streams):
            await asyncio.sleep(0.1)
            answer = await exchange(router.port, webhook())
            closed = [await closed_by_server(reader) for reader, _ in streams]
    assert answer.status == 200, answer
    # Each connection over the cap (11 idle ones and the webhook's) closed the longest-open.
    assert sum(closed) == idle + 1 - cap, closed
    assert closed == sorted(closed, reverse=True)  # oldest first
    assert len(records(caplog, "idle connection closed to make room")) == 1  # not 9
    no_traceback(caplog)


async def test_a_burst_of_new_connections_is_answered_not_cut() -> None:
    """A burst: connections accepted before their requests are read are on their way, not
    idle. One over the cap is answered 503 JSON at once (the sender retries it); none of the
    others is closed, and each gets its answer."""
    cap = 3
    limits = ConnectionLimits(max_connections=cap, idle_timeout=30)
    async with running(limits) as router:
        streams = [await asyncio.open_connection(HOST, router.port) for _ in range(cap)]
        with sockets_left_open(streams):
            crowded = await exchange(router.port, webhook())
            for _, writer in streams:
                writer.write(webhook())
                await writer.drain()
            answers = [parse(await asyncio.wait_for(reader.read(), 5)) for reader, _ in streams]
    assert (crowded.status, crowded.error()) == (503, "too_many_connections")
    assert [a.status for a in answers] == [200] * cap, answers


def test_a_connection_over_the_cap_is_answered_on_uvloop_too() -> None:
    """uvloop's transports do not derive from asyncio.Transport: the 503 is written all the
    same (an assertion on the type once dropped such connections unanswered in a burst)."""
    uvloop = pytest.importorskip("uvloop")
    uvloop.run(test_a_burst_of_new_connections_is_answered_not_cut())


async def test_with_every_connection_busy_a_newcomer_gets_503_json() -> None:
    """Every slot busy with a slow body: a newcomer gets 503 JSON at once, a webhook 200 after."""
    limits = ConnectionLimits(max_connections=2, body_timeout=1.0)
    # Cap 2, both slots sending a body slowly (a request in progress is never evicted).
    head = webhook(FIRING + b" " * 100)[: -len(FIRING) - 100]  # headers, no body
    async with running(limits) as router:
        streams = [await asyncio.open_connection(HOST, router.port) for _ in range(2)]
        with sockets_left_open(streams):
            for _, writer in streams:
                writer.write(head + FIRING[:10])
                await writer.drain()
            await asyncio.sleep(0.1)
            started = time.monotonic()
            crowded = await exchange(router.port, webhook())
            refused_in = time.monotonic() - started
            cut = [parse(await asyncio.wait_for(reader.read(), 5)) for reader, _ in streams]
        answer = await exchange(router.port, webhook())
    assert (crowded.status, crowded.error()) == (503, "too_many_connections")
    assert refused_in < 0.5
    assert [(c.status, c.error()) for c in cut] == [(408, "body_timeout")] * 2
    assert answer.status == 200, answer


async def test_dripped_body_is_cut_after_the_body_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body sent a byte every 50 ms is answered 408 JSON after the body timeout, and closed."""
    caplog.set_level(logging.INFO)
    request = webhook()
    head, body = request[: -len(FIRING)], FIRING
    async with running(ConnectionLimits(body_timeout=0.5)) as router:
        reader, writer = await asyncio.open_connection(HOST, router.port)
        started = time.monotonic()
        writer.write(head)

        async def drip() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in body:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)

        dripping = asyncio.create_task(drip())
        try:
            raw = await asyncio.wait_for(reader.read(), 5)  # until the server closes
            elapsed = time.monotonic() - started
        finally:
            dripping.cancel()
            writer.close()
    answer = parse(raw)
    assert (answer.status, answer.error()) == (408, "body_timeout")
    assert 0.4 < elapsed < 3.0
    assert answer.headers["connection"] == "close"
    assert len(records(caplog, "request refused")) == 1
    no_traceback(caplog)


async def test_dripped_headers_are_cut_after_the_idle_timeout() -> None:
    """Dripped headers, and a silent connection, are closed unanswered at the idle timeout."""
    async with running(ConnectionLimits(idle_timeout=0.5)) as router:
        silent_reader, silent = await asyncio.open_connection(HOST, router.port)
        reader, writer = await asyncio.open_connection(HOST, router.port)
        started = time.monotonic()
        writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: router\r\n")

        async def drip() -> None:
            with contextlib.suppress(ConnectionError):
                for n in range(100):
                    writer.write(b"X-Drip-%d: x\r\n" % n)
                    await writer.drain()
                    await asyncio.sleep(0.1)

        dripping = asyncio.create_task(drip())
        try:
            got = await asyncio.wait_for(reader.read(), 5)
            elapsed = time.monotonic() - started
            silent_got = await asyncio.wait_for(silent_reader.read(), 5)
        finally:
            dripping.cancel()
            writer.close()
            silent.close()
    assert got == b""
    assert silent_got == b""
    assert 0.4 < elapsed < 3.0


OVERSIZED = [
    ("a 9000-byte header", b"X-Big: " + b"a" * 9000, 431, "header_too_large"),
    ("a 9000-byte Authorization", b"Authorization: Bearer " + b"a" * 9000, 431, "header_too_large"),
    ("200 headers", b"\r\n".join(b"X-%d: a" % i for i in range(200)), 431, "too_many_headers"),
    ("not HTTP", b"\x16\x03\x01\x02\x00", 400, "bad_request"),
]


@pytest.mark.parametrize(
    ("header", "status", "error"),
    [case[1:] for case in OVERSIZED],
    ids=[case[0] for case in OVERSIZED],
)
async def test_oversized_headers_are_json_with_one_log_line_per_interval(
    caplog: pytest.LogCaptureFixture, header: bytes, status: int, error: str
) -> None:
    """Five oversized (or garbage) requests: each a JSON 431/400, one log line, no traceback."""
    caplog.set_level(logging.INFO)
    request = b"GET /-/healthy HTTP/1.1\r\nHost: router\r\n" + header + b"\r\n\r\n"
    async with running() as router:
        answers = [await exchange(router.port, request) for _ in range(5)]
        healthy = await exchange(router.port, http("GET", b"/-/healthy", {}))
    assert [(a.status, a.error()) for a in answers] == [(status, error)] * 5
    assert all("x-request-id" in a.headers for a in answers)
    assert len(records(caplog, "unparseable requests refused")) == 1
    assert len(records(caplog)) == 1
    no_traceback(caplog)
    assert healthy.status == 200


def token(channel: Channel, **changes: Any) -> str:
    """A token as the service signs it for a page on `channel` (valid at the router's NOW)."""
    fields: dict[str, Any] = {
        "group": "0123456789abcdef",
        "level": 0,
        "severity": Severity.CRITICAL,
        "started": int(NOW.timestamp()) - 60,
        "expires": int((NOW + timedelta(hours=12)).timestamp()),
        "to": "alice",
        "channel": channel,
        **changes,
    }
    return tokens.sign(tokens.AckToken(**fields), ACK_SECRET)


def refused(service: Service, channel: str, reason: str) -> float:
    return metric(service, REFUSED, {"channel": channel, "reason": reason})


OTHER_THAN_EMAIL = [c for c in Channel if c is not Channel.EMAIL]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("channel", OTHER_THAN_EMAIL, ids=[c.value for c in OTHER_THAN_EMAIL])
async def test_token_of_another_channel_on_the_email_link_is_403(
    method: str, channel: Channel
) -> None:
    """Another channel's token on /ack is 403 (forged); an email token gets past the check."""
    async with running() as router:
        other = await exchange(router.port, http(method, f"/ack/{token(channel)}".encode(), {}))
        forged = refused(router.service, "email", "forged")
        own = await exchange(router.port, http(method, f"/ack/{token(Channel.EMAIL)}".encode(), {}))
    assert other.status == 403
    assert b"issued for " + channel.value.encode() in other.body
    assert forged == 1
    # The page (GET); the POST reaches the store, a closed port here: 503 "try again".
    assert own.status == (200 if method == "GET" else 503)


async def test_expired_token_of_another_channel_is_403_not_410() -> None:
    """The channel is checked before expiry: a Slack token that has also expired is 403."""
    stale = token(Channel.SLACK, expires=int(NOW.timestamp()) - 1)
    async with running() as router:
        answer = await exchange(router.port, http("GET", f"/ack/{stale}".encode(), {}))
    assert answer.status == 403


@pytest.mark.parametrize("channel", [Channel.SLACK, Channel.EMAIL, Channel.SMS])
async def test_token_of_another_channel_on_the_key_press_is_refused(channel: Channel) -> None:
    """Another channel's token on the key press is refused as forged; a call token goes on."""
    async with running() as router:
        counts = {}
        for used in (channel, Channel.CALL):
            path = f"/webhooks/twilio/voice?token={quote(token(used), safe='')}"
            params = {"Digits": "1", "From": "+15005550006", "To": "+447700900101"}
            headers = {
                b"Content-Type": FORM,
                b"X-Twilio-Signature": twilio_signature(path, params).encode(),
            }
            answer = await exchange(
                router.port, http("POST", path.encode(), headers, urlencode(params).encode())
            )
            assert answer.status == 200
            counts[used] = (
                refused(router.service, "call", "forged"),
                refused(router.service, "call", "storeUnavailable"),
            )
    assert counts == {channel: (1, 0), Channel.CALL: (1, 1)}


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.CALL])
async def test_token_of_another_channel_on_a_slack_button_is_refused(channel: Channel) -> None:
    """An email or call token on a Slack button is refused as forged; a Slack token goes on."""
    async with running() as router:
        for used in (channel, Channel.SLACK):
            payload = {
                "type": "block_actions",
                "user": {"id": "U0A11CE001", "username": "alice"},
                "response_url": f"{CLOSED}/actions/T1/1/x",
                "actions": [{"action_id": "ack", "value": token(used)}],
            }
            body = urlencode({"payload": json.dumps(payload)}).encode()
            answer = await exchange(
                router.port,
                http("POST", b"/webhooks/slack/actions", slack_headers(body), body),
            )
            assert answer.status == 200
        forged = refused(router.service, "slack", "forged")
        unavailable = refused(router.service, "slack", "storeUnavailable")
        while router.service.tasks:  # the message updates, to the closed port
            await asyncio.gather(*router.service.tasks)
    assert (forged, unavailable) == (1, 1)


def test_verify_binds_the_channel() -> None:
    """tokens.verify with a channel refuses other channels' tokens as forged, and says which."""
    text = token(Channel.SLACK)
    now = NOW.timestamp()
    assert tokens.verify(text, ACK_SECRET, now, Channel.SLACK).channel is Channel.SLACK
    for other in (Channel.EMAIL, Channel.CALL, Channel.SMS):
        with pytest.raises(tokens.TokenError) as refused_token:
            tokens.verify(text, ACK_SECRET, now, other)
        assert refused_token.value.reason == "forged"
        assert "issued for slack" in str(refused_token.value)


@pytest.mark.parametrize(
    ("nofile", "max_in_flight", "cap"),
    [
        (1024, 64, 512),
        (940, 64, 512),
        (939, 64, 511),
        (600, 64, 172),
        (100, 64, 1),
        # A larger `delivery.max_in_flight` keeps a larger vendor pool: 4 x 128 + 44.
        (1196, 128, 512),
        (1195, 128, 511),
    ],
)
def test_connection_cap_fits_the_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch, nofile: int, max_in_flight: int, cap: int
) -> None:
    """The cap leaves the backlog, the vendor pool and the other descriptors free, so neither
    accept() nor a connection to a vendor runs out of descriptors."""
    monkeypatch.setattr(resource, "getrlimit", lambda _: (nofile, resource.RLIM_INFINITY))
    assert connection_cap(512, fd_reserve(max_in_flight)) == cap
