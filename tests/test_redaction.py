"""Secrets, phone numbers and email addresses stay out of logs, error details and /metrics, even
when a vendor (or a proxy in front of it) echoes our request back in its error answer."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.channels.base import DETAIL_LIMIT, DeliveryError, short
from receiver.channels.sendgrid import EmailSender
from receiver.channels.slack import SlackSender
from receiver.channels.twilio_api import basic_auth
from receiver.config.settings import Settings
from receiver.config.types import SlackDestination
from receiver.model import Channel, Notification
from receiver.routing.plan import plan
from receiver.sources import alertmanager
from receiver.web.logs import JsonFormatter, Redactor
from tests.fakes import FakeSendGrid, FakeSlack, Reject
from tests.fakes.sendgrid import TEST_API_KEY
from tests.helpers import NOW, ROUTING, fixture, fixture_bytes, shipped_config
from tests.router_process import metric_sum, replica_env, running_replicas

BOT_TOKEN = "xoxb-1234567890-0987654321-BotTokenSecretValue"
WEBHOOK_PATH = "/services/T0ECHO001/B0ECHO0002/EchoWebhookSecret0123456789"
RESPONSE_URL = "https://hooks.slack.com/actions/T0FAKETEAM1/6543210987/Resp-Url_Secret0123456789"
ALICE_PHONE = "+447700900101"
LEGACY_TOKEN = "echo-sentry-legacy-token-0123"


def first_notification(
    channel: Channel, name: str = "alertmanager-firing-critical.json"
) -> Notification:
    """The shipped routing file's first message on `channel` for a fixture."""
    result = plan(shipped_config(), alertmanager.parse(fixture(name)), NOW, remembered=False)
    return next(n for n in result.notifications if n.channel is channel)


# -- the redaction itself -------------------------------------------------------------------------


def test_short_redacts_before_it_cuts() -> None:
    """A secret straddling the detail limit goes whole: no half of it survives the cut."""
    text = "e" * 180 + " " + BOT_TOKEN + " and more"  # the token spans the limit
    assert text.index(BOT_TOKEN) < DETAIL_LIMIT < text.index(BOT_TOKEN) + len(BOT_TOKEN)
    detail = short(text, [BOT_TOKEN])
    assert len(detail) <= DETAIL_LIMIT
    assert "xoxb" not in detail
    assert detail.endswith("[REDACTED] and more")


@pytest.mark.parametrize(
    "echoed",
    [
        f"POST {WEBHOOK_PATH} failed",  # the path alone
        "no_service: EchoWebhookSecret0123456789",  # the token alone
        "upstream said B0ECHO0002 is gone",  # the bot id alone
        "GET %2Fservices%2FT0ECHO001%2FB0ECHO0002%2FEchoWebhookSecret0123456789",  # percent-encoded
        '{"url": "https:\\/\\/hooks.slack.com\\/services\\/T0ECHO001\\/B0ECHO0002\\/Echo"}',
    ],
    ids=["path", "token", "bot-id", "percent-encoded", "json-escaped-cut"],
)
def test_webhook_url_parts_are_redacted_wherever_they_appear(echoed: str) -> None:
    """Each secret part of a Slack webhook URL is redacted as a substring, in any form."""
    redact = Redactor(["https://hooks.slack.com" + WEBHOOK_PATH])
    text = redact(echoed)
    assert "[REDACTED]" in text
    for part in ("EchoWebhookSecret", "B0ECHO0002", "/Echo"):
        assert part not in text.replace("\\/", "/"), text


def test_response_urls_are_redacted_by_their_shape() -> None:
    """A click's response_url is in no list of secrets: its path is recognised and removed."""
    redact = Redactor()
    for text in (
        f"posting to {RESPONSE_URL} failed",
        "cut short: https://hooks.slack.com/actions/T0FAKETEAM1/6543210987/Resp-Url_Sec",
        json.dumps({"url": RESPONSE_URL}).replace("/", "\\/"),
    ):
        redacted = redact(text)
        assert "Resp-Url" not in redacted, redacted
        assert "/actions/[REDACTED]" in redacted, redacted


def test_call_back_tokens_in_query_strings_are_redacted() -> None:
    """The key press's and the receipts' call-back URLs carry a signed token as `?token=`; a
    vendor echoing the URL (Twilio's error bodies do) must not put it in a log line."""
    redact = Redactor()
    for text, kept in (
        (
            "Url https://oncall.example.com/webhooks/twilio/voice?token=eyJh.c2ln-_Z9 is bad",
            "voice?",
        ),
        ("StatusCallback=https%3A%2F%2Fx%2Fwebhooks%2Ftwilio%2Fstatus%3Ftoken%3DabcDEF", "status"),
        ("/webhooks/twilio/status?a=1&token=eyJhbGci.sig%3D%3D&b=2", "&b=2"),
    ):
        redacted = redact(text)
        assert "eyJh" not in redacted, redacted
        assert "abcDEF" not in redacted, redacted
        assert kept in redacted, redacted
    assert redact("the token=field is not a URL") == "the token=field is not a URL"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("The 'To' number +447700900101 is not valid", "The 'To' number +44…0101 is not valid"),
        ("To=%2B447700900101&From=%2B15005550006", "To=%2B44…0101&From=%2B15…0006"),
        ("call +3312345 now", "call +3…45 now"),
        ("bounced: alice@example.com (mailbox full)", "bounced: a…@example.com (mailbox full)"),
        ('{"email": "carol.chen+oncall@mail.example.co.uk"}', '{"email": "c…@mail.example.co.uk"}'),
    ],
)
def test_phone_numbers_and_addresses_are_masked(text: str, masked: str) -> None:
    """E.164-looking numbers and email addresses keep just enough to tell them apart."""
    assert short(text) == masked
    assert Redactor()(text) == masked


def test_plain_text_is_left_alone() -> None:
    """Versions, times, ports and prices are not phone numbers; patterns=False masks nothing."""
    text = "v1.2.3 at 2026-03-16T09:19:00+00:00 on :9095, cost +12.50 ok"
    assert Redactor()(text) == text
    assert Redactor(patterns=False)(ALICE_PHONE) == ALICE_PHONE


def test_json_formatter_redacts_every_field_and_the_traceback() -> None:
    """A secret in an extra field, the message and the exception text: gone from the line."""
    formatter = JsonFormatter(Redactor([BOT_TOKEN, "https://hooks.slack.com" + WEBHOOK_PATH]))
    try:
        _fail(f"boom with {BOT_TOKEN} at {WEBHOOK_PATH}")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            (BOT_TOKEN,),
            sys.exc_info(),
            extra={
                "detail": f"echo EchoWebhookSecret0123456789 to {ALICE_PHONE}",
            },
        )
    line = formatter.format(record)
    json.loads(line)  # still one JSON object
    for leaked in ("BotTokenSecretValue", "EchoWebhookSecret", ALICE_PHONE):
        assert leaked not in line
    assert "+44…0101" in line


def _fail(message: str) -> None:
    raise RuntimeError(message)


# -- where channels build error details -----------------------------------------------------------


async def test_slack_api_error_is_redacted_before_it_is_cut(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A long Slack error quoting the bot token late in its text: no part of the token is kept."""
    settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=f"{fake_slack.url}/api")
    destinations = {"incidents": SlackDestination("incidents", channel="C0INCIDENTS")}
    sender = SlackSender(session, settings, shipped_config().timezone, destinations)
    fake_slack.bot_token = BOT_TOKEN  # the fake checks the token before it answers
    fake_slack.script(Reject("x" * 90 + f" token {BOT_TOKEN} was refused"))
    with pytest.raises(DeliveryError) as raised:
        await sender.send(first_notification(Channel.SLACK))
    assert "xoxb" not in raised.value.detail
    assert "[REDACTED]" in raised.value.detail


async def test_slack_webhook_error_quoting_its_url_is_redacted(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A proxy's error page that quotes the webhook URL: neither the path nor its token is kept."""
    url = fake_slack.webhook_url(WEBHOOK_PATH)
    destinations = {"alerts": SlackDestination("alerts", webhook_url=url)}
    sender = SlackSender(session, Settings(), shipped_config().timezone, destinations)
    n = first_notification(Channel.SLACK)
    n = dataclasses.replace(n, recipient=dataclasses.replace(n.recipient, address="alerts"))
    fake_slack.script(Reject(f"{'z' * 150} no route to {url}", status=404))
    with pytest.raises(DeliveryError) as raised:
        await sender.send(n)
    assert "EchoWebhookSecret" not in raised.value.detail
    assert "B0ECHO0002" not in raised.value.detail


async def test_sendgrid_error_masks_the_address(
    fake_sendgrid: FakeSendGrid, session: aiohttp.ClientSession
) -> None:
    """SendGrid naming the recipient in its error: the detail shows a masked address."""
    settings = Settings(
        sendgrid_api_key=TEST_API_KEY,
        sendgrid_from="alerts@example.com",
        sendgrid_api_url=fake_sendgrid.url,
    )
    sender = EmailSender(session, settings, shipped_config().timezone)
    fake_sendgrid.script(Reject("Does not contain a valid address: carol@example.com"))
    with pytest.raises(DeliveryError) as raised:
        await sender.send(first_notification(Channel.EMAIL))
    assert raised.value.detail == ("sendgrid 400: Does not contain a valid address: c…@example.com")


# -- end to end: a vendor that echoes every request in its error answers -------------------------

SECRETS = Settings(
    receiver_auth_token="echo-receiver-auth-token-0123",
    sentry_client_secret="echo-sentry-client-secret-0123",
    slack_bot_token=BOT_TOKEN,
    slack_signing_secret="echo-slack-signing-secret-0123",
    twilio_account_sid="AC" + "ec40" * 8,
    twilio_auth_token="echo-twilio-auth-token-0123",
    twilio_from="+447700900999",
    sendgrid_api_key="SG.echoKey0123.echoSecret4567",
    sendgrid_from="alerts@example.com",
    public_url="https://oncall.example.com",
    ack_secret="echo-ack-secret-0123456789abcdef",
)


async def echo(request: web.Request) -> web.Response:
    """Every vendor at once, failing with our request in its answer: path, auth header, body."""
    body = (await request.read()).decode(errors="replace")
    echoed = (
        f"{request.method} {request.path_qs} Authorization: "
        f"{request.headers.get('Authorization', '-')} body: {body}"
    )
    path = request.path
    if path.startswith("/slack/api/"):  # Slack Web API: ok:false, permanent
        return web.json_response({"ok": False, "error": f"invalid_arguments {echoed}"})
    if path.startswith("/services/"):  # a proxy before a Slack webhook: 503, retried
        return web.Response(status=503, text=f"upstream unavailable: {echoed}")
    if path.startswith("/2010-04-01/"):  # Twilio: 21211 naming the number, permanent
        to = parse_qs(body).get("To", ["?"])[0]
        message = f"The 'To' number {to} is not a valid phone number. {echoed}"
        return web.json_response({"code": 21211, "message": message, "status": 400}, status=400)
    if path == "/v3/mail/send":  # SendGrid: naming the address, permanent
        to = json.loads(body)["personalizations"][0]["to"][0]["email"]
        error = {"message": f"Invalid recipient {to}. {echoed}", "field": "to"}
        return web.json_response({"errors": [error]}, status=400)
    return web.Response(status=404, text=f"not found: {echoed}")  # Alertmanager's API


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


def fast_routing(tmp_path: Path) -> Path:
    """The shipped routing file with a short delivery policy and no pacing."""
    text = ROUTING.read_text()
    for old, new in (
        ("  deadline: 10s", "  deadline: 2s"),
        ("rate_limits: {slack: 1s, sms: 1s, call: 1s, email: 0s}", "rate_limits: {}"),
        ("background_deadline: 2m", "background_deadline: 3s"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


async def test_echoing_vendors_leak_nothing_into_debug_logs_or_metrics(
    echo_server: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """`serve` at LOG_LEVEL=debug against vendors that echo our requests (paths, Authorization
    headers, bodies) in their errors: no secret or part of one in its logs or /metrics, and the
    phone numbers and addresses in those errors come out masked."""
    webhook_url = echo_server + WEBHOOK_PATH
    settings = dataclasses.replace(
        SECRETS,
        alertmanager_url=echo_server,
        slack_api_url=f"{echo_server}/slack/api",
        twilio_api_url=echo_server,
        sendgrid_api_url=echo_server,
    )
    env = {
        **replica_env(settings, None, log_level="debug"),
        "SLACK_ALERTS_WEBHOOK_URL": webhook_url,
        "SENTRY_LEGACY_TOKEN": LEGACY_TOKEN,
    }
    async with running_replicas(["echo"], fast_routing(tmp_path), env, tmp_path, session) as [
        router
    ]:
        async with session.post(
            f"{router.url}/webhooks/alertmanager",
            data=fixture_bytes("alertmanager-firing-critical.json"),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {SECRETS.receiver_auth_token}",
            },
        ) as response:
            assert response.status == 200  # every failure was permanent
        body = fixture_bytes("sentry-event-alert-triggered.json")
        assert SECRETS.sentry_client_secret is not None
        signature = hmac.new(SECRETS.sentry_client_secret.encode(), body, hashlib.sha256)
        async with session.post(
            f"{router.url}/webhooks/sentry",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Sentry-Hook-Resource": "event_alert",
                "Sentry-Hook-Signature": signature.hexdigest(),
            },
        ) as response:
            assert response.status == 202
        for _ in range(150):  # the 3 s background deadline, then the event's last line
            if "sentry event lost" in router.stderr_path.read_text():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the Sentry event's delivery never ended")
        metrics = await router.metrics(session)
    logs = router.stderr_path.read_text()

    # The echoes did reach the logs (else this test proves nothing), redacted.
    assert "Authorization: Bearer [REDACTED]" in logs  # Slack Web API and SendGrid
    assert "Authorization: Basic [REDACTED]" in logs  # Twilio
    assert "/services/[REDACTED]" in logs  # the webhook's proxy
    assert metric_sum(metrics, "oncall_router_notifications_lost_total") == 2  # webhook, email
    secrets = [
        value
        for value in (
            SECRETS.receiver_auth_token,
            SECRETS.sentry_client_secret,
            SECRETS.slack_bot_token,
            SECRETS.slack_signing_secret,
            SECRETS.twilio_auth_token,
            SECRETS.sendgrid_api_key,
            SECRETS.ack_secret,
        )
        if value
    ]
    assert SECRETS.twilio_account_sid is not None
    assert SECRETS.twilio_auth_token is not None
    secrets += [
        basic_auth(SECRETS.twilio_account_sid, SECRETS.twilio_auth_token).removeprefix("Basic "),
        LEGACY_TOKEN,
        webhook_url,
        WEBHOOK_PATH,
        "EchoWebhookSecret0123456789",
        "B0ECHO0002",
        BOT_TOKEN[:12],  # the head of the bot token, as an early cut would leave it
        "BotTokenSecretValue",  # and its tail
    ]
    for where, text in (("logs", logs), ("metrics", metrics)):
        leaked = [secret for secret in secrets if secret in text]
        assert leaked == [], f"{leaked} in {where}"
        # Numbers and addresses from the vendors' errors: masked, in any encoding.
        assert not re.search(r"447700900\d{3}", text), where
        assert not re.search(r"\b(alice|carol|erin)@example\.com", text), where
    assert re.search(r"The 'To' number \+44…\d{4} is not", logs)  # as Twilio named it
    assert "c…@example.com" in logs  # carol's address, named by SendGrid
