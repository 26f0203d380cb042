"""Real Alertmanager 0.25 → router → fake vendors, with a vendor outage in the middle.

While Twilio answers 5xx the router answers 503; Alertmanager retries the whole group, the
router re-sends only what failed, and once Twilio recovers every message arrives exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from receiver.channels.registry import vendor_senders
from receiver.config.load import load_config
from receiver.metrics import Metrics
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.alertmanager_process import Alertmanager, no_repeats, post_alert, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, ServerError
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import metric, settings_for

ALERTS = ("DiskFull", "HighLatency", "QueueBacklog")  # three groups (group_by alertname)
PHONE = "+447700900101"
ROUTING = f"""
timezone: UTC
people:
  alice: {{phone: "{PHONE}", email: alice@example.com}}
slack:
  incidents: {{channel: C0INCIDENTS}}
routes:
  - name: everything
    targets:
      - {{kind: slack, channel: incidents}}
      - {{kind: sms, person: alice}}
      - {{kind: email, person: alice}}
delivery:
  deadline: 2s
  attempts: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
"""


async def test_vendor_outage_loses_nothing_and_duplicates_nothing(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """3 alerts in, Twilio down for 3 s: every group reaches Slack, SMS and email exactly once,
    firing and resolved, and the only repeated requests are the failed SMS attempts."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    config = load_config(routing, {})
    settings = settings_for(fake_slack, fake_twilio, fake_sendgrid)
    service = Service(config, settings, Metrics(CollectorRegistry()), senders={}, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    messages = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"
    fake_twilio.always(ServerError(503))
    recovered_at = float("inf")

    def delivered() -> dict[str, Counter[tuple[str, str]]]:
        """Messages each vendor accepted, by (alertname, firing/resolved)."""
        sms = [
            r.form()["Body"]
            for r in fake_twilio.requests_to(messages)
            if r.received_at >= recovered_at
        ]
        slack = [r.json()["text"] for r in fake_slack.requests]
        # The subject stays the same for the group (mail clients thread it); the state is the
        # text part's first line.
        email = [r.json()["content"][0]["value"].split("\n", 1)[0] for r in fake_sendgrid.requests]
        return {
            name: Counter(_key(t) for t in texts)
            for name, texts in (("sms", sms), ("slack", slack), ("email", email))
        }

    def status() -> str:
        retries = metric(
            service,
            "oncall_router_webhooks_received_total",
            {"source": "alertmanager", "outcome": "retry"},
        )
        return f"delivered={delivered()} 503s={retries}"

    async with (
        asyncio.timeout(60),
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
    ):
        alertmanager.start(
            no_repeats(str(server.make_url("/webhooks/alertmanager")), send_resolved=True)
        )
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            started = datetime.now(UTC)
            for name in ALERTS:
                await post_alert(
                    session,
                    alertmanager,
                    {"alertname": name, "severity": "critical"},
                    startsAt=started,
                )
            # Slack and email go through; SMS fails, so the router answers 503 and AM retries.
            await until(
                "503s for the SMS",
                lambda: (
                    metric(
                        service,
                        "oncall_router_webhooks_received_total",
                        {"source": "alertmanager", "outcome": "retry"},
                    )
                    >= 3
                ),
                15,
                status,
            )
            await asyncio.sleep(2)
            fake_twilio.always(None)
            recovered_at = time.monotonic()
            firing = Counter({(name, "firing"): 1 for name in ALERTS})
            await until(
                "every firing message",
                lambda: all(c == firing for c in delivered().values()),
                20,
                status,
            )

            for name in ALERTS:
                await post_alert(
                    session,
                    alertmanager,
                    {"alertname": name, "severity": "critical"},
                    startsAt=started,
                    endsAt=datetime.now(UTC),
                )
            both = firing + Counter({(name, "resolved"): 1 for name in ALERTS})
            await until(
                "every resolved message",
                lambda: all(c == both for c in delivered().values()),
                20,
                status,
            )
            await asyncio.sleep(2.5)  # any late duplicate would arrive by now
            assert all(c == both for c in delivered().values()), status()
            failed_attempts = len(
                [r for r in fake_twilio.requests_to(messages) if r.received_at < recovered_at]
            )
            assert failed_attempts >= 3
            print(
                f"alerts in: {len(ALERTS)} firing + {len(ALERTS)} resolved; "
                f"messages out: {summary(delivered())}; "
                f"SMS attempts refused while Twilio was down: {failed_attempts}"
            )


def _key(text: str) -> tuple[str, str]:
    """(alertname, state) from any channel's text: `[FIRING:1] DiskFull ...` or `CRIT DiskFull`."""
    state = "resolved" if "RESOLVED" in text.upper() else "firing"
    name = next((n for n in ALERTS if n in text), "?")
    return name, state


def summary(counts: dict[str, Counter[tuple[str, str]]]) -> dict[str, dict[str, int]]:
    return {
        channel: {f"{n}/{s}": k for (n, s), k in sorted(c.items())} for channel, c in counts.items()
    }
