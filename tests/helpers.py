"""Building blocks shared by the tests: fixture payloads and a router wired like `serve`."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import shutil
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from receiver.channels.base import Sender
from receiver.channels.registry import dry_run_senders
from receiver.config.load import load_config
from receiver.config.settings import Settings
from receiver.config.types import Config, Delivery, Limits, SlackDestination
from receiver.delivery.fanout import Deliverer, Result
from receiver.metrics import Metrics
from receiver.model import Channel, Notification
from receiver.web.service import Service
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.fakes.sendgrid import TEST_API_KEY
from tests.fakes.slack import TEST_BOT_TOKEN
from tests.fakes.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
ROUTING = ROOT / "routing.yaml"
# A fixed "now": a Monday in business hours, minutes after the fixtures' alerts started.
NOW = datetime(2026, 3, 16, 9, 19, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def shipped_config(environ: Mapping[str, str] | None = None) -> Config:
    return load_config(ROUTING, environ or {})


def dry_run_router(
    config: Config | None = None,
    settings: Settings | None = None,
    out: io.StringIO | None = None,
    senders: Mapping[Channel, Sender] | None = None,
    *,
    dry_run: bool = True,
) -> tuple[Service, io.StringIO]:
    """A Router like `serve --dry-run`, printing into a buffer the test can read."""
    config = config or shipped_config()
    buffer = out or io.StringIO()
    if senders is None:
        senders = dry_run_senders(config.timezone, buffer)
    service = Service(
        config=config,
        settings=settings or Settings(),
        metrics=Metrics(CollectorRegistry()),
        senders=senders,
        dry_run=dry_run,
        clock=lambda: NOW,
    )
    return service, buffer


def printed(buffer: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def metric(service: Service, name: str, labels: Mapping[str, str] | None = None) -> float:
    value = service.metrics.registry.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else value


def held_port(port: int = 0) -> socket.socket:
    """A socket bound to `port` on 127.0.0.1 (a free one by default), for
    `TestServer(socket_factory=...)`: the port is held from the moment it is chosen. With
    free_port, a process started before the server (an Alertmanager) could take it in between."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_tool(name: str, package: str = "prometheus-alertmanager") -> str:
    """Path of a Debian-packaged tool: skipped locally without it, a failure in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {package})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return path


# The Slack incoming webhook of the `alerts` destination (its path is the secret).
WEBHOOK_PATH = "/services/T0001/B0002/alertswebhooksecret"


def settings_for(slack: FakeSlack, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
    """Settings whose vendor URLs and credentials point at the loopback fakes."""
    return Settings(
        slack_bot_token=TEST_BOT_TOKEN,
        slack_api_url=f"{slack.url}/api",
        twilio_account_sid=TEST_ACCOUNT_SID,
        twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from="+447700900999",
        twilio_api_url=twilio.url,
        sendgrid_api_key=TEST_API_KEY,
        sendgrid_from="alerts@example.com",
        sendgrid_api_url=sendgrid.url,
    )


def config_for(slack: FakeSlack, max_body_bytes: int = 1 << 20, **delivery: Any) -> Config:
    """The shipped routing file with its Slack destinations on the fake and a test policy."""
    config = dataclasses.replace(shipped_config(), limits=Limits(max_body_bytes))
    destinations = {
        "incidents": SlackDestination("incidents", channel="C0INCIDENTS"),
        "alerts": SlackDestination("alerts", webhook_url=slack.webhook_url(WEBHOOK_PATH)),
    }
    policy = Delivery(**{"deadline": 2.0, "attempts": 3, "rate_limits": {}, **delivery})
    return dataclasses.replace(config, slack=destinations, delivery=policy)


async def deliver(sender: Sender, n: Notification, deadline: float = 3.0) -> Result:
    """One notification through a real Deliverer (fresh, so nothing is deduplicated)."""
    deliverer = Deliverer(
        senders={n.channel: sender},
        metrics=Metrics(CollectorRegistry()),
        policy=Delivery(deadline=deadline, attempts=3, rate_limits={}),
    )
    try:
        async with asyncio.timeout(deadline + 2):
            (result,) = (await deliverer.deliver([n])).results
    finally:
        await cut_outstanding(deliverer)
    return result


async def cut_outstanding(deliverer: Deliverer) -> None:
    """End the sends a test's deliverer left out past their deadline (as shutdown does)."""
    for task in deliverer.outstanding:
        task.cancel()
    await asyncio.gather(*deliverer.outstanding, return_exceptions=True)


async def send(sender: Sender, n: Notification) -> None:
    """One sender call, bounded in time."""
    async with asyncio.timeout(3):
        await sender.send(n)
