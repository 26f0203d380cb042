"""Overload: a bounded number of webhooks in flight; the rest answered 503 at once, never late,
and delivered on the sender's retry, each page once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from receiver.metrics import Metrics
from receiver.web.admission import START_SHARE, Admission, Shed
from receiver.web.app import BIG_BODY
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.fakes.base import Slow
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import fixture, metric
from tests.test_delivery import ALICE, Stack, make_stack

DEADLINE = 2.0
SLOW = 1.0  # each SMS answer: one webhook holds its slot about this long


async def test_a_slot_is_waited_for_a_quarter_of_the_deadline_then_shed() -> None:
    admission = Admission(1, Metrics(CollectorRegistry()))
    async with admission.slot(DEADLINE) as waited:
        assert waited < 0.1
        started = time.monotonic()
        with pytest.raises(Shed, match=r"no slot free within 0\.5s"):
            async with admission.slot(DEADLINE):
                pass
        assert DEADLINE * START_SHARE <= time.monotonic() - started < DEADLINE / 2


async def test_a_full_queue_sheds_at_once() -> None:
    metrics = Metrics(CollectorRegistry())
    admission = Admission(1, metrics)
    async with admission.slot(DEADLINE):
        waiter = asyncio.ensure_future(admission.slot(DEADLINE).__aenter__())
        await asyncio.sleep(0.05)
        assert metrics.registry.get_sample_value("oncall_router_webhooks_queued") == 1
        started = time.monotonic()
        with pytest.raises(Shed, match="1 webhooks already waiting"):
            async with admission.slot(DEADLINE):
                pass
        assert time.monotonic() - started < 0.1
    await asyncio.sleep(0)  # the slot released: the waiter gets it
    await waiter
    assert metrics.registry.get_sample_value("oncall_router_webhooks_in_flight") == 1


@pytest.fixture
async def busy(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> AsyncIterator[Stack]:
    fake_twilio.always(Slow(SLOW))
    async for s in make_stack(
        fake_slack, fake_twilio, fake_sendgrid, deadline=DEADLINE, max_in_flight=1
    ):
        yield s


def group(n: int) -> bytes:
    body = fixture("alertmanager-firing-critical.json")
    body["groupKey"] = f'{{}}:{{alertname="Burst{n}"}}'
    for alert in body["alerts"]:
        alert["labels"]["alertname"] = f"Burst{n}"
        alert["fingerprint"] = f"{alert['fingerprint']}-{n}"
    return json.dumps(body).encode()


async def test_a_burst_is_shed_at_once_and_delivered_on_retry(busy: Stack) -> None:
    """Four new groups at once with room for one: the others wait a quarter of the deadline
    and are answered 503 (never after the deadline); the health checks answer meanwhile; the
    retries deliver every group, each SMS once."""
    bodies = [group(n) for n in range(4)]

    async def post(body: bytes) -> tuple[int, float, dict[str, object]]:
        started = time.monotonic()
        status, answer = await busy.post("", body)
        return status, time.monotonic() - started, answer

    posts = [asyncio.ensure_future(post(b)) for b in bodies]
    await asyncio.sleep(0.1)
    started = time.monotonic()
    health = await busy.client.get("/-/healthy")
    ready = await busy.client.get("/-/ready")
    assert (health.status, ready.status) == (200, 200)
    assert time.monotonic() - started < 0.5
    answers = await asyncio.gather(*posts)

    shed = [a for a in answers if a[0] == 503 and a[2].get("error") == "overloaded"]
    assert len(shed) == 3, answers
    assert all(seconds < DEADLINE for _, seconds, _ in answers), answers
    assert all(seconds < DEADLINE * START_SHARE + 0.4 for _, seconds, _ in shed), shed
    labels = {"source": "alertmanager", "outcome": "shed"}
    assert metric(busy.service, "oncall_router_webhooks_received_total", labels) == 3

    # Alertmanager's retries, one at a time as the slot frees: every group delivered.
    for n, (status, _, _) in enumerate(answers):
        if status != 200:
            status, answer = await busy.post("", bodies[n])
            assert status == 200, answer
    messages = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"
    to_alice = [r.form()["Body"] for r in busy.twilio.requests_to(messages)]
    assert len([b for b in to_alice if "Burst" in b]) == 4, to_alice
    assert all(r.form()["To"] == ALICE for r in busy.twilio.requests_to(messages))


async def test_a_storm_body_is_parsed_off_the_loop_and_delivered(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> None:
    """A 2,000-alert group (over BIG_BODY): parsed and planned in a thread, paged once, and the
    health check is answered while it is worked on."""
    body = fixture("alertmanager-firing-critical.json")
    template = body["alerts"][0]
    body["alerts"] = [
        {
            **template,
            "fingerprint": f"storm{n:05d}",
            "labels": {**template["labels"], "pod": f"p{n}"},
        }
        for n in range(2000)
    ]
    raw = json.dumps(body).encode()
    assert len(raw) > BIG_BODY
    async for stack in make_stack(fake_slack, fake_twilio, fake_sendgrid, max_body_bytes=8 << 20):
        webhook = asyncio.ensure_future(stack.post("", raw))
        health = await stack.client.get("/-/healthy")
        assert health.status == 200
        status, answer = await webhook
        assert status == 200, answer
        assert answer["alerts"] == 2000
        messages = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"
        assert [r.form()["To"] for r in stack.twilio.requests_to(messages)] == [ALICE]
