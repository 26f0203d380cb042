"""One incident, one page per person and level: escalation from the first page, quiet group
changes, resolved notices without calls, and several replicas sharing one Redis.

Each test posts real Alertmanager webhook bodies to the service over HTTP and counts what the
dry-run senders printed (what would have gone to each person).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from receiver.channels.registry import dry_run_senders
from receiver.config.load import load_config
from receiver.config.settings import Settings
from receiver.metrics import Metrics
from receiver.store.base import Store
from receiver.store.redis import RedisStore
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.helpers import metric, printed
from tests.redis_process import RedisServer

T0 = datetime(2026, 3, 18, 3, 0, tzinfo=UTC)  # a Wednesday night: alice primary, bob secondary
ROUTING = """\
timezone: UTC
people:
  alice: {phone: "+447700900101", email: alice@example.com}
  bob: {phone: "+447700900102", email: bob@example.com}
  carol: {phone: "+447700900103", email: carol@example.com}
groups:
  leads: [carol]
rotations:
  primary: {members: [alice, dave], handoff: "2026-03-16 09:00", turn: 1w}
  secondary: {members: [bob, dave], handoff: "2026-03-16 09:00", turn: 1w}
slack:
  incidents: {channel: C0INCIDENTS}
routes:
  - name: paging
    severity: [critical, high]
    targets:
      - {kind: slack, channel: incidents}
      - {kind: sms, rotation: primary}
      - {kind: call, rotation: primary}
    escalation:
      - after: 15m
        targets: [{kind: sms, rotation: secondary}, {kind: call, rotation: secondary}]
      - after: 30m
        targets: [{kind: email, group: leads}]
  - name: rest
    targets: [{kind: slack, channel: incidents}]
"""
ROUTING = ROUTING.replace("people:\n", 'people:\n  dave: {phone: "+447700900104"}\n', 1)

Post = Callable[..., Awaitable[int]]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def alert(
    name: str, started: datetime, *, severity: str = "critical", ended: datetime | None = None
) -> dict[str, Any]:
    return {
        "status": "resolved" if ended else "firing",
        "labels": {"alertname": "DiskFull", "instance": name, "severity": severity},
        "annotations": {"summary": f"disk full on {name}"},
        "startsAt": started.isoformat(),
        "endsAt": (ended or datetime(1, 1, 1, tzinfo=UTC)).isoformat(),
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": f"fp-{name}",
    }


def body(*alerts: dict[str, Any]) -> bytes:
    firing = any(a["status"] == "firing" for a in alerts)
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="DiskFull"}',
            "truncatedAlerts": 0,
            "status": "firing" if firing else "resolved",
            "receiver": "oncall-router",
            "groupLabels": {"alertname": "DiskFull"},
            "commonLabels": {"alertname": "DiskFull"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example",
            "alerts": list(alerts),
        }
    ).encode()


def service(clock: Clock, out: io.StringIO, tmp: Path, store: Store | None = None) -> Service:
    path = tmp / "routing.yaml"
    path.write_text(ROUTING)
    config = load_config(path, {})
    return Service(
        config=config,
        settings=Settings(),
        metrics=Metrics(CollectorRegistry()),
        senders=dry_run_senders(config.timezone, out),
        dry_run=True,
        clock=clock,
        state_store=store,
    )


@dataclasses.dataclass
class Rig:
    clock: Clock
    out: io.StringIO
    clients: list[TestClient[Any, Any]]
    services: list[Service]
    turn: int = 0

    async def post(self, *alerts: dict[str, Any]) -> int:
        """One webhook, to the replicas in turn (a Service spreads connections so)."""
        client = self.clients[self.turn % len(self.clients)]
        self.turn += 1
        response = await client.post(
            "/webhooks/alertmanager",
            data=body(*alerts),
            headers={"Content-Type": "application/json"},
        )
        return response.status

    def pages(self) -> Counter[tuple[str, str, str]]:
        """(channel, recipient, status) of everything sent so far, with repeats counted."""
        return Counter((p["channel"], p["recipient"], p["status"]) for p in printed(self.out))

    def take(self) -> Counter[tuple[str, str, str]]:
        """What was sent since the last take."""
        found = self.pages()
        self.out.seek(0)
        self.out.truncate()
        return found


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
def make_rig(aiohttp_client: Any, tmp_path: Path) -> MakeRig:
    async def make(stores: list[Store | None] | None = None) -> Rig:
        clock, out = Clock(), io.StringIO()
        services = [service(clock, out, tmp_path, s) for s in (stores or [None])]
        clients = [await aiohttp_client(create_app(s)) for s in services]
        return Rig(clock, out, clients, services)

    return make


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def test_an_old_alert_pages_its_first_level_first(make_rig: MakeRig) -> None:
    """3 hours old when it first arrives: the primary only, then the ladder runs from here."""
    rig = await make_rig()
    old = alert("db1", at(-180))
    assert await rig.post(old) == 200
    assert rig.take() == Counter(
        {
            ("slack", "incidents", "firing"): 1,
            ("sms", "alice", "firing"): 1,
            ("call", "alice", "firing"): 1,
        }
    )
    rig.clock.now = at(10)
    assert await rig.post(old) == 200
    assert rig.take() == Counter()  # a re-send within the level
    rig.clock.now = at(15)
    assert await rig.post(old) == 200
    # The channel hears of each escalation too (the dry run cannot edit: a new message).
    slack = ("slack", "incidents", "firing")
    assert rig.take() == Counter(
        {("sms", "bob", "firing"): 1, ("call", "bob", "firing"): 1, slack: 1}
    )
    rig.clock.now = at(31)
    assert await rig.post(old) == 200
    assert rig.take() == Counter({("email", "carol", "firing"): 1, slack: 1})


async def test_a_joining_alert_pages_nobody_again(make_rig: MakeRig) -> None:
    """A second alert joins the firing group: Slack hears of it, nobody is texted or called."""
    rig = await make_rig()
    assert await rig.post(alert("db1", at(0))) == 200
    rig.take()
    rig.clock.now = at(5)
    assert await rig.post(alert("db1", at(0)), alert("db2", at(4))) == 200
    assert rig.take() == Counter({("slack", "incidents", "firing"): 1})


async def test_a_partial_resolve_pages_nobody_again(make_rig: MakeRig) -> None:
    """One of two alerts resolves while the other fires: an update to Slack only."""
    rig = await make_rig()
    assert await rig.post(alert("db1", at(0)), alert("db2", at(0))) == 200
    rig.take()
    rig.clock.now = at(5)
    assert await rig.post(alert("db1", at(0), ended=at(4)), alert("db2", at(0))) == 200
    assert rig.take() == Counter({("slack", "incidents", "firing"): 1})


async def test_a_more_urgent_group_pages_again(make_rig: MakeRig) -> None:
    """A high group turning critical re-pages the people already paged; the reverse does not."""
    rig = await make_rig()
    assert await rig.post(alert("db1", at(0), severity="high")) == 200
    rig.take()
    rig.clock.now = at(2)
    assert await rig.post(alert("db1", at(0), severity="high"), alert("db2", at(1))) == 200
    pages = rig.take()
    assert pages[("sms", "alice", "firing")] == 1
    assert pages[("call", "alice", "firing")] == 1
    rig.clock.now = at(4)
    assert (
        await rig.post(alert("db2", at(1), severity="high"), alert("db1", at(0), severity="high"))
        == 200
    )
    assert rig.take() == Counter({("slack", "incidents", "firing"): 1})


async def test_resolved_is_never_a_call_and_says_how_long(make_rig: MakeRig) -> None:
    """Resolved: an SMS (not a call) to each person paged, with how long it lasted."""
    rig = await make_rig()
    assert await rig.post(alert("db1", at(0))) == 200
    rig.clock.now = at(20)
    assert await rig.post(alert("db1", at(0))) == 200  # bob paged at level 1
    rig.take()
    rig.clock.now = at(43)
    assert await rig.post(alert("db1", at(0), ended=at(42))) == 200
    lines = printed(rig.out)
    assert rig.pages() == Counter(
        {
            ("slack", "incidents", "resolved"): 1,
            ("sms", "alice", "resolved"): 1,
            ("sms", "bob", "resolved"): 1,
        }
    )
    assert all(" after 42m" in line["text"] for line in lines if line["channel"] == "sms")
    # Its retry (Alertmanager repeats a notification it saw fail) changes nothing.
    rig.take()
    assert await rig.post(alert("db1", at(0), ended=at(42))) == 200
    assert rig.take() == Counter()
    # Firing again afterwards is a new incident: the primary is paged again.
    rig.clock.now = at(60)
    assert await rig.post(alert("db1", at(59))) == 200
    assert rig.take()[("sms", "alice", "firing")] == 1


async def test_acknowledgement_expiry_pages_the_current_level_only(make_rig: MakeRig) -> None:
    """Acknowledged at 5 min for 30 min: at 40 min the ladder stands at 10 min, so the primary
    is asked again, and nobody up the ladder is paged for the time it held."""
    from receiver.model import Ack, AlertGroup, Channel

    rig = await make_rig()
    firing = alert("db1", at(-180))
    assert await rig.post(firing) == 200
    rig.take()
    svc = rig.services[0]
    ack = Ack("g", "alice", Channel.SMS, 0, at(5), at(35))

    async def acks(_group: AlertGroup) -> tuple[Ack, ...]:
        return (ack,)

    svc.acks_for = acks  # type: ignore[method-assign,assignment]
    rig.clock.now = at(20)
    assert await rig.post(firing) == 200
    # Held: nobody is paged, the ladder stands at 5 min; the channel hears of the ack.
    assert rig.take() == Counter({("slack", "incidents", "firing"): 1})
    rig.clock.now = at(40)
    assert await rig.post(firing) == 200
    pages = rig.take()
    assert pages[("sms", "alice", "firing")] == 1
    assert ("sms", "bob", "firing") not in pages
    assert ("email", "carol", "firing") not in pages


async def test_two_replicas_and_a_restart_share_one_redis(
    make_rig: MakeRig, redis_server: RedisServer
) -> None:
    """Both replicas get the same group at once, then a third (a restarted one) its re-send:
    one SMS and one call for the primary in all."""
    stores: list[Store | None] = [RedisStore(redis_server.url), RedisStore(redis_server.url)]
    rig = await make_rig(stores)
    old = alert("db1", at(-30))
    statuses = await asyncio.gather(rig.post(old), rig.post(old))
    assert list(statuses) == [200, 200]
    restarted = await make_rig([RedisStore(redis_server.url)])
    restarted.clock.now = rig.clock.now = at(5)
    assert await restarted.post(old) == 200
    pages = rig.pages() + restarted.pages()
    assert pages[("sms", "alice", "firing")] == 1
    assert pages[("call", "alice", "firing")] == 1
    assert ("sms", "bob", "firing") not in pages  # 30 min old, but first paged just now


async def test_redis_down_pages_anyway_and_counts_it(
    make_rig: MakeRig, redis_server: RedisServer
) -> None:
    """With Redis stopped the page still goes out, the failure is counted, ready stays 200."""
    rig = await make_rig([RedisStore(redis_server.url)])
    redis_server.stop()
    assert await rig.post(alert("db1", at(0))) == 200
    assert rig.take()[("sms", "alice", "firing")] == 1
    svc = rig.services[0]
    assert metric(svc, "oncall_router_store_errors_total", {"op": "claim"}) >= 1
    assert metric(svc, "oncall_router_store_errors_total", {"op": "read_group"}) == 1
    ready = await rig.clients[0].get("/-/ready")
    assert ready.status == 200
