"""Building blocks shared by the tests: fixture payloads and a router wired like `serve`."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from receiver.app import Router
from receiver.channels.base import Sender
from receiver.channels.registry import dry_run_senders
from receiver.config import Config, load_config
from receiver.metrics import Metrics
from receiver.model import Channel
from receiver.settings import Settings

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
) -> tuple[Router, io.StringIO]:
    """A Router like `serve --dry-run`, printing into a buffer the test can read."""
    config = config or shipped_config()
    buffer = out or io.StringIO()
    if senders is None:
        senders = dry_run_senders(config.timezone, buffer)
    router = Router(
        config=config,
        settings=settings or Settings(),
        metrics=Metrics(CollectorRegistry()),
        senders=senders,
        dry_run=dry_run,
        clock=lambda: NOW,
    )
    return router, buffer


def printed(buffer: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def metric(router: Router, name: str, labels: Mapping[str, str] | None = None) -> float:
    value = router.metrics.registry.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else value
