"""Sentry: answered at once; forwarded into Alertmanager, or delivered in a tracked task."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from receiver.channels.registry import vendor_senders
from receiver.config.settings import Settings
from receiver.web.app import create_app
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.helpers import config_for, dry_run_router, fixture_bytes, printed, settings_for

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
