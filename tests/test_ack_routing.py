"""How acknowledgements change a plan: held ladder, expiry, resolved notices (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.model import Ack, Alert, AlertGroup, Channel, GroupMemory, Source, Status
from receiver.routing.plan import plan, unacknowledged_age
from tests.ack_rig import routing_yaml

START = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
# First paged when it started.
PAGED = GroupMemory("spell", START)


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
        (40, (ack(5, 35),), 10),  # expired: time counts again from where it was held
        (35, (ack(5, 35),), 5),  # the moment it expires
        (50, (ack(5, 35), ack(30, 60)), 5),  # renewed before expiry: held since 5
        (50, (ack(30, 60), ack(5, 35)), 5),  # in any order
        (50, (ack(5, 20), ack(30, 60)), 15),  # a gap: 5 minutes before, 10 between
        (3, (ack(5, 35),), 3),  # before it was made
    ],
)
def test_unacknowledged_age(end: float, acks: tuple[Ack, ...], expected: float) -> None:
    """Minutes of the ladder's age that no acknowledgement held."""
    assert unacknowledged_age(START, at(end), acks) == expected * 60


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
    # Firing: the ladder from the first page. Resolved: as when the store cannot say who was
    # paged, so the notice follows the ladder as it stood, acknowledgements included.
    result = plan(config, g, now, acks, PAGED, remembered=g.status is Status.FIRING)
    return {f"{n.recipient.name}:{n.channel}" for n in result.notifications}


def test_acknowledged_group_pages_nobody(config: Config) -> None:
    assert paged(config, at(25), (), group()) == {
        "alice:sms",
        "alice:call",
        "alice:email",
        "bob:sms",
        "carol:sms",
    }
    held = plan(config, group(), at(25), (ack(2, 32),), PAGED)
    assert held.notifications == ()
    assert held.acknowledged == ack(2, 32)


def test_expiry_pages_the_current_level_under_a_new_key(config: Config) -> None:
    """Held from 2 to 32 min: at 40 the ladder stands at 10 min (level 1, bob), so bob is asked
    again under a new key, and carol (20 min) is not paged for the time it held."""
    before = {
        n.recipient.name: n.key for n in plan(config, group(), at(25), (), PAGED).notifications
    }
    after = {
        n.recipient.name: n.key
        for n in plan(config, group(), at(40), (ack(2, 32),), PAGED).notifications
    }
    assert after["bob"] != before["bob"]  # the current level: paged again
    assert after["alice"] == before["alice"]  # a lower level: only if never paged (dedupe decides)
    assert "carol" not in after


def test_resolved_notice_goes_to_the_levels_paged_before_the_acknowledgement(
    config: Config,
) -> None:
    done = group(Status.RESOLVED, ends=at(45))
    # Acknowledged at 2 min (alice only had been paged), resolved at 45 while it held.
    # (A resolved notice is never a call: alice hears of it by SMS and email.)
    assert paged(config, at(45), (ack(2, 62),), done) == {"alice:sms", "alice:email"}
    # Without it, everyone up to carol (20 min) hears of the resolution.
    assert "carol:sms" in paged(config, at(45), (), done)
    # Acknowledged at 12 (bob paged at 10), expired at 42: the ladder resumed at 12 min and
    # stood at 15 when it resolved, so bob hears of it and carol (20 min) was never paged.
    notices = paged(config, at(45), (ack(12, 42),), done)
    assert "bob:sms" in notices
    assert "carol:sms" not in notices
