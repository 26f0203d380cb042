"""The loopback fakes answer like the vendors, through real clients, and obey their scripts."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sendgrid.helpers.mail import Mail
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from tests.fakes import (
    Drop,
    FakeSendGrid,
    FakeSlack,
    FakeTwilio,
    Hang,
    RateLimited,
    Reject,
    ServerError,
    Slow,
)
from tests.fakes.twilio import num_segments

HOOK = "/services/T0001/B0001/abcdefabcdefabcdefabcdef"
OTHER_HOOK = "/services/T0001/B0002/fedcbafedcbafedcbafedcba"
TO = "+15551230001"
OTHER_TO = "+15551230002"
FROM = "+15005550006"

# twilio-python 9.13 passes auth=aiohttp.BasicAuth(...), both deprecated in aiohttp 3.14; with
# filterwarnings=error every request through the real client would fail on those warnings.
twilio_client_warning = pytest.mark.filterwarnings(
    "ignore:(BasicAuth|The 'auth' parameter) is deprecated:DeprecationWarning"
)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest_asyncio.fixture
async def twilio_http() -> AsyncIterator[AsyncTwilioHttpClient]:
    # Built inside the running loop: its constructor opens an aiohttp session.
    http = AsyncTwilioHttpClient()
    try:
        yield http
    finally:
        await http.close()


def twilio_client(
    fake: FakeTwilio, http: AsyncTwilioHttpClient, *, username: str = "", password: str = ""
) -> Any:
    client = Client(
        username or fake.account_sid,
        password or fake.auth_token,
        account_sid=fake.account_sid,
        http_client=http,
    )
    client.api.base_url = fake.url
    return client


@pytest.fixture
def twilio(fake_twilio: FakeTwilio, twilio_http: AsyncTwilioHttpClient) -> Any:
    return twilio_client(fake_twilio, twilio_http)


async def send_sms(client: Any, to: str = TO, body: str = "disk full on db-1") -> Any:
    return await client.messages.create_async(to=to, from_=FROM, body=body)


def twilio_auth(fake: FakeTwilio) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(fake.account_sid, fake.auth_token)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post_message(
    session: aiohttp.ClientSession, fake: FakeSlack, payload: Any, token: str | None = None
) -> tuple[int, Any]:
    """POST to chat.postMessage; ``token`` defaults to the fake's own, "" sends none."""
    headers = bearer(fake.bot_token if token is None else token) if token != "" else {}
    async with session.post(
        fake.url + "/api/chat.postMessage", json=payload, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def post_hook(
    session: aiohttp.ClientSession, fake: FakeSlack, payload: Any, path: str = HOOK
) -> tuple[int, str]:
    async with session.post(fake.url + path, json=payload) as resp:
        return resp.status, await resp.text()


# == lifecycle and scripting (shown on the Slack webhook) =====================================


async def test_lifecycle_url_and_context_manager() -> None:
    """A fake serves on 127.0.0.1 between start and close; url is unusable outside that."""
    fake = FakeSlack()
    with pytest.raises(RuntimeError):
        _ = fake.url
    async with fake:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)
        with pytest.raises(RuntimeError):
            await fake.start()
    await fake.close()  # idempotent


async def test_requests_are_recorded_in_order_with_everything_sent(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Every request is recorded, failed ones and unknown paths included."""
    fake_slack.script(ServerError())
    await post_hook(session, fake_slack, {"text": "first"})
    await post_hook(session, fake_slack, {"text": "second"})
    async with session.get(fake_slack.url + "/nowhere?x=1") as resp:
        assert resp.status == 404

    first, second, stray = fake_slack.requests
    assert (first.method, first.path, first.json()) == ("POST", HOOK, {"text": "first"})
    assert second.json() == {"text": "second"}
    assert first.header("content-type") == "application/json"
    assert first.received_at <= second.received_at <= stray.received_at
    assert (stray.method, stray.path, stray.query) == ("GET", "/nowhere", {"x": "1"})
    assert fake_slack.requests_to("/services/") == [first, second]
    fake_slack.clear_requests()
    assert fake_slack.requests == []


async def test_script_is_fifo_then_normal(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Scripted behaviours are consumed one per request, then the fake succeeds again."""
    fake_slack.script(ServerError(), RateLimited(), Reject("channel_not_found"))
    assert fake_slack.pending == 3
    statuses = [(await post_hook(session, fake_slack, {"text": "x"}))[0] for _ in range(4)]
    assert statuses == [500, 429, 404, 200]
    assert fake_slack.pending == 0
    assert len(fake_slack.requests) == 4


async def test_always_and_reset(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    """A standing behaviour applies to every request until reset(); queued ones go first."""
    fake_slack.always(ServerError(503))
    fake_slack.script(RateLimited())
    statuses = [(await post_hook(session, fake_slack, {"text": "x"}))[0] for _ in range(3)]
    assert statuses == [429, 503, 503]
    fake_slack.reset()
    assert (await post_hook(session, fake_slack, {"text": "x"}))[0] == 200


async def test_script_for_fails_one_destination_only(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A per-destination script hits that webhook alone, before the shared queue."""
    fake_slack.script_for(HOOK, Reject("channel_is_archived"))
    fake_slack.always(ServerError(), key=OTHER_HOOK)
    fake_slack.script(RateLimited())
    results = await asyncio.gather(
        post_hook(session, fake_slack, {"text": "a"}, HOOK),
        post_hook(session, fake_slack, {"text": "b"}, OTHER_HOOK),
    )
    assert sorted(results) == [(410, "channel_is_archived"), (429, "")]
    assert (await post_hook(session, fake_slack, {"text": "c"}, HOOK))[0] == 200
    assert (await post_hook(session, fake_slack, {"text": "d"}, OTHER_HOOK))[0] == 500
    fake_slack.always(None, key=OTHER_HOOK)
    assert (await post_hook(session, fake_slack, {"text": "e"}, OTHER_HOOK))[0] == 200


async def test_hang_outlasts_client_deadline(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Hang keeps the answer back past a client timeout; the request is still recorded."""
    fake_slack.script(Hang(1.0))
    with pytest.raises(TimeoutError):
        async with session.post(
            fake_slack.url + HOOK,
            json={"text": "x"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    assert len(fake_slack.requests) == 1


async def test_close_does_not_wait_for_a_hang(session: aiohttp.ClientSession) -> None:
    """close() drops hanging requests at once instead of waiting for them."""
    fake = FakeSlack()
    await fake.start()
    fake.script(Hang(30))
    pending = asyncio.ensure_future(post_hook(session, fake, {"text": "x"}))
    async with asyncio.timeout(5):
        await fake.wait_for_requests(1)
    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending


async def test_slow_answers_late_but_succeeds(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Slow delays the normal answer."""
    fake_slack.script(Slow(0.2))
    started = time.monotonic()
    assert await post_hook(session, fake_slack, {"text": "x"}) == (200, "ok")
    assert time.monotonic() - started >= 0.19  # timers may fire a hair early


async def test_drop_closes_the_connection(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Drop closes the TCP connection without an answer; the next request works."""
    fake_slack.script(Drop())
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await post_hook(session, fake_slack, {"text": "x"})
    assert await post_hook(session, fake_slack, {"text": "x"}) == (200, "ok")
    assert len(fake_slack.requests) == 2


def test_behaviours_are_checked_when_scripted() -> None:
    """A behaviour a vendor cannot render fails at scripting time, not mid-test."""
    with pytest.raises(TypeError):
        FakeSlack().script(Reject(404))
    with pytest.raises(TypeError):
        FakeTwilio().script(Reject("not_a_code"))
    with pytest.raises(ValueError, match="status"):
        FakeSendGrid().script(Reject(418))
    with pytest.raises(ValueError, match="5xx"):
        ServerError(404)


# == Slack incoming webhooks =================================================================


async def test_slack_webhook_success(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    """200, body "ok", text/plain;charset=utf-8."""
    async with session.post(fake_slack.webhook_url(HOOK), json={"text": "hi"}) as resp:
        assert resp.status == 200
        assert await resp.text() == "ok"
        assert resp.headers["Content-Type"] == "text/plain;charset=utf-8"


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        pytest.param(b"not json", 400, "invalid_payload", id="not-json"),
        pytest.param(b"[1, 2]", 400, "invalid_payload", id="not-object"),
        pytest.param(b"{}", 400, "no_text", id="empty"),
        pytest.param(b'{"text": ""}', 400, "no_text", id="empty-text"),
        pytest.param(b'{"blocks": [{"type": "divider"}]}', 200, "ok", id="blocks-only"),
        pytest.param(b'{"attachments": [{"text": "x"}]}', 200, "ok", id="attachments-only"),
    ],
)
async def test_slack_webhook_payload_errors(
    fake_slack: FakeSlack,
    session: aiohttp.ClientSession,
    payload: bytes,
    status: int,
    error: str,
) -> None:
    """Bad bodies get the status and plain-text error Slack sends."""
    async with session.post(
        fake_slack.url + HOOK, data=payload, headers={"Content-Type": "application/json"}
    ) as resp:
        assert (resp.status, await resp.text()) == (status, error)


async def test_slack_webhook_form_payload(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """The legacy form post (payload=<json>) is accepted too."""
    async with session.post(fake_slack.url + HOOK, data={"payload": '{"text": "hi"}'}) as resp:
        assert (resp.status, await resp.text()) == (200, "ok")


async def test_slack_webhook_revoked_and_archived(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A revoked webhook is 404 no_service, an archived channel 410; siblings still work."""
    fake_slack.revoke(fake_slack.webhook_url(HOOK))
    fake_slack.archive("/services/T0001/B0003/x")
    assert await post_hook(session, fake_slack, {"text": "x"}) == (404, "no_service")
    assert await post_hook(session, fake_slack, {"text": "x"}, "/services/T0001/B0003/x") == (
        410,
        "channel_is_archived",
    )
    assert await post_hook(session, fake_slack, {"text": "x"}, OTHER_HOOK) == (200, "ok")


async def test_slack_webhook_rate_limited(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """429 with an integer Retry-After and an empty body."""
    fake_slack.script(RateLimited(retry_after=7))
    async with session.post(fake_slack.url + HOOK, json={"text": "x"}) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert await resp.read() == b""


@pytest.mark.parametrize(
    ("behaviour", "status", "body"),
    [
        (ServerError(), 500, "rollup_error"),
        (Reject("channel_not_found"), 404, "channel_not_found"),
        (Reject("no_service"), 404, "no_service"),
        (Reject("action_prohibited"), 403, "action_prohibited"),
        (Reject("channel_is_archived"), 410, "channel_is_archived"),
        (Reject("posting_to_general_channel_denied"), 403, "posting_to_general_channel_denied"),
        (Reject("no_service", 404), 404, "no_service"),
        (Reject("something_new"), 400, "something_new"),
    ],
)
async def test_slack_webhook_failures(
    fake_slack: FakeSlack,
    session: aiohttp.ClientSession,
    behaviour: ServerError | Reject,
    status: int,
    body: str,
) -> None:
    """Scripted failures use Slack's webhook status codes and plain-text errors."""
    fake_slack.script(behaviour)
    assert await post_hook(session, fake_slack, {"text": "x"}) == (status, body)


async def test_slack_webhook_gateway_error_is_not_slack_format(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A 503 comes back as an HTML page, as from a load balancer."""
    fake_slack.script(ServerError(503))
    async with session.post(fake_slack.url + HOOK, json={"text": "x"}) as resp:
        assert resp.status == 503
        assert resp.content_type == "text/html"
        assert "503 Service Unavailable" in await resp.text()


# == Block Kit limits (both Slack endpoints) ===================================================


def header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


def section(text: str = "x", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def fields(n: int, size: int = 1) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * size}] * n}


def context(n: int) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * n}


def button(text: str = "Ack", **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": "ack",
        "text": {"type": "plain_text", "text": text},
        **extra,
    }


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


DIVIDER = {"type": "divider"}
BLOCK_CASES = [
    pytest.param([DIVIDER] * 50, None, id="50-blocks"),
    pytest.param([DIVIDER] * 51, "invalid_blocks", id="51-blocks"),
    pytest.param([header("h" * 150)], None, id="header-150"),
    pytest.param([header("h" * 151)], "invalid_blocks", id="header-151"),
    pytest.param([header("h", "mrkdwn")], "invalid_blocks", id="header-mrkdwn"),
    pytest.param([section("s" * 3000)], None, id="section-3000"),
    pytest.param([section("s" * 3001)], "invalid_blocks", id="section-3001"),
    pytest.param([{"type": "section"}], "invalid_blocks", id="section-empty"),
    pytest.param([fields(10, 2000)], None, id="fields-10x2000"),
    pytest.param([fields(11)], "invalid_blocks", id="fields-11"),
    pytest.param([fields(1, 2001)], "invalid_blocks", id="field-2001"),
    pytest.param([context(10)], None, id="context-10"),
    pytest.param([context(11)], "invalid_blocks", id="context-11"),
    pytest.param([actions(*[button()] * 25)], None, id="actions-25"),
    pytest.param([actions(*[button()] * 26)], "invalid_blocks", id="actions-26"),
    pytest.param([actions(button("b" * 75))], None, id="button-text-75"),
    pytest.param([actions(button("b" * 76))], "invalid_blocks", id="button-text-76"),
    pytest.param([actions(button(url="u" * 3000))], None, id="button-url-3000"),
    pytest.param([actions(button(url="u" * 3001))], "invalid_blocks", id="button-url-3001"),
    pytest.param([section(accessory=button("b" * 76))], "invalid_blocks", id="accessory"),
    pytest.param([section(block_id="i" * 255)], None, id="block-id-255"),
    pytest.param([section(block_id="i" * 256)], "invalid_blocks", id="block-id-256"),
    pytest.param([{"type": "no_such_block"}], "invalid_blocks", id="unknown-type"),
    pytest.param("not a list", "invalid_blocks_format", id="not-a-list"),
]


@pytest.mark.parametrize(("blocks", "error"), BLOCK_CASES)
async def test_block_kit_limits_on_webhook(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, blocks: Any, error: str | None
) -> None:
    """A webhook answers 400 with the Block Kit error, or ok at the limit."""
    expected = (400, error) if error else (200, "ok")
    assert await post_hook(session, fake_slack, {"text": "t", "blocks": blocks}) == expected


@pytest.mark.parametrize(("blocks", "error"), BLOCK_CASES)
async def test_block_kit_limits_on_post_message(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, blocks: Any, error: str | None
) -> None:
    """chat.postMessage answers HTTP 200 ok:false with the Block Kit error, or ok:true."""
    status, body = await post_message(
        session, fake_slack, {"channel": "C0123456789", "text": "t", "blocks": blocks}
    )
    assert status == 200
    assert body["ok"] is (error is None)
    assert body.get("error") == error


# == Slack chat.postMessage ===================================================================


async def test_post_message_success(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    """ok:true with the channel ID, a unique increasing ts and the message echoed back."""
    blocks = [section("*disk full*")]
    payload = {"channel": "C0123456789", "text": "disk full", "blocks": blocks}
    async with session.post(
        fake_slack.api_url + "chat.postMessage", json=payload, headers=bearer("xoxb-test-token")
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        first = await resp.json()
    _, second = await post_message(session, fake_slack, payload)

    assert first["ok"] is True
    assert first["channel"] == "C0123456789"
    assert re.fullmatch(r"\d{10}\.\d{6}", first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["text"] == "disk full"
    assert first["message"]["blocks"] == blocks
    (recorded, _) = fake_slack.requests
    assert recorded.json() == payload
    assert recorded.header("authorization") == "Bearer xoxb-test-token"


async def test_post_message_by_channel_name_answers_an_id(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Posting to #name returns a C… channel ID, the same each time."""
    _, a = await post_message(session, fake_slack, {"channel": "#alerts", "text": "x"})
    _, b = await post_message(session, fake_slack, {"channel": "#alerts", "text": "x"})
    assert re.fullmatch(r"C[0-9A-Z]{10}", a["channel"])
    assert a["channel"] == b["channel"]


async def test_post_message_form_encoded(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A form post may carry the token and JSON-encoded blocks."""
    form = {
        "token": "xoxb-test-token",
        "channel": "C0123456789",
        "blocks": json.dumps([section("hello")]),
    }
    async with session.post(fake_slack.url + "/api/chat.postMessage", data=form) as resp:
        body = await resp.json()
    assert body["ok"] is True
    assert body["message"]["blocks"] == [section("hello")]
    assert fake_slack.requests[0].form()["channel"] == "C0123456789"


@pytest.mark.parametrize(("token", "error"), [("", "not_authed"), ("xoxb-wrong", "invalid_auth")])
async def test_post_message_auth(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, token: str, error: str
) -> None:
    """Missing or wrong tokens are HTTP 200 ok:false, and consume no scripted behaviour."""
    fake_slack.script(ServerError())
    status, body = await post_message(session, fake_slack, {"channel": "C1", "text": "x"}, token)
    assert (status, body) == (200, {"ok": False, "error": error})
    assert fake_slack.pending == 1


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"channel": "C0123456789", "text": "x" * 40_000}, None),
        ({"channel": "C0123456789", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "C0123456789"}, "no_text"),
        ({"text": "x"}, "channel_not_found"),
        ({"channel": "C0123456789", "attachments": [{"text": "a"}] * 101}, "too_many_attachments"),
    ],
)
async def test_post_message_errors(
    fake_slack: FakeSlack,
    session: aiohttp.ClientSession,
    payload: dict[str, Any],
    error: str | None,
) -> None:
    """Invalid messages are HTTP 200 with ok:false and Slack's error string."""
    status, body = await post_message(session, fake_slack, payload)
    assert status == 200
    assert body["ok"] is (error is None)
    assert body.get("error") == error


async def test_post_message_unknown_and_archived_channels(session: aiohttp.ClientSession) -> None:
    """With known channels configured, others are channel_not_found; archived is is_archived."""
    async with FakeSlack(channels=["C0000000001", "C0000000002"]) as fake:
        fake.archive("C0000000002")
        results = [
            (await post_message(session, fake, {"channel": c, "text": "x"}))[1].get("error")
            for c in ("C0000000001", "C0000000002", "C0000000003")
        ]
    assert results == [None, "is_archived", "channel_not_found"]


async def test_post_message_rate_limited(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """HTTP 429, Retry-After and {"ok":false,"error":"ratelimited"}."""
    fake_slack.script(RateLimited(retry_after=2))
    async with session.post(
        fake_slack.url + "/api/chat.postMessage",
        json={"channel": "C0123456789", "text": "x"},
        headers=bearer(fake_slack.bot_token),
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "2"
        assert resp.headers["Content-Type"] == "application/json;charset=utf-8"
        assert await resp.json() == {"ok": False, "error": "ratelimited"}


async def test_post_message_scripted_failures(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Reject is HTTP 200 ok:false; a 500 is fatal_error JSON; a 503 is an HTML page."""
    fake_slack.script(Reject("channel_not_found"), ServerError(500), ServerError(503))
    payload = {"channel": "C0123456789", "text": "x"}
    assert await post_message(session, fake_slack, payload) == (
        200,
        {"ok": False, "error": "channel_not_found"},
    )
    assert await post_message(session, fake_slack, payload) == (
        500,
        {"ok": False, "error": "fatal_error"},
    )
    async with session.post(
        fake_slack.url + "/api/chat.postMessage", json=payload, headers=bearer("xoxb-test-token")
    ) as resp:
        assert (resp.status, resp.content_type) == (503, "text/html")


async def test_post_message_script_for_one_channel(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Scripting one channel leaves the others succeeding."""
    fake_slack.script_for("C0000000BAD", Reject("is_archived"))
    bad, good = await asyncio.gather(
        post_message(session, fake_slack, {"channel": "C0000000BAD", "text": "x"}),
        post_message(session, fake_slack, {"channel": "C000000GOOD", "text": "x"}),
    )
    assert bad[1] == {"ok": False, "error": "is_archived"}
    assert good[1]["ok"] is True


# == Slack chat.update and threads =============================================================

CHANNEL = "C0123456789"


async def update_message(
    session: aiohttp.ClientSession, fake: FakeSlack, payload: Any, token: str | None = None
) -> tuple[int, Any]:
    """POST to chat.update; ``token`` defaults to the fake's own, "" sends none."""
    headers = bearer(fake.bot_token if token is None else token) if token != "" else {}
    async with session.post(fake.url + "/api/chat.update", json=payload, headers=headers) as resp:
        return resp.status, await resp.json()


async def posted(
    session: aiohttp.ClientSession, fake: FakeSlack, channel: str = CHANNEL, **args: Any
) -> str:
    """Post a message with chat.postMessage and return its ts."""
    _, body = await post_message(session, fake, {"channel": channel, "text": "x", **args})
    assert body["ok"] is True, body
    return str(body["ts"])


async def test_update_changes_the_stored_message(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """chat.update answers ok with channel, ts, text and message, and the fake keeps the edit."""
    ts = await posted(session, fake_slack, text="firing", blocks=[section("*firing*")])
    update = {"channel": CHANNEL, "ts": ts, "text": "acked", "blocks": [section("*acked*")]}
    status, body = await update_message(session, fake_slack, update)

    assert status == 200
    assert (body["ok"], body["channel"], body["ts"], body["text"]) == (True, CHANNEL, ts, "acked")
    assert body["message"]["blocks"] == [section("*acked*")]
    current = fake_slack.message(CHANNEL, ts)
    assert (current["ts"], current["text"], current["user"]) == (ts, "acked", "U0FAKEBOT01")
    assert current["blocks"] == [section("*acked*")]
    assert fake_slack.updates() == [update]
    assert [m["text"] for m in fake_slack.messages()] == ["firing"]  # posts only, as before


async def test_update_keeps_omitted_blocks_and_drops_empty_ones(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Omitted blocks are kept; an empty blocks list removes them."""
    ts = await posted(session, fake_slack, blocks=[section("kept")])
    await update_message(session, fake_slack, {"channel": CHANNEL, "ts": ts, "text": "a"})
    assert fake_slack.message(CHANNEL, ts)["blocks"] == [section("kept")]
    await update_message(
        session, fake_slack, {"channel": CHANNEL, "ts": ts, "text": "b", "blocks": []}
    )
    assert "blocks" not in fake_slack.message(CHANNEL, ts)


async def test_update_form_encoded_with_token(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A form post may carry the token and JSON-encoded blocks, as for chat.postMessage."""
    ts = await posted(session, fake_slack)
    form = {
        "token": "xoxb-test-token",
        "channel": CHANNEL,
        "ts": ts,
        "blocks": json.dumps([section("form")]),
    }
    async with session.post(fake_slack.url + "/api/chat.update", data=form) as resp:
        body = await resp.json()
    assert body["ok"] is True
    assert fake_slack.message(CHANNEL, ts)["blocks"] == [section("form")]
    assert fake_slack.updates()[0]["blocks"] == [section("form")]


@pytest.mark.parametrize(("token", "error"), [("", "not_authed"), ("xoxb-wrong", "invalid_auth")])
async def test_update_auth(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, token: str, error: str
) -> None:
    """Missing or wrong tokens are HTTP 200 ok:false, and consume no scripted behaviour."""
    ts = await posted(session, fake_slack)
    fake_slack.script(ServerError())
    payload = {"channel": CHANNEL, "ts": ts, "text": "new"}
    status, body = await update_message(session, fake_slack, payload, token)
    assert (status, body) == (200, {"ok": False, "error": error})
    assert fake_slack.pending == 1
    assert fake_slack.message(CHANNEL, ts)["text"] == "x"


async def test_update_unknown_ts_is_message_not_found(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A ts that names no message of that channel is message_not_found."""
    ts = await posted(session, fake_slack, channel="C0000000OTH")
    for payload in (
        {"channel": CHANNEL, "ts": "1700000000.000100", "text": "x"},
        {"channel": CHANNEL, "ts": ts, "text": "x"},  # exists, but in another channel
        {"channel": CHANNEL, "text": "x"},
    ):
        assert await update_message(session, fake_slack, payload) == (
            200,
            {"ok": False, "error": "message_not_found"},
        )


async def test_update_of_webhook_message_is_cant_update_message(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A message posted through an incoming webhook cannot be edited by the bot."""
    fake_slack.bind_webhook(HOOK, CHANNEL)
    assert await post_hook(session, fake_slack, {"text": "from a webhook"}) == (200, "ok")
    [hooked] = fake_slack.history(CHANNEL)
    assert (hooked["subtype"], hooked["text"]) == ("bot_message", "from a webhook")

    payload = {"channel": CHANNEL, "ts": hooked["ts"], "text": "edited"}
    assert await update_message(session, fake_slack, payload) == (
        200,
        {"ok": False, "error": "cant_update_message"},
    )
    assert fake_slack.message(CHANNEL, hooked["ts"])["text"] == "from a webhook"


async def test_update_channel_errors(session: aiohttp.ClientSession) -> None:
    """Unknown channels and channel names are channel_not_found; archived is is_inactive."""
    async with FakeSlack(channels=["C0000000001", "C0000000002", "#alerts"]) as fake:
        ts = await posted(session, fake, channel="C0000000002")
        fake.archive("C0000000002")
        results = [
            (await update_message(session, fake, {"channel": c, "ts": ts, "text": "x"}))[1]
            for c in ("C0000000002", "C0000000003", "#alerts")
        ]
    assert [r["error"] for r in results] == [
        "is_inactive",
        "channel_not_found",
        "channel_not_found",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({}, "no_text"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "x", "blocks": [header("h" * 151)]}, "invalid_blocks"),
        ({"text": "x", "blocks": "not a list"}, "invalid_blocks_format"),
    ],
)
async def test_update_content_errors(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, args: dict[str, Any], error: str
) -> None:
    """chat.update validates the new content like chat.postMessage and keeps the old one."""
    ts = await posted(session, fake_slack)
    payload = {"channel": CHANNEL, "ts": ts, **args}
    assert await update_message(session, fake_slack, payload) == (
        200,
        {"ok": False, "error": error},
    )
    assert fake_slack.message(CHANNEL, ts)["text"] == "x"


async def test_update_rate_limited(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    """An injected 429 on chat.update has Retry-After and the ratelimited body; nothing changes."""
    ts = await posted(session, fake_slack)
    fake_slack.script(RateLimited(retry_after=3))
    async with session.post(
        fake_slack.url + "/api/chat.update",
        json={"channel": CHANNEL, "ts": ts, "text": "new"},
        headers=bearer(fake_slack.bot_token),
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
        assert resp.headers["Content-Type"] == "application/json;charset=utf-8"
        assert await resp.json() == {"ok": False, "error": "ratelimited"}
    assert fake_slack.message(CHANNEL, ts)["text"] == "x"
    assert len(fake_slack.updates()) == 1


async def test_update_scripted_failures_and_slow(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """script_for(channel) reaches chat.update: a 500 is fatal_error, Slow answers late but ok."""
    ts = await posted(session, fake_slack)
    fake_slack.script_for(CHANNEL, ServerError(500), Slow(0.2))
    payload = {"channel": CHANNEL, "ts": ts, "text": "new"}
    assert await update_message(session, fake_slack, payload) == (
        500,
        {"ok": False, "error": "fatal_error"},
    )
    started = time.monotonic()
    status, body = await update_message(session, fake_slack, payload)
    assert (status, body["ok"]) == (200, True)
    assert time.monotonic() - started >= 0.19  # timers may fire a hair early
    assert fake_slack.message(CHANNEL, ts)["text"] == "new"


async def test_reply_in_thread_increments_reply_count(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Replies get their own ts and carry thread_ts; the parent counts them and the latest."""
    parent = await posted(session, fake_slack, text="parent")
    _, first = await post_message(
        session, fake_slack, {"channel": CHANNEL, "text": "r1", "thread_ts": parent}
    )
    assert (first["ok"], first["message"]["thread_ts"]) == (True, parent)
    assert fake_slack.message(CHANNEL, parent)["reply_count"] == 1
    second = await posted(session, fake_slack, text="r2", thread_ts=parent)

    assert len({parent, first["ts"], second}) == 3
    head = fake_slack.message(CHANNEL, parent)
    assert (head["thread_ts"], head["reply_count"], head["latest_reply"]) == (parent, 2, second)
    assert (head["reply_users"], head["reply_users_count"]) == (["U0FAKEBOT01"], 1)
    replies = fake_slack.thread(CHANNEL, parent)
    assert [(r["text"], r["thread_ts"]) for r in replies] == [("r1", parent), ("r2", parent)]
    assert [m["text"] for m in fake_slack.history(CHANNEL)] == ["parent"]


async def test_reply_broadcast_is_shown_in_the_channel(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A reply with reply_broadcast is a thread_broadcast, in the thread and in the channel."""
    parent = await posted(session, fake_slack, text="parent")
    await posted(session, fake_slack, text="loud", thread_ts=parent, reply_broadcast=True)
    [reply] = fake_slack.thread(CHANNEL, parent)
    assert reply["subtype"] == "thread_broadcast"
    assert [m["text"] for m in fake_slack.history(CHANNEL)] == ["parent", "loud"]


async def test_unknown_thread_ts_is_accepted_but_not_threaded(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A thread_ts naming no top-level message of the channel is ok:true but threads nothing."""
    parent = await posted(session, fake_slack, text="parent")
    reply = await posted(session, fake_slack, thread_ts=parent)
    elsewhere = await posted(session, fake_slack, channel="C0000000OTH")
    for thread_ts in ("1700000000.000100", reply, elsewhere):
        orphan = await posted(session, fake_slack, text="orphan", thread_ts=thread_ts)
        assert fake_slack.message(CHANNEL, orphan)["thread_ts"] == thread_ts  # echoed
    assert fake_slack.message(CHANNEL, parent)["reply_count"] == 1
    assert fake_slack.thread(CHANNEL, reply) == []
    assert fake_slack.thread("C0000000OTH", elsewhere) == []
    assert [m["text"] for m in fake_slack.history(CHANNEL)] == ["parent"]


async def test_malformed_thread_ts_is_invalid_thread_ts(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A thread_ts that is not a Slack ts at all is invalid_thread_ts."""
    payload = {"channel": CHANNEL, "text": "x", "thread_ts": "0"}
    assert await post_message(session, fake_slack, payload) == (
        200,
        {"ok": False, "error": "invalid_thread_ts"},
    )


async def test_update_of_a_reply_stays_in_the_thread(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """Editing a reply changes it in thread() and leaves the parent's counters alone."""
    parent = await posted(session, fake_slack)
    reply = await posted(session, fake_slack, text="old", thread_ts=parent)
    payload = {"channel": CHANNEL, "ts": reply, "text": "new"}
    assert (await update_message(session, fake_slack, payload))[1]["ok"] is True
    assert [r["text"] for r in fake_slack.thread(CHANNEL, parent)] == ["new"]
    assert fake_slack.message(CHANNEL, parent)["reply_count"] == 1


def test_message_helpers_raise_for_unknown_messages() -> None:
    """message() and thread() raise KeyError for a message the fake does not hold."""
    fake = FakeSlack()
    with pytest.raises(KeyError, match="no message"):
        fake.message(CHANNEL, "1700000000.000100")
    with pytest.raises(KeyError):
        fake.thread(CHANNEL, "1700000000.000100")
    assert fake.history(CHANNEL) == []


# == Twilio, through the real twilio client ===================================================


@twilio_client_warning
async def test_twilio_message_success(twilio: Any, fake_twilio: FakeTwilio) -> None:
    """201 message JSON, parsed by the library into a MessageInstance."""
    msg = await send_sms(twilio)
    assert re.fullmatch(r"SM[0-9a-f]{32}", msg.sid)
    assert (msg.status, msg.direction, msg.to, msg.from_) == ("queued", "outbound-api", TO, FROM)
    assert (msg.num_segments, msg.num_media, msg.price, msg.error_code) == ("1", "0", None, None)
    assert msg.account_sid == fake_twilio.account_sid
    assert msg.date_created is not None  # RFC 2822, parsed by the library
    assert msg.uri == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages/{msg.sid}.json"

    (recorded,) = fake_twilio.requests
    assert recorded.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert recorded.form() == {"To": TO, "From": FROM, "Body": "disk full on db-1"}
    assert (recorded.header("authorization") or "").startswith("Basic ")
    assert recorded.header("content-type") == "application/x-www-form-urlencoded"


async def test_twilio_message_raw_wire(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """The raw answer: 201 and the documented fields, null where Twilio sends null."""
    async with session.post(
        f"{fake_twilio.url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json",
        data={"To": TO, "MessagingServiceSid": "MG" + "0" * 32, "Body": "x" * 161},
        headers=twilio_auth(fake_twilio),
    ) as resp:
        assert resp.status == 201
        body = await resp.json()
    assert body["status"] == "accepted"  # no From: the service picks a sender later
    assert body["from"] is None
    assert body["messaging_service_sid"] == "MG" + "0" * 32
    assert body["num_segments"] == "2"
    assert (body["date_sent"], body["price_unit"], body["api_version"]) == (
        None,
        "USD",
        "2010-04-01",
    )
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", body["date_created"])


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("x" * 160, 1),
        ("x" * 161, 2),
        ("x" * 306, 2),
        ("x" * 307, 3),
        ("€" * 80, 1),  # GSM extension characters cost two septets
        ("€" * 81, 2),
        ("Ж" * 70, 1),  # any non-GSM character switches to UCS-2
        ("Ж" * 71, 2),
        ("Ж" * 134, 2),
        ("Ж" * 135, 3),
    ],
)
def test_twilio_num_segments(body: str, segments: int) -> None:
    """GSM-7 160/153 per segment, UCS-2 70/67."""
    assert num_segments(body) == segments


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "5551234567"}, 21211),
        ({"to": "+0123"}, 21211),
        ({"body": ""}, 21602),
        ({"body": "x" * 1601}, 21617),
        ({"from_": None}, 21603),
    ],
)
@twilio_client_warning
async def test_twilio_message_validation(twilio: Any, kwargs: dict[str, Any], code: int) -> None:
    """Invalid messages raise TwilioRestException with Twilio's code and HTTP 400."""
    args: dict[str, Any] = {"to": TO, "from_": FROM, "body": "x", **kwargs}
    with pytest.raises(TwilioRestException) as info:
        await twilio.messages.create_async(**{k: v for k, v in args.items() if v is not None})
    assert (info.value.status, info.value.code) == (400, code)
    if code == 21211:
        assert f"The 'To' number {args['to']} is not a valid phone number." in info.value.msg


@twilio_client_warning
async def test_twilio_body_at_limit_is_accepted(twilio: Any) -> None:
    """1600 characters is still one request (split into segments)."""
    msg = await send_sms(twilio, body="x" * 1600)
    assert msg.num_segments == "11"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("", "wrong-token"),
        ("AC" + "f" * 32, "test-auth-token"),  # another account: path and username disagree
        ("SK" + "1" * 32, "not-a-key"),
    ],
)
@twilio_client_warning
async def test_twilio_auth_failure(
    fake_twilio: FakeTwilio, twilio_http: AsyncTwilioHttpClient, username: str, password: str
) -> None:
    """Bad credentials are 401 with code 20003."""
    client = twilio_client(fake_twilio, twilio_http, username=username, password=password)
    with pytest.raises(TwilioRestException) as info:
        await send_sms(client)
    assert (info.value.status, info.value.code) == (401, 20003)


async def test_twilio_auth_failure_body(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """The 401 body is Twilio's exact "Authenticate" error."""
    async with session.post(
        f"{fake_twilio.url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json",
        data={"To": TO, "From": FROM, "Body": "x"},
    ) as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }


@twilio_client_warning
async def test_twilio_api_key_auth(
    twilio_http: AsyncTwilioHttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API key (SK…) with its secret authenticates for the account in the path."""
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    key = "SK" + "1" * 32
    async with FakeTwilio(api_keys={key: "key-secret"}) as fake:
        client = twilio_client(fake, twilio_http, username=key, password="key-secret")
        assert (await send_sms(client)).sid.startswith("SM")


@twilio_client_warning
async def test_twilio_rate_limited(
    twilio: Any, fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """429 with code 20429 and a Retry-After header."""
    fake_twilio.script(RateLimited(retry_after=3), RateLimited(retry_after=3))
    with pytest.raises(TwilioRestException) as info:
        await send_sms(twilio)
    assert (info.value.status, info.value.code) == (429, 20429)
    async with session.post(
        f"{fake_twilio.url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json",
        data={"To": TO, "From": FROM, "Body": "x"},
        headers=twilio_auth(fake_twilio),
    ) as resp:
        assert resp.headers["Retry-After"] == "3"
        assert (await resp.json())["message"] == "Too Many Requests"


@pytest.mark.parametrize(
    ("behaviour", "status", "code"),
    [
        (ServerError(), 500, 20500),
        (ServerError(503), 503, 20503),
        (Reject(21610), 400, 21610),
        (Reject(21614), 400, 21614),
        (Reject(21211), 400, 21211),
        (Reject(20003), 401, 20003),
        (Reject(21610, status=403), 403, 21610),
    ],
)
@twilio_client_warning
async def test_twilio_scripted_failures(
    twilio: Any, fake_twilio: FakeTwilio, behaviour: ServerError | Reject, status: int, code: int
) -> None:
    """Scripted failures come back with Twilio's status and code."""
    fake_twilio.script(behaviour)
    with pytest.raises(TwilioRestException) as info:
        await send_sms(twilio)
    assert (info.value.status, info.value.code) == (status, code)
    if code == 21610:
        assert "Attempt to send to unsubscribed recipient" in info.value.msg


@twilio_client_warning
async def test_twilio_script_for_one_number(twilio: Any, fake_twilio: FakeTwilio) -> None:
    """Failing one To number leaves the sibling send succeeding."""
    fake_twilio.script_for(OTHER_TO, Reject(21610))
    results: tuple[Any, Any] = await asyncio.gather(
        send_sms(twilio, TO), send_sms(twilio, OTHER_TO), return_exceptions=True
    )
    ok, failed = results
    assert ok.sid.startswith("SM")
    assert isinstance(failed, TwilioRestException)
    assert failed.code == 21610


@twilio_client_warning
async def test_twilio_hang_and_drop(twilio: Any, fake_twilio: FakeTwilio) -> None:
    """The client has no timeout of its own: a hang needs asyncio.timeout; a drop surfaces."""
    fake_twilio.script(Hang(1.0), Drop())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await send_sms(twilio)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await send_sms(twilio)
    assert len(fake_twilio.requests) == 2


@twilio_client_warning
async def test_twilio_call_success(twilio: Any, fake_twilio: FakeTwilio) -> None:
    """201 call JSON, parsed into a CallInstance; the TwiML is recorded."""
    twiml = "<Response><Say>Critical alert</Say></Response>"
    call = await twilio.calls.create_async(to=TO, from_=FROM, twiml=twiml)
    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert (call.status, call.direction, call.to) == ("queued", "outbound-api", TO)
    (recorded,) = fake_twilio.requests
    assert recorded.path.endswith("/Calls.json")
    assert recorded.form()["Twiml"] == twiml


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "12345"}, 21217),
        ({"twiml": None}, 21205),
        ({"twiml": "x" * 4001}, 32018),
    ],
)
@twilio_client_warning
async def test_twilio_call_validation(twilio: Any, kwargs: dict[str, Any], code: int) -> None:
    """Invalid calls raise with Twilio's codes."""
    args: dict[str, Any] = {"to": TO, "from_": FROM, "twiml": "<Response/>", **kwargs}
    with pytest.raises(TwilioRestException) as info:
        await twilio.calls.create_async(**{k: v for k, v in args.items() if v is not None})
    assert (info.value.status, info.value.code) == (400, code)


@twilio_client_warning
async def test_twilio_call_url_wins_over_long_twiml(twilio: Any) -> None:
    """With Url given, Twilio ignores Twiml, so its length does not matter; client: is dialable."""
    call = await twilio.calls.create_async(
        to="client:alice", from_=FROM, url="https://example.com/voice", twiml="x" * 5000
    )
    assert call.status == "queued"


# == SendGrid =================================================================================


def mail(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = Mail(
        from_email="alerts@example.com",
        to_emails="oncall@example.com",
        subject="[FIRING:1] DiskFull db-1",
        plain_text_content="disk full",
        html_content="<p>disk full</p>",
    ).get()
    body.update(overrides)
    return body


async def send_mail(
    session: aiohttp.ClientSession, fake: FakeSendGrid, body: Any
) -> tuple[int, Mapping[str, str], bytes]:
    """POST a Mail Send body with the right key: status, headers and body of the answer."""
    async with session.post(
        fake.url + "/v3/mail/send", json=body, headers=bearer(fake.api_key)
    ) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_sendgrid_success(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """202, empty body, X-Message-Id; the Mail helper's body is recorded as sent."""
    body = mail(categories=["alerts"], custom_args={"fingerprint": "6f1c"})
    status, headers, answer = await send_mail(session, fake_sendgrid, body)
    assert (status, answer) == (202, b"")
    assert re.fullmatch(r"[\w-]{22}", headers["X-Message-Id"])
    (recorded,) = fake_sendgrid.requests
    assert recorded.json() == body
    assert recorded.header("authorization") == "Bearer SG.test-key"


async def test_sendgrid_sandbox_is_200(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """Sandbox mode: valid but not queued, 200."""
    body = mail(mail_settings={"sandbox_mode": {"enable": True}})
    assert (await send_mail(session, fake_sendgrid, body))[0] == 200


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("SG.wrong", "The provided authorization grant is invalid, expired, or revoked"),
        ("", "authorization required"),
    ],
)
async def test_sendgrid_auth(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession, key: str, message: str
) -> None:
    """A wrong or missing key is 401 with SendGrid's errors JSON."""
    async with session.post(
        fake_sendgrid.url + "/v3/mail/send",
        json=mail(),
        headers=bearer(key) if key else {},
    ) as resp:
        assert resp.status == 401
        assert await resp.json() == {"errors": [{"message": message, "field": None, "help": None}]}


def _many(n: int) -> list[dict[str, str]]:
    return [{"email": f"user{i}@example.com"} for i in range(n)]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"personalizations": []}, "personalizations", "at least one personalization"),
        ({"personalizations": [{"to": []}]}, "personalizations.0.to", "to array is required"),
        (
            {"personalizations": [{"to": [{"email": "not-an-email"}]}]},
            "personalizations.0.to.0.email",
            "Does not contain a valid address.",
        ),
        (
            {
                "personalizations": [
                    {"to": [{"email": "a@example.com"}], "cc": [{"email": "A@example.com"}]}
                ]
            },
            "personalizations.0",
            "should be unique between to, cc, and bcc",
        ),
        (
            {"personalizations": [{"to": [{"email": "a@example.com"}]}] * 2},
            "personalizations",
            "should only be included once",
        ),
        (
            {"personalizations": [{"to": [e]} for e in _many(1001)]},
            "personalizations",
            "limited to 1000 personalizations",
        ),
        (
            {"personalizations": [{"to": _many(1001)}]},
            "personalizations",
            "limit of 1000 total recipients",
        ),
        (
            {"from": {"email": "alerts"}},
            "from.email",
            "The from email does not contain a valid address.",
        ),
        ({"subject": None}, "subject", "The subject is required."),
        ({"content": []}, "content", "the content parameter is required"),
        ({"content": [{"type": "text/plain", "value": ""}]}, "content.0.value", "at least one"),
        (
            {
                "content": [
                    {"type": "text/html", "value": "<p/>"},
                    {"type": "text/plain", "value": "x"},
                ]
            },
            "content",
            "text/plain content must be first",
        ),
        ({"categories": [f"c{i}" for i in range(11)]}, "categories", "at most 10"),
        ({"categories": ["c" * 255]}, "categories.0", "shorter than 255"),
        ({"custom_args": {"n": 1}}, "custom_args.n", "Expected: string, given: integer."),
    ],
)
async def test_sendgrid_validation(
    fake_sendgrid: FakeSendGrid,
    session: aiohttp.ClientSession,
    overrides: dict[str, Any],
    field: str,
    message: str,
) -> None:
    """Invalid bodies are 400 with an errors entry naming the field."""
    body = {k: v for k, v in mail(**overrides).items() if v is not None}
    async with session.post(
        fake_sendgrid.url + "/v3/mail/send", json=body, headers=bearer(fake_sendgrid.api_key)
    ) as resp:
        assert resp.status == 400
        errors = (await resp.json())["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    assert all(set(e) == {"message", "field", "help"} for e in errors)


async def test_sendgrid_valid_edge_cases(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """Per-personalization subjects, 10 categories and 1000 recipients are all accepted."""
    per_personalization = mail(
        personalizations=[{"to": [{"email": "a@example.com"}], "subject": "s"}], subject=None
    )
    per_personalization.pop("subject")
    for body in (
        per_personalization,
        mail(categories=[f"c{i}" for i in range(10)]),
        mail(personalizations=[{"to": _many(1000)}]),
    ):
        assert (await send_mail(session, fake_sendgrid, body))[0] == 202


async def test_sendgrid_from_error_body(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """The from-address error is exactly SendGrid's documented example."""
    async with session.post(
        fake_sendgrid.url + "/v3/mail/send",
        json=mail(**{"from": {"email": "nope"}}),
        headers=bearer(fake_sendgrid.api_key),
    ) as resp:
        assert await resp.json() == {
            "errors": [
                {
                    "message": "The from email does not contain a valid address.",
                    "field": "from.email",
                    "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
                    "#message.from",
                }
            ]
        }


async def test_sendgrid_payload_too_large(session: aiohttp.ClientSession) -> None:
    """Bodies above max_body_bytes are 413, recorded; far larger ones are 413 too."""
    async with FakeSendGrid(max_body_bytes=2000) as fake:
        big = mail(content=[{"type": "text/plain", "value": "x" * 3000}])
        assert (await send_mail(session, fake, big))[0] == 413
        assert fake.requests[0].json() == big
        # Past aiohttp's own read cap (max_body_bytes + 1 MiB): still SendGrid's 413, not aiohttp's.
        huge = json.dumps(mail(content=[{"type": "text/plain", "value": "x" * 2_200_000}]))
        async with session.post(
            fake.url + "/v3/mail/send",
            data=io.BytesIO(huge.encode()),  # aiohttp warns about large raw bytes bodies
            headers={"Content-Type": "application/json", **bearer(fake.api_key)},
        ) as resp:
            assert resp.status == 413
            assert (await resp.json())["errors"][0]["field"] is None


async def test_sendgrid_rate_limited(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """429 with X-RateLimit-* headers (reset in epoch seconds) and no Retry-After."""
    fake_sendgrid.script(RateLimited(retry_after=5))
    async with session.post(
        fake_sendgrid.url + "/v3/mail/send", json=mail(), headers=bearer(fake_sendgrid.api_key)
    ) as resp:
        assert resp.status == 429
        assert await resp.json() == {"errors": [{"field": None, "message": "too many requests"}]}
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert int(resp.headers["X-RateLimit-Limit"]) > 0
        assert abs(int(resp.headers["X-RateLimit-Reset"]) - (time.time() + 5)) <= 2
        assert "Retry-After" not in resp.headers


@pytest.mark.parametrize(
    ("behaviour", "status", "field", "message"),
    [
        (ServerError(), 500, None, "internal server error"),
        (ServerError(503), 503, None, "service unavailable"),
        (Reject(400), 400, None, "Bad Request"),
        (Reject(401), 401, None, "authorization grant is invalid"),
        (Reject(403), 403, "from", "does not match a verified Sender Identity"),
        (Reject(413), 413, None, "too large"),
        (Reject("Maximum credits exceeded", 401), 401, None, "Maximum credits exceeded"),
    ],
)
async def test_sendgrid_scripted_failures(
    fake_sendgrid: FakeSendGrid,
    session: aiohttp.ClientSession,
    behaviour: ServerError | Reject,
    status: int,
    field: str | None,
    message: str,
) -> None:
    """Scripted failures carry SendGrid's status and errors JSON."""
    fake_sendgrid.script(behaviour)
    async with session.post(
        fake_sendgrid.url + "/v3/mail/send", json=mail(), headers=bearer(fake_sendgrid.api_key)
    ) as resp:
        assert resp.status == status
        (error,) = (await resp.json())["errors"]
    assert error["field"] == field
    assert message in error["message"]


async def test_sendgrid_script_for_first_recipient(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """Scripting one recipient leaves mail to others succeeding."""
    fake_sendgrid.script_for("lead@example.com", ServerError(503))
    to_lead = mail(personalizations=[{"to": [{"email": "lead@example.com"}]}])
    bad, good = await asyncio.gather(
        send_mail(session, fake_sendgrid, to_lead), send_mail(session, fake_sendgrid, mail())
    )
    assert (bad[0], good[0]) == (503, 202)


# -- delivery reports: the fakes calling the client back ---------------------------------------


async def test_fake_sendgrid_signs_as_sendgrid_does() -> None:
    """The sendgrid library's own verifier accepts the fake's signature over timestamp + body,
    and nothing else: another body, another timestamp, another key."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    fake = FakeSendGrid()
    body, stamp = b'[{"event": "bounce"}]', "1773652739"
    signature = fake.sign(stamp, body)
    assert EventWebhook(fake.public_key).verify_signature(body.decode(), signature, stamp)
    assert not EventWebhook(fake.public_key).verify_signature("[]", signature, stamp)
    assert not EventWebhook(fake.public_key).verify_signature(body.decode(), signature, "1")
    other = FakeSendGrid().public_key
    assert not EventWebhook(other).verify_signature(body.decode(), signature, stamp)


async def test_fake_twilio_reports_only_to_this_machine(fake_twilio: FakeTwilio) -> None:
    """A StatusCallback elsewhere (a PUBLIC_URL on the internet) is recorded, never sent."""
    report = await fake_twilio.call_status(
        "https://oncall.example.com/webhooks/twilio/status?token=t",
        sid="CA1",
        to="+447700900101",
        from_="+447700900999",
        status="no-answer",
    )
    assert report.answer == 0
    assert fake_twilio.reports == [report]
    with pytest.raises(ValueError, match="not a call outcome"):
        fake_twilio.call_outcomes("+447700900101", "answered")
    with pytest.raises(ValueError, match="not a message outcome"):
        fake_twilio.sms_outcomes("+447700900101", "read")
