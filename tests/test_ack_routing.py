"""How acknowledgements change a plan: held ladder, expiry, resolved notices (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.model import Ack, Alert, AlertGroup, Channel, Source, Status
from receiver.routing.plan import plan, unacknowledged_until
from tests.ack_rig import routing_yaml

START = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def ack(at_min: float, until_min: float, group: str = "g") -> Ack:
    return Ack(
        group,
        "alice",
        Channel.SMS,
        0,
        START + timedelta(minutes=at_min),
        START + timedelta(minutes=until_min),
    )


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("end", "acks", "expected"),
    [
        (12, (), 12),
        (12, (ack(5, 35),), 5),  # held since the acknowledgement
        (40, (ack(5, 35),), 40),  # expired: time counts again
        (35, (ack(5, 35),), 35),  # the moment it expires
        (50, (ack(5, 35), ack(30, 60)), 5),  # renewed before expiry: one chain back to 5
        (50, (ack(30, 60), ack(5, 35)), 5),  # in any order
        (50, (ack(5, 20), ack(30, 60)), 30),  # a gap: the last uncovered moment is 30
        (3, (ack(5, 35),), 3),  # before it was made
    ],
)
def test_unacknowledged_until(end: float, acks: tuple[Ack, ...], expected: float) -> None:
    assert unacknowledged_until(at(end), acks) == at(expected)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("ack") / "routing.yaml"
    path.write_text(routing_yaml())
    return load_config(path, {})


def group(status: Status = Status.FIRING, ends: datetime | None = None) -> AlertGroup:
    alert = Alert(
        Source.ALERTMANAGER,
        status,
        {"alertname": "DiskFull", "service": "db", "severity": "critical"},
        {"summary": "disk full"},
        START,
        "fp",
        ends_at=ends,
    )
    return AlertGroup(
        Source.ALERTMANAGER,
        "{}:{}",
        status,
        (alert,),
        group_labels={"alertname": "DiskFull", "service": "db"},
        receiver="oncall-router",
    )


def paged(config: Config, now: datetime, acks: tuple[Ack, ...], g: AlertGroup) -> set[str]:
    return {f"{n.recipient.name}:{n.channel}" for n in plan(config, g, now, acks).notifications}


def test_acknowledged_group_pages_nobody(config: Config) -> None:
    assert paged(config, at(25), (), group()) == {
        "alice:sms",
        "alice:call",
        "alice:email",
        "bob:sms",
        "carol:sms",
    }
    held = plan(config, group(), at(25), (ack(2, 32),))
    assert held.notifications == ()
    assert held.acknowledged == ack(2, 32)


def test_expiry_pages_the_current_level_under_a_new_key(config: Config) -> None:
    before = {n.recipient.name: n.key for n in plan(config, group(), at(25), ()).notifications}
    after = {
        n.recipient.name: n.key for n in plan(config, group(), at(40), (ack(2, 32),)).notifications
    }
    assert after["carol"] != before["carol"]  # the current level: paged again
    assert after["bob"] == before["bob"]  # a lower level: only if never paged (dedupe decides)


def test_resolved_notice_goes_to_the_levels_paged_before_the_acknowledgement(
    config: Config,
) -> None:
    done = group(Status.RESOLVED, ends=at(45))
    # Acknowledged at 2 min (alice only had been paged), resolved at 45 while it held.
    assert paged(config, at(45), (ack(2, 62),), done) == {"alice:sms", "alice:call", "alice:email"}
    # Without it, everyone up to carol (20 min) hears of the resolution.
    assert "carol:sms" in paged(config, at(45), (), done)
    # Acknowledged at 12 (bob paged at 10), expired at 42: carol was paged at 42, hears it.
    assert "carol:sms" in paged(config, at(45), (ack(12, 42),), done)
