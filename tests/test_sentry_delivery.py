"""Sentry: answered at once; forwarded into Alertmanager, or delivered in a tracked task."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from receiver.channels.registry import vendor_senders
from receiver.config.settings import Settings
from receiver.model import Channel, Severity
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, ServerError
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import config_for, dry_run_router, fixture_bytes, metric, printed, settings_for

SECRET = "sentry-client-secret-0123"


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = fixture_bytes(name)
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "Sentry-Hook-Signature": signature}


class FakeAlertmanager:
    """Just enough of Alertmanager's API v2 to record posted alerts, or to be down."""

    def __init__(self) -> None:
        self.posted: list[Any] = []
        self.status = 200
        self.app = web.Application()
        self.app.router.add_post("/api/v2/alerts", self._alerts)

    async def _alerts(self, request: web.Request) -> web.Response:
        self.posted.append(await request.json())
        return web.Response(status=self.status)


@pytest.fixture
async def alertmanager() -> AsyncIterator[tuple[FakeAlertmanager, str]]:
    fake = FakeAlertmanager()
    async with TestServer(fake.app) as server:
        yield fake, str(server.make_url("")).rstrip("/")


async def client_for(
    settings: Settings, slack: FakeSlack
) -> TestClient[web.Request, web.Application]:
    config = config_for(slack)
    service, _ = dry_run_router(config, settings, dry_run=False)
    app = create_app(service, lambda s: vendor_senders(s, settings, config))
    return TestClient(TestServer(app))


async def test_forwarded_to_alertmanager(
    alertmanager: tuple[FakeAlertmanager, str],
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """With ALERTMANAGER_URL, a metric alert becomes an Alertmanager alert with our severity."""
    fake_am, url = alertmanager
    settings = Settings(
        **{
            **vars(settings_for(fake_slack, fake_twilio, fake_sendgrid)),
            "sentry_client_secret": SECRET,
            "alertmanager_url": url,
        }
    )
    async with await client_for(settings, fake_slack) as client:
        body, headers = signed("sentry-metric-alert-critical.json")
        response = await client.post(
            "/webhooks/sentry",
            data=body,
            headers={**headers, "Sentry-Hook-Resource": "metric_alert"},
        )
        assert response.status == 202
        assert (await response.json())["status"] == "forwarded"
        body, headers = signed("sentry-metric-alert-resolved.json")
        await client.post(
            "/webhooks/sentry",
            data=body,
            headers={**headers, "Sentry-Hook-Resource": "metric_alert"},
        )
    [[firing], [resolved]] = fake_am.posted
    assert firing["labels"]["source"] == "sentry"
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["project"] == "payments-api"
    assert firing["labels"] == resolved["labels"]  # same identity, so Alertmanager resolves it
    assert firing["endsAt"] > resolved["endsAt"]
    assert fake_slack.requests == []  # it comes back through Alertmanager, not directly


async def test_alertmanager_down_falls_back_to_direct_delivery(
    alertmanager: tuple[FakeAlertmanager, str],
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """If Alertmanager refuses the event, the router pages directly: nothing is lost."""
    fake_am, url = alertmanager
    fake_am.status = 500
    settings = Settings(
        **{
            **vars(settings_for(fake_slack, fake_twilio, fake_sendgrid)),
            "sentry_client_secret": SECRET,
            "alertmanager_url": url,
        }
    )
    async with await client_for(settings, fake_slack) as client:
        body, headers = signed("sentry-event-alert-triggered.json")
        response = await client.post(
            "/webhooks/sentry",
            data=body,
            headers={**headers, "Sentry-Hook-Resource": "event_alert"},
        )
        assert response.status == 202
        assert (await response.json())["status"] == "accepted"
        await fake_slack.wait_for_requests(1)
    assert len(fake_am.posted) == 1
    assert json.loads(fake_slack.requests[0].body)["text"].startswith("[FIRING:1]")


async def test_background_delivery_is_drained_on_shutdown() -> None:
    """Without Alertmanager, delivery runs in a task that shutdown waits for."""
    service, out = dry_run_router()
    async with TestClient(TestServer(create_app(service))) as client:
        response = await client.post(
            "/webhooks/sentry",
            data=fixture_bytes("sentry-issue-created.json"),
            headers={"Content-Type": "application/json", "Sentry-Hook-Resource": "issue"},
        )
        assert response.status == 202
    # Leaving the client ran the app's shutdown, which drains the delivery task.
    assert not service.tasks
    assert [line["channel"] for line in printed(out)] == ["slack", "email"]
    await asyncio.sleep(0)


# -- delivered by the router itself: retried until delivery.background_deadline ------------------

LOST = "oncall_router_notifications_lost_total"
SMS_PATH = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"


def lost(service: Service) -> dict[tuple[str, str], float]:
    """Every non-zero series of the lost counter, by (channel, severity)."""
    counts = {
        (c.value, s.value): metric(service, LOST, {"channel": c.value, "severity": s.value})
        for c in Channel
        for s in Severity
    }
    return {labels: value for labels, value in counts.items() if value}


async def deliver_sentry_directly(
    slack: FakeSlack,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    fixture_name: str,
    resource: str,
    background_deadline: float,
    while_running: float | None = None,
) -> Service:
    """Post a signed Sentry event to a router without Alertmanager (webhook policy: 2 s deadline,
    3 attempts) and wait for its background delivery; cancel it after `while_running` s if set."""
    settings = dataclasses.replace(
        settings_for(slack, twilio, sendgrid), sentry_client_secret=SECRET
    )
    config = config_for(slack, background_deadline=background_deadline)
    service, _ = dry_run_router(config, settings, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    async with TestClient(TestServer(app)) as client:
        body, headers = signed(fixture_name)
        response = await client.post(
            "/webhooks/sentry", data=body, headers={**headers, "Sentry-Hook-Resource": resource}
        )
        assert response.status == 202
        assert (await response.json())["status"] == "accepted"
        [task] = service.tasks
        async with asyncio.timeout(background_deadline + 5):
            if while_running is None:
                await task
            else:
                await asyncio.sleep(while_running)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    return service


def sentry_summary(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    """The one line that says how a directly delivered Sentry event ended."""
    [record] = [
        r
        for r in caplog.records
        if r.name == "receiver.app" and r.getMessage().startswith("sentry event")
    ]
    return record


async def test_background_delivery_outlasts_a_vendor_outage(
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twilio and Slack answer 503 for 8 s: a critical Sentry event is retried past the webhook
    attempt cap until they recover, within its 20 s background deadline; nothing is lost."""
    caplog.set_level(logging.INFO, logger="receiver")
    outage = 8.0
    fake_twilio.always(ServerError(503))
    fake_slack.always(ServerError(503))
    loop = asyncio.get_running_loop()
    loop.call_later(outage, fake_twilio.reset)
    loop.call_later(outage, fake_slack.reset)

    service = await deliver_sentry_directly(
        fake_slack,
        fake_twilio,
        fake_sendgrid,
        "sentry-metric-alert-critical.json",
        "metric_alert",
        background_deadline=20.0,
    )

    sms = fake_twilio.requests_to(SMS_PATH)
    assert len(sms) > service.config.delivery.attempts  # no attempt cap in the background
    assert sms[-1].received_at - sms[0].received_at >= outage - 0.5
    assert len(fake_slack.history("C0INCIDENTS")) == 1  # posted once the outage ended
    summary = sentry_summary(caplog)
    assert (summary.levelname, summary.getMessage()) == ("INFO", "sentry event delivered")
    assert summary.__dict__["outcomes"] == ["delivered"] * 5  # slack, sms, call and two emails
    assert lost(service) == {}
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_background_delivery_past_its_deadline_is_logged_and_counted_lost(
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SendGrid answers 503 past the 8 s background deadline: the email is retried until then,
    logged at ERROR and counted lost; the Slack post went out, and the last line says so."""
    caplog.set_level(logging.INFO, logger="receiver")
    fake_sendgrid.always(ServerError(503))

    service = await deliver_sentry_directly(
        fake_slack,
        fake_twilio,
        fake_sendgrid,
        "sentry-event-alert-triggered.json",
        "event_alert",
        background_deadline=8.0,
    )

    assert len(fake_sendgrid.requests) > service.config.delivery.attempts
    assert len(fake_slack.requests) == 1
    assert lost(service) == {("email", "high"): 1.0}
    [line] = [r for r in caplog.records if r.getMessage() == "notification lost"]
    fields = line.__dict__  # the log line's extra fields
    assert line.levelname == "ERROR"
    assert (fields["channel"], fields["to"], fields["reason"]) == ("email", "alice", "serverError")
    assert fields["attempts"] == len(fake_sendgrid.requests)
    summary = sentry_summary(caplog)
    assert (summary.levelname, summary.getMessage()) == ("ERROR", "sentry event partly lost")
    assert summary.__dict__["lost"] == ["email:alice"]
    assert sorted(summary.__dict__["outcomes"]) == ["delivered", "retry"]


async def test_background_delivery_cut_short_by_shutdown_is_counted_lost(
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A background send still being retried when its task is cancelled (shutdown outlasting
    the drain) is logged at ERROR and counted lost, never silently dropped."""
    caplog.set_level(logging.INFO, logger="receiver")
    fake_sendgrid.always(ServerError(503))

    service = await deliver_sentry_directly(
        fake_slack,
        fake_twilio,
        fake_sendgrid,
        "sentry-event-alert-triggered.json",
        "event_alert",
        background_deadline=60.0,
        while_running=1.0,
    )

    assert lost(service) == {("email", "high"): 1.0}
    [line] = [r for r in caplog.records if r.getMessage() == "notification lost"]
    assert (line.levelname, line.__dict__["detail"]) == ("ERROR", "cut short by shutdown")
    summary = sentry_summary(caplog)
    assert summary.levelname == "ERROR"
    assert summary.getMessage() == "sentry event delivery cut short by shutdown"
