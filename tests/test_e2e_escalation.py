"""End to end with the real Alertmanager 0.25: its re-sends drive the escalation ladder (DESIGN §5).

Alertmanager (Debian's `prometheus-alertmanager`) runs with the tree `alertmanager-config` prints
for the test's routing file, its timers shortened to seconds, and posts to a router served
in-process and wired to the loopback fake Twilio. Nothing else keeps time: each escalation step is
paged only because Alertmanager re-sent the group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from receiver.channels.registry import vendor_senders
from receiver.cli.commands.alertmanager_config import build
from receiver.config.load import load_config
from receiver.metrics import Metrics
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.alertmanager_process import Alertmanager, post_alert, shorten_timers, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import metric, settings_for

PRIMARY, SECONDARY, TECH_LEAD, BYSTANDER = (
    "+447700900101",
    "+447700900102",
    "+447700900103",
    "+447700900104",
)
STEP_1, STEP_2 = 4.0, 8.0  # the ladder below, in seconds since startsAt
GROUP_INTERVAL, REPEAT = 1.0, 2.0
TOKEN = "e2e-bearer-token"
# Wall clock (startsAt, the router's ladder) against monotonic (the fakes' timestamps): allow for
# the two drifting apart by a hair over the test's half minute.
CLOCK_SLACK = 0.05
TEST_BUDGET = 40.0


def routing_yaml(now: datetime) -> str:
    # A handoff a day ago with weekly turns: nobody's shift changes during the test.
    handoff = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    return f"""
timezone: UTC
severity:
  labels: [severity]
  aliases:
    critical: [P0, SEV-1]
people:
  alice: {{phone: "{PRIMARY}"}}
  bob: {{phone: "{SECONDARY}"}}
  carol: {{phone: "{TECH_LEAD}"}}
  dave: {{phone: "{BYSTANDER}"}}
groups:
  tech-lead: [carol]
rotations:
  primary: {{members: [alice, bob], handoff: "{handoff}", turn: 1w}}
  secondary: {{backs_up: primary}}
routes:
  - name: critical
    severity: [critical]
    targets: [{{kind: sms, rotation: primary}}]
    escalation:
      - after: {STEP_1:g}s
        targets: [{{kind: sms, rotation: secondary}}]
      - after: {STEP_2:g}s
        targets: [{{kind: sms, group: tech-lead}}]
  - name: everything-else
    targets: [{{kind: sms, person: dave}}]
delivery:
  deadline: 3s
  attempts: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
"""


async def test_alertmanager_resends_drive_the_ladder(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """Primary paged at once, secondary after 4 s, tech lead after 8 s, each exactly once
    however often Alertmanager re-sends; the resolved notice reaches each of them once."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_yaml(datetime.now(UTC)))
    config = load_config(routing, {})
    settings = dataclasses.replace(
        settings_for(fake_slack, fake_twilio, fake_sendgrid), receiver_auth_token=TOKEN
    )
    # The real clock: the ladder is measured against startsAt as Alertmanager reports it.
    service = Service(config, settings, Metrics(CollectorRegistry()), senders={}, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    arrivals: list[tuple[float, str]] = []  # (monotonic, group status) of each webhook

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/webhooks/alertmanager":
            arrivals.append((time.monotonic(), (await request.json()).get("status", "?")))
        return await handler(request)

    app.middlewares.insert(0, record)

    messages = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"
    t0 = time.monotonic()  # reset when the alert is posted

    def sms(to: str) -> list[float]:
        """Arrival times (monotonic) of the SMS to one number."""
        return [r.received_at for r in fake_twilio.requests_to(messages) if r.form()["To"] == to]

    def bodies(to: str) -> list[str]:
        return [r.form()["Body"] for r in fake_twilio.requests_to(messages) if r.form()["To"] == to]

    def webhooks() -> int:
        labels = {"source": "alertmanager", "outcome": "accepted"}
        return int(metric(service, "oncall_router_webhooks_received_total", labels))

    def status() -> str:
        seen = {to: [round(t - t0, 2) for t in sms(to)] for to in (PRIMARY, SECONDARY, TECH_LEAD)}
        hooks = [f"{t - t0:.2f}:{state}" for t, state in arrivals]
        return f"webhooks at {hooks}; SMS seconds after startsAt: {seen}"

    async with (
        asyncio.timeout(TEST_BUDGET),
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
    ):
        am_config = build(config, str(server.make_url("/webhooks/alertmanager")), str(token_file))
        shorten_timers(am_config["route"], 1, GROUP_INTERVAL, REPEAT)
        alertmanager.start(am_config)
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)

            labels = {"alertname": "E2EDiskFull", "severity": "sev-1", "service": "e2e"}
            started, t0 = datetime.now(UTC), time.monotonic()
            await post_alert(session, alertmanager, labels, startsAt=started)

            await until("the primary's SMS", lambda: bool(sms(PRIMARY)), 5, status)
            assert sms(PRIMARY)[0] - t0 < 3.0, status()  # group_wait 1s: at once

            await until("the secondary's SMS", lambda: bool(sms(SECONDARY)), 12, status)
            # Not before its step; and before the next one, so it was its own re-send.
            assert STEP_1 - CLOCK_SLACK <= sms(SECONDARY)[0] - t0 < STEP_2, status()
            await until("the tech lead's SMS", lambda: bool(sms(TECH_LEAD)), 12, status)
            assert sms(TECH_LEAD)[0] - t0 >= STEP_2 - CLOCK_SLACK, status()

            # More re-sends of the same group page nobody again.
            seen = webhooks()
            await until("3 more re-sends", lambda: webhooks() >= seen + 3, 12, status)
            firing = {to: len(sms(to)) for to in (PRIMARY, SECONDARY, TECH_LEAD, BYSTANDER)}
            assert firing == {PRIMARY: 1, SECONDARY: 1, TECH_LEAD: 1, BYSTANDER: 0}, status()
            # 0.25 honours a 2s repeat_interval: it re-sends on the first group_interval tick
            # after it (every 3s here), which alertmanager-config allows for.
            times = [t for t, state in arrivals if state == "firing"]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(REPEAT <= gap <= REPEAT + GROUP_INTERVAL + 1.5 for gap in gaps), status()

            await post_alert(
                session, alertmanager, labels, startsAt=started, endsAt=datetime.now(UTC)
            )
            paged = (PRIMARY, SECONDARY, TECH_LEAD)
            await until(
                "the resolved notices", lambda: all(len(sms(to)) == 2 for to in paged), 8, status
            )
            # Quiet for longer than a re-send: nobody hears of it twice.
            await asyncio.sleep(REPEAT + GROUP_INTERVAL + 0.5)
            assert {to: len(sms(to)) for to in paged} == dict.fromkeys(paged, 2), status()
            for to in paged:
                assert bodies(to)[1].startswith("RESOLVED "), bodies(to)
            assert not sms(BYSTANDER)
            # One resolved webhook, then Alertmanager forgets the group.
            assert [state for _, state in arrivals][-2:] == ["firing", "resolved"], status()
            refused = {"source": "alertmanager", "outcome": "unauthorized"}
            assert metric(service, "oncall_router_webhooks_received_total", refused) == 0
            print(status())
