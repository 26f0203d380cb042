"""Delivery semantics end to end through the HTTP app and the loopback vendors (DESIGN §4)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from receiver.channels.registry import vendor_senders
from receiver.model import Channel
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, Hang, RateLimited, Reject, ServerError
from tests.fakes.sendgrid import TEST_API_KEY
from tests.fakes.slack import TEST_BOT_TOKEN
from tests.fakes.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.helpers import (
    NOW,
    WEBHOOK_PATH,
    config_for,
    dry_run_router,
    fixture,
    fixture_bytes,
    metric,
    settings_for,
)

ALICE = "+447700900101"
JSON = {"Content-Type": "application/json"}


@dataclass
class Stack:
    client: TestClient[web.Request, web.Application]
    service: Service
    slack: FakeSlack
    twilio: FakeTwilio
    sendgrid: FakeSendGrid

    async def post(self, name: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        data = io.BytesIO(body or fixture_bytes(name))  # BytesIO: big bodies stream
        response = await self.client.post("/webhooks/alertmanager", data=data, headers=JSON)
        return response.status, await response.json()

    def sent(self) -> dict[str, int]:
        """Successful vendor deliveries per channel, from the fakes' own records."""
        return {
            "slack": len(self.slack.requests),
            "sms": len(
                self.twilio.requests_to(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages")
            ),
            "call": len(self.twilio.requests_to(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls")),
            "email": len(self.sendgrid.requests),
        }


async def make_stack(
    slack: FakeSlack, twilio: FakeTwilio, sendgrid: FakeSendGrid, **options: Any
) -> AsyncIterator[Stack]:
    config = config_for(slack, **options)
    settings = settings_for(slack, twilio, sendgrid)
    service, _ = dry_run_router(config, settings, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    async with TestClient(TestServer(app)) as client:
        yield Stack(client, service, slack, twilio, sendgrid)


@pytest.fixture
async def stack(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> AsyncIterator[Stack]:
    async for s in make_stack(fake_slack, fake_twilio, fake_sendgrid):
        yield s


async def test_critical_group_reaches_every_target(stack: Stack) -> None:
    """One critical group: one Slack post, one SMS, one call, two emails; answered 200."""
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 200
    assert {n["outcome"] for n in body["notifications"]} == {"delivered"}
    assert stack.sent() == {"slack": 1, "sms": 1, "call": 1, "email": 2}
    sms = stack.twilio.requests_to(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages")[0].form()
    assert sms["To"] == ALICE
    labels = {"channel": "sms", "severity": "critical"}
    assert metric(stack.service, "oncall_router_notifications_total", labels) == 1
    assert (
        metric(stack.service, "oncall_router_alert_to_page_seconds_count", {"severity": "critical"})
        == 5
    )


async def test_repeat_does_not_repage(stack: Stack) -> None:
    """Alertmanager's repeat of the same group (or an HA twin) pages nobody twice."""
    assert (await stack.post("alertmanager-firing-critical.json"))[0] == 200
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 200
    assert {n["outcome"] for n in body["notifications"]} == {"deduplicated"}
    assert stack.sent() == {"slack": 1, "sms": 1, "call": 1, "email": 2}
    assert (
        metric(
            stack.service, "oncall_router_notifications_deduplicated_total", {"channel": "email"}
        )
        == 2
    )


async def test_ha_pair_posting_at_once_pages_once(stack: Stack) -> None:
    """Two identical webhooks in flight together (an Alertmanager HA pair) send each page once."""
    stack.twilio.script(Hang(0.3))  # keep the first SMS in flight while the twin arrives
    results = await asyncio.gather(
        stack.post("alertmanager-firing-critical.json"),
        stack.post("alertmanager-firing-critical.json"),
    )
    assert [status for status, _ in results] == [200, 200]
    assert stack.sent() == {"slack": 1, "sms": 1, "call": 1, "email": 2}


async def test_resolved_is_a_new_message(stack: Stack) -> None:
    """The resolved notice is not a duplicate of the page: everyone paged hears of it, by SMS
    and email, never by a call. Only level 0 was paged (escalation counts from the first page),
    so only level 0 hears of it."""
    await stack.post("alertmanager-firing-critical.json")
    assert stack.sent() == {"slack": 1, "sms": 1, "call": 1, "email": 2}
    status, _ = await stack.post("alertmanager-resolved.json")
    assert status == 200
    assert stack.sent() == {"slack": 2, "sms": 2, "call": 1, "email": 4}


async def test_503_then_retry_resends_only_failed_targets(stack: Stack) -> None:
    """Twilio down: 503, so Alertmanager retries; the retry sends only what failed before."""
    stack.twilio.always(ServerError(503))
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 503
    outcomes = {(n["channel"], n["outcome"]) for n in body["notifications"]}
    assert outcomes == {
        ("slack", "delivered"),
        ("sms", "retry"),
        ("call", "retry"),
        ("email", "delivered"),
    }
    failed_attempts = stack.sent()["sms"]
    assert failed_attempts == 3  # attempts=3 in this policy

    stack.twilio.always(None)  # Twilio is back; Alertmanager retries the whole group
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 200
    assert stack.sent() == {"slack": 1, "sms": failed_attempts + 1, "call": 4, "email": 2}
    assert (
        metric(
            stack.service,
            "oncall_router_webhooks_received_total",
            {"source": "alertmanager", "outcome": "retry"},
        )
        == 1
    )
    assert (
        metric(
            stack.service,
            "oncall_router_notifications_failed_total",
            {"channel": "sms", "severity": "critical", "reason": "serverError"},
        )
        == 1
    )


async def test_permanent_failure_answers_200(stack: Stack) -> None:
    """A number Twilio will never reach fails for good: logged and counted, answered 200."""
    stack.twilio.script_for(ALICE, Reject(21610), Reject(21610))
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 200
    sms = next(n for n in body["notifications"] if n["channel"] == "sms")
    assert (sms["outcome"], sms["reason"]) == ("failed", "clientError")


async def test_hung_channel_does_not_hold_the_others(stack: Stack) -> None:
    """Slack hanging past the deadline: the SMS, call and emails still go out at once."""
    stack.slack.always(Hang(30))
    started = time.monotonic()
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 503
    by_channel = {n["channel"]: n for n in body["notifications"]}
    assert by_channel["slack"]["reason"] == "stillSending"
    assert {by_channel[c]["outcome"] for c in ("sms", "call", "email")} == {"delivered"}
    # The siblings were sent without waiting for Slack (deadline is 2 s).
    siblings = [*stack.twilio.requests, *stack.sendgrid.requests]
    assert max(r.received_at for r in siblings) - started < 1.0
    assert time.monotonic() - started < 2.0 + 1.0


async def test_storm_is_one_message_per_target(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> None:
    """5,000 alerts in one group: one message per target, each accepted by its vendor."""
    payload = fixture("alertmanager-firing-critical.json")
    template = payload["alerts"][0]
    payload["alerts"] = [
        {
            **template,
            "labels": {**template["labels"], "instance": f"10.0.{i // 250}.{i % 250}:8080"},
            "fingerprint": f"{i:016x}",
        }
        for i in range(5000)
    ]
    async for stack in make_stack(fake_slack, fake_twilio, fake_sendgrid, max_body_bytes=16 << 20):
        status, body = await stack.post("", json.dumps(payload).encode())
        assert status == 200, body
        assert {n["outcome"] for n in body["notifications"]} == {"delivered"}
        assert stack.sent() == {"slack": 1, "sms": 1, "call": 1, "email": 2}
        sms = stack.twilio.requests_to(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages")[0]
        assert len(sms.form()["Body"]) <= 160


async def test_pacing_queues_within_the_deadline(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> None:
    """Two groups for one Slack channel at once: the second waits its turn, nothing dropped."""
    async for s in make_stack(
        fake_slack, fake_twilio, fake_sendgrid, rate_limits={Channel.SLACK: 1.0}, deadline=3.0
    ):
        first = fixture("alertmanager-mixed-truncated.json")
        second = json.loads(json.dumps(first))
        second["groupKey"] = "another-group"
        results = await asyncio.gather(
            s.post("", json.dumps(first).encode()), s.post("", json.dumps(second).encode())
        )
        assert [status for status, _ in results] == [200, 200]
        a, b = sorted(r.received_at for r in s.slack.requests)
        assert b - a >= 0.9
        assert (
            metric(
                s.service, "oncall_router_notifications_rate_limited_total", {"channel": "slack"}
            )
            == 1
        )


async def test_pacing_past_the_deadline_asks_for_a_retry(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> None:
    """A destination booked beyond the deadline answers 503 instead of dropping the message."""
    async for s in make_stack(
        fake_slack, fake_twilio, fake_sendgrid, rate_limits={Channel.SLACK: 10.0}, deadline=1.0
    ):
        first = fixture("alertmanager-mixed-truncated.json")
        second = {**first, "groupKey": "another-group"}
        assert (await s.post("", json.dumps(first).encode()))[0] == 200
        status, body = await s.post("", json.dumps(second).encode())
        assert status == 503
        assert body["notifications"][0]["reason"] == "rateLimited"
        assert len(s.slack.requests) == 1


async def test_retry_after_is_honoured(stack: Stack) -> None:
    """Slack's 429 Retry-After: 1 is waited out before the retry."""
    stack.slack.script(RateLimited(retry_after=1))
    status, _ = await stack.post("alertmanager-firing-critical.json")
    assert status == 200
    first, second = stack.slack.requests
    assert second.received_at - first.received_at >= 0.95
    assert (
        metric(stack.service, "oncall_router_notification_retries_total", {"channel": "slack"}) == 1
    )


async def test_no_secret_in_any_log_line(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """Failures of every kind, at debug level: no token, key or webhook URL in the logs."""
    caplog.set_level(logging.DEBUG)
    stack.slack.always(ServerError(500))
    stack.twilio.always(Reject(20003))
    stack.sendgrid.always(Reject(401))
    await stack.post("alertmanager-firing-critical.json")
    await stack.post("alertmanager-mixed-truncated.json")
    for secret in (TEST_BOT_TOKEN, TEST_AUTH_TOKEN, TEST_API_KEY, WEBHOOK_PATH):
        assert secret not in caplog.text
    assert "delivery failed" in caplog.text


async def test_a_slow_answer_is_never_sent_twice(stack: Stack) -> None:
    """A vendor answering after the webhook's deadline (2 s): the webhook gets 503 at the
    deadline, the request is not sent again, and Alertmanager's retry finds it delivered."""
    messages = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"
    stack.twilio.script_for(ALICE, Hang(3))
    started = time.monotonic()
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 503
    assert time.monotonic() - started < 2.5
    by_channel = {n["channel"]: n for n in body["notifications"] if n["to"] == "alice"}
    assert (by_channel["sms"]["outcome"], by_channel["sms"]["reason"]) == ("retry", "stillSending")
    # The retry waits on the claim of the send still out, and finds it delivered.
    status, body = await stack.post("alertmanager-firing-critical.json")
    assert status == 200
    assert {n["outcome"] for n in body["notifications"]} <= {"delivered", "deduplicated"}
    to_alice = [r for r in stack.twilio.requests_to(messages) if r.form()["To"] == ALICE]
    assert len(to_alice) == 1


async def test_the_slack_message_follows_the_group(stack: Stack) -> None:
    """A Web API channel gets one message per group: later changes edit it (chat.update), and
    an escalation is said in its thread; people are not paged again for the edits."""
    await stack.post("alertmanager-firing-critical.json")
    [top] = stack.slack.history("C0INCIDENTS")
    ts = top["ts"]
    assert "Resolved" not in json.dumps(top)
    pages = stack.sent()["sms"], stack.sent()["call"]

    stack.service.clock = lambda: NOW + timedelta(minutes=16)  # past the secondary's step
    assert (await stack.post("alertmanager-firing-critical.json"))[0] == 200
    [reply] = stack.slack.thread("C0INCIDENTS", ts)
    assert reply["text"].startswith("Escalated to level 1: paging ")

    assert (await stack.post("alertmanager-resolved.json"))[0] == 200
    assert [m["ts"] for m in stack.slack.history("C0INCIDENTS")] == [ts]  # still one message
    assert "Resolved" in json.dumps(stack.slack.message("C0INCIDENTS", ts))
    assert [u["ts"] for u in stack.slack.updates()] == [ts, ts]
    # The secondary was paged once at level 1; the edits paged nobody.
    assert stack.sent()["call"] == pages[1] + 1
