"""SMS and calls through the loopback fake Twilio: the wire, every verdict, the limits, no leaks."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import Gather, VoiceResponse

from receiver.channels import twilio_voice
from receiver.channels.base import DeliveryError, retry_after
from receiver.channels.twilio_api import classify, form_body
from receiver.channels.twilio_sms import SmsSender
from receiver.channels.twilio_voice import GATHER_TIMEOUT, MAX_TWIML, PROMPT, CallSender, twiml
from receiver.config.settings import Settings
from receiver.delivery.fanout import Outcome
from receiver.messages import templates
from receiver.model import AckRef, Alert, AlertGroup, Channel, Notification, Source, Status
from receiver.routing.plan import plan
from receiver.sources.alertmanager import parse
from receiver.web.logs import JsonFormatter, Redactor
from tests.fakes import Behaviour, Drop, FakeTwilio, Hang, RateLimited, Reject, ServerError
from tests.fakes.twilio import num_segments
from tests.helpers import NOW, deliver, fixture, send, shipped_config

CONFIG = shipped_config()
TZ = CONFIG.timezone
FROM = "+15005550006"
RESOURCE = {Channel.SMS: "Messages.json", Channel.CALL: "Calls.json"}


# -- building blocks ------------------------------------------------------------------------------


def planned(group: AlertGroup, channel: Channel) -> Notification:
    """The first notification on `channel` that the shipped routing file plans for `group`."""
    return next(
        n for n in plan(CONFIG, group, NOW, remembered=False).notifications if n.channel is channel
    )


def critical(channel: Channel) -> Notification:
    return planned(parse(fixture("alertmanager-firing-critical.json")), channel)


def storm(channel: Channel, count: int = 5000) -> Notification:
    """One group of `count` firing critical alerts, as one notification."""
    alerts = tuple(
        Alert(
            source=Source.ALERTMANAGER,
            status=Status.FIRING,
            labels={
                "alertname": f"DiskFull{i % 7}",
                "severity": "critical",
                "service": "storage",
                "instance": f"10.0.{i // 256}.{i % 256}:9100",
            },
            annotations={"summary": f"disk {i} is full", "description": f"/var on node {i}"},
            starts_at=NOW - timedelta(minutes=5, seconds=i),
            fingerprint=f"{i:016x}",
        )
        for i in range(count)
    )
    return planned(AlertGroup(Source.ALERTMANAGER, "{}:storm", Status.FIRING, alerts), channel)


def settings_for(fake: FakeTwilio, token: str | None = None) -> Settings:
    return Settings(
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=token or fake.auth_token,
        twilio_from=FROM,
        twilio_api_url=fake.url,
    )


def sender_for(
    channel: Channel, session: aiohttp.ClientSession, settings: Settings
) -> SmsSender | CallSender:
    cls = SmsSender if channel is Channel.SMS else CallSender
    return cls(session, settings, TZ)


# -- the wire -------------------------------------------------------------------------------------


async def test_sms_is_one_form_post(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """To, From and Body as a form, Basic auth, to the account's Messages resource."""
    n = critical(Channel.SMS)
    await send(SmsSender(session, settings_for(fake_twilio), TZ), n)

    (request,) = fake_twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert request.form() == {
        "To": n.recipient.address,
        "From": FROM,
        "Body": templates.sms_text(n, TZ),
    }
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    credentials = f"{fake_twilio.account_sid}:{fake_twilio.auth_token}".encode()
    assert request.header("authorization") == "Basic " + base64.b64encode(credentials).decode()


async def test_critical_sms_fits_one_segment(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    n = critical(Channel.SMS)
    await send(SmsSender(session, settings_for(fake_twilio), TZ), n)
    body = fake_twilio.requests[0].form()["Body"]
    assert body.startswith("CRIT HighErrorRate @ payments-api prod-eu-1, 2 firing for 6m: ")
    assert len(body) <= 160
    assert num_segments(body) == 1


async def test_call_speaks_inline_twiml(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    n = critical(Channel.CALL)
    await send(CallSender(session, settings_for(fake_twilio), TZ), n)

    (request,) = fake_twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls.json"
    form = request.form()
    # It rings 30 s (delivery.call_timeout), not Twilio's 60, before voicemail can answer.
    assert form == {"To": n.recipient.address, "From": FROM, "Twiml": twiml(n, TZ), "Timeout": "30"}
    assert "Critical alert: High error rate, on payments api, in prod eu 1" in form["Twiml"]


# twilio-python 9.13 passes auth=aiohttp.BasicAuth(...), deprecated in aiohttp 3.14.
@pytest.mark.filterwarnings(
    "ignore:(BasicAuth|The 'auth' parameter) is deprecated:DeprecationWarning"
)
async def test_the_wire_matches_the_twilio_library(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """What the fake accepts from us is exactly what the real client sends for the same page."""
    sms, call = critical(Channel.SMS), critical(Channel.CALL)
    http = AsyncTwilioHttpClient()  # opens an aiohttp session: only inside a running loop
    try:
        client: Any = Client(fake_twilio.account_sid, fake_twilio.auth_token, http_client=http)
        client.api.base_url = fake_twilio.url
        async with asyncio.timeout(3):
            await client.messages.create_async(
                to=sms.recipient.address, from_=FROM, body=templates.sms_text(sms, TZ)
            )
            await client.calls.create_async(
                to=call.recipient.address, from_=FROM, twiml=twiml(call, TZ), timeout=30
            )
    finally:
        await http.close()
    settings = settings_for(fake_twilio)
    await send(SmsSender(session, settings, TZ), sms)
    await send(CallSender(session, settings, TZ), call)

    library_sms, library_call, our_sms, our_call = fake_twilio.requests
    for library, ours in ((library_sms, our_sms), (library_call, our_call)):
        assert ours.path == library.path
        assert ours.form() == library.form()
        for header in ("authorization", "content-type"):
            assert ours.header(header) == library.header(header)


async def test_unencodable_text_still_pages(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """A lone surrogate ("\\ud800", valid JSON) is replaced at parse time; the page still goes."""
    payload = fixture("alertmanager-firing-critical.json")
    for alert in payload["alerts"]:
        alert["annotations"]["summary"] = "disk \ud800 full"
    group = parse(payload)
    settings = settings_for(fake_twilio)
    await send(SmsSender(session, settings, TZ), planned(group, Channel.SMS))
    await send(CallSender(session, settings, TZ), planned(group, Channel.CALL))
    sms, call = (r.form() for r in fake_twilio.requests)
    assert "disk ? full" in sms["Body"]
    assert "Disk? full" in call["Twiml"]  # spoken: a mark is not a word
    _twiml_says(call["Twiml"])  # and it is still valid XML


# -- verdicts, through the Deliverer --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    script: tuple[Behaviour, ...]
    outcome: Outcome
    reason: str
    requests: int


TABLE: Mapping[str, Case] = {
    "201": Case((), Outcome.DELIVERED, "", 1),
    "429 Retry-After then 201": Case((RateLimited(retry_after=1),), Outcome.DELIVERED, "", 2),
    "20429 then 201": Case((Reject(20429),), Outcome.DELIVERED, "", 2),
    "code 20429 alone": Case((Reject(20429, status=400),), Outcome.DELIVERED, "", 2),
    "503 then 201": Case((ServerError(503),), Outcome.DELIVERED, "", 2),
    "500 x3": Case((ServerError(500),) * 3, Outcome.RETRY, "serverError", 3),
    "dropped then 201": Case((Drop(),), Outcome.DELIVERED, "", 2),
    "401 20003": Case((Reject(20003),), Outcome.FAILED, "authError", 1),
    "code 20003 alone": Case((Reject(20003, status=400),), Outcome.FAILED, "authError", 1),
    "403 20403": Case((Reject(20403, status=403),), Outcome.FAILED, "authError", 1),
    "404 20404": Case((Reject(20404),), Outcome.FAILED, "clientError", 1),
    **{
        f"400 {code}": Case((Reject(code),), Outcome.FAILED, "clientError", 1)
        for code in (21211, 21217, 21608, 21610, 21612, 21614, 21617)
    },
}


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.CALL], ids=str)
@pytest.mark.parametrize("case", TABLE.values(), ids=TABLE.keys())
async def test_vendor_answer_decides_retry(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession, channel: Channel, case: Case
) -> None:
    """429/20429, 5xx and dropped connections are retried; every other 4xx fails at once."""
    fake_twilio.script(*case.script)
    n = critical(channel)
    result = await deliver(sender_for(channel, session, settings_for(fake_twilio)), n)

    assert (result.outcome, result.reason) == (case.outcome, case.reason), result.detail
    requests = fake_twilio.requests
    assert len(requests) == result.attempts == case.requests
    assert all(r.path.endswith(RESOURCE[channel]) for r in requests)
    if isinstance(case.script[0] if case.script else None, RateLimited):
        assert requests[1].received_at - requests[0].received_at >= 0.95  # Retry-After: 1
    if case.outcome is Outcome.FAILED:
        assert result.detail.startswith("twilio 2")  # vendor code and message


async def test_rejection_detail_is_the_vendor_message(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    n = critical(Channel.SMS)
    fake_twilio.script(Reject(21211))
    result = await deliver(SmsSender(session, settings_for(fake_twilio), TZ), n)
    # The vendor's words, with the number masked: details reach logs and metrics.
    masked = f"{n.recipient.address[:3]}…{n.recipient.address[-4:]}"
    assert result.detail == f"twilio 21211: The 'To' number {masked} is not a valid phone number."


async def test_an_invalid_number_fails_without_a_script(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    """The fake's own validation (not a script): a bad `To` is 21211 / 21217, permanent."""
    settings = settings_for(fake_twilio)
    for channel, code in ((Channel.SMS, 21211), (Channel.CALL, 21217)):
        n = critical(channel)
        n = dataclasses.replace(n, recipient=dataclasses.replace(n.recipient, address="555-0100"))
        result = await deliver(sender_for(channel, session, settings), n)
        assert (result.outcome, result.reason) == (Outcome.FAILED, "clientError")
        assert result.detail.startswith(f"twilio {code}: ")


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.CALL], ids=str)
async def test_a_hung_vendor_meets_the_deadline(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession, channel: Channel
) -> None:
    fake_twilio.always(Hang(5))
    started = time.monotonic()
    result = await deliver(
        sender_for(channel, session, settings_for(fake_twilio)), critical(channel), deadline=1.0
    )
    # Answered at the deadline; the request that went out is never sent a second time (the
    # vendor may have it: a second would page twice).
    assert (result.outcome, result.reason) == (Outcome.RETRY, "stillSending")
    assert time.monotonic() - started < 1.5
    assert len(fake_twilio.requests) == 1


async def test_wrong_credentials_fail_permanently(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(fake_twilio, token="not-the-auth-token")
    result = await deliver(SmsSender(session, settings, TZ), critical(Channel.SMS))
    assert (result.outcome, result.reason, result.attempts) == (Outcome.FAILED, "authError", 1)
    assert result.detail == "twilio 20003: Authenticate"


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.CALL], ids=str)
async def test_missing_settings_fail_without_a_request(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession, channel: Channel
) -> None:
    settings = dataclasses.replace(settings_for(fake_twilio), twilio_from=None)
    result = await deliver(sender_for(channel, session, settings), critical(channel))
    assert (result.outcome, result.reason) == (Outcome.FAILED, "authError")
    assert "TWILIO_FROM" in result.detail
    assert fake_twilio.requests == []


# -- classification details -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "reason", "retryable", "detail"),
    [
        (502, {}, b"<html>Bad Gateway</html>", "serverError", True, "twilio: HTTP 502"),
        (429, {}, b"", "rateLimited", True, "twilio: HTTP 429"),
        (
            400,
            {},
            b'{"type":"https://x/21211","title":"Invalid To","status":400,"code":21211}',
            "clientError",
            False,
            "twilio 21211: Invalid To",
        ),
        (302, {}, b"", "other", False, "twilio: HTTP 302"),
    ],
)
def test_classify_odd_answers(
    status: int, headers: dict[str, str], body: bytes, reason: str, retryable: bool, detail: str
) -> None:
    """Proxies' HTML pages, empty bodies, RFC 9457 bodies and redirects still get a verdict."""
    error = classify(status, headers, body)
    assert (error.reason, error.retryable, error.detail) == (reason, retryable, detail)


def test_detail_is_one_short_line_without_secrets() -> None:
    body = b'{"code": 21211, "message": "token s3cret-token\\n' + b"x" * 500 + b'"}'
    error = classify(400, {}, body, scrub=["s3cret-token"])
    assert len(error.detail) <= 200
    assert "\n" not in error.detail
    assert "s3cret-token" not in error.detail
    assert "[REDACTED]" in error.detail


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 5.0),  # an HTTP-date, 5 s after "now" = 5
        ("Thu, 01 Jan 1970 00:00:01 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_header(value: str, seconds: float | None) -> None:
    assert retry_after({"Retry-After": value} if value else {}, now=5.0) == seconds


# -- limits ---------------------------------------------------------------------------------------


async def test_a_storm_is_one_sms_within_1600(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    n = storm(Channel.SMS)
    assert len(n.alerts) == 5000
    sender = SmsSender(session, settings_for(fake_twilio), TZ)
    await send(sender, n)
    # Even a route override that would write a novel is cut to Twilio's limit.
    novel = "{% for i in range(5000) %}{{ name }} {{ summary }}; {% endfor %}"
    await send(sender, dataclasses.replace(n, templates={"sms": novel}))

    built_in, overridden = (r.form()["Body"] for r in fake_twilio.requests)
    assert "5000 firing" in built_in
    assert len(built_in) <= 1600
    assert len(overridden) == 1600


def _twiml_says(document: str) -> list[str]:
    root = ET.fromstring(document.encode())  # noqa: S314 (our own output, not untrusted input)
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Pause", "Say", "Hangup"]
    assert root[1].attrib == {"length": "1"}
    return [say.text or "" for say in root.iter("Say")]


def test_twiml_says_the_speech_twice() -> None:
    n = critical(Channel.CALL)
    document = twiml(n, TZ)
    assert _twiml_says(document) == [templates.call_speech(n, TZ)] * 2
    assert "http" not in document
    assert len(document) <= MAX_TWIML


def test_twiml_of_a_storm_stays_within_4000() -> None:
    document = twiml(storm(Channel.CALL), TZ)
    first, second = _twiml_says(document)
    assert first == second
    assert "5000 alerts, firing for" in first
    assert "http" not in document
    assert len(document) <= MAX_TWIML


def test_twiml_tames_an_override() -> None:
    """A `call` override with links, markup and control characters still gives a valid call."""
    override = (
        "{% for i in range(2000) %}<b>&</b> {{ link }} \x07{% endfor %}"  # escaping grows it 5x
    )
    n = dataclasses.replace(critical(Channel.CALL), templates={"call": override})
    document = twiml(n, TZ)
    first, second = _twiml_says(document)
    assert first == second
    assert first.startswith("<b>&</b> <b>&</b>")
    assert first.endswith("…")
    assert "http" not in document
    assert MAX_TWIML - 30 < len(document) <= MAX_TWIML  # cut to fit, not cut to nothing


@hypothesis_settings(max_examples=300, deadline=None)
# Field names are ours (To, From, Body, Twiml); the values are where anything can appear.
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True), st.text(st.characters(codec="utf-8"))
    )
)
def test_form_body_is_what_aiohttp_sends_for_a_dict(fields: dict[str, str]) -> None:
    ours, theirs = form_body(fields), aiohttp.FormData(fields)()
    assert ours._value == theirs._value
    assert dict(ours.headers) == dict(theirs.headers)


def library_twiml(speech: str, action: str | None = None) -> str:
    """The script as twilio's VoiceResponse writes it: say, pause 1 s, say again, hang up; with
    an acknowledgement URL, inside a Gather, then the prompt to press 1, then a goodbye."""
    response = VoiceResponse()
    verb: VoiceResponse | Gather = response
    if action is not None:
        verb = Gather(num_digits=1, action=action, method="POST", timeout=GATHER_TIMEOUT)
    verb.say(speech)
    verb.pause(length=1)
    verb.say(speech)
    if action is not None:
        verb.say(PROMPT)
        response.append(verb)
        response.say("Not acknowledged. Goodbye.")
    response.hangup()
    return str(response)


ACK_REF = AckRef("BEYC2", "eyJncm91cCI6IjEifQ.c2lnbmF0dXJl", "https://oncall.example.com/a&b")


def _call_variants() -> list[Notification]:
    n = critical(Channel.CALL)
    overrides = (
        "Tom & Jerry <b>'quoted'</b> \"double\" > 5% ]]> &amp; Ünïcødé 🔥",
        "{% for i in range(2000) %}<b>&</b> {{ link }} \x07{% endfor %}",  # cut to fit
        "",  # an empty verb
    )
    plain = [
        n,
        storm(Channel.CALL),
        *(dataclasses.replace(n, templates={"call": text}) for text in overrides),
    ]
    return plain + [dataclasses.replace(v, ack=ACK_REF) for v in plain]


@pytest.mark.parametrize("index", range(10))
def test_twiml_is_what_voice_response_writes(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    n = _call_variants()[index]
    ours = twiml(n, TZ)
    monkeypatch.setattr(twilio_voice, "_document", library_twiml)
    assert ours == twiml(n, TZ)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text() | st.sampled_from(["@SPEECH@ @ACTION@", "<&>\"'"]), st.booleans())
def test_any_speech_is_escaped_as_voice_response_does(text: str, gather: bool) -> None:
    speech = twilio_voice._speakable(text)  # what twiml() hands to the document
    action = ACK_REF.voice_action if gather else None
    assert twilio_voice._document(speech, action) == library_twiml(speech, action)


async def test_a_storm_call_is_accepted(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    await send(CallSender(session, settings_for(fake_twilio), TZ), storm(Channel.CALL))
    (request,) = fake_twilio.requests
    assert len(request.form()["Twiml"]) <= MAX_TWIML


# -- secrets --------------------------------------------------------------------------------------


async def test_no_failure_leaks_the_auth_token(
    fake_twilio: FakeTwilio, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-auth-token-4242"
    secrets = {fake_twilio.auth_token, wrong}
    secrets |= {
        base64.b64encode(f"{fake_twilio.account_sid}:{token}".encode()).decode()
        for token in (fake_twilio.auth_token, wrong)
    }
    good, bad = settings_for(fake_twilio), settings_for(fake_twilio, token=wrong)
    failures: list[tuple[Settings, tuple[Behaviour, ...]]] = [
        (good, (ServerError(500),)),
        (good, (Reject(20429),)),
        (good, (Reject(21211),)),
        (good, (Reject(20003),)),
        (good, (Drop(),)),
        (bad, ()),
    ]
    texts: list[str] = []
    for channel in (Channel.SMS, Channel.CALL):
        n = critical(channel)
        for settings, script in failures:
            fake_twilio.reset()
            fake_twilio.script(*script)
            with pytest.raises(DeliveryError) as raised:
                await send(sender_for(channel, session, settings), n)
            texts += [str(raised.value), raised.value.detail, repr(raised.value)]
            fake_twilio.script(*script * 3)
            result = await deliver(sender_for(channel, session, settings), n, deadline=0.5)
            assert result.outcome is not Outcome.DELIVERED
            texts.append(result.detail)
        fake_twilio.reset()
        fake_twilio.script(Hang(5))
        result = await deliver(sender_for(channel, session, good), n, deadline=0.3)
        texts.append(result.detail)

    formatter = JsonFormatter(Redactor())  # no redaction: what would reach the log as is
    texts += [caplog.text, *(formatter.format(record) for record in caplog.records)]
    assert any("delivery failed" in text for text in texts)  # the logs were captured
    leaks = [(secret, text) for text in texts for secret in secrets if secret in text]
    assert leaks == []
