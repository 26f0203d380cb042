"""Rotations, overrides, escalation and business hours as pure functions of (file, time).

Every case loads a small routing file with `load_config` and real `zoneinfo` zones; times are
written in UTC (or with an explicit offset) so a DST mistake cannot cancel itself out.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.model import Alert, AlertGroup, GroupMemory, Source, Status
from receiver.routing.oncall import escalation_level, in_window, on_call, shift
from receiver.routing.plan import ladder, ladder_start, plan
from tests.helpers import ROUTING

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

PEOPLE = """\
people:
  alice: {name: Alice, phone: "+447700900101", email: alice@example.com, slack: U0A11CE001}
  bob: {name: Bob, phone: "+447700900102", email: bob@example.com, slack: U0B0B00002}
  carol: {name: Carol, phone: "+447700900103", email: carol@example.com, slack: U0CA201003}
  dave: {name: Dave, phone: "+447700900104", email: dave@example.com, slack: U0DA7E0004}
  erin: {name: Erin, phone: "+447700900105", email: erin@example.com, slack: U0E21N0005}
"""
# Week 0 of this rotation starts Monday 2026-01-05 09:00 local: alice, bob, carol, alice, ...
WEEKLY = """\
rotations:
  primary:
    members: [alice, bob, carol]
    handoff: "2026-01-05 09:00"
    turn: 1w
"""
CATCH_ALL = """\
routes:
  - name: all
    targets: [{kind: sms, person: alice}]
"""


def load(tmp_path: Path, body: str, tz: str = "Europe/London") -> Config:
    text = f"timezone: {tz}\n{PEOPLE}{textwrap.dedent(body)}"
    if "\nroutes:" not in f"\n{text}":
        text += CATCH_ALL
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_config(path, {})


def utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def firing(start: datetime, fingerprint: str = "f1", labels: dict[str, str] | None = None) -> Alert:
    return Alert(
        Source.ALERTMANAGER,
        Status.FIRING,
        labels or {"alertname": "DiskFull", "severity": "critical"},
        {"summary": "disk full"},
        start,
        fingerprint,
    )


def group(*alerts: Alert) -> AlertGroup:
    status = Status.FIRING if any(a.status is Status.FIRING for a in alerts) else Status.RESOLVED
    return AlertGroup(Source.ALERTMANAGER, "{}:{alertname=DiskFull}", status, alerts)


# -- weekly handoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "person", "until", "following"),
    [
        ("2026-03-16T08:59", "alice", "2026-03-16T09:00:00+00:00", "bob"),
        ("2026-03-16T09:00", "bob", "2026-03-23T09:00:00+00:00", "carol"),
        ("2026-03-22T23:59", "bob", "2026-03-23T09:00:00+00:00", "carol"),
        # Before the first handoff the list runs backwards: week -1 is carol's.
        ("2026-01-05T08:59", "carol", "2026-01-05T09:00:00+00:00", "alice"),
    ],
)
def test_weekly_handoff_at_the_boundary_minute(
    tmp_path: Path, at: str, person: str, until: str, following: str
) -> None:
    """Monday 08:59 local is still last week's turn; 09:00 is the next person's."""
    config = load(tmp_path, WEEKLY)
    s = shift(config, "primary", utc(at))
    assert (s.person, s.until.isoformat(), s.next_person) == (person, until, following)
    assert on_call(config, "primary", utc(at)) == person


@pytest.mark.parametrize(
    ("tz", "at", "person", "until", "following"),
    [
        # Europe/London springs forward Sunday 2026-03-29: Monday's 09:00 is 08:00 UTC.
        ("Europe/London", "2026-03-25T12:00Z", "carol", "2026-03-30T09:00:00+01:00", "alice"),
        ("Europe/London", "2026-03-30T07:59Z", "carol", "2026-03-30T09:00:00+01:00", "alice"),
        ("Europe/London", "2026-03-30T08:00Z", "alice", "2026-04-06T09:00:00+01:00", "bob"),
        # ... and falls back Sunday 2026-10-25: Monday's 09:00 is 09:00 UTC again.
        ("Europe/London", "2026-10-21T12:00Z", "carol", "2026-10-26T09:00:00+00:00", "alice"),
        ("Europe/London", "2026-10-26T08:59Z", "carol", "2026-10-26T09:00:00+00:00", "alice"),
        ("Europe/London", "2026-10-26T09:00Z", "alice", "2026-11-02T09:00:00+00:00", "bob"),
        # America/New_York: second Sunday of March (2026-03-08) ...
        ("America/New_York", "2026-03-04T17:00Z", "carol", "2026-03-09T09:00:00-04:00", "alice"),
        ("America/New_York", "2026-03-09T12:59Z", "carol", "2026-03-09T09:00:00-04:00", "alice"),
        ("America/New_York", "2026-03-09T13:00Z", "alice", "2026-03-16T09:00:00-04:00", "bob"),
        # ... and first Sunday of November (2026-11-01).
        ("America/New_York", "2026-10-28T16:00Z", "alice", "2026-11-02T09:00:00-05:00", "bob"),
        ("America/New_York", "2026-11-02T13:59Z", "alice", "2026-11-02T09:00:00-05:00", "bob"),
        ("America/New_York", "2026-11-02T14:00Z", "bob", "2026-11-09T09:00:00-05:00", "carol"),
    ],
)
def test_weekly_handoff_stays_at_nine_local_across_dst(
    tmp_path: Path, tz: str, at: str, person: str, until: str, following: str
) -> None:
    """The handoff is 09:00 local on both sides of a DST change, and `until` says so."""
    config = load(tmp_path, WEEKLY, tz)
    s = shift(config, "primary", utc(at))
    assert s.person == person
    assert s.until.astimezone(ZoneInfo(tz)).isoformat() == until
    assert s.until == datetime.fromisoformat(until)  # the same instant, not just the same text
    assert s.next_person == following
    # The turn really changes at that instant. (Arithmetic in UTC: an aware local time minus a
    # timedelta is wall-clock arithmetic, which is exactly the mistake under test.)
    until_utc = s.until.astimezone(UTC)
    assert on_call(config, "primary", until_utc - timedelta(seconds=1)) == person
    assert on_call(config, "primary", until_utc) == following


TWELVE_HOURS = """\
rotations:
  primary:
    members: [alice, bob]
    handoff: "{handoff}"
    turn: 12h
"""


@pytest.mark.parametrize(
    ("handoff", "at", "person", "began", "until", "hours"),
    [
        # Spring: the night turn Sat 21:00 GMT -> Sun 09:00 BST lasts 11 real hours.
        ("2026-03-28 09:00", "2026-03-28T20:59Z", "alice", "09:00Z", "2026-03-28T21:00+00:00", 12),
        ("2026-03-28 09:00", "2026-03-28T21:00Z", "bob", "21:00Z", "2026-03-29T09:00+01:00", 11),
        ("2026-03-28 09:00", "2026-03-29T07:59Z", "bob", "21:00Z", "2026-03-29T09:00+01:00", 11),
        ("2026-03-28 09:00", "2026-03-29T08:00Z", "alice", "08:00Z", "2026-03-29T21:00+01:00", 12),
        # Autumn: Sat 21:00 BST -> Sun 09:00 GMT lasts 13 real hours.
        ("2026-10-24 09:00", "2026-10-24T20:00Z", "bob", "20:00Z", "2026-10-25T09:00+00:00", 13),
        ("2026-10-24 09:00", "2026-10-25T08:59Z", "bob", "20:00Z", "2026-10-25T09:00+00:00", 13),
        ("2026-10-24 09:00", "2026-10-25T09:00Z", "alice", "09:00Z", "2026-10-25T21:00+00:00", 12),
    ],
)
def test_twelve_hour_turn_across_dst(
    tmp_path: Path, handoff: str, at: str, person: str, began: str, until: str, hours: int
) -> None:
    """12h turns hand off at 09:00 and 21:00 local, so the turn spanning the change is 11h/13h."""
    config = load(tmp_path, TWELVE_HOURS.format(handoff=handoff))
    s = shift(config, "primary", utc(at))
    assert (s.person, s.until) == (person, datetime.fromisoformat(until))
    assert s.until.astimezone(LONDON).strftime("%H:%M") in ("09:00", "21:00")
    # The turn began `hours` before it ends, at the UTC time given (on `at`'s day or the eve).
    start = s.until.astimezone(UTC) - timedelta(hours=hours)
    assert start.strftime("%H:%MZ") == began
    assert on_call(config, "primary", start) == person
    assert on_call(config, "primary", start - timedelta(seconds=1)) != person


DAILY_AT_0130 = """\
rotations:
  primary:
    members: [alice, bob]
    handoff: "{handoff}"
    turn: 1d
"""


@pytest.mark.parametrize(
    ("handoff", "day"),
    [("2026-03-27 01:30", "2026-03-29"), ("2026-10-23 01:30", "2026-10-25")],
    ids=["spring-gap", "autumn-repeat"],
)
def test_handoff_inside_the_dst_hour_happens_once_at_until(
    tmp_path: Path, handoff: str, day: str
) -> None:
    """A 01:30 handoff on a DST Sunday: 01:30 is skipped (March) or happens twice (October).

    Whatever instant is chosen, `until` must be in the future, the holder must change exactly
    at `until`, and never change back.
    """
    config = load(tmp_path, DAILY_AT_0130.format(handoff=handoff))
    start = utc(f"{day}T00:00")
    holders: list[str] = []
    for minute in range(0, 180, 5):
        at = start + timedelta(minutes=minute)
        s = shift(config, "primary", at)
        until = s.until.astimezone(UTC)
        assert until > at, f"at {at}: until {until} is not in the future"
        assert on_call(config, "primary", until - timedelta(seconds=1)) == s.person
        assert on_call(config, "primary", until) == s.next_person
        if not holders or holders[-1] != s.person:
            holders.append(s.person)
    assert len(holders) == 2, f"holders flip: {holders}"


# -- overrides --------------------------------------------------------------------------------

OVERRIDES = (
    WEEKLY
    + """\
    overrides:
      # Spans Monday 16 March's 09:00 handoff (alice's week -> bob's week).
      - {person: dave, from: "2026-03-13 09:00", until: "2026-03-18 09:00"}
      # Overlaps the first and is listed later: it wins while both apply.
      - {person: erin, from: "2026-03-14 12:00", until: "2026-03-14 20:00"}
"""
)
OVERRIDE_CASES = [
    # (local time, holder, override?, until (local), next)
    ("2026-03-12 10:00", "alice", False, "2026-03-13 09:00", "dave"),
    ("2026-03-13 09:00", "dave", True, "2026-03-14 12:00", "erin"),
    ("2026-03-14 13:00", "erin", True, "2026-03-14 20:00", "dave"),
    ("2026-03-14 21:00", "dave", True, "2026-03-18 09:00", "bob"),
    ("2026-03-16 08:59", "dave", True, "2026-03-18 09:00", "bob"),
    ("2026-03-16 09:00", "dave", True, "2026-03-18 09:00", "bob"),
    ("2026-03-18 08:59", "dave", True, "2026-03-18 09:00", "bob"),
    ("2026-03-18 09:00", "bob", False, "2026-03-23 09:00", "carol"),
]


@pytest.mark.parametrize(("at", "person", "override", "until", "following"), OVERRIDE_CASES)
def test_override_holds_the_rotation_across_a_handoff(
    tmp_path: Path, at: str, person: str, override: bool, until: str, following: str
) -> None:
    """The override wins before and after the handoff it spans; the rotation resumes after it,
    with the turn that is due then (bob's, not alice's); the last-listed override wins."""
    config = load(tmp_path, OVERRIDES)
    s = shift(config, "primary", london(at))
    assert (s.person, s.override) == (person, override)
    assert on_call(config, "primary", london(at)) == person


@pytest.mark.parametrize(
    ("at", "person", "override", "until", "following"),
    OVERRIDE_CASES,
)
def test_override_until_and_next(
    tmp_path: Path, at: str, person: str, override: bool, until: str, following: str
) -> None:
    """`until` is when the holder really changes, and `next` who takes over then."""
    config = load(tmp_path, OVERRIDES)
    s = shift(config, "primary", london(at))
    assert (s.until, s.next_person) == (london(until), following)
    assert s.next_person != s.person


def test_later_listed_override_outranks_an_earlier_one_inside_it(tmp_path: Path) -> None:
    """erin's afternoon is listed first, dave's two days last: dave holds throughout."""
    config = load(
        tmp_path,
        WEEKLY
        + """\
    overrides:
      - {person: erin, from: "2026-03-13 12:00", until: "2026-03-13 20:00"}
      - {person: dave, from: "2026-03-13 09:00", until: "2026-03-15 09:00"}
""",
    )
    assert on_call(config, "primary", london("2026-03-13 13:00")) == "dave"
    s = shift(config, "primary", london("2026-03-13 10:00"))
    assert (s.person, s.until, s.next_person) == ("dave", london("2026-03-15 09:00"), "alice")


def test_one_member_rotation(tmp_path: Path) -> None:
    """One member holds every turn; an override still takes over and hands back."""
    config = load(
        tmp_path,
        """\
rotations:
  primary:
    members: [alice]
    overrides:
      - {person: bob, from: "2026-03-17 09:00", until: "2026-03-18 09:00"}
""",
    )
    # The default handoff is Monday 09:00 local.
    s = shift(config, "primary", london("2026-03-16 10:00"))
    assert (s.person, s.until, s.next_person) == ("alice", london("2026-03-17 09:00"), "bob")
    s = shift(config, "primary", london("2026-03-17 10:00"))
    assert (s.person, s.override, s.until, s.next_person) == (
        "bob",
        True,
        london("2026-03-18 09:00"),
        "alice",
    )
    s = shift(config, "primary", london("2026-03-19 10:00"))
    assert (s.person, s.until, s.next_person) == ("alice", london("2026-03-23 09:00"), "alice")


@pytest.mark.parametrize(
    ("at", "primary", "secondary"),
    [
        ("2026-03-09 09:00", "alice", "bob"),
        ("2026-03-16 08:59", "alice", "bob"),
        ("2026-03-16 09:00", "bob", "carol"),
        ("2026-03-23 09:00", "carol", "alice"),
        ("2026-03-30 09:00", "alice", "bob"),  # across the March DST change
    ],
)
def test_backs_up_is_the_primarys_next_person(
    tmp_path: Path, at: str, primary: str, secondary: str
) -> None:
    """This week's secondary is next week's primary, on the primary's handoff schedule."""
    config = load(tmp_path, WEEKLY + "  secondary:\n    backs_up: primary\n")
    p = shift(config, "primary", london(at))
    s = shift(config, "secondary", london(at))
    assert (p.person, s.person) == (primary, secondary)
    assert s.person == p.next_person
    assert s.until == p.until


# -- escalation -------------------------------------------------------------------------------

LADDER = (
    WEEKLY
    + "  secondary:\n    backs_up: primary\n"
    + """\
groups:
  leads: [dave]
  managers: [erin]
routes:
  - name: critical
    targets: [{kind: sms, rotation: primary}]
    escalation:
      - after: 15m
        targets: [{kind: sms, rotation: secondary}]
      - after: 30m
        targets: [{kind: sms, group: leads}]
      - after: 1h
        targets: [{kind: sms, group: managers}]
"""
)
START = utc("2026-03-16T10:00")  # a Monday: primary bob, secondary carol
# The store remembers the group as first paged at START: its ladder counts from there.
PAGED = GroupMemory("spell", START)


@pytest.mark.parametrize(
    ("age", "level", "paged"),
    [
        (timedelta(0), 0, {"bob"}),
        (timedelta(minutes=14, seconds=59), 0, {"bob"}),
        (timedelta(minutes=15), 1, {"bob", "carol"}),
        (timedelta(minutes=29, seconds=59), 1, {"bob", "carol"}),
        (timedelta(minutes=30), 2, {"bob", "carol", "dave"}),
        (timedelta(hours=1), 3, {"bob", "carol", "dave", "erin"}),
        (timedelta(days=2), 3, {"bob", "carol", "dave", "erin"}),
    ],
)
def test_escalation_edges(tmp_path: Path, age: timedelta, level: int, paged: set[str]) -> None:
    """Cumulative ages: exactly 15 min reaches level 1, 14:59 does not."""
    config = load(tmp_path, LADDER)
    route = config.routes[0]
    assert escalation_level(route, age.total_seconds()) == level
    result = plan(config, group(firing(START)), START + age, memory=PAGED)
    assert max(n.level for n in result.notifications) == level
    assert {n.recipient.name for n in result.notifications} == paged


def test_age_counts_from_the_earliest_firing_alert(tmp_path: Path) -> None:
    """An alert that fired 40 min ago but resolved does not escalate the group's newer one."""
    config = load(tmp_path, LADDER)
    old = Alert(
        Source.ALERTMANAGER,
        Status.RESOLVED,
        {"alertname": "DiskFull", "instance": "a"},
        {},
        START - timedelta(minutes=40),
        "old",
        ends_at=START - timedelta(minutes=20),
    )
    new = firing(START - timedelta(minutes=10), "new")
    route = config.routes[0]
    # Only when the store cannot say when the group was first paged does `startsAt` count.
    start = ladder_start(group(old, new), None, START, remembered=False)
    where = ladder(route, (old, new), start, START)
    assert (where.start, where.age, where.level) == (new.starts_at, 600.0, 0)
    levels = plan(config, group(old, new), START, remembered=False).notifications
    assert {n.level for n in levels} == {0}
    # Had the old one still been firing, the group would be 40 minutes into its ladder.
    still = firing(START - timedelta(minutes=40), "old")
    start = ladder_start(group(still, new), None, START, remembered=False)
    assert ladder(route, (still, new), start, START).level == 2


def keys(config: Config, g: AlertGroup, at: datetime) -> set[str]:
    return {n.key for n in plan(config, g, at, memory=PAGED).notifications}


def test_resends_within_a_level_do_not_repage(tmp_path: Path) -> None:
    """Alertmanager's re-sends at +1m and +14m produce the same keys: the dedupe store holds
    them, nobody is paged twice. Reaching level 1 adds keys for level 1 only."""
    config = load(tmp_path, LADDER)
    g = group(firing(START))
    first = keys(config, g, START + timedelta(minutes=1))
    assert keys(config, g, START + timedelta(minutes=14)) == first
    at_15 = plan(config, g, START + timedelta(minutes=15), memory=PAGED)
    fresh = {n.key for n in at_15.notifications} - first
    assert first < {n.key for n in at_15.notifications}
    assert {(n.level, n.recipient.name) for n in at_15.notifications if n.key in fresh} == {
        (1, "carol")
    }
    assert keys(config, g, START + timedelta(minutes=29)) == first | fresh


REPEATING = """\
routes:
  - name: critical
    repeat: 10m
    targets: [{kind: sms, person: alice}]
    escalation:
      - after: 25m
        targets: [{kind: sms, person: bob}]
"""


def new_pages(
    config: Config, g: AlertGroup, minutes: list[int], seen: set[str] | None = None
) -> list[set[tuple[int, str]]]:
    """What a dedupe store lets through at each re-send time: (level, person) per send."""
    seen = set() if seen is None else seen
    out = []
    for m in minutes:
        notifications = plan(config, g, START + timedelta(minutes=m), memory=PAGED).notifications
        out.append({(n.level, n.recipient.name) for n in notifications if n.key not in seen})
        seen |= {n.key for n in notifications}
    return out


def test_repeat_repages_the_current_level_once_per_period(tmp_path: Path) -> None:
    """`repeat: 10m`: alice again at +10m and +20m (not at the re-sends in between); once the
    group is at level 1 (+25m), bob again at +35m and nobody else."""
    config = load(tmp_path, REPEATING)
    g = group(firing(START))
    assert new_pages(config, g, [0, 5, 9, 10, 19, 20, 24]) == [
        {(0, "alice")},
        set(),
        set(),
        {(0, "alice")},
        set(),
        {(0, "alice")},
        set(),
    ]
    seen = keys(config, g, START + timedelta(minutes=26))
    assert {
        (n.level, n.recipient.name) for n in plan(config, g, START, memory=PAGED).notifications
    } == {(0, "alice")}
    assert new_pages(config, g, [30, 34, 35, 44, 45], seen) == [
        set(),
        set(),
        {(1, "bob")},
        set(),
        {(1, "bob")},
    ]


def test_repeat_does_not_repage_the_level_below_when_escalating(tmp_path: Path) -> None:
    """At +25m only bob is new: alice had her rounds at +0, +10 and +20m and is not current."""
    config = load(tmp_path, REPEATING)
    g = group(firing(START))
    assert new_pages(config, g, [0, 10, 20, 25]) == [
        {(0, "alice")},
        {(0, "alice")},
        {(0, "alice")},
        {(1, "bob")},
    ]


# -- business hours ---------------------------------------------------------------------------

WINDOWS = """\
time_windows:
  business-hours:
    weekdays: monday-friday
    hours: "09:00-17:00"
    holidays: [2026-12-25]
  new-york-hours:
    weekdays: monday-friday
    hours: "09:00-17:00"
    timezone: America/New_York
"""


@pytest.mark.parametrize(
    ("window", "at", "inside"),
    [
        ("business-hours", "2026-03-20T16:59Z", True),  # Friday
        ("business-hours", "2026-03-20T17:00Z", False),
        ("business-hours", "2026-03-21T12:00Z", False),  # Saturday
        ("business-hours", "2026-03-23T08:59Z", False),  # Monday
        ("business-hours", "2026-03-23T09:00Z", True),
        ("business-hours", "2026-07-03T15:59Z", True),  # Friday 16:59 BST
        ("business-hours", "2026-07-03T16:00Z", False),  # Friday 17:00 BST
        ("business-hours", "2026-12-24T12:00Z", True),
        ("business-hours", "2026-12-25T12:00Z", False),  # a Friday, and a holiday
        # New York is 4h behind London between the two DST changes (8 to 29 March).
        ("new-york-hours", "2026-03-20T12:59Z", False),  # 08:59 EDT, 12:59 in London
        ("new-york-hours", "2026-03-20T13:00Z", True),  # 09:00 EDT
        ("new-york-hours", "2026-03-20T20:59Z", True),  # 16:59 EDT, 20:59 in London
        ("new-york-hours", "2026-03-20T21:00Z", False),  # 17:00 EDT
        ("new-york-hours", "2026-03-23T02:00Z", False),  # Sunday 22:00 EDT, Monday in London
    ],
)
def test_business_hours_edges(tmp_path: Path, window: str, at: str, inside: bool) -> None:
    config = load(tmp_path, WINDOWS)
    assert config.windows[window].contains(utc(at)) is inside
    assert in_window(config, window, utc(at)) is inside
    assert in_window(config, None, utc(at)) is True


ROUTE_WINDOW = (
    WEEKLY
    + WINDOWS
    + """\
slack:
  alerts: {channel: C0ALERTS}
routes:
  - name: low-urgency
    severity: [medium, low]
    window: business-hours
    targets: [{kind: slack, channel: alerts}]
  - name: everything-else
    targets:
      - {kind: sms, rotation: primary}
      - {kind: slack, channel: alerts, window: business-hours}
"""
)


@pytest.mark.parametrize(
    ("at", "sent", "skipped"),
    [
        ("2026-03-20T16:59Z", {"slack"}, set()),
        ("2026-03-20T17:00Z", set(), {("slack:channel:alerts", "business-hours")}),
        ("2026-03-21T10:00Z", set(), {("slack:channel:alerts", "business-hours")}),
    ],
)
def test_route_window_skips_the_route(
    tmp_path: Path, at: str, sent: set[str], skipped: set[tuple[str, str]]
) -> None:
    config = load(tmp_path, ROUTE_WINDOW)
    g = group(firing(utc(at), labels={"alertname": "DiskFilling", "severity": "medium"}))
    result = plan(config, g, utc(at))
    assert {n.channel.value for n in result.notifications} == sent
    assert {(str(s.target), s.window) for s in result.skipped} == skipped


def test_target_window_skips_only_that_target(tmp_path: Path) -> None:
    """Saturday: the Slack target waits for business hours, the SMS still goes out."""
    config = load(tmp_path, ROUTE_WINDOW)
    saturday = utc("2026-03-21T10:00")
    result = plan(config, group(firing(saturday)), saturday)
    assert [(n.channel.value, n.recipient.name) for n in result.notifications] == [("sms", "bob")]
    assert [(s.route, s.level, str(s.target), s.window) for s in result.skipped] == [
        ("everything-else", 0, "slack:channel:alerts", "business-hours")
    ]
    monday = utc("2026-03-23T10:00")
    result = plan(config, group(firing(monday)), monday)
    assert {n.channel.value for n in result.notifications} == {"sms", "slack"}
    assert result.skipped == ()


# -- resolved ---------------------------------------------------------------------------------


def test_resolved_reaches_every_level_reached_at_resolution(tmp_path: Path) -> None:
    """Fired Monday 08:50 (alice's week), resolved 35 minutes later: the notice goes to the
    people paged at levels 0-2, each as then on call (carol became secondary at 09:00), and
    not to level 3, although the notice is sent long after the 1h mark."""
    config = load(tmp_path, LADDER)
    start = utc("2026-03-16T08:50")
    end = start + timedelta(minutes=35)
    alert = firing(start)
    spell = GroupMemory("spell", start)
    paged = plan(config, group(alert), end - timedelta(seconds=1), memory=spell).notifications
    assert [(n.level, n.recipient.name) for n in paged] == [(0, "alice"), (1, "carol"), (2, "dave")]
    resolved = Alert(
        alert.source, Status.RESOLVED, alert.labels, {}, start, alert.fingerprint, ends_at=end
    )
    spell = dataclasses.replace(
        spell, paged=frozenset(f"{n.level}:{n.recipient.name}" for n in paged)
    )
    notices = plan(config, group(resolved), start + timedelta(hours=2), memory=spell).notifications
    assert [(n.level, n.recipient.name, n.status) for n in notices] == [
        (0, "alice", Status.RESOLVED),
        (1, "carol", Status.RESOLVED),
        (2, "dave", Status.RESOLVED),
    ]
    # A new message, not a duplicate of the page.
    assert not {n.key for n in notices} & {n.key for n in paged}


# -- `who` across an override -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "line"),
    [
        (
            "2026-12-23T10:00",
            "rotation primary: bob (Bob Baker) until Thu 2026-12-24 09:00 GMT, "
            "then alice (Alice Archer)",
        ),
        (
            "2026-12-24T09:00",
            "rotation primary: alice (Alice Archer) (override) until Mon 2026-12-28 09:00 GMT, "
            "then dave (Dave Dunn)",
        ),
        (
            "2026-12-28T09:00",
            "rotation primary: dave (Dave Dunn) until Mon 2027-01-04 09:00 GMT, "
            "then alice (Alice Archer)",
        ),
    ],
)
def test_who_prints_until_and_next_across_the_shipped_override(
    at: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped holiday swap: bob hands to alice on Thursday, alice to dave on Monday."""
    assert main(["who", "--config", str(ROUTING), "--at", at]) == 0
    assert f"  {line}" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (
            "2026-03-13T10:00",
            {"on_call": ["dave"], "until": "2026-03-14T12:00:00+00:00", "next": ["erin"]},
        ),
        (
            "2026-03-15T10:00",
            {"on_call": ["dave"], "until": "2026-03-18T09:00:00+00:00", "next": ["bob"]},
        ),
        (
            "2026-03-18T09:00",
            {"on_call": ["bob"], "until": "2026-03-23T09:00:00+00:00", "next": ["carol"]},
        ),
    ],
)
def test_who_json_across_an_override_spanning_a_handoff(
    tmp_path: Path, at: str, expected: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    load(tmp_path, OVERRIDES)
    argv = ["who", "--config", str(tmp_path / "routing.yaml"), "--json", "--at", at]
    assert main(argv) == 0
    primary = json.loads(capsys.readouterr().out)["rotations"]["primary"]
    assert {k: primary[k] for k in ("on_call", "until", "next")} == expected
    assert primary.get("override", False) is (expected["on_call"] == ["dave"])
