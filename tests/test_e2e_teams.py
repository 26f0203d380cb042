"""End to end with the real Alertmanager 0.25 and examples/company.yaml: one word, two teams.

`P1` is critical to ProFile (a P1-P4 scheme) and high to Metabolic-Tracker (P0-P3). Both alerts
go through the tree `alertmanager-config` generates for the company file, each into its team's
subtree, and the router decides each by its team's words: ProFile's primary is phoned at once,
Metabolic-Tracker's primary gets the high page (an SMS) and no call.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from receiver.channels.registry import vendor_senders
from receiver.cli.commands.alertmanager_config import build
from receiver.config.load import load_config
from receiver.metrics import Metrics
from receiver.routing.oncall import on_call
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.alertmanager_process import Alertmanager, post_alert, shorten_timers, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import metric, settings_for

COMPANY = Path(__file__).parent.parent / "examples" / "company.yaml"
TOKEN = "e2e-teams-token"
RESEND = 2.0  # repeat_interval, seconds


async def test_p1_is_phoned_at_once_only_in_the_team_where_it_is_critical(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    config = load_config(COMPANY, {})
    settings = dataclasses.replace(
        settings_for(fake_slack, fake_twilio, fake_sendgrid), receiver_auth_token=TOKEN
    )
    service = Service(config, settings, Metrics(CollectorRegistry()), senders={}, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    receivers: set[str] = set()  # as Alertmanager names them in each webhook

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/webhooks/alertmanager":
            receivers.add((await request.json())["receiver"])
        return await handler(request)

    app.middlewares.insert(0, record)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)

    now = datetime.now(UTC)
    profile, metabolic = config.team_named("profile"), config.team_named("metabolic-tracker")
    assert profile is not None
    assert metabolic is not None
    profile_phone = config.people[on_call(profile, "primary", now)].phone
    metabolic_phone = config.people[on_call(metabolic, "primary", now)].phone
    assert profile_phone != metabolic_phone

    base = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}"

    def sent(resource: str, to: str | None) -> int:
        return sum(1 for r in fake_twilio.requests_to(f"{base}/{resource}") if r.form()["To"] == to)

    def webhooks() -> int:
        labels = {"source": "alertmanager", "outcome": "accepted"}
        return int(metric(service, "oncall_router_webhooks_received_total", labels))

    def status() -> str:
        return (
            f"{webhooks()} webhooks; profile calls {sent('Calls', profile_phone)}, "
            f"metabolic SMS {sent('Messages', metabolic_phone)} calls "
            f"{sent('Calls', metabolic_phone)}; Alertmanager log:\n{alertmanager.log()[-2000:]}"
        )

    async with (
        asyncio.timeout(40),
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
    ):
        am_config = build(config, str(server.make_url("/webhooks/alertmanager")), str(token_file))
        shorten_timers(am_config["route"], 1, 1, RESEND)
        alertmanager.start(am_config)
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            for team, name in (("profile", "E2EProfileDown"), ("metabolic-tracker", "E2ESlow")):
                labels = {"alertname": name, "team": team, "severity": "P1", "service": team}
                await post_alert(session, alertmanager, labels, startsAt=now)

            await until("ProFile's call", lambda: sent("Calls", profile_phone) > 0, 8, status)
            await until(
                "Metabolic-Tracker's SMS", lambda: sent("Messages", metabolic_phone) > 0, 8, status
            )
            # Re-sends of both groups change nothing: still no call for the high one.
            seen = webhooks()
            await until("2 more re-sends each", lambda: webhooks() >= seen + 4, 15, status)
            assert sent("Calls", profile_phone) == 1, status()
            assert sent("Calls", metabolic_phone) == 0, status()
            assert sent("Messages", metabolic_phone) == 1, status()
            # Each landed in its team's subtree, under its team's severity.
            assert receivers == {
                "oncall-router/profile/critical",
                "oncall-router/metabolic-tracker/high",
            }
