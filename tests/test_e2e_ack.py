"""End to end with the real Alertmanager 0.25: an SMS acknowledgement holds escalation across a
restart of the router, and the resolved notice still reaches Slack and the person paged.

Alertmanager runs the tree `alertmanager-config` prints for the routing file (timers in seconds)
and is also where the acknowledgement lives. The router is stopped and started again on the same
port between the acknowledgement and the next escalation step: its memory (dedupe store
included) is gone, so only Alertmanager can tell the new process that the page was acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from receiver.cli.commands.alertmanager_config import build
from receiver.config.load import load_config
from tests.ack_rig import serve_rig
from tests.alertmanager_process import Alertmanager, post_alert, shorten_timers, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.helpers import free_port, metric
from tests.test_e2e_escalation import GROUP_INTERVAL, REPEAT

PRIMARY, SECONDARY = "+447700900101", "+447700900102"
STEP = 5.0  # the secondary's step, seconds after startsAt
TOKEN = "e2e-ack-bearer-token"
TEST_BUDGET = 45.0


def routing_yaml(now: datetime) -> str:
    handoff = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    return f"""
timezone: UTC
people:
  alice: {{phone: "{PRIMARY}"}}
  bob: {{phone: "{SECONDARY}"}}
rotations:
  primary: {{members: [alice, bob], handoff: "{handoff}", turn: 1w}}
  secondary: {{backs_up: primary}}
slack:
  incidents: {{channel: C0INCIDENTS}}
routes:
  - name: critical
    severity: [critical]
    targets:
      - {{kind: slack, channel: incidents}}
      - {{kind: sms, rotation: primary}}
    escalation:
      - after: {STEP:g}s
        targets: [{{kind: sms, rotation: secondary}}]
  - name: rest
    targets: [{{kind: slack, channel: incidents}}]
delivery:
  deadline: 3s
  attempts: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
acknowledgement:
  expires_after: {{critical: 30m}}
"""


async def test_sms_ack_survives_a_restart_and_resolved_reaches_slack(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_yaml(datetime.now(UTC)))
    config = load_config(routing, {})
    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    t0 = time.monotonic()

    def slack_texts() -> list[str]:
        """Each post and edit of the channel's message (the group's message follows it)."""
        api = fake_slack.requests_to("/api/chat.postMessage") + fake_slack.requests_to(
            "/api/chat.update"
        )
        return [r.json()["text"] for r in api]

    def status() -> str:
        return (
            f"{time.monotonic() - t0:.1f}s in; SMS: {rig.sms(PRIMARY)} / {rig.sms(SECONDARY)}; "
            f"slack: {slack_texts()}; alertmanager log: {alertmanager.log()[-600:]}"
        )

    async with asyncio.timeout(TEST_BUDGET), aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/webhooks/alertmanager"
        am_config = build(config, url, str(token_file))
        shorten_timers(am_config["route"], 1, GROUP_INTERVAL, REPEAT)
        alertmanager.start(am_config)
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            labels = {"alertname": "E2EDiskFull", "severity": "critical", "service": "e2e"}
            started = datetime.now(UTC)
            common = (config, alertmanager, session, fake_slack, fake_twilio, fake_sendgrid)

            async with serve_rig(*common, port=port, receiver_auth_token=TOKEN) as rig:
                await post_alert(session, alertmanager, labels, startsAt=started)
                await until("the primary's page", lambda: bool(rig.sms(PRIMARY)), 6, status)
                code = rig.code(PRIMARY)
                answer = await fake_twilio.reply_sms(
                    f"{rig.url}/webhooks/twilio/sms", PRIMARY, f"ACK {code}"
                )
                assert answer[0] == 200
                assert "Acknowledged until" in answer[1], answer
                assert len(await rig.markers()) == 1
            # Stopped: a fresh process (empty dedupe store) takes the same address.
            async with serve_rig(*common, port=port, receiver_auth_token=TOKEN) as rig:
                # Past the secondary's step and two more re-sends to the new process.
                await asyncio.sleep(max(0.0, STEP - (time.monotonic() - t0)))

                def resends() -> float:
                    labels = {"source": "alertmanager", "outcome": "accepted"}
                    return metric(rig.service, "oncall_router_webhooks_received_total", labels)

                await until("two re-sends after the restart", lambda: resends() >= 2, 15, status)
                assert rig.sms(SECONDARY) == [], status()  # no escalation
                assert len(rig.sms(PRIMARY)) == 1, status()  # and no second page

                await post_alert(
                    session, alertmanager, labels, startsAt=started, endsAt=datetime.now(UTC)
                )
                await until(
                    "the resolved notice in Slack",
                    lambda: any(t.startswith("[RESOLVED]") for t in slack_texts()),
                    REPEAT + GROUP_INTERVAL + 6,
                    status,
                )
                await until(
                    "the primary's resolved SMS", lambda: len(rig.sms(PRIMARY)) == 2, 5, status
                )
                assert rig.sms(PRIMARY)[1].startswith("RESOLVED "), status()
                assert rig.sms(SECONDARY) == [], status()
