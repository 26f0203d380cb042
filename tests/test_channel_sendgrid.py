"""Email through the loopback fake SendGrid: the message, every verdict, the limits, no leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    CustomArg,
    From,
    Header,
    HtmlContent,
    Mail,
    PlainTextContent,
    Subject,
    To,
)
from sendgrid.helpers.mail.exceptions import ApiKeyIncludedException

from receiver.channels.base import DeliveryError
from receiver.channels.sendgrid import (
    KEY_HEADER,
    SENDER_NAME,
    TEXT_LIMIT,
    EmailSender,
    classify,
    html_notice,
    mail_body,
    thread_headers,
)
from receiver.config.settings import Settings
from receiver.delivery.fanout import Outcome
from receiver.messages import templates
from receiver.model import Alert, AlertGroup, Channel, Link, Notification, Recipient, Source, Status
from receiver.routing.plan import plan
from receiver.sources.alertmanager import parse
from receiver.web.logs import JsonFormatter, Redactor
from tests.fakes import Behaviour, Drop, FakeSendGrid, Hang, RateLimited, Reject, ServerError
from tests.helpers import NOW, deliver, fixture, send, shipped_config

CONFIG = shipped_config()
TZ = CONFIG.timezone
SENDER = "alerts@example.com"


# -- building blocks ------------------------------------------------------------------------------


def planned(group: AlertGroup) -> Notification:
    """The first email the shipped routing file plans for `group`."""
    return next(
        n
        for n in plan(CONFIG, group, NOW, remembered=False).notifications
        if n.channel is Channel.EMAIL
    )


def critical() -> Notification:
    return planned(parse(fixture("alertmanager-firing-critical.json")))


def storm(count: int = 5000) -> Notification:
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
            links=(Link("Runbook", f"https://runbooks.example.com/disk?node={i}"),),
        )
        for i in range(count)
    )
    return planned(AlertGroup(Source.ALERTMANAGER, "{}:storm", Status.FIRING, alerts))


def settings_for(fake: FakeSendGrid, key: str | None = None) -> Settings:
    return Settings(
        sendgrid_api_key=key or fake.api_key, sendgrid_from=SENDER, sendgrid_api_url=fake.url
    )


# -- the message ----------------------------------------------------------------------------------


async def test_email_is_one_mail_send(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    n = critical()
    await send(EmailSender(session, settings_for(fake_sendgrid), TZ), n)

    (request,) = fake_sendgrid.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.header("authorization") == f"Bearer {fake_sendgrid.api_key}"
    assert request.header("content-type") == "application/json"
    mail = request.json()
    assert mail["personalizations"] == [{"to": [{"email": n.recipient.address}]}]
    assert mail["from"] == {"email": SENDER, "name": "oncall-router"}
    assert mail["subject"] == templates.email_subject(n, TZ)
    # The same for every message of the group, so mail clients thread them.
    assert mail["subject"] == "[CRITICAL] HighErrorRate payments-api"
    assert [c["type"] for c in mail["content"]] == ["text/plain", "text/html"]
    assert mail["content"][0]["value"] == templates.email_text(n, TZ)
    assert mail["content"][1]["value"] == html_notice(n, TZ)
    assert mail["categories"] == ["oncall-router", "critical"]
    assert mail["custom_args"] == {"notification_key": n.key, "route": "critical"}
    assert mail["headers"] == {KEY_HEADER: n.key, **thread_headers(n, SENDER)}


def library_body(n: Notification, sender: str) -> dict[str, Any]:
    """The body as the sendgrid library's `Mail` helper builds it: the format the issue asks for."""
    text = templates.email_text(n, TZ)
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    mail = Mail(
        from_email=From(sender, SENDER_NAME),
        to_emails=To(n.recipient.address),
        subject=Subject(templates.email_subject(n, TZ)),
        plain_text_content=PlainTextContent(text),
        html_content=HtmlContent(html_notice(n, TZ)),
    )
    for category in reversed(("oncall-router", n.severity.value)):
        mail.add_category(Category(category))  # add_category prepends
    mail.add_custom_arg(CustomArg("notification_key", n.key))
    mail.add_custom_arg(CustomArg("route", n.route))
    headers = {KEY_HEADER: n.key, **thread_headers(n, sender)}
    for name, value in reversed(headers.items()):
        mail.add_header(Header(name, value))  # add_header prepends too
    body: dict[str, Any] = mail.get()
    return body


def _variants() -> list[Notification]:
    n = critical()
    mixed = parse(fixture("alertmanager-mixed-truncated.json"))  # routed to Slack only
    return [
        n,
        planned(parse(fixture("alertmanager-resolved.json"))),
        dataclasses.replace(n, group=mixed, alerts=mixed.alerts),
        storm(50),
        dataclasses.replace(
            n,
            templates={
                "email_subject": 'Ünïcødé & <b>{{ summary }}</b>\n"quoted"',
                "email_text": "Line 1 & <2>\n\ttab \u2028 \U0001f525 {{ where }}",
            },
        ),
        dataclasses.replace(n, recipient=Recipient("alice", "Alice Archer <alice@example.com>")),
        dataclasses.replace(n, templates={"email_text": "x" * (TEXT_LIMIT + 10)}),
    ]


@pytest.mark.parametrize("index", range(7))
def test_body_is_what_the_mail_helper_builds(index: int) -> None:
    n = _variants()[index]
    ours, theirs = mail_body(n, TZ, SENDER), library_body(n, SENDER)
    # Same keys in the same order, so the same bytes on the wire.
    assert json.dumps(ours) == json.dumps(theirs)


def test_text_that_starts_like_an_api_key_is_refused_like_the_helper_does() -> None:
    n = dataclasses.replace(critical(), templates={"email_text": "SG.abc.def is leaked"})
    with pytest.raises(ApiKeyIncludedException):
        library_body(n, SENDER)
    with pytest.raises(ApiKeyIncludedException):
        mail_body(n, TZ, SENDER)


def test_html_is_an_incident_notice() -> None:
    n = critical()
    page = html_notice(n, TZ)
    assert page.startswith("<!DOCTYPE html>")
    assert "background:#b42318" in page  # the critical banner
    assert "CRITICAL · FIRING" in page
    assert "payments-api 5xx error rate above 5%" in page
    for label in ("What", "Where", "Severity", "Started", "Alerts", "Paged", "Next", "Links"):
        assert f">{label}</th>" in page
    assert "2026-03-16 09:12 GMT, firing for 6m" in page
    assert '<a href="https://runbooks.example.com/payments/high-error-rate"' in page
    # The generator URL's query string is escaped inside the attribute.
    assert "&amp;g0.tab=1" in page


def test_html_escapes_everything() -> None:
    n = critical()
    evil = dataclasses.replace(
        n.alerts[0],
        labels={**n.alerts[0].labels, "alertname": "<img src=x onerror=alert(1)>"},
        annotations={"summary": '<script>alert("x")</script> & co', "description": "a > b"},
        links=(Link('Run"book', "javascript:alert(1)"), Link("<i>", 'https://x.example/"><b>')),
    )
    page = html_notice(dataclasses.replace(n, alerts=(evil,)), TZ)
    for raw in ("<script", "<img", "<i>", "<b>", 'href="javascript'):
        assert raw not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    # Only well-formed http(s) URLs are links; anything else is not offered at all.
    assert "javascript" not in page
    assert "Run&quot;book" not in page
    assert 'href="https://x.example/%22%3E%3Cb%3E"' in page  # %-encoded (escape.web_url)


def test_resolved_notice_is_green() -> None:
    resolved = planned(parse(fixture("alertmanager-resolved.json")))
    page = html_notice(resolved, TZ)
    assert "background:#1a7f37" in page
    assert "CRITICAL · RESOLVED" in page


def test_an_email_text_override_shows_in_both_parts() -> None:
    n = dataclasses.replace(critical(), templates={"email_text": "Call <Carol> now: {{ summary }}"})
    mail = mail_body(n, TZ, SENDER)
    text, page = (c["value"] for c in mail["content"])
    assert text == "Call <Carol> now: payments-api 5xx error rate above 5%"
    assert "Call &lt;Carol&gt; now: payments-api 5xx error rate above 5%" in page


async def test_the_library_client_sends_the_same(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """The fake accepts from us exactly what sendgrid's own (blocking) client sends."""
    n = critical()
    body = mail_body(n, TZ, SENDER)
    client = SendGridAPIClient(api_key=fake_sendgrid.api_key, host=fake_sendgrid.url)
    async with asyncio.timeout(3):
        response: Any = await asyncio.to_thread(client.send, body)
    assert response.status_code == 202
    await send(EmailSender(session, settings_for(fake_sendgrid), TZ), n)

    library, ours = fake_sendgrid.requests
    assert ours.json() == library.json()
    for header in ("authorization", "content-type"):
        assert ours.header(header) == library.header(header)


# -- verdicts, through the Deliverer --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    script: tuple[Behaviour, ...]
    outcome: Outcome
    reason: str
    requests: int


TABLE: Mapping[str, Case] = {
    "202": Case((), Outcome.DELIVERED, "", 1),
    # The fake's reset is int(now) + 2: between 1 and 2 s away.
    "429 then 202": Case((RateLimited(retry_after=2),), Outcome.DELIVERED, "", 2),
    "503 then 202": Case((ServerError(503),), Outcome.DELIVERED, "", 2),
    "500 x3": Case((ServerError(500),) * 3, Outcome.RETRY, "serverError", 3),
    "dropped then 202": Case((Drop(),), Outcome.DELIVERED, "", 2),
    "400": Case((Reject(400),), Outcome.FAILED, "clientError", 1),
    "401": Case((Reject(401),), Outcome.FAILED, "authError", 1),
    "403 unverified sender": Case((Reject(403),), Outcome.FAILED, "authError", 1),
    "413": Case((Reject(413),), Outcome.FAILED, "clientError", 1),
}


@pytest.mark.parametrize("case", TABLE.values(), ids=TABLE.keys())
async def test_vendor_answer_decides_retry(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession, case: Case
) -> None:
    """429, 5xx and dropped connections are retried; 400/401/403/413 fail at once."""
    fake_sendgrid.script(*case.script)
    result = await deliver(EmailSender(session, settings_for(fake_sendgrid), TZ), critical())

    assert (result.outcome, result.reason) == (case.outcome, case.reason), result.detail
    requests = fake_sendgrid.requests
    assert len(requests) == result.attempts == case.requests
    if isinstance(case.script[0] if case.script else None, RateLimited):
        assert requests[1].received_at - requests[0].received_at >= 0.95
    if case.outcome is Outcome.FAILED:
        assert result.detail.startswith("sendgrid 4")  # status and the vendor's message


async def test_rejection_detail_is_the_vendor_message(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    fake_sendgrid.script(Reject(403))
    with pytest.raises(DeliveryError) as raised:
        await send(EmailSender(session, settings_for(fake_sendgrid), TZ), critical())
    detail = raised.value.detail
    assert detail.startswith("sendgrid 403: The from address does not match a verified Sender")
    assert len(detail) <= 200


async def test_an_invalid_sender_fails_without_a_script(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    settings = dataclasses.replace(settings_for(fake_sendgrid), sendgrid_from="not-an-address")
    result = await deliver(EmailSender(session, settings, TZ), critical())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "clientError")
    assert result.detail == (
        "sendgrid 400: The from email does not contain a valid address. (from.email)"
    )


async def test_rate_limit_waits_for_the_reset(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    fake_sendgrid.script(RateLimited(retry_after=2))
    with pytest.raises(DeliveryError) as raised:
        await send(EmailSender(session, settings_for(fake_sendgrid), TZ), critical())
    error = raised.value
    assert (error.reason, error.retryable) == ("rateLimited", True)
    assert error.retry_after is not None
    assert 0.9 < error.retry_after <= 2.0  # reset is int(now) + 2, seen a moment later


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"X-RateLimit-Reset": "1005"}, 5.0),
        ({"X-RateLimit-Reset": "990"}, 0.0),  # already past: clamped
        ({"X-RateLimit-Reset": "soon"}, None),
        ({}, None),
    ],
)
def test_classify_429(headers: dict[str, str], seconds: float | None) -> None:
    error = classify(
        429, headers, b'{"errors":[{"field":null,"message":"too many requests"}]}', now=1000.0
    )
    assert (error.reason, error.retryable, error.retry_after) == ("rateLimited", True, seconds)
    assert error.detail == "sendgrid 429: too many requests"


@pytest.mark.parametrize(
    ("status", "body", "reason", "retryable", "detail"),
    [
        (502, b"<html>Bad Gateway</html>", "serverError", True, "sendgrid 502: no error message"),
        (400, b'{"errors": "odd"}', "clientError", False, "sendgrid 400: no error message"),
        (401, b"", "authError", False, "sendgrid 401: no error message"),
        (302, b"", "other", False, "sendgrid 302: no error message"),
    ],
)
def test_classify_odd_answers(
    status: int, body: bytes, reason: str, retryable: bool, detail: str
) -> None:
    error = classify(status, {}, body)
    assert (error.reason, error.retryable, error.detail) == (reason, retryable, detail)


async def test_a_hung_vendor_meets_the_deadline(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    fake_sendgrid.always(Hang(5))
    started = time.monotonic()
    result = await deliver(
        EmailSender(session, settings_for(fake_sendgrid), TZ), critical(), deadline=1.0
    )
    # Answered at the deadline; the request that went out is never sent a second time (the
    # vendor may have it: a second would page twice).
    assert (result.outcome, result.reason) == (Outcome.RETRY, "stillSending")
    assert time.monotonic() - started < 1.5
    assert len(fake_sendgrid.requests) == 1


async def test_wrong_key_fails_permanently(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(fake_sendgrid, key="SG.not-the-key")
    result = await deliver(EmailSender(session, settings, TZ), critical())
    assert (result.outcome, result.reason, result.attempts) == (Outcome.FAILED, "authError", 1)
    assert result.detail == (
        "sendgrid 401: The provided authorization grant is invalid, expired, or revoked"
    )


async def test_missing_settings_fail_without_a_request(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    settings = dataclasses.replace(settings_for(fake_sendgrid), sendgrid_api_key=None)
    result = await deliver(EmailSender(session, settings, TZ), critical())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "authError")
    assert "SENDGRID_API_KEY" in result.detail
    assert fake_sendgrid.requests == []


# -- limits ---------------------------------------------------------------------------------------


async def test_a_storm_is_one_bounded_email(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    n = storm()
    assert len(n.alerts) == 5000
    await send(EmailSender(session, settings_for(fake_sendgrid), TZ), n)

    (request,) = fake_sendgrid.requests
    assert len(request.body) < 40_000
    text, page = (c["value"] for c in request.json()["content"])
    assert any(
        line.startswith("Alerts: ") and line.endswith(" 5000 firing") for line in text.splitlines()
    )
    assert text.endswith("... and 4990 more")
    assert "... and 4990 more" in page
    assert page.count('nowrap">firing<br>') == 10


async def test_an_endless_override_is_cut(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """A route's `email_text` override has no bound of its own; the request still has one."""
    novel = "{% for i in range(30000) %}{{ summary }} & more; {% endfor %}"  # ~1.4 M characters
    n = dataclasses.replace(critical(), templates={"email_text": novel})
    await send(EmailSender(session, settings_for(fake_sendgrid), TZ), n)
    (request,) = fake_sendgrid.requests
    text, page = (c["value"] for c in request.json()["content"])
    assert len(text) == 100_000
    assert html.escape(text[:1000]) in page  # HTML clients show the override too
    assert len(request.body) < 1024 * 1024  # below aiohttp's "large body" warning, too


# -- secrets --------------------------------------------------------------------------------------


async def test_no_failure_leaks_the_api_key(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "SG.wrong-api-key-4242"
    secrets = {fake_sendgrid.api_key, wrong}
    good, bad = settings_for(fake_sendgrid), settings_for(fake_sendgrid, key=wrong)
    n = critical()
    failures: list[tuple[Settings, tuple[Behaviour, ...]]] = [
        (good, (ServerError(500),)),
        (good, (RateLimited(retry_after=0),)),
        *((good, (Reject(status),)) for status in (400, 401, 403, 413)),
        (good, (Drop(),)),
        (bad, ()),
    ]
    texts: list[str] = []
    for settings, script in failures:
        fake_sendgrid.reset()
        fake_sendgrid.script(*script)
        with pytest.raises(DeliveryError) as raised:
            await send(EmailSender(session, settings, TZ), n)
        texts += [str(raised.value), raised.value.detail, repr(raised.value)]
        fake_sendgrid.script(*script * 3)
        result = await deliver(EmailSender(session, settings, TZ), n, deadline=0.5)
        assert result.outcome is not Outcome.DELIVERED
        texts.append(result.detail)
    fake_sendgrid.reset()
    fake_sendgrid.script(Hang(5))
    result = await deliver(EmailSender(session, good, TZ), n, deadline=0.3)
    texts.append(result.detail)

    formatter = JsonFormatter(Redactor())  # no redaction: what would reach the log as is
    texts += [caplog.text, *(formatter.format(record) for record in caplog.records)]
    assert any("delivery failed" in text for text in texts)
    leaks = [(secret, text) for text in texts for secret in secrets if secret in text]
    assert leaks == []
