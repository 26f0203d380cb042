"""A rotation's own time zone: its handoff is local wall-clock time there, whatever the file's or
the team's zone, across both the US and the EU DST changes of 2027."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.routing.oncall import on_call, shift
from tests.test_config import problems
from tests.test_oncall import CATCH_ALL, PEOPLE, load, utc

NEW_YORK = ZoneInfo("America/New_York")
# Week 0 starts Monday 4 January 2027 10:00 UTC: alice, bob, carol, alice, ...
PROFILE = """\
rotations:
  profile:
    timezone: UTC
    members: [alice, bob, carol]
    handoff: "2027-01-04 10:00"
    turn: 1w
  profile-backup:
    backs_up: profile
  local:
    members: [alice, bob, carol]
    handoff: "2027-01-04 10:00"
"""
MEMBERS = ("alice", "bob", "carol")
# The Mondays either side of each 2027 change: US 14 March and 7 November, EU 28 March and
# 31 October.
MONDAYS = [
    ("2027-03-08", "us-spring-before"),
    ("2027-03-15", "us-spring-after"),
    ("2027-03-22", "eu-spring-before"),
    ("2027-03-29", "eu-spring-after"),
    ("2027-10-25", "eu-autumn-before"),
    ("2027-11-01", "eu-autumn-after"),
    ("2027-11-08", "us-autumn-after"),
]


def holder(week: int) -> str:
    return MEMBERS[week % len(MEMBERS)]


@pytest.mark.parametrize(("monday", "label"), MONDAYS, ids=[label for _, label in MONDAYS])
def test_a_utc_handoff_in_a_new_york_file_stays_at_ten_utc(
    tmp_path: Path, monday: str, label: str
) -> None:
    """Monday 10:00 UTC on both sides of every change, though the file's zone is New York's."""
    config = load(tmp_path, PROFILE, "America/New_York")
    handoff = utc(f"{monday}T10:00")
    week = (handoff - utc("2027-01-04T10:00")).days // 7
    second = timedelta(seconds=1)
    before = shift(config, "profile", handoff - second)
    assert (before.person, before.until, before.next_person) == (
        holder(week - 1),
        handoff,
        holder(week),
    )
    assert before.until.utcoffset() == timedelta(0)  # shown in the rotation's zone, UTC
    after = shift(config, "profile", handoff)
    assert (after.person, after.until) == (holder(week), handoff + timedelta(weeks=1))
    # The backup follows the same instants: next in line, in the primary's zone.
    backup = shift(config, "profile-backup", handoff)
    assert (backup.person, backup.until) == (holder(week + 1), after.until)
    # In New York the handoff is 05:00 in winter and 06:00 in summer.
    summer = "2027-03-14" < monday < "2027-11-07"
    assert handoff.astimezone(NEW_YORK).strftime("%H:%M") == ("06:00" if summer else "05:00")
    # A rotation without its own zone takes the file's: 10:00 New York, a different instant.
    assert on_call(config, "local", handoff) == holder(week - 1)
    assert on_call(config, "local", handoff.replace(tzinfo=NEW_YORK)) == holder(week)


def test_overrides_are_in_the_rotations_zone(tmp_path: Path) -> None:
    """`from: "2027-03-10 12:00"` in a UTC rotation is 12:00 UTC, not 12:00 in New York."""
    body = PROFILE.replace(
        "    turn: 1w\n",
        '    turn: 1w\n    overrides: [{person: erin, from: "2027-03-10 12:00", '
        'until: "2027-03-10 18:00"}]\n',
    )
    config = load(tmp_path, body, "America/New_York")
    assert on_call(config, "profile", utc("2027-03-10T11:59")) != "erin"
    assert on_call(config, "profile", utc("2027-03-10T12:00")) == "erin"
    s = shift(config, "profile", utc("2027-03-10T12:00"))
    assert (s.until, s.override) == (utc("2027-03-10T18:00"), True)


def test_a_backup_without_members_follows_its_primarys_zone(tmp_path: Path) -> None:
    """Its overrides are read in the primary's zone too, even when it is listed first."""
    body = """\
rotations:
  secondary:
    backs_up: primary
    overrides: [{person: erin, from: "2027-03-10 12:00", until: "2027-03-10 18:00"}]
  primary: {members: [alice, bob], timezone: Asia/Tokyo, handoff: "2027-01-04 09:00"}
"""
    config = load(tmp_path, body, "America/New_York")
    tokyo = ZoneInfo("Asia/Tokyo")
    assert config.rotations["secondary"].timezone == tokyo
    assert on_call(config, "secondary", datetime(2027, 3, 10, 12, tzinfo=tokyo)) == "erin"
    handoff = datetime(2027, 3, 15, 9, tzinfo=tokyo)
    assert shift(config, "secondary", handoff - timedelta(hours=1)).until == handoff


def test_team_zone_is_the_default_then_the_files(tmp_path: Path) -> None:
    """A rotation or window without `timezone` takes its team's, else the file's."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "timezone: America/New_York\n"
        + PEOPLE
        + """\
rotations:
  shared: {members: [alice]}
teams:
  profile:
    timezone: Europe/London
    rotations:
      own: {members: [alice, bob]}
      utc: {members: [alice, bob], timezone: UTC}
    time_windows:
      nights: {hours: "22:00-06:00"}
    routes:
      - name: all
        targets: [{kind: sms, rotation: own}]
"""
    )
    team = load_config(path, {}).team_named("profile")
    assert team is not None
    zones = {name: r.timezone.key for name, r in team.rotations.items()}
    assert zones == {"shared": "America/New_York", "own": "Europe/London", "utc": "UTC"}
    assert team.windows["nights"].timezone.key == "Europe/London"


def test_who_shows_until_in_the_rotations_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load(tmp_path, PROFILE, "America/New_York")
    argv = ["who", "--config", str(tmp_path / "routing.yaml"), "--json", "--at", "2027-03-15T09:00"]
    assert main(argv) == 0
    rotations = json.loads(capsys.readouterr().out)["rotations"]
    # 09:00 EDT is 13:00 UTC: after that Monday's 10:00 UTC handoff, before its 10:00 EDT one.
    assert rotations["profile"]["until"] == "2027-03-22T10:00:00+00:00"
    assert rotations["local"]["until"] == "2027-03-15T10:00:00-04:00"


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        (
            "rotations:\n  r: {members: [alice], timezone: Mars/Olympus}\n",
            1,
            "rotations.r.timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            "rotations:\n  r:\n    members: [alice]\n    timezone: 3\n",
            3,
            "rotations.r.timezone: unknown time zone '3'",
        ),
        (
            "rotations:\n  r: {members: [alice]}\n  b:\n    backs_up: r\n    timezone: UTC\n",
            4,
            "rotations.b.timezone: a rotation without members follows 'r', its schedule and "
            "its zone; set the zone there",
        ),
        (
            "rotations:\n  r: {members: [alice], handoff: '2027-03-14 02:30+25:00'}\n",
            1,
            "rotations.r.handoff: '2027-03-14 02:30+25:00' is not a time like",
        ),
    ],
)
def test_rotation_zone_mistakes_are_located(
    tmp_path: Path, body: str, line: int, expected: str
) -> None:
    head = f"timezone: America/New_York\n{PEOPLE}"
    path = tmp_path / "routing.yaml"
    path.write_text(head + body + CATCH_ALL)
    found = problems(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{len(head.splitlines()) + line + 1}: {expected}"), found


def test_a_handoff_in_a_dst_gap_of_the_rotations_zone(tmp_path: Path) -> None:
    """Daily at 02:30 New York in a London file: on 14 March 2027 02:30 does not exist there,
    and the turn still changes exactly once, at `until`."""
    body = """\
rotations:
  r: {members: [alice, bob], timezone: America/New_York, handoff: "2027-03-10 02:30", turn: 1d}
"""
    config = load(tmp_path, body, "Europe/London")
    at = datetime(2027, 3, 14, 5, 0, tzinfo=UTC)  # 00:00 EST
    s = shift(config, "r", at)
    assert s.until.astimezone(UTC) > at
    assert s.until.astimezone(UTC) <= datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert on_call(config, "r", s.until - timedelta(seconds=1)) == s.person
    assert on_call(config, "r", s.until) == s.next_person
