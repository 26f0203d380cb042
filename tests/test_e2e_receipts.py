"""End to end: delivery receipts and the second call, with the real Alertmanager (where
acknowledgements live) and the fake vendors calling the router back as the vendors do.

The router listens on 127.0.0.1, which is also its PUBLIC_URL, so FakeTwilio posts its signed
status call-backs to the `StatusCallback` URLs the router gave it, and FakeSendGrid its signed
events to the router's Event Webhook. Reports are held until the webhook that sent the page has
been answered: a real call rings for `delivery.call_timeout` before Twilio reports it, long
after the group's Slack message is posted. `delivery.call_retry_after` is shortened to 1s. A
test that must show a second call is *not* placed stops the router first: a graceful stop
places any pending second call at once, so after it nothing more can come.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from receiver.config.load import load_config
from receiver.web.receipts import UNANSWERED_PREFIX
from tests.ack_rig import ALERTMANAGER_CONFIG, ALICE, AckRig, serve_rig
from tests.alertmanager_process import Alertmanager, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.helpers import metric

CHANNEL = "C0INCIDENTS"
WITHIN = 10.0  # seconds any one step may take on a busy machine


def routing_yaml(retry_after: str) -> str:
    return f"""
timezone: Europe/London
people:
  alice: {{name: Alice Archer, phone: "{ALICE}", email: alice@example.com}}
  bob: {{phone: "+447700900102"}}
rotations:
  primary: {{members: [alice], handoff: "2026-01-05 09:00", turn: 1w}}
slack:
  incidents: {{channel: {CHANNEL}}}
routes:
  - name: critical
    severity: [critical]
    targets:
      - {{kind: slack, channel: incidents}}
      - {{kind: sms, rotation: primary}}
      - {{kind: call, rotation: primary}}
      - {{kind: email, rotation: primary}}
    escalation:
      - after: 1h
        targets: [{{kind: sms, person: bob}}]
  - name: rest
    targets: [{{kind: slack, channel: incidents}}]
delivery:
  deadline: 3s
  attempts: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
  call_timeout: 20s
  call_retry_after: {retry_after}
"""


@contextlib.asynccontextmanager
async def receipts_rig(
    alertmanager: Alertmanager,
    tmp_path: Path,
    slack: FakeSlack,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    retry_after: str = "1s",
) -> AsyncIterator[AckRig]:
    path = tmp_path / "routing.yaml"
    path.write_text(routing_yaml(retry_after))
    config = load_config(path, {})
    async with aiohttp.ClientSession() as session:
        alertmanager.start(ALERTMANAGER_CONFIG)
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            settings = {"sendgrid_webhook_public_key": sendgrid.public_key}
            async with serve_rig(
                config, alertmanager, session, slack, twilio, sendgrid, settings=settings
            ) as rig:
                sendgrid.event_webhook_url = f"{rig.url}/webhooks/sendgrid/events"
                yield rig


async def page(rig: AckRig, **fire: Any) -> None:
    """Alertmanager's webhook pages alice; the vendors report once it has been answered."""
    rig.twilio.hold_reports()
    rig.sendgrid.hold_reports()
    await rig.fire(**fire)
    rig.twilio.release_reports()
    rig.sendgrid.release_reports()


def thread(slack: FakeSlack) -> list[str]:
    """The replies in the thread of the group's message in #incidents."""
    [message] = slack.history(CHANNEL)
    return [reply["text"] for reply in slack.thread(CHANNEL, message["ts"])]


def counted(rig: AckRig, channel: str, status: str) -> float:
    labels = {"channel": channel, "status": status}
    return metric(rig.service, "oncall_router_vendor_status_total", labels)


async def reported(rig: AckRig, channel: str, status: str, what: str, seen: Any) -> None:
    """Until one report of `status` for `channel` was counted; `seen` says what was, if not."""
    await until(what, lambda: counted(rig, channel, status) == 1, WITHIN, seen)


def retries(rig: AckRig) -> dict[str, float]:
    outcomes = ("called", "texted", "acknowledged", "resolved", "forgotten", "failed")
    return {
        o: metric(rig.service, "oncall_router_call_retries_total", {"outcome": o}) for o in outcomes
    }


def status_of(rig: AckRig, slack: FakeSlack) -> Any:
    started = time.monotonic()

    def status() -> str:
        reports = [(r.status, r.answered_by, r.answer) for r in rig.twilio.reports]
        return (
            f"{time.monotonic() - started:.1f}s in; calls: {len(rig.calls(ALICE))}; "
            f"SMS: {rig.sms(ALICE)}; reports: {reports}; slack: {slack.messages()}; "
            f"retries: {retries(rig)}"
        )

    return status


async def test_a_call_that_rings_out_is_placed_again_then_texted(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """No answer, twice: the second call says the same after call_retry_after, the thread of
    the group's Slack message names each outcome, and an SMS says both calls went unanswered."""
    fake_twilio.call_outcomes(ALICE, "no-answer", "no-answer")
    async with receipts_rig(alertmanager, tmp_path, fake_slack, fake_twilio, fake_sendgrid) as rig:
        status = status_of(rig, fake_slack)
        await page(rig)
        await until("the second call", lambda: len(rig.calls(ALICE)) == 2, WITHIN, status)
        texted = lambda: any(s.startswith(UNANSWERED_PREFIX) for s in rig.sms(ALICE))  # noqa: E731
        await until("the SMS after two unanswered calls", texted, WITHIN, status)

        first, second = (call.form() for call in rig.calls(ALICE))
        assert second["Twiml"] == first["Twiml"]  # the same page, said again
        for call in (first, second):
            assert (call["MachineDetection"], call["Timeout"]) == ("Enable", "20")
            callback = urlsplit(call["StatusCallback"])
            assert f"{callback.scheme}://{callback.netloc}" == rig.url
            assert callback.path == "/webhooks/twilio/status"
            assert set(parse_qs(callback.query)) == {"token"}
            assert ALICE.removeprefix("+") not in call["StatusCallback"]
        page_sms, unanswered = rig.sms(ALICE)
        assert unanswered == UNANSWERED_PREFIX + page_sms

        assert thread(fake_slack) == [
            "Called Alice Archer: no answer; calling again in 1s",
            "Called Alice Archer again: no answer; texting them",
        ]
        assert counted(rig, "call", "no-answer") == 2
        assert retries(rig) | {"called": 1, "texted": 1} == retries(rig)
        assert sum(retries(rig).values()) == 2
        # Rang out is not a wrong number.
        carrier = {"channel": "call", "person": "alice"}
        assert metric(rig.service, "oncall_router_carrier_failures_total", carrier) == 0


async def test_a_call_answered_by_a_machine_is_placed_again(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    fake_twilio.call_outcomes(ALICE, "machine_start", "human")
    async with receipts_rig(alertmanager, tmp_path, fake_slack, fake_twilio, fake_sendgrid) as rig:
        status = status_of(rig, fake_slack)
        await page(rig)
        await reported(rig, "call", "completed", "the second call, answered", status)
        assert len(rig.calls(ALICE)) == 2
        assert counted(rig, "call", "machine") == 1
        assert thread(fake_slack) == [
            "Called Alice Archer: a machine answered (voicemail); calling again in 1s"
        ]
    # Stopped: nothing pending was left to follow up.
    assert len(rig.calls(ALICE)) == 2
    assert not any(s.startswith(UNANSWERED_PREFIX) for s in rig.sms(ALICE))
    assert retries(rig)["called"] == 1
    assert sum(retries(rig).values()) == 1


async def test_an_answered_call_is_not_placed_again(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    async with receipts_rig(alertmanager, tmp_path, fake_slack, fake_twilio, fake_sendgrid) as rig:
        status = status_of(rig, fake_slack)
        await page(rig)
        await reported(rig, "call", "completed", "the call's report", status)
        await reported(rig, "sms", "delivered", "the SMS's report", status)
    # Stopped, so a pending second call would have been placed by now.
    assert len(rig.calls(ALICE)) == 1
    assert sum(retries(rig).values()) == 0
    assert thread(fake_slack) == []  # all went well: nothing to say


@pytest.mark.parametrize("meanwhile", ["acknowledged", "resolved"])
async def test_an_acknowledged_or_resolved_group_is_not_called_again(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    meanwhile: str,
) -> None:
    """The second call is due in an hour; meanwhile alice acknowledges by SMS (or the group
    resolves). Stopping the router brings the second call forward: it checks, and stays off."""
    fake_twilio.call_outcomes(ALICE, "no-answer")
    async with receipts_rig(
        alertmanager, tmp_path, fake_slack, fake_twilio, fake_sendgrid, retry_after="1h"
    ) as rig:
        status = status_of(rig, fake_slack)
        await page(rig)
        await reported(rig, "call", "no-answer", "the call's report", status)
        assert thread(fake_slack) == ["Called Alice Archer: no answer; calling again in 1h"]
        if meanwhile == "acknowledged":
            url = f"{rig.url}/webhooks/twilio/sms"
            answer = await fake_twilio.reply_sms(url, ALICE, f"ACK {rig.code(ALICE)}")
            assert "Acknowledged until" in answer[1], answer
        else:
            await rig.fire(resolved=True)
        assert sum(retries(rig).values()) == 0  # the timer still waits
    assert len(rig.calls(ALICE)) == 1
    assert retries(rig)[meanwhile] == 1
    assert sum(retries(rig).values()) == 1


async def test_a_bounced_email_is_counted_for_the_person_and_said_in_slack(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    fake_sendgrid.email_outcomes("alice@example.com", "bounce")
    fake_twilio.sms_outcomes(ALICE, "undelivered")
    async with receipts_rig(alertmanager, tmp_path, fake_slack, fake_twilio, fake_sendgrid) as rig:
        status = status_of(rig, fake_slack)
        await page(rig)
        await reported(rig, "email", "bounce", "SendGrid's bounce", status)
        await reported(rig, "sms", "undelivered", "Twilio's undelivered", status)
        [mail] = rig.emails()
        assert set(mail["custom_args"]) == {"route", "notification_key", "receipt"}
        assert fake_sendgrid.event_answers == [(200, fake_sendgrid.event_answers[0][1])]
        for channel in ("email", "sms"):
            labels = {"channel": channel, "person": "alice"}
            assert metric(rig.service, "oncall_router_carrier_failures_total", labels) == 1
        assert sorted(thread(fake_slack)) == [
            "Emailed Alice Archer: bounced",
            "Texted Alice Archer: undelivered (Twilio error 30003)",
        ]
