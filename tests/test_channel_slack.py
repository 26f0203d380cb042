"""Slack through the loopback fake: both endpoints, Block Kit limits, error classification."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import timedelta

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from receiver.channels.base import json_body
from receiver.channels.slack import SlackSender, build_message, silence_url
from receiver.config.settings import Settings
from receiver.config.types import Config, Delivery, SlackDestination
from receiver.delivery.fanout import Deliverer, Outcome
from receiver.metrics import Metrics
from receiver.model import Alert, AlertGroup, Channel, Notification, Source, Status
from receiver.routing.plan import plan
from receiver.sources import alertmanager
from tests.fakes import Drop, FakeSlack, Hang, RateLimited, Reject, ServerError
from tests.fakes.slack import block_kit_error
from tests.helpers import NOW, cut_outstanding, fixture, shipped_config

WEBHOOK_PATH = "/services/T0001/B0001/secretpart0123456789"
BOT_TOKEN = "xoxb-test-token"


def setup(fake: FakeSlack, session: aiohttp.ClientSession) -> tuple[Config, SlackSender]:
    config = shipped_config()
    destinations = {
        "incidents": SlackDestination("incidents", channel="C0INCIDENTS"),
        "alerts": SlackDestination("alerts", webhook_url=fake.webhook_url(WEBHOOK_PATH)),
    }
    config = dataclasses.replace(config, slack=destinations)
    settings = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_api_url=f"{fake.url}/api",
        alertmanager_url="http://am.example:9093",
    )
    return config, SlackSender(session, settings, config.timezone, destinations)


def slack_notification(
    config: Config, name: str = "alertmanager-firing-critical.json"
) -> Notification:
    result = plan(config, alertmanager.parse(fixture(name)), NOW, remembered=False)
    return next(n for n in result.notifications if n.channel is Channel.SLACK)


def deliverer(sender: SlackSender, deadline: float = 3.0) -> Deliverer:
    policy = Delivery(deadline=deadline, attempts=3, rate_limits={})
    return Deliverer({Channel.SLACK: sender}, Metrics(CollectorRegistry()), policy)


async def test_web_api_message(fake_slack: FakeSlack, session: aiohttp.ClientSession) -> None:
    """A critical group goes to chat.postMessage with the bot token and a readable message."""
    config, sender = setup(fake_slack, session)
    n = slack_notification(config)
    await sender.send(n)
    [request] = fake_slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.header("Authorization") == f"Bearer {BOT_TOKEN}"
    body = request.json()
    assert body["channel"] == "C0INCIDENTS"
    assert body["text"].startswith(
        "[FIRING:2] HighErrorRate payments-api in prod-eu-1/payments (critical)"
    )
    header = body["blocks"][0]["text"]["text"]
    assert header == ":rotating_light: Firing: HighErrorRate — critical"
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*Where:*\npayments-api in prod-eu-1/payments" in fields
    assert "*Alerts:*\n2 firing" in fields
    blocks = str(body["blocks"])
    assert "|Runbook>" in blocks
    assert "|View in Alertmanager>" in blocks
    assert "|Silence this group>" in blocks
    assert "Paged level 0: Alice Archer by SMS and call" in blocks
    attachment = body["attachments"][0]
    assert attachment["color"] == "#d00000"
    details = str(attachment["blocks"])
    assert "10.42.3.17:8080" in details
    assert "10.42.5.9:8080" in details


async def test_webhook_message_for_resolved(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A resolved group posts a green resolved message to the incoming webhook."""
    config, sender = setup(fake_slack, session)
    n = slack_notification(config, "alertmanager-resolved.json")
    n = dataclasses.replace(n, recipient=dataclasses.replace(n.recipient, address="alerts"))
    await sender.send(n)
    [request] = fake_slack.requests
    assert request.path == WEBHOOK_PATH
    body = request.json()
    assert body["blocks"][0]["text"]["text"] == (
        ":white_check_mark: Resolved: HighErrorRate — critical"
    )
    assert body["attachments"][0]["color"] == "#2eb67d"


def test_silence_link_prefills_group_labels() -> None:
    """The silence link opens Alertmanager's form filtered to this group's labels."""
    n = slack_notification(shipped_config())
    url = silence_url(n, None)
    assert url is not None
    assert url.startswith("http://alertmanager.monitoring.svc:9093/#/silences/new?filter=")
    assert "alertname%3D%22HighErrorRate%22" in url


def storm(count: int) -> Notification:
    """A group of `count` critical alerts, as in an alert storm."""
    alerts = tuple(
        Alert(
            Source.ALERTMANAGER,
            Status.FIRING,
            {
                "alertname": "PodCrashLooping",
                "severity": "critical",
                "pod": f"api-{i}",
                "namespace": "prod",
            },
            {"summary": f"Pod api-{i} is crash looping " + "x" * 200},
            NOW - timedelta(minutes=i % 60),
            f"{i:016x}",
        )
        for i in range(count)
    )
    group = AlertGroup(
        Source.ALERTMANAGER,
        '{}:{alertname="PodCrashLooping"}',
        Status.FIRING,
        alerts,
        group_labels={"alertname": "PodCrashLooping"},
        external_url="http://am:9093",
    )
    return plan(shipped_config(), group, NOW, remembered=False).notifications[0]


async def test_storm_is_one_message_within_limits(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """5,000 alerts make one Slack message within Block Kit limits, saying how many are hidden."""
    config, sender = setup(fake_slack, session)
    n = storm(5000)
    assert n.channel is Channel.SLACK
    assert len(n.alerts) == 5000
    message = build_message(n, config.timezone)
    assert block_kit_error(message["blocks"]) is None
    assert block_kit_error(message["attachments"][0]["blocks"]) is None
    assert len(message["blocks"]) + len(message["attachments"][0]["blocks"]) <= 50
    assert "… and 4990 more" in str(message["attachments"][0]["blocks"])
    await sender.send(n)
    assert len(fake_slack.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "outcome", "reason", "requests"),
    [
        (RateLimited(retry_after=1), Outcome.DELIVERED, "", 2),
        (ServerError(500), Outcome.DELIVERED, "", 2),
        (ServerError(503), Outcome.DELIVERED, "", 2),
        (Drop(), Outcome.DELIVERED, "", 2),
        (Reject("channel_not_found"), Outcome.FAILED, "clientError", 1),
        (Reject("is_archived"), Outcome.FAILED, "clientError", 1),
        (Reject("invalid_auth"), Outcome.FAILED, "authError", 1),
        (Reject("msg_too_long"), Outcome.FAILED, "clientError", 1),
    ],
)
async def test_web_api_answers(
    fake_slack: FakeSlack,
    session: aiohttp.ClientSession,
    behaviour: RateLimited | ServerError | Drop | Reject,
    outcome: Outcome,
    reason: str,
    requests: int,
) -> None:
    """Retryable answers are retried (and then succeed); permanent ones are tried once."""
    config, sender = setup(fake_slack, session)
    fake_slack.script(behaviour)
    report = await deliverer(sender).deliver([slack_notification(config)])
    [result] = report.results
    assert (result.outcome, result.reason) == (outcome, reason)
    assert len(fake_slack.requests) == requests
    if isinstance(behaviour, RateLimited):
        first, second = fake_slack.requests
        assert second.received_at - first.received_at >= 0.95  # Retry-After honoured


@pytest.mark.parametrize(
    ("behaviour", "outcome", "reason"),
    [
        (Reject("no_service"), Outcome.FAILED, "clientError"),
        (Reject("action_prohibited"), Outcome.FAILED, "authError"),
        (Reject("channel_is_archived"), Outcome.FAILED, "clientError"),
        (ServerError(500), Outcome.RETRY, "serverError"),
        (RateLimited(retry_after=5), Outcome.RETRY, "rateLimited"),
    ],
)
async def test_webhook_answers(
    fake_slack: FakeSlack,
    session: aiohttp.ClientSession,
    behaviour: Reject | ServerError | RateLimited,
    outcome: Outcome,
    reason: str,
) -> None:
    """Webhook errors are classified; a Retry-After past the deadline gives up at once (503)."""
    config, sender = setup(fake_slack, session)
    fake_slack.always(behaviour)
    n = slack_notification(config)
    n = dataclasses.replace(n, recipient=dataclasses.replace(n.recipient, address="alerts"))
    [result] = (await deliverer(sender, deadline=2.0).deliver([n])).results
    assert (result.outcome, result.reason) == (outcome, reason)
    if isinstance(behaviour, RateLimited):
        assert len(fake_slack.requests) == 1


async def test_hang_hits_the_deadline(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """A Slack that never answers: answered retryable at the deadline, not sent twice."""
    config, sender = setup(fake_slack, session)
    fake_slack.always(Hang(10))
    slow = deliverer(sender, deadline=0.5)
    [result] = (await slow.deliver([slack_notification(config)])).results
    assert (result.outcome, result.reason) == (Outcome.RETRY, "stillSending")
    assert len(fake_slack.requests) == 1
    await cut_outstanding(slow)


async def test_webhook_url_never_leaks(
    fake_slack: FakeSlack, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The webhook URL is a secret: not in errors or logs, even on connection failures."""
    caplog.set_level(logging.DEBUG)
    config, sender = setup(fake_slack, session)
    n = slack_notification(config)
    n = dataclasses.replace(n, recipient=dataclasses.replace(n.recipient, address="alerts"))
    fake_slack.always(Drop())
    [dropped] = (await deliverer(sender, deadline=1.0).deliver([n])).results
    await fake_slack.close()  # now: connection refused
    [refused] = (await deliverer(sender, deadline=1.0).deliver([n])).results
    for result in (dropped, refused):
        assert result.outcome is Outcome.RETRY
        assert "secretpart" not in result.detail
    assert refused.reason == "connectionError"
    assert "secretpart" not in caplog.text
    assert BOT_TOKEN not in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        {"text": 'Ünïcödé 🚨 <!channel> & "quotes"', "blocks": [{"n": 1, "ok": True, "x": None}]},
        {"text": "a lone \ud800 surrogate"},  # UTF-8 cannot carry it: the json module's escape
    ],
)
def test_vendor_bodies_are_the_same_json_either_way(value: dict[str, object]) -> None:
    body = json_body(value)
    assert json.loads(body) == value
    assert body.decode("utf-8")  # always valid UTF-8 on the wire
