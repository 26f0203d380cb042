"""Delivery receipts at the endpoints: Twilio's status call-backs (`/webhooks/twilio/status`) and
SendGrid's Event Webhook (`/webhooks/sendgrid/events`), each signed as the vendor signs them.

The fakes post exactly what the vendors post: FakeTwilio signs its forms with the real `twilio`
library's RequestValidator, FakeSendGrid signs its batches with its own ECDSA P-256 key. The
router is served by aiohttp's test server on 127.0.0.1, which is also its PUBLIC_URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient
from twilio.request_validator import RequestValidator

from receiver.ack import tokens as ack_tokens
from receiver.config.settings import Settings, SettingsError, load_settings
from receiver.delivery import receipt_status as status
from receiver.delivery import receipt_tokens as tokens
from receiver.metrics import VENDOR_STATUSES, Metrics
from receiver.model import Channel, Severity
from receiver.store.memory import MemoryStore
from receiver.web import receipts
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.fakes import FakeSendGrid, FakeTwilio
from tests.fakes.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.helpers import NOW, dry_run_router, metric, shipped_config

ALICE, FROM = "+447700900101", "+447700900999"
STATUS = "/webhooks/twilio/status"
EVENTS = "/webhooks/sendgrid/events"
VENDOR = "oncall_router_vendor_status_total"
CARRIER = "oncall_router_carrier_failures_total"


@dataclass
class Rig:
    service: Service
    client: TestClient[Any, Any]
    twilio: FakeTwilio
    sendgrid: FakeSendGrid

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def token(self, channel: Channel = Channel.CALL, **fields: Any) -> str:
        given: dict[str, Any] = {
            "group": "0" * 32,
            "spell": "2026-03-16T09:12:00+00:00",
            "person": "alice",
            "channel": channel,
            "level": 0,
            "attempt": 1 if channel is Channel.CALL else 0,
            "expires": int((NOW + timedelta(hours=1)).timestamp()),
        }
        token = tokens.ReceiptToken(**(given | fields))
        return tokens.sign(token, TEST_AUTH_TOKEN)

    def url(self, token: str) -> str:
        return f"{self.base}{STATUS}?token={token}"

    def vendor(self, channel: str, state: str) -> float:
        return metric(self.service, VENDOR, {"channel": channel, "status": state})


@pytest_asyncio.fixture
async def rig(aiohttp_client: AiohttpClient) -> AsyncIterator[Rig]:
    twilio, sendgrid = FakeTwilio(), FakeSendGrid()  # not served: they only call us back
    settings = Settings(
        twilio_auth_token=TEST_AUTH_TOKEN, sendgrid_webhook_public_key=sendgrid.public_key
    )
    service, _ = dry_run_router(settings=settings, dry_run=False)
    client = await aiohttp_client(create_app(service))
    # Twilio signs the URL it was given: our public URL is where the test server listens.
    base = str(client.make_url("")).rstrip("/")
    service.settings = dataclasses.replace(settings, public_url=base)
    yield Rig(service, client, twilio, sendgrid)


# -- Twilio -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call_status", "answered_by", "counted"),
    [
        ("completed", None, "completed"),
        ("completed", "human", "completed"),
        ("completed", "unknown", "completed"),
        ("completed", "machine_start", "machine"),
        ("completed", "machine_end_beep", "machine"),
        ("completed", "fax", "machine"),
        ("no-answer", None, "no-answer"),
        ("busy", None, "busy"),
        ("failed", None, "failed"),
        ("canceled", None, "canceled"),
        ("gone-fishing", None, "other"),
    ],
)
async def test_each_final_call_status_is_counted(
    rig: Rig, call_status: str, answered_by: str | None, counted: str
) -> None:
    report = await rig.twilio.call_status(
        rig.url(rig.token()),
        sid="CA" + "1" * 32,
        to=ALICE,
        from_=FROM,
        status=call_status,
        answered_by=answered_by,
    )
    assert (report.answer, report.text) == (200, '{"status": "counted"}')
    assert rig.vendor("call", counted) == 1
    total = sum(rig.vendor("call", s) for s in VENDOR_STATUSES[Channel.CALL])
    assert total == 1
    failures = metric(rig.service, CARRIER, {"channel": "call", "person": "alice"})
    assert failures == (1 if counted == "failed" else 0)


@pytest.mark.parametrize(
    ("message_status", "counted", "carrier_failure"),
    [
        ("delivered", "delivered", False),
        ("undelivered", "undelivered", True),
        ("failed", "failed", True),
        ("canceled", "canceled", False),
        ("partially_delivered", "other", False),
    ],
)
async def test_each_final_sms_status_is_counted(
    rig: Rig, message_status: str, counted: str, carrier_failure: bool
) -> None:
    report = await rig.twilio.message_status(
        rig.url(rig.token(Channel.SMS)),
        sid="SM" + "2" * 32,
        to=ALICE,
        from_=FROM,
        status=message_status,
    )
    assert report.answer == 200, report.text
    assert rig.vendor("sms", counted) == 1
    failures = metric(rig.service, CARRIER, {"channel": "sms", "person": "alice"})
    assert failures == (1 if carrier_failure else 0)


@pytest.mark.parametrize(
    ("channel", "state"),
    [(Channel.SMS, "sent"), (Channel.SMS, "queued"), (Channel.CALL, "ringing")],
)
async def test_statuses_on_the_way_are_not_counted(rig: Rig, channel: Channel, state: str) -> None:
    url = rig.url(rig.token(channel))
    if channel is Channel.SMS:
        report = await rig.twilio.message_status(url, sid="SM1", to=ALICE, from_=FROM, status=state)
    else:
        report = await rig.twilio.call_status(url, sid="CA1", to=ALICE, from_=FROM, status=state)
    assert (report.answer, report.text) == (200, '{"status": "ignored"}')
    assert sum(rig.vendor(channel.value, s) for s in VENDOR_STATUSES[channel]) == 0


async def test_a_replayed_call_back_counts_once(rig: Rig) -> None:
    """Twilio may post a call-back twice; a report is counted by its SID and status once."""
    url = rig.url(rig.token(Channel.SMS))
    first = await rig.twilio.message_status(
        url, sid="SM" + "3" * 32, to=ALICE, from_=FROM, status="undelivered"
    )
    again = await rig.twilio.replay(first)
    assert again.params == first.params
    assert (again.answer, again.text) == (200, '{"status": "duplicate"}')
    assert rig.vendor("sms", "undelivered") == 1
    assert metric(rig.service, CARRIER, {"channel": "sms", "person": "alice"}) == 1


async def test_the_signature_is_required(rig: Rig) -> None:
    """Missing, wrong, or made for another URL (another token): 403, and nothing counted."""
    token = rig.token()
    params = {"CallSid": "CA1", "CallStatus": "no-answer", "To": ALICE, "From": FROM}
    unsigned = await rig.twilio.call_back(rig.url(token), params, sign=False)
    assert unsigned[0] == 403
    wrong = FakeTwilio(auth_token="someone-elses-token")
    forged = await wrong.call_back(rig.url(token), params)
    assert forged[0] == 403
    # A signature Twilio made for another receipt's URL, sent with this receipt's token.
    other = RequestValidator(TEST_AUTH_TOKEN).compute_signature(rig.url(rig.token(level=3)), params)
    for signature in (other, "not base64 at all"):
        headers = {"X-Twilio-Signature": signature}
        async with rig.client.post(f"{STATUS}?token={token}", data=params, headers=headers) as r:
            assert r.status == 403, await r.text()
    assert rig.vendor("call", "no-answer") == 0


@pytest.mark.parametrize(
    ("token", "answer"),
    [
        ("", 403),
        ("not-a-token", 403),
        ("abc.def", 403),
        ("é.é", 403),
    ],
)
async def test_a_token_we_did_not_sign_is_refused(rig: Rig, token: str, answer: int) -> None:
    report = await rig.twilio.call_status(
        rig.url(token), sid="CA1", to=ALICE, from_=FROM, status="no-answer"
    )
    assert report.answer == answer, report.text
    assert rig.vendor("call", "no-answer") == 0


async def test_an_expired_or_misused_token_is_refused(rig: Rig) -> None:
    expired = rig.token(expires=int(NOW.timestamp()) - 1)
    report = await rig.twilio.call_status(
        rig.url(expired), sid="CA1", to=ALICE, from_=FROM, status="no-answer"
    )
    assert report.answer == 410, report.text
    # An email's token (SendGrid's custom_args) is no SMS's or call's.
    email = rig.token(Channel.EMAIL)
    report = await rig.twilio.call_status(
        rig.url(email), sid="CA1", to=ALICE, from_=FROM, status="no-answer"
    )
    assert report.answer == 403, report.text
    # A call's acknowledgement token, even under the same secret, is no receipt token.
    ack = ack_tokens.AckToken(
        group="g",
        level=0,
        severity=Severity.CRITICAL,
        started=0,
        expires=2**40,
        to="alice",
        channel=Channel.CALL,
    )
    report = await rig.twilio.call_status(
        rig.url(ack_tokens.sign(ack, TEST_AUTH_TOKEN)),
        sid="CA1",
        to=ALICE,
        from_=FROM,
        status="no-answer",
    )
    assert report.answer == 403
    assert rig.vendor("call", "no-answer") == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"CallStatus=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"CallStatus=busy", "application/x-www-form-urlencoded; charset=latin-1"),
        (b"CallStatus=busy", "application/x-www-form-urlencoded; charset=bogus"),
        (b'{"CallStatus": "busy"}', "application/json"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ],
)
async def test_odd_bytes_are_a_4xx_never_a_500(rig: Rig, body: bytes, content_type: str) -> None:
    path = f"{STATUS}?token={rig.token()}"
    async with rig.client.post(path, data=body, headers={"Content-Type": content_type}) as r:
        assert r.status == 400, await r.text()
        assert (await r.json())["error"] == "invalid_body"


async def test_a_signed_form_without_a_status_is_400(rig: Rig) -> None:
    status_code, text = await rig.twilio.call_back(rig.url(rig.token()), {"CallSid": "CA1"})
    assert status_code == 400, text


async def test_without_public_url_there_are_no_receipts(rig: Rig) -> None:
    rig.service.settings = dataclasses.replace(rig.service.settings, public_url=None)
    report = await rig.twilio.call_status(
        rig.url(rig.token()), sid="CA1", to=ALICE, from_=FROM, status="busy"
    )
    assert report.answer == 404


async def test_receipts_never_log_a_phone_number(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await rig.twilio.message_status(
            rig.url(rig.token(Channel.SMS)), sid="SM9", to=ALICE, from_=FROM, status="failed"
        )
        await rig.twilio.call_back(rig.url("forged.token"), {"To": ALICE, "CallStatus": "busy"})
    [line] = [r for r in caplog.records if r.getMessage() == "delivery receipt"]
    assert (line.__dict__["to"], line.__dict__["status"]) == ("alice", "failed")
    assert any(r.getMessage() == "delivery report refused" for r in caplog.records)
    for record in caplog.records:
        assert "7700900" not in str(record.__dict__), record.__dict__


# -- SendGrid ---------------------------------------------------------------------------------


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": "alice@example.com",
        "timestamp": int(NOW.timestamp()),
        "event": kind,
        "sg_event_id": f"ev-{kind}-{fields.pop('n', 0)}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "route": "critical",
        "notification_key": "k" * 32,
        **fields,
    }


async def test_sendgrid_events_are_counted(rig: Rig) -> None:
    batch = [
        event("processed"),
        event("delivered"),
        event("deferred"),
        event("bounce", type="bounce", reason="550 5.1.1 no such user"),
        event("bounce", type="blocked", n=1),
        event("dropped", reason="Bounced Address"),
        event("spamreport"),
        event("open"),
        event("group_resubscribe"),
        event("teleported"),
        # Another sender's mail on the same account: not the router's to count.
        {k: v for k, v in event("bounce", n=2).items() if k != "notification_key"},
    ]
    answer = await rig.sendgrid.post_events(f"{rig.base}{EVENTS}", batch)
    assert answer[0] == 200, answer
    counted = {s: rig.vendor("email", s) for s in VENDOR_STATUSES[Channel.EMAIL]}
    assert counted == {
        "delivered": 1,
        "deferred": 1,
        "bounce": 1,
        "blocked": 1,
        "dropped": 1,
        "spamreport": 1,
        "other": 1,
    }


async def test_a_bounce_is_tied_to_the_person_and_counted_once(rig: Rig) -> None:
    batch = [event("bounce", type="bounce", receipt=rig.token(Channel.EMAIL))]
    url = f"{rig.base}{EVENTS}"
    for _ in range(2):  # SendGrid retries a batch it thinks failed
        assert (await rig.sendgrid.post_events(url, batch))[0] == 200
    assert rig.vendor("email", "bounce") == 1
    assert metric(rig.service, CARRIER, {"channel": "email", "person": "alice"}) == 1


async def test_sendgrid_signature_is_required(rig: Rig) -> None:
    url, batch = f"{rig.base}{EVENTS}", [event("bounce")]
    assert (await rig.sendgrid.post_events(url, batch, sign=False))[0] == 401
    # Signed by another key pair (someone else's SendGrid account).
    assert (await FakeSendGrid().post_events(url, batch))[0] == 403
    # The timestamp is part of what is signed.
    good = rig.sendgrid.sign("1700000000", b"[]")
    assert (await rig.sendgrid.post_events(url, b"[]", timestamp="1700000001", signature=good))[
        0
    ] == 403
    # A body changed after signing.
    body = b'[{"event": "bounce"}]'
    signature = rig.sendgrid.sign("1700000000", body)
    tampered = body.replace(b"bounce", b"bounc3")
    answer = await rig.sendgrid.post_events(
        url, tampered, timestamp="1700000000", signature=signature
    )
    assert answer[0] == 403
    for odd in ("%%%", "bm90IGEgc2lnbmF0dXJl", "é"):
        assert (await rig.sendgrid.post_events(url, batch, signature=odd))[0] == 403
    assert rig.vendor("email", "bounce") == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"\xff\xfe[]", "invalid_body"),
        (b"[{]", "invalid_json"),
        (b'{"event": "bounce"}', "invalid_payload"),
        (b"[1, 2]", "invalid_payload"),
    ],
)
async def test_a_bad_sendgrid_body_is_400(rig: Rig, body: bytes, error: str) -> None:
    """Signed, so it is SendGrid's (or someone with its key): still a 400, never a 500."""
    url = f"{rig.base}{EVENTS}"
    signature = rig.sendgrid.sign("1700000000", body)
    status_code, text = await rig.sendgrid.post_events(
        url, body, timestamp="1700000000", signature=signature
    )
    assert status_code == 400, text
    assert error in text, text


async def test_without_a_public_key_the_event_webhook_is_off(rig: Rig) -> None:
    rig.service.settings = dataclasses.replace(
        rig.service.settings, sendgrid_webhook_public_key=None
    )
    answer = await rig.sendgrid.post_events(f"{rig.base}{EVENTS}", [event("bounce")])
    assert answer[0] == 404


def test_the_public_key_setting_is_checked() -> None:
    key = FakeSendGrid().public_key
    pem = f"-----BEGIN PUBLIC KEY-----\n{key[:40]}\n{key[40:]}\n-----END PUBLIC KEY-----\n"
    for given in (key, pem):
        settings = load_settings({"SENDGRID_WEBHOOK_PUBLIC_KEY": given})
        assert settings.sendgrid_webhook_public_key == key
    ed25519 = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
    for bad in ("not a key", ed25519, "AAAA"):
        with pytest.raises(SettingsError, match="SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA"):
            load_settings({"SENDGRID_WEBHOOK_PUBLIC_KEY": bad})


# -- the token and the vocabulary -------------------------------------------------------------


def test_a_token_round_trips_and_names_no_number() -> None:
    token = tokens.ReceiptToken(
        group="a" * 32,
        spell="2026-03-16T09:12:00+00:00",
        person="alice",
        channel=Channel.CALL,
        level=2,
        attempt=1,
        expires=2_000_000_000,
        page="b" * 40,
        ack="c" * 16,
        slack=("incidents", "team/alerts"),
    )
    text = tokens.sign(token, "secret")
    assert tokens.verify(text, "secret", 0) == token
    assert token.where == f"{'a' * 32}:2026-03-16T09:12:00+00:00"
    assert "7700" not in text
    with pytest.raises(tokens.TokenError) as forged:
        tokens.verify(text, "another secret", 0)
    assert forged.value.reason == "forged"
    with pytest.raises(tokens.TokenError) as expired:
        tokens.verify(text, "secret", 2_000_000_000)
    assert expired.value.reason == "expired"
    # The same signature bytes in another text (padding added) are not the same token.
    with pytest.raises(tokens.TokenError) as respelled:
        tokens.verify(f"{text}=", "secret", 0)
    assert respelled.value.reason == "malformed"


def test_every_status_is_a_metric_label() -> None:
    """Whatever the vendor says, the label is one of the pre-created values."""
    for text in ("completed", "busy", "no-answer", "weird", "", "FAILED"):
        receipt = status.twilio_call(text, "machine_start")
        assert receipt.status in VENDOR_STATUSES[Channel.CALL]
    for text in ("delivered", "undelivered", "read", "weird"):
        assert status.twilio_sms(text, "30003").status in VENDOR_STATUSES[Channel.SMS]
    for text in ("bounce", "dropped", "delivered", "weird"):
        assert status.sendgrid(text).status in VENDOR_STATUSES[Channel.EMAIL]
    assert status.twilio_sms("undelivered", "30003").words == "undelivered (Twilio error 30003)"
    assert status.twilio_sms("failed", "<script>").words == "failed"
    assert status.twilio_call("no-answer").unanswered
    assert status.twilio_call("completed", "machine_end_silence").unanswered
    assert not status.twilio_call("completed", "human").unanswered
    assert not status.twilio_call("canceled").unanswered


# -- several replicas -------------------------------------------------------------------------


async def test_two_replicas_place_one_second_call(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """Two replicas share the store. The same report reaching both is counted once; two reports
    of one unanswered call (a "busy" and a "no-answer") start a timer on each, and the claim
    in the store lets only one of them call again."""
    shared = MemoryStore()
    config = shipped_config()
    config = dataclasses.replace(
        config, delivery=dataclasses.replace(config.delivery, call_retry_after=0.05)
    )
    settings = Settings(
        twilio_account_sid=TEST_ACCOUNT_SID,
        twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from=FROM,
        twilio_api_url=fake_twilio.url,
        public_url="http://127.0.0.1:9",  # where the second call's report would go
    )
    fake_twilio.send_status_callbacks = False
    replicas = []
    for _ in range(2):
        service = Service(
            config, settings, Metrics(CollectorRegistry()), {}, False, state_store=shared
        )
        service.session = session
        replicas.append(service)
    record = {"twiml": "<Response><Say>Disk full.</Say></Response>", "sms": "CRIT DiskFull"}
    await replicas[0].state.remember_page("page-1", json.dumps(record), 60)
    token = tokens.ReceiptToken(
        group="g" * 32,
        spell="s",
        person="alice",
        channel=Channel.CALL,
        level=0,
        attempt=1,
        expires=2**40,
        page="page-1",
    )
    no_answer, busy = status.twilio_call("no-answer"), status.twilio_call("busy")
    outcomes = [await receipts.handle(r, token, no_answer, "CA1") for r in replicas]
    assert outcomes == ["counted", "duplicate"]
    assert await receipts.handle(replicas[1], token, busy, "CA1") == "counted"
    await asyncio.gather(*(t for r in replicas for t in list(r.tasks)))

    [call] = fake_twilio.requests_to(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json")
    assert call.form()["Twiml"] == record["twiml"]
    assert call.form()["To"] == ALICE
    called = [
        metric(r, "oncall_router_call_retries_total", {"outcome": "called"}) for r in replicas
    ]
    assert sorted(called) == [0, 1]
