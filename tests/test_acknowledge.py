"""Acknowledging by SMS reply, key press and email link, through the router's real endpoints.

Alertmanager (the real 0.25 binary) holds the acknowledgements; the fake Twilio calls back with
real signatures. See tests/ack_rig.py for the set-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import string
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from receiver.ack import tokens
from receiver.ack.store import AlertmanagerStore, group_id, sms_code
from receiver.model import AlertGroup, Channel, Severity, Source, Status
from receiver.store.base import StoreError
from receiver.store.memory import MemoryStore
from receiver.store.redis import RedisStore
from receiver.web.logs import JsonFormatter, Redactor
from tests.ack_rig import (
    ACK_SECRET,
    ALERTMANAGER_CONFIG,
    ALICE,
    BOB,
    CAROL,
    RECEIVER,
    AckRig,
    ack_config,
    serve_rig,
)
from tests.alertmanager_process import Alertmanager, post_alert
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.helpers import metric
from tests.redis_process import RedisServer

SMS_HOOK = "/webhooks/twilio/sms"


def acks(rig: AckRig, channel: str) -> float:
    return metric(rig.service, "oncall_router_acknowledgements_total", {"channel": channel})


def refusals(rig: AckRig, channel: str, reason: str) -> float:
    labels = {"channel": channel, "reason": reason}
    return metric(rig.service, "oncall_router_acknowledgements_refused_total", labels)


async def test_sms_reply_acknowledges_and_holds_escalation(
    rig: AckRig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.fire(ago=timedelta(minutes=2))
    assert rig.sms(ALICE)
    assert not rig.sms(BOB)
    code = rig.code(ALICE)
    assert len(rig.sms(ALICE)[0]) <= 160, rig.sms(ALICE)[0]  # still one segment

    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, f" ack {code.lower()}.")
    assert status == 200
    assert "<Message>Acknowledged until" in reply, reply
    [marker] = await rig.markers()
    assert marker["createdBy"] == "alice"
    assert marker["status"]["state"] == "active"
    labels = {m["name"]: m["value"] for m in marker["matchers"]}
    assert labels["oncall_router_channel"] == "sms"
    assert acks(rig, "sms") == 1
    observed = metric(
        rig.service, "oncall_router_time_to_acknowledge_seconds_count", {"severity": "critical"}
    )
    assert observed == 1

    # 12 minutes later (bob's step is at 10) the re-send pages nobody: escalation is held.
    rig.clock.offset = timedelta(minutes=12)
    with caplog.at_level(logging.INFO, logger="receiver.app"):
        await rig.fire(ago=timedelta(minutes=2), in_alertmanager=False)
    [handled] = [r for r in caplog.records if r.getMessage() == "webhook handled"]
    assert handled.acknowledged_by == "alice"  # type: ignore[attr-defined]
    assert not rig.sms(BOB)
    assert len(rig.sms(ALICE)) == 1

    # The resolved notice still reaches alice (a plain silence would have swallowed it).
    await rig.fire(ago=timedelta(minutes=2), resolved=True)
    assert rig.sms(ALICE)[-1].startswith("RESOLVED "), rig.sms(ALICE)
    assert not rig.sms(BOB)
    assert not rig.sms(CAROL)


async def test_expired_acknowledgement_pages_the_current_level_again(rig: AckRig) -> None:
    await rig.fire(ago=timedelta(minutes=2))
    await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, "ACK")
    assert acks(rig, "sms") == 1
    # 25 minutes on: still acknowledged (30 min), nothing new.
    rig.clock.offset = timedelta(minutes=25)
    await rig.fire(ago=timedelta(minutes=2), in_alertmanager=False)
    assert not rig.sms(BOB)
    assert not rig.sms(CAROL)
    # 35 minutes on: expired. It held the ladder for 30 of those minutes, so the ladder stands
    # at about 5: the current level (alice) is asked again; bob and carol, whose steps passed
    # only while it held, are not paged all at once.
    rig.clock.offset = timedelta(minutes=35)
    await rig.fire(ago=timedelta(minutes=2), in_alertmanager=False)
    assert len(rig.sms(ALICE)) == 2
    assert not rig.sms(BOB)
    assert not rig.sms(CAROL)
    # Once: the next re-send is a repeat.
    await rig.fire(ago=timedelta(minutes=2), in_alertmanager=False)
    assert len(rig.sms(ALICE)) == 2


async def test_sms_code_typed_with_o_for_zero_and_l_for_one(rig: AckRig) -> None:
    """Crockford's base 32 reads O as 0 and I or L as 1, as a person reading a code may type it."""
    # A service whose group's code has a 0 or a 1 in it (the default one's has neither).
    service = next(
        name for name in (f"db-{i}" for i in range(100)) if set(_code_of(name)) & {"0", "1"}
    )
    await rig.fire(service=service)
    code = rig.code(ALICE)
    assert code == _code_of(service)
    typed = code.lower().replace("0", "o").replace("1", "l")
    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, f"ACK {typed}")
    assert status == 200
    assert "<Message>Acknowledged until" in reply, reply
    assert acks(rig, "sms") == 1


def _code_of(service: str) -> str:
    """The SMS code of the rig's DiskFull group for `service`."""
    group = AlertGroup(
        Source.ALERTMANAGER,
        "",
        Status.FIRING,
        (),
        group_labels={"alertname": "DiskFull", "service": service},
        receiver=RECEIVER,
    )
    return sms_code(group_id(group, Severity.CRITICAL))


async def test_sms_ack_alone_takes_the_most_recent_page(rig: AckRig) -> None:
    await rig.fire("OldAlert", ago=timedelta(minutes=5))
    old = rig.code(ALICE)
    await rig.fire("NewAlert", ago=timedelta(minutes=1))
    new = rig.code(ALICE)
    assert old != new
    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, "Ack")
    assert f"(NewAlert, code {new})" in reply, reply
    assert status == 200, reply
    assert "NewAlert" in reply, reply
    [marker] = await rig.markers()
    assert marker["createdBy"] == "alice"
    # A repeat of the same reply is harmless.
    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, f"ACK {new}")
    assert "Already acknowledged by alice" in reply, reply
    assert len(await rig.markers()) == 1


async def test_sms_ack_ignores_other_receivers_groups(rig: AckRig) -> None:
    """A critical alert another team's receiver handles is none of the router's business, even
    though the routing file would page alice for it: `ACK` finds nothing to acknowledge."""
    labels = {"alertname": "TheirOutage", "service": "db", "severity": "critical", "team": "other"}
    await post_alert(rig.session, rig.am, labels, startsAt=datetime.now(UTC))
    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, "ACK")
    assert status == 200
    assert "no firing page to acknowledge" in reply, reply
    assert await rig.markers() == []


@pytest.mark.parametrize(
    ("sender", "text", "reason", "answer"),
    [
        ("+447700900666", "ACK", "unknownSender", "not on the on-call roster"),
        (ALICE, "hello?", "notAcknowledged", "Reply ACK &lt;code&gt;"),
        (ALICE, "ACK ZZZZZ", "unknownGroup", "no firing alert has code ZZZZZ"),
    ],
)
async def test_sms_replies_that_acknowledge_nothing(
    rig: AckRig, sender: str, text: str, reason: str, answer: str
) -> None:
    await rig.fire()
    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, sender, text)
    assert status == 200, reply
    assert answer in reply, reply
    assert reply.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    assert refusals(rig, "sms", reason) == 1
    assert await rig.markers() == []


async def test_unsigned_or_missigned_sms_is_refused(rig: AckRig) -> None:
    await rig.fire()
    status, _ = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, "ACK", sign=False)
    assert status == 403
    # Signed for another URL (a replay against a different host) fails too.
    params = {"From": ALICE, "Body": "ACK", "To": "+447700900999"}
    validator_url = "https://elsewhere.example.com" + SMS_HOOK
    from twilio.request_validator import RequestValidator

    signature = RequestValidator(rig.twilio.auth_token).compute_signature(validator_url, params)
    async with rig.session.post(
        rig.url + SMS_HOOK, data=params, headers={"X-Twilio-Signature": signature}
    ) as r:
        assert r.status == 403
    assert refusals(rig, "sms", "badSignature") == 2
    assert await rig.markers() == []


async def test_key_press_acknowledges(rig: AckRig) -> None:
    await rig.fire()
    [call] = rig.calls(ALICE)
    twiml = call.form()["Twiml"]
    assert "<Gather" in twiml, twiml
    assert "Press 1 to acknowledge." in twiml, twiml
    status, reply = await rig.twilio.press_key(call, "1")
    assert status == 200
    assert "<Say>Acknowledged until" in reply, reply
    assert "<Hangup />" in reply, reply
    [marker] = await rig.markers()
    assert {m["name"]: m["value"] for m in marker["matchers"]}["oncall_router_channel"] == "call"
    assert acks(rig, "call") == 1


@pytest.mark.parametrize(
    ("digits", "answered_by"), [("2", None), ("", None), ("1", "machine_end_beep")]
)
async def test_key_press_that_is_not_an_acknowledgement(
    rig: AckRig, digits: str, answered_by: str | None
) -> None:
    await rig.fire()
    [call] = rig.calls(ALICE)
    status, reply = await rig.twilio.press_key(call, digits, answered_by=answered_by)
    assert status == 200, reply
    assert "Not acknowledged" in reply, reply
    assert await rig.markers() == []
    assert refusals(rig, "call", "notAcknowledged") == 1


async def test_key_press_with_a_forged_token(rig: AckRig) -> None:
    await rig.fire()
    [call] = rig.calls(ALICE)
    action = re.search(r'action="([^"]+)"', call.form()["Twiml"])
    assert action
    url = action.group(1).replace("&amp;", "&")
    payload, _, sig = url.partition("token=")[2].partition(".")
    # Another group's id in a re-encoded payload, with the old signature: Twilio signs the
    # request (it is a genuine call-back) but our token's HMAC no longer matches.
    forged = url.replace(payload, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"))
    status, reply = await rig.twilio.call_back(forged, {"Digits": "1", "From": "+1", "To": ALICE})
    assert status == 200, reply
    assert "Not acknowledged" in reply, reply
    assert refusals(rig, "call", "forged") + refusals(rig, "call", "malformed") == 1
    assert await rig.markers() == []
    assert sig


def _link(rig: AckRig) -> str:
    [mail] = rig.emails()
    text = next(c["value"] for c in mail["content"] if c["type"] == "text/plain")
    match = re.search(r"Acknowledge \(pauses escalation\): (\S+)", text)
    assert match, text
    html = next(c["value"] for c in mail["content"] if c["type"] == "text/html")
    assert f'href="{match.group(1)}"' in html
    return match.group(1)


async def test_email_link_get_confirms_and_only_post_acknowledges(rig: AckRig) -> None:
    await rig.fire()
    link = _link(rig)
    assert link.startswith(rig.url + "/ack/")
    async with rig.session.get(link) as r:
        page = await r.text()
        assert r.status == 200, page
        assert '<form method="post">' in page, page
        assert r.headers["Cache-Control"] == "no-store"
    assert await rig.markers() == []  # a link scanner's GET acknowledges nothing
    async with rig.session.post(link) as r:
        assert r.status == 200
        assert "Acknowledged" in await r.text()
    [marker] = await rig.markers()
    assert marker["createdBy"] == "alice"
    assert acks(rig, "email") == 1
    async with rig.session.post(link) as r:
        assert r.status == 200
        assert "Already acknowledged" in await r.text()
    assert len(await rig.markers()) == 1


async def test_email_link_forged_or_expired(rig: AckRig) -> None:
    await rig.fire()
    link = _link(rig)
    token = tokens.verify(link.rsplit("/", 1)[1], ACK_SECRET, time.time())
    expired = tokens.sign(dataclasses.replace(token, expires=int(time.time()) - 1), ACK_SECRET)
    other = tokens.sign(dataclasses.replace(token, severity=Severity.LOW), "not-our-secret")
    for text, status, reason in ((expired, 410, "expired"), (other, 403, "forged")):
        for method in ("GET", "POST"):
            async with rig.session.request(method, f"{rig.url}/ack/{text}") as r:
                assert r.status == status, await r.text()
        assert refusals(rig, "email", reason) == 2
    async with rig.session.post(f"{rig.url}/ack/not-a-token") as r:
        assert r.status == 403
    assert await rig.markers() == []


async def test_replayed_link_after_its_acknowledgement_expired(
    rig: AckRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Acknowledgements of critical alerts last two seconds here (one second left too little
    # room for a slow Alertmanager on a loaded machine).
    expires = dict(rig.service.config.acknowledgement.expires_after)
    expires[Severity.CRITICAL] = 2.0
    short = dataclasses.replace(rig.service.config.acknowledgement, expires_after=expires)
    monkeypatch.setattr(
        rig.service, "config", dataclasses.replace(rig.service.config, acknowledgement=short)
    )
    await rig.fire()
    link = _link(rig)
    async with rig.session.post(link) as r:
        assert r.status == 200
        assert "Acknowledged" in await r.text()
    await asyncio.sleep(2.5)
    async with rig.session.post(link) as r:
        page = await r.text()
        assert r.status == 410, page
        assert "used before and has expired" in page, page
    assert refusals(rig, "email", "replayed") == 1
    assert len(await rig.markers()) == 1


@pytest.mark.parametrize(
    "token", ["-LFRX2anhi2mBpSzvUgJaWQ", "LFRX2anhi2mBpSzvUgJa-Q", ""], ids=repr
)
async def test_an_acknowledgements_token_reads_back_as_recorded(rig: AckRig, token: str) -> None:
    """Signatures are base64url, so 1 in 64 starts with "-": stripped once with the "-" that
    stands for no token, such a link went unrecognised when replayed after its expiry and
    acknowledged again (test_replayed_link_after_its_acknowledgement_expired, now and then)."""
    store = rig.service.store
    assert isinstance(store, AlertmanagerStore)
    now = rig.clock()
    until = now + timedelta(minutes=5)
    await store.acknowledge(
        "0123456789abcdef",
        by="alice",
        channel=Channel.EMAIL,
        level=0,
        at=now,
        until=until,
        token=token,
        comment="a test",
    )
    [ack] = await store.acks("0123456789abcdef")
    assert ack.token == token


async def test_alertmanager_down_escalates_and_refuses_acks(rig: AckRig) -> None:
    rig.am.stop()
    answer = await rig.fire(in_alertmanager=False)
    assert answer["status"] == "accepted"
    assert rig.sms(ALICE)  # paging goes on
    assert metric(rig.service, "oncall_router_acknowledgement_lookups_failed_total") == 1
    status, reply = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, "ACK")
    assert status == 200, reply
    assert "Alertmanager is unreachable" in reply, reply
    assert refusals(rig, "sms", "storeUnavailable") == 1


async def test_no_acknowledgement_parts_without_configuration(
    session: aiohttp.ClientSession, rig: AckRig
) -> None:
    rig.service.settings = dataclasses.replace(rig.service.settings, ack_secret=None)
    await rig.fire()
    assert "ACK" not in rig.sms(ALICE)[0]
    assert "<Gather" not in rig.calls(ALICE)[0].form()["Twiml"]
    status, _ = await rig.twilio.reply_sms(rig.url + SMS_HOOK, ALICE, "ACK")
    assert status == 404
    del session


def test_token_round_trip_and_tampering() -> None:
    token = tokens.AckToken("0123456789abcdef", 1, Severity.HIGH, 100, 2_000, "bob", Channel.SMS)
    text = tokens.sign(token, ACK_SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", text)
    assert tokens.verify(text, ACK_SECRET, 1_999) == token
    with pytest.raises(tokens.TokenError) as expired:
        tokens.verify(text, ACK_SECRET, 2_000)
    assert expired.value.reason == "expired"
    with pytest.raises(tokens.TokenError) as wrong_key:
        tokens.verify(text, "another-secret", 0)
    assert wrong_key.value.reason == "forged"
    payload, sig = text.split(".")
    longer = tokens.sign(dataclasses.replace(token, expires=9_999), ACK_SECRET).split(".")[0]
    with pytest.raises(tokens.TokenError) as swapped:
        tokens.verify(f"{longer}.{sig}", ACK_SECRET, 0)
    assert swapped.value.reason == "forged"
    for junk in ("", "abc", "a.b.c", f"{payload}.", f"{payload}.!!", "x" * 2000):
        with pytest.raises(tokens.TokenError):
            tokens.verify(junk, ACK_SECRET, 0)
    # The same signature bytes in another text (the last character's unused low bits flipped,
    # padding added) would pass for a link never used, past the replay guard.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    flipped = alphabet[alphabet.index(sig[-1]) ^ 1]
    for respelled in (f"{payload}.{sig[:-1]}{flipped}", f"{payload}.{sig}=", f"{payload}.{sig}=="):
        with pytest.raises(tokens.TokenError) as other_text:
            tokens.verify(respelled, ACK_SECRET, 0)
        assert other_text.value.reason == "malformed"


_SHORT = re.compile(r" (http://127\.0\.0\.1:\d+/a/([0-9A-Za-z]{10})) Reply ACK [0-9A-Z]{5}$")


def _short_link(rig: AckRig, to: str = ALICE) -> str:
    """The short acknowledgement link in the last SMS to `to`."""
    text = rig.sms(to)[-1]
    match = _SHORT.search(text)
    assert match, text
    return match.group(1)


async def test_email_page_shows_what_it_acknowledges(rig: AckRig) -> None:
    """The alert's name, its group labels and summary, read from Alertmanager while it fires."""
    await rig.fire()
    async with rig.session.get(_link(rig)) as r:
        page = await r.text()
    assert r.status == 200, page
    assert "<p>DiskFull (service=db)</p>" in page, page
    assert re.search(r"<p>disk full[^<]*</p>", page), page
    assert "A critical alert page for alice" in page, page


async def test_sms_short_link_get_confirms_and_only_post_acknowledges(rig: AckRig) -> None:
    """The SMS's `/a/<id>` is the email link's page for the SMS's token: GET shows, POST acks."""
    await rig.fire()
    link = _short_link(rig)
    assert len(rig.sms(ALICE)[-1]) <= 160
    async with rig.session.get(link) as r:
        page = await r.text()
        assert r.status == 200, page
        assert r.headers["Cache-Control"] == "no-store"
    assert '<form method="post">' in page, page
    assert "<p>DiskFull (service=db)</p>" in page, page
    assert await rig.markers() == []  # a link preview's GET acknowledges nothing
    async with rig.session.post(link) as r:
        assert r.status == 200
        assert "Acknowledged" in await r.text()
    [marker] = await rig.markers()
    labels = {m["name"]: m["value"] for m in marker["matchers"]}
    assert (marker["createdBy"], labels["oncall_router_channel"]) == ("alice", "sms")
    assert acks(rig, "sms") == 1
    async with rig.session.post(link) as r:
        assert "Already acknowledged" in await r.text()
    # Held: bob's step (10 min) passes and nobody new is paged.
    rig.clock.offset = timedelta(minutes=12)
    await rig.fire()
    assert not rig.sms(BOB)


async def test_sms_short_link_works_on_another_replica(
    alertmanager: Alertmanager,
    redis_server: RedisServer,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """Replica A sends the SMS; the person's browser reaches replica B, which finds the link in
    the shared Redis and acknowledges."""
    config = ack_config(tmp_path)
    vendors = (fake_slack, fake_twilio, fake_sendgrid)
    async with aiohttp.ClientSession() as session:
        alertmanager.start(ALERTMANAGER_CONFIG)
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            async with (
                serve_rig(
                    config,
                    alertmanager,
                    session,
                    *vendors,
                    state_store=RedisStore(redis_server.url),
                ) as a,
                serve_rig(
                    config,
                    alertmanager,
                    session,
                    *vendors,
                    state_store=RedisStore(redis_server.url),
                ) as b,
            ):
                await a.fire()
                link = _short_link(a)
                on_b = b.url + "/a/" + link.rsplit("/", 1)[1]
                async with session.get(on_b) as r:
                    assert r.status == 200, await r.text()
                async with session.post(on_b) as r:
                    assert "Acknowledged" in await r.text()
                [marker] = await b.markers()
                assert marker["createdBy"] == "alice"
                assert acks(b, "sms") == 1


async def test_sms_short_link_unknown_made_up_or_of_another_channel(rig: AckRig) -> None:
    """An id nobody kept, one shaped wrong, or one whose stored token is not its own: 404 with
    a text that says what to do; nothing is acknowledged."""
    await rig.fire()
    link = _short_link(rig)
    base = link.rsplit("/", 1)[0]
    # A mapping the store holds but the id does not name (say, written by something else).
    await rig.service.state.remember_link("Zz9yX8wV7u", link.rsplit("/", 1)[1], 60)
    for path in ("Zz9yX8wV7u", "Ab3dEf9hIj", "short", "Ab3dEf9hIj0"):
        for method in ("GET", "POST"):
            async with rig.session.request(method, f"{base}/{path}") as r:
                page = await r.text()
                assert r.status == 404, page
                assert "unknown or has expired" in page, page
                assert "Reply ACK with the code" in page, page
    assert refusals(rig, "sms", "unknownLink") == 8
    assert await rig.markers() == []


async def test_sms_short_link_expired(rig: AckRig) -> None:
    """Past `links_valid_for` the store has forgotten the link: the refusal page."""
    await rig.fire()
    link = _short_link(rig)
    # What the store does at the TTL, without waiting 12 hours.
    store = rig.service.state.store
    assert isinstance(store, MemoryStore)
    store._values.clear()
    async with rig.session.get(link) as r:
        assert r.status == 404
        assert "unknown or has expired" in await r.text()


async def test_sms_short_link_while_the_store_is_down(
    rig: AckRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot answer is a 503 "try again" page, never a 404 or a 500."""
    await rig.fire()
    link = _short_link(rig)
    rig.service.state.local = MemoryStore()  # another replica: it never kept the link itself

    async def down(_: str) -> str | None:
        raise StoreError("ConnectionError: redis unreachable")

    monkeypatch.setattr(rig.service.state.store, "link", down)
    for method in ("GET", "POST"):
        async with rig.session.request(method, link) as r:
            page = await r.text()
            assert r.status == 503, page
            assert r.headers["Retry-After"] == "30"
            assert "Try again" in page, page
    assert refusals(rig, "sms", "storeUnavailable") == 2
    assert metric(rig.service, "oncall_router_store_errors_total", {"op": "ack_link"}) == 2
    assert await rig.markers() == []


async def test_acknowledgement_paths_are_redacted_in_logs(
    rig: AckRig, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused request logs its path; the token or link id in it never reaches the log."""
    await rig.fire()
    link = _short_link(rig)
    email = _link(rig)
    with caplog.at_level(logging.WARNING, logger="receiver.app"):
        for url in (link, email):
            async with rig.session.put(url) as r:
                assert r.status == 405
    formatter = JsonFormatter(Redactor())
    lines = [formatter.format(r) for r in caplog.records if r.getMessage() == "request refused"]
    assert len(lines) == 2
    for line, url in zip(lines, (link, email), strict=True):
        secret = url.rsplit("/", 1)[1]
        assert secret not in line, line
        assert '"path": "/' + url.split("/")[-2] + '/[REDACTED]"' in line, line
