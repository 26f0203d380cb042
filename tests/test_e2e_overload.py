"""Real Alertmanager 0.25 → an overloaded router: what is shed is delivered on the retry.

Room for 2 webhooks at a time, a slow SMS vendor, and 12 new groups at once: Alertmanager's
flush sends them together, the router answers most of them 503 at once (shed, never after the
deadline), Alertmanager sends those again, and every group reaches its person exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from receiver.channels.registry import vendor_senders
from receiver.config.load import load_config
from receiver.metrics import Metrics
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.alertmanager_process import Alertmanager, no_repeats, post_alert, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.fakes.base import Slow
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import metric, settings_for

GROUPS = tuple(f"Storm{n:02d}" for n in range(12))  # twelve groups (group_by alertname)
PHONE = "+447700900101"
DEADLINE = 2.0
ROUTING = f"""
timezone: UTC
people:
  alice: {{phone: "{PHONE}"}}
routes:
  - name: everything
    targets: [{{kind: sms, person: alice}}]
delivery:
  deadline: {DEADLINE:g}s
  attempts: 2
  max_in_flight: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
"""


async def test_shed_webhooks_are_delivered_on_alertmanagers_retry(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    config = load_config(routing, {})
    settings = settings_for(fake_slack, fake_twilio, fake_sendgrid)
    service = Service(config, settings, Metrics(CollectorRegistry()), senders={}, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    fake_twilio.always(Slow(0.4))  # each webhook holds its slot a while
    messages = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"

    def per_group() -> Counter[str]:
        bodies = [r.form()["Body"] for r in fake_twilio.requests_to(messages)]
        return Counter(name for body in bodies for name in GROUPS if name in body)

    def outcomes(outcome: str) -> float:
        labels = {"source": "alertmanager", "outcome": outcome}
        return metric(service, "oncall_router_webhooks_received_total", labels)

    def status() -> str:
        return (
            f"SMS per group {dict(per_group())}; shed {outcomes('shed')}, "
            f"accepted {outcomes('accepted')}; Alertmanager log:\n{alertmanager.log()[-1500:]}"
        )

    answers: list[tuple[int, float]] = []  # (status, seconds) of each webhook

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        began = time.monotonic()
        response = await handler(request)
        answers.append((response.status, time.monotonic() - began))
        return response

    app.middlewares.insert(0, timed)

    async with (
        asyncio.timeout(60),
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
    ):
        alertmanager.start(
            no_repeats(str(server.make_url("/webhooks/alertmanager")), send_resolved=False)
        )
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            now = datetime.now(UTC)
            started = time.monotonic()
            for name in GROUPS:
                await post_alert(session, alertmanager, {"alertname": name}, startsAt=now)
            await until("every group's SMS", lambda: len(per_group()) == len(GROUPS), 45, status)
            took = time.monotonic() - started
            await asyncio.sleep(2.0)  # later retries, if any, would page twice
            assert set(per_group().values()) == {1}, status()
            assert outcomes("shed") > 0, status()  # the burst was more than 2 at a time
            assert outcomes("accepted") == len(GROUPS), status()
            # Shed at once, never after the deadline; the rest answered within it.
            assert all(seconds < DEADLINE for _, seconds in answers), answers
            print(f"{len(GROUPS)} groups delivered in {took:.1f}s; {len(answers)} webhooks")
