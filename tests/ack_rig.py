"""A router wired for acknowledgement: a real Alertmanager as the store, the fakes as vendors.

The router is served on a fixed loopback port that is also its PUBLIC_URL, so the fake Twilio
posts replies and key presses to the URLs the router put in its messages and signs them for
exactly those URLs, as Twilio does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from receiver.channels.registry import vendor_senders
from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.metrics import Metrics
from receiver.sources import alertmanager
from receiver.store.base import Store
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.alertmanager_process import Alertmanager, post_alert
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, RecordedRequest
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import held_port, settings_for

ALICE, BOB, CAROL, ERIN = "+447700900101", "+447700900102", "+447700900103", "+447700900105"
ACK_SECRET = "test-ack-secret-0123456789"
RECEIVER = alertmanager.RECEIVER  # the generated configuration's
_MESSAGES = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
_CALLS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"
_CODE = re.compile(r"Reply ACK ([0-9A-Z]{5})$")


def routing_yaml(ack_expiry: str = "30m") -> str:
    """Alice is primary all the time; bob at 10 min, carol at 20 min."""
    return f"""
timezone: Europe/London
people:
  alice: {{phone: "{ALICE}", email: alice@example.com, slack: U0A11CE001}}
  bob: {{phone: "{BOB}", email: bob@example.com}}
  carol: {{phone: "{CAROL}"}}
  erin: {{phone: "{ERIN}"}}
rotations:
  primary: {{members: [alice], handoff: "2026-01-05 09:00", turn: 1w}}
routes:
  - name: critical
    severity: [critical]
    targets:
      - {{kind: sms, rotation: primary}}
      - {{kind: call, rotation: primary}}
      - {{kind: email, rotation: primary}}
    escalation:
      - after: 10m
        targets: [{{kind: sms, person: bob}}]
      - after: 20m
        targets: [{{kind: sms, person: carol}}]
  - name: rest
    targets: [{{kind: sms, person: erin}}]
delivery:
  deadline: 3s
  attempts: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
acknowledgement:
  expires_after: {{critical: {ack_expiry}}}
"""


OTHER_TEAM = "other-team"
ALERTMANAGER_CONFIG: dict[str, Any] = {
    # Receivers with no integration: here Alertmanager only stores; the test posts webhooks.
    "route": {
        "receiver": RECEIVER,
        "group_by": ["alertname", "service"],
        # Another team's alerts, which never reach the router.
        "routes": [{"receiver": OTHER_TEAM, "matchers": ['team="other"']}],
    },
    "receivers": [{"name": RECEIVER}, {"name": OTHER_TEAM}],
}


@dataclass
class Clock:
    """The router's clock: real time plus an offset a test moves forward."""

    offset: timedelta = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class AckRig:
    service: Service
    url: str  # the router's base URL, also its PUBLIC_URL
    am: Alertmanager
    session: aiohttp.ClientSession
    slack: FakeSlack
    twilio: FakeTwilio
    sendgrid: FakeSendGrid
    clock: Clock
    started: dict[str, datetime] = field(default_factory=dict)

    async def fire(
        self,
        name: str = "DiskFull",
        *,
        ago: timedelta = timedelta(minutes=1),
        service: str = "db",
        resolved: bool = False,
        in_alertmanager: bool = True,
    ) -> dict[str, Any]:
        """The alert fires in Alertmanager, and Alertmanager's webhook for its group arrives.

        The first call for a name fixes its start (`ago` before now); later calls re-send it.
        """
        labels = {"alertname": name, "service": service, "severity": "critical"}
        starts = self.started.setdefault(name, datetime.now(UTC) - ago)
        if in_alertmanager and not resolved:
            await post_alert(self.session, self.am, labels, startsAt=starts)
        return await self.webhook(labels, starts, resolved=resolved)

    async def webhook(
        self, labels: dict[str, str], starts: datetime, *, resolved: bool = False
    ) -> dict[str, Any]:
        group_labels = {"alertname": labels["alertname"], "service": labels["service"]}
        status = "resolved" if resolved else "firing"
        ends = self.clock() if resolved else None
        body = {
            "version": "4",
            "groupKey": "{}:" + json.dumps(group_labels, sort_keys=True),
            "status": status,
            "receiver": RECEIVER,
            "groupLabels": group_labels,
            "commonLabels": labels,
            "commonAnnotations": {"summary": "disk full"},
            "externalURL": self.am.url,
            "alerts": [
                {
                    "status": status,
                    "labels": labels,
                    "annotations": {"summary": "disk full"},
                    "startsAt": starts.isoformat(),
                    "endsAt": ends.isoformat() if ends else "0001-01-01T00:00:00Z",
                    "fingerprint": f"fp-{labels['alertname']}-{labels['service']}",
                }
            ],
        }
        async with self.session.post(f"{self.url}/webhooks/alertmanager", json=body) as r:
            answer: dict[str, Any] = await r.json()
            assert r.status == 200, answer
            return answer

    def sms(self, to: str) -> list[str]:
        return [
            r.form()["Body"] for r in self.twilio.requests_to(_MESSAGES) if r.form()["To"] == to
        ]

    def calls(self, to: str) -> list[RecordedRequest]:
        return [r for r in self.twilio.requests_to(_CALLS) if r.form()["To"] == to]

    def code(self, to: str = ALICE) -> str:
        """The acknowledgement code at the end of the last SMS to `to`."""
        match = _CODE.search(self.sms(to)[-1])
        assert match, self.sms(to)[-1]
        return match.group(1)

    def emails(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.sendgrid.requests_to("/v3/mail/send")]

    async def markers(self) -> list[dict[str, Any]]:
        """Acknowledgement markers in Alertmanager (any state)."""
        async with self.session.get(f"{self.am.url}/api/v2/silences") as r:
            silences: list[dict[str, Any]] = await r.json()
        return [s for s in silences if any(m["name"] == "oncall_router_ack" for m in s["matchers"])]


def ack_config(tmp_path: Path, ack_expiry: str = "30m") -> Config:
    path = tmp_path / "routing.yaml"
    path.write_text(routing_yaml(ack_expiry))
    return load_config(path, {})


@pytest_asyncio.fixture
async def rig(
    alertmanager: Alertmanager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> AsyncIterator[AckRig]:
    async with aiohttp.ClientSession() as session:
        alertmanager.start(ALERTMANAGER_CONFIG)
        with alertmanager.log_on_failure():
            await alertmanager.ready(session)
            async with serve_rig(
                ack_config(tmp_path), alertmanager, session, fake_slack, fake_twilio, fake_sendgrid
            ) as rig:
                yield rig


@contextlib.asynccontextmanager
async def serve_rig(
    config: Config,
    am: Alertmanager,
    session: aiohttp.ClientSession,
    slack: FakeSlack,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    *,
    port: int | None = None,
    clock: Clock | None = None,
    alertmanager_url: str | None = None,
    receiver_auth_token: str | None = None,
    settings: Mapping[str, Any] | None = None,
    state_store: Store | None = None,
) -> AsyncIterator[AckRig]:
    """A router on 127.0.0.1:`port` (a free one by default) using `am` for acknowledgements;
    `state_store` shared with another rig makes the two replicas of one deployment."""
    # Held from the moment it is chosen (a given port, a restarted replica's, is bound again).
    with held_port(port or 0) as listening:
        port = listening.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        chosen = dataclasses.replace(
            settings_for(slack, twilio, sendgrid),
            ack_secret=ACK_SECRET,
            alertmanager_url=alertmanager_url or am.url,
            public_url=url,
            receiver_auth_token=receiver_auth_token,
            **(settings or {}),
        )
        clock = clock or Clock()
        service = Service(
            config,
            chosen,
            Metrics(CollectorRegistry()),
            senders={},
            dry_run=False,
            clock=clock,
            state_store=state_store,
        )
        app = create_app(service, lambda s: vendor_senders(s, chosen, config))
        server = TestServer(app, host="127.0.0.1", port=port, socket_factory=lambda *_: listening)
        async with server:
            yield AckRig(service, url, am, session, slack, twilio, sendgrid, clock)
