"""Time windows: nights past midnight, hours per weekday, yearly holidays, follow-the-sun, and
their Alertmanager `time_intervals`, which must open and close at the same instants.

Times are written in UTC (or with an offset) so a DST mistake cannot cancel itself out.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from receiver.cli.commands.alertmanager_config import build, render, time_intervals
from receiver.config.types import Config
from receiver.config.windows import WEEKDAYS, TimeWindow
from receiver.routing.oncall import on_call
from receiver.routing.plan import plan
from tests.helpers import ROOT
from tests.test_alertmanager_config import check_config
from tests.test_config import problems
from tests.test_oncall import CATCH_ALL, PEOPLE, firing, group, load, utc

LONDON = ZoneInfo("Europe/London")


def window(tmp_path: Path, body: str, tz: str = "Europe/London") -> TimeWindow:
    """The window `w` of a routing file with these `time_windows` entries."""
    entries = textwrap.indent(textwrap.dedent(body).rstrip("\n") + "\n", "  ")
    config = load(tmp_path, "time_windows:\n" + entries, tz)
    return config.windows["w"]


# -- Alertmanager's reading of time_intervals -------------------------------------------------
# As Alertmanager 0.25 evaluates them (timeinterval.ContainsTime): the time moved to `location`,
# then minute-of-day in [start, end), weekday, day of month, month and year; an interval is active
# when any of its entries matches. A route's window is active and not muted by its holidays.


def _clock(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _days(ranges: list[str]) -> set[int]:
    out: set[int] = set()
    for item in ranges:
        first, _, last = item.partition(":")
        out |= set(range(WEEKDAYS.index(first), WEEKDAYS.index(last or first) + 1))
    return out


def _matches(entry: Mapping[str, Any], at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(entry.get("location", "UTC")))
    minute = local.hour * 60 + local.minute
    times = entry.get("times")
    if times and not any(_clock(t["start_time"]) <= minute < _clock(t["end_time"]) for t in times):
        return False
    month = local.strftime("%B").lower()
    return (
        local.weekday() in _days(entry.get("weekdays", list(WEEKDAYS)))
        and str(local.day) in entry.get("days_of_month", [str(local.day)])
        and month in entry.get("months", [month])
        and str(local.year) in entry.get("years", [str(local.year)])
    )


def alertmanager_open(w: TimeWindow, at: datetime) -> bool:
    intervals = {e["name"]: e["time_intervals"] for e in time_intervals(w)}
    active = any(_matches(e, at) for e in intervals[w.name])
    muted = any(_matches(e, at) for e in intervals.get(f"{w.name}-holidays", []))
    return active and not muted


def every(start: str, days: int, step: timedelta = timedelta(minutes=15)) -> Iterator[datetime]:
    at = utc(start)
    while at < utc(start) + timedelta(days=days):
        yield at
        at += step


def assert_alertmanager_agrees(w: TimeWindow, start: str, days: int) -> None:
    """Every quarter hour, Alertmanager's reading of the intervals is the router's."""
    wrong = [at for at in every(start, days) if alertmanager_open(w, at) != w.contains(at)]
    assert wrong == [], f"{w.name}: Alertmanager disagrees at {wrong[:5]}"


# -- overnight ----------------------------------------------------------------------------------

FRIDAY_NIGHT = """\
w: {weekdays: friday, hours: "22:00-06:00"}
"""


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        ("2027-01-07T23:00", False),  # Thursday night: only Friday's night is listed
        ("2027-01-08T05:00", False),  # Friday morning is the tail of Thursday's night
        ("2027-01-08T21:59", False),
        ("2027-01-08T22:00", True),  # Friday 22:00
        ("2027-01-08T23:59", True),
        ("2027-01-09T00:00", True),  # Saturday, still Friday's night
        ("2027-01-09T05:59", True),
        ("2027-01-09T06:00", False),
        ("2027-01-09T22:00", False),  # Saturday night
    ],
)
def test_an_overnight_window_belongs_to_the_evening_it_starts(
    tmp_path: Path, at: str, inside: bool
) -> None:
    assert window(tmp_path, FRIDAY_NIGHT).contains(utc(at)) is inside


SATURDAY_NIGHT = """\
w: {weekdays: saturday, hours: "22:00-06:00"}
"""


@pytest.mark.parametrize(
    ("opens", "closes", "hours"),
    [
        # London springs forward in the night of Saturday 27 March 2027: 7 real hours.
        ("2027-03-27T22:00Z", "2027-03-28T05:00Z", 7),
        # ... and falls back in the night of Saturday 30 October: 9 real hours.
        ("2027-10-30T21:00Z", "2027-10-31T06:00Z", 9),
    ],
)
def test_an_overnight_window_keeps_its_local_hours_across_dst(
    tmp_path: Path, opens: str, closes: str, hours: int
) -> None:
    """22:00 to 06:00 local on the DST night, so it is an hour shorter or longer."""
    w = window(tmp_path, SATURDAY_NIGHT)
    start, end = utc(opens), utc(closes)
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(LONDON).strftime("%a %H:%M") == "Sat 22:00"
    assert end.astimezone(LONDON).strftime("%a %H:%M") == "Sun 06:00"
    second = timedelta(seconds=1)
    assert (w.contains(start - second), w.contains(start)) == (False, True)
    assert (w.contains(end - second), w.contains(end)) == (True, False)
    # A resolved group's ladder step counts if the window opened at any time in its span.
    assert w.overlaps(start - timedelta(hours=2), start)
    assert not w.overlaps(start - timedelta(hours=2), start - second)
    assert w.overlaps(end - second, end + timedelta(hours=3))
    assert not w.overlaps(end, end + timedelta(hours=3))
    assert w.next_opening(start - timedelta(days=3), timedelta(days=30)) == start
    # A week later, at 22:00 local again: in UTC the hour the change moved.
    following = w.next_opening(start, timedelta(days=30))
    assert following is not None
    assert following - start == timedelta(days=7, hours=-1 if hours == 7 else 1)
    assert following.astimezone(LONDON).strftime("%a %H:%M") == "Sat 22:00"


@pytest.mark.parametrize(
    ("hours", "span", "opens", "before"),
    [
        # 01:30 does not exist on 28 March 2027 in London (01:00 GMT -> 02:00 BST): the window
        # opens when the clocks jump past it, at 01:00Z (02:00 BST).
        ("01:30-04:00", ("2027-03-28T00:40Z", "2027-03-28T01:10Z"), "2027-03-28T01:00Z", False),
        # On 31 October 02:00 BST -> 01:00 GMT: 00:00-01:30 closes at 01:30 BST (00:30Z) and
        # opens again when the clock is set back to 01:00, at 01:00Z.
        ("00:00-01:30", ("2027-10-31T00:40Z", "2027-10-31T01:10Z"), "2027-10-31T01:00Z", True),
        # A start inside the repeated hour happens twice: 01:15 BST (00:15Z) and 01:15 GMT.
        ("01:15-01:45", ("2027-10-31T00:50Z", "2027-10-31T01:20Z"), "2027-10-31T01:15Z", True),
    ],
    ids=["start-skipped", "clock-set-back", "start-repeated"],
)
def test_a_window_opening_inside_a_dst_change(
    tmp_path: Path, hours: str, span: tuple[str, str], opens: str, before: bool
) -> None:
    """`overlaps` and `next_opening` find openings that no "start time on some day" gives."""
    w = window(tmp_path, f'w: {{weekdays: sunday, hours: "{hours}"}}\n')
    assert not w.contains(utc(span[0]))
    assert w.overlaps(utc(span[0]), utc(span[1]))
    assert not w.overlaps(utc(span[0]), utc(opens) - timedelta(seconds=1))
    assert w.contains(utc(opens))
    assert w.contains(utc(opens) - timedelta(seconds=1)) is False
    assert w.next_opening(utc(span[0]), timedelta(days=1)) == utc(opens)
    # Earlier that night it was open (clock set back) or not yet (clocks jumped forward).
    assert w.contains(utc(opens) - timedelta(minutes=45)) is before
    assert_alertmanager_agrees(w, span[0][:10], 1)


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ("22:00-06:00", [("friday", "22:00", "24:00"), ("saturday", "00:00", "06:00")]),
        ("22:00-24:00", [("friday", "22:00", "24:00")]),
        ("22:00-00:00", [("friday", "22:00", "24:00")]),  # until midnight, not a night
        ("00:00-24:00", [("friday", None, None)]),  # the whole day: no times
    ],
)
def test_overnight_becomes_two_alertmanager_ranges(
    tmp_path: Path, hours: str, expected: list[tuple[str, str | None, str | None]]
) -> None:
    """Alertmanager's times end by 24:00: a night is its evening and the next morning."""
    w = window(tmp_path, f'w: {{weekdays: friday, hours: "{hours}"}}\n')
    (entry,) = time_intervals(w)
    found = [
        (day, *((t["start_time"], t["end_time"]) if t else (None, None)))
        for e in entry["time_intervals"]
        for day in e["weekdays"]
        for t in e.get("times", [None])
    ]
    assert found == expected
    assert {e["location"] for e in entry["time_intervals"]} == {"Europe/London"}


def test_a_sunday_night_ends_on_monday(tmp_path: Path) -> None:
    w = window(tmp_path, 'w: {weekdays: [friday, sunday], hours: "20:00-08:00"}\n')
    (entry,) = time_intervals(w)
    assert entry["time_intervals"] == [
        {
            "weekdays": ["friday", "sunday"],
            "times": [{"start_time": "20:00", "end_time": "24:00"}],
            "location": "Europe/London",
        },
        {
            "weekdays": ["monday", "saturday"],
            "times": [{"start_time": "00:00", "end_time": "08:00"}],
            "location": "Europe/London",
        },
    ]
    assert w.contains(utc("2027-01-11T07:59"))  # Monday morning, from Sunday
    assert not w.contains(utc("2027-01-12T07:59"))  # Tuesday morning
    assert_alertmanager_agrees(w, "2027-01-04", 14)


# -- hours per weekday ------------------------------------------------------------------------

SUPPORT_HOURS = """\
w:
  timezone: America/New_York
  hours:
    - {weekdays: monday-thursday, hours: "09:00-18:00"}
    - {weekdays: friday, hours: "09:00-15:00"}
    - {weekdays: [saturday], hours: "10:00-12:00"}
"""


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        ("2027-03-11T13:59", False),  # Thursday 08:59 EST
        ("2027-03-11T14:00", True),  # Thursday 09:00 EST
        ("2027-03-11T22:59", True),  # Thursday 17:59 EST
        ("2027-03-11T23:00", False),  # Thursday 18:00 EST
        ("2027-03-12T19:59", True),  # Friday 14:59 EST
        ("2027-03-12T20:00", False),  # Friday 15:00 EST
        ("2027-03-13T15:00", True),  # Saturday 10:00 EST
        ("2027-03-13T17:00", False),  # Saturday 12:00 EST
        ("2027-03-14T15:00", False),  # Sunday
        ("2027-03-15T12:59", False),  # Monday 08:59 EDT, after the US change
        ("2027-03-15T13:00", True),  # Monday 09:00 EDT
    ],
)
def test_hours_per_weekday(tmp_path: Path, at: str, inside: bool) -> None:
    assert window(tmp_path, SUPPORT_HOURS).contains(utc(at)) is inside


def test_hours_per_weekday_become_several_intervals(tmp_path: Path) -> None:
    w = window(tmp_path, SUPPORT_HOURS)
    (entry,) = time_intervals(w)
    assert entry == {
        "name": "w",
        "time_intervals": [
            {
                "weekdays": ["monday:thursday"],
                "times": [{"start_time": "09:00", "end_time": "18:00"}],
                "location": "America/New_York",
            },
            {
                "weekdays": ["friday"],
                "times": [{"start_time": "09:00", "end_time": "15:00"}],
                "location": "America/New_York",
            },
            {
                "weekdays": ["saturday"],
                "times": [{"start_time": "10:00", "end_time": "12:00"}],
                "location": "America/New_York",
            },
        ],
    }
    assert_alertmanager_agrees(w, "2027-03-08", 14)


# -- holidays -----------------------------------------------------------------------------------

HOLIDAYS = """\
w:
  weekdays: monday-sunday
  hours: "09:00-17:00"
  holidays: [--12-25, 2026-12-31, --02-29]
"""


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        ("2026-12-24T12:00", True),
        ("2026-12-25T12:00", False),  # a Friday
        ("2026-12-26T12:00", True),
        ("2027-12-25T12:00", False),  # a Saturday
        ("2028-12-25T12:00", False),  # a Monday
        ("2028-12-26T12:00", True),
        ("2026-12-31T12:00", False),  # a dated holiday ...
        ("2027-12-31T12:00", True),  # ... is one day only
        ("2028-02-28T12:00", True),
        ("2028-02-29T12:00", False),  # --02-29: the leap day, in leap years
        ("2028-03-01T12:00", True),
        ("2027-02-28T12:00", True),  # 2027 has no 29 February, and nothing moves to the 28th
        ("2027-03-01T12:00", True),
    ],
)
def test_yearly_and_dated_holidays(tmp_path: Path, at: str, inside: bool) -> None:
    assert window(tmp_path, HOLIDAYS).contains(utc(at)) is inside


def test_yearly_holidays_have_no_years_in_alertmanager(tmp_path: Path) -> None:
    w = window(tmp_path, HOLIDAYS)
    _, holidays = time_intervals(w)
    assert holidays == {
        "name": "w-holidays",
        "time_intervals": [
            {"days_of_month": ["29"], "months": ["february"], "location": "Europe/London"},
            {"days_of_month": ["25"], "months": ["december"], "location": "Europe/London"},
            {
                "days_of_month": ["31"],
                "months": ["december"],
                "years": ["2026"],
                "location": "Europe/London",
            },
        ],
    }
    assert sorted(d.isoformat() for d in w.holidays) == ["--02-29", "--12-25", "2026-12-31"]
    for start in ("2026-12-20", "2027-12-20", "2028-02-25", "2028-12-20"):
        assert_alertmanager_agrees(w, start, 14)


def test_a_holiday_closes_the_whole_local_day_of_a_night(tmp_path: Path) -> None:
    """Holidays are whole local days, as Alertmanager mutes them: a night window loses the
    holiday's morning (the tail of the night before) and its evening."""
    w = window(tmp_path, 'w: {weekdays: monday-sunday, hours: "22:00-06:00", holidays: [--12-25]}')
    assert w.contains(utc("2027-12-24T23:00"))
    assert not w.contains(utc("2027-12-25T01:00"))
    assert not w.contains(utc("2027-12-25T23:00"))
    assert w.contains(utc("2027-12-26T01:00"))
    assert w.next_opening(utc("2027-12-25T00:00"), timedelta(days=2)) == utc("2027-12-26T00:00")
    assert_alertmanager_agrees(w, "2027-12-22", 7)


# -- follow-the-sun -----------------------------------------------------------------------------

FOLLOW_THE_SUN = """\
rotations:
  emea:
    timezone: Europe/London
    members: [alice, bob]
    handoff: "2027-01-04 09:00"
  amer:
    timezone: America/New_York
    members: [carol, dave]
    handoff: "2027-01-04 09:00"
time_windows:
  emea-hours: {weekdays: monday-sunday, hours: "07:00-19:00", timezone: Europe/London}
  amer-hours: {weekdays: monday-sunday, hours: "19:00-07:00", timezone: Europe/London}
routes:
  - name: emea-day
    window: emea-hours
    continue: true
    targets: [{kind: sms, rotation: emea}]
  - name: amer-night
    window: amer-hours
    targets: [{kind: sms, rotation: amer}]
"""


@pytest.fixture
def follow_the_sun(tmp_path: Path) -> Config:
    # The file's zone is neither: each rotation and window says its own.
    return load(tmp_path, FOLLOW_THE_SUN, "Asia/Tokyo")


@pytest.mark.parametrize("week", ["2027-03-08T00:00", "2027-03-22T00:00", "2027-10-25T00:00"])
def test_follow_the_sun_has_exactly_one_window_open_every_hour(
    follow_the_sun: Config, week: str
) -> None:
    """Weeks with the US and the EU DST changes: at every hour (and half hour) exactly one
    window is open, and exactly one person is paged, from that window's rotation."""
    config = follow_the_sun
    for at in every(week, 7, timedelta(minutes=30)):
        open_ = [name for name, w in config.windows.items() if w.contains(at)]
        assert len(open_) == 1, (at, open_)
        rotation = "emea" if 7 <= at.astimezone(LONDON).hour < 19 else "amer"
        assert open_ == [f"{rotation}-hours"], at
        result = plan(config, group(firing(at)), at)
        paged = {n.recipient.name for n in result.notifications}
        assert paged == {on_call(config, rotation, at)}, at


@pytest.mark.parametrize(
    ("at", "window_open"),
    [
        ("2027-03-26T06:59Z", "amer-hours"),  # Friday, London on GMT
        ("2027-03-26T07:00Z", "emea-hours"),
        ("2027-03-26T18:59Z", "emea-hours"),
        ("2027-03-26T19:00Z", "amer-hours"),
        ("2027-03-29T05:59Z", "amer-hours"),  # Monday 06:59 BST
        ("2027-03-29T06:00Z", "emea-hours"),  # Monday 07:00 BST
    ],
)
def test_follow_the_sun_edges(follow_the_sun: Config, at: str, window_open: str) -> None:
    open_ = [name for name, w in follow_the_sun.windows.items() if w.contains(utc(at))]
    assert open_ == [window_open]


def test_follow_the_sun_rotations_hand_off_in_their_own_zones(follow_the_sun: Config) -> None:
    """emea hands off Monday 09:00 London, amer Monday 09:00 New York."""
    second = timedelta(seconds=1)
    for rotation, handoff in (("emea", "2027-03-15T09:00Z"), ("amer", "2027-03-15T13:00Z")):
        at = utc(handoff)
        assert on_call(follow_the_sun, rotation, at - second) != on_call(
            follow_the_sun, rotation, at
        )


def test_follow_the_sun_in_alertmanager(follow_the_sun: Config, tmp_path: Path) -> None:
    """The night window is one interval, both its ranges on every day; amtool accepts it."""
    intervals = {e["name"]: e["time_intervals"] for e in build(follow_the_sun)["time_intervals"]}
    assert intervals == {
        "emea-hours": [
            {"times": [{"start_time": "07:00", "end_time": "19:00"}], "location": "Europe/London"}
        ],
        "amer-hours": [
            {
                "times": [
                    {"start_time": "00:00", "end_time": "07:00"},
                    {"start_time": "19:00", "end_time": "24:00"},
                ],
                "location": "Europe/London",
            }
        ],
    }
    for w in follow_the_sun.windows.values():
        assert_alertmanager_agrees(w, "2027-03-22", 14)
        assert_alertmanager_agrees(w, "2027-10-25", 14)
    check_config(render(follow_the_sun), tmp_path)


def test_every_new_window_passes_amtool(tmp_path: Path) -> None:
    """Nights, hours per weekday, yearly and dated holidays together: amtool accepts them."""
    body = "\n".join(
        [
            FRIDAY_NIGHT.replace("w:", "night:").strip(),
            'sunday: {weekdays: [friday, sunday], hours: "20:00-08:00"}',
            SUPPORT_HOURS.replace("w:", "support:"),
            HOLIDAYS.replace("w:", "days:"),
        ]
    )
    config = load(tmp_path, "time_windows:\n" + textwrap.indent(body, "  "))
    assert set(config.windows) == {"night", "sunday", "support", "days"}
    check_config(render(config), tmp_path)


# -- mistakes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        (
            'w: {hours: "09:00-09:00"}',
            1,
            "time_windows.w.hours: '09:00-09:00': the end must differ from the start",
        ),
        (
            'w: {hours: "00:00-00:00"}',
            1,
            "time_windows.w.hours: '00:00-00:00': the end must differ from the start",
        ),
        ('w: {hours: "22:00-24:30"}', 1, "time_windows.w.hours: '22:00-24:30': the latest end is"),
        ('w: {hours: "9-5"}', 1, "time_windows.w.hours: '9-5': hours look like 09:00-17:00"),
        (
            "w: {holidays: [--02-30]}",
            1,
            "time_windows.w.holidays[0]: '--02-30' is not a day of the year like --12-25",
        ),
        (
            "w: {holidays: [--13-01]}",
            1,
            "time_windows.w.holidays[0]: '--13-01' is not a day of the year like --12-25",
        ),
        (
            "w:\n  holidays:\n    - --12-25\n    - 2027-02-29",
            4,
            "time_windows.w.holidays[1]: '2027-02-29' is not a date like 2026-12-25",
        ),
        (
            "w: {holidays: [12-25]}",
            1,
            "time_windows.w.holidays[0]: '12-25' is not a date like 2026-12-25 (or --12-25",
        ),
        (
            "w: {timezone: Mars/Olympus}",
            1,
            "time_windows.w.timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            "w:\n  weekdays: friday\n  hours:\n    - {weekdays: monday, hours: '09:00-17:00'}",
            2,
            "time_windows.w.weekdays: with a list of hours, give weekdays in each entry",
        ),
        (
            "w:\n  hours:\n    - {weekdays: monday}\n    - {hours: '09:00-17:00'}",
            4,
            "time_windows.w.hours[1].weekdays: required",
        ),
        ("w: {hours: []}", 1, "time_windows.w.hours: give at least one {weekdays, hours} entry"),
        (
            "w:\n  hours:\n    - {weekdays: funday, hours: '09:00-17:00'}",
            3,
            "time_windows.w.hours[0].weekdays: 'funday': weekdays are monday..sunday",
        ),
        (
            "w:\n  hours:\n    - weekdays: monday\n      hours: '09:00-17:00'\n      days: 1",
            5,
            "time_windows.w.hours[0].days: unknown key",
        ),
        (
            "w:\n  hours:\n    - weekdays: monday\n      hours: '17:00-17:00'",
            4,
            "time_windows.w.hours[0].hours: '17:00-17:00': the end must differ from the start",
        ),
        ("w: {hours: ['09:00']}", 1, "time_windows.w.hours[0]: expected a mapping, got str"),
    ],
)
def test_window_mistakes_are_located(tmp_path: Path, body: str, line: int, expected: str) -> None:
    """Each is one problem, `file:line: key: message`, at the line of the mistake (`line` of
    the window's text)."""
    head = f"timezone: Europe/London\n{PEOPLE}time_windows:\n"
    path = tmp_path / "routing.yaml"
    path.write_text(head + textwrap.indent(body, "  ") + "\n" + CATCH_ALL)
    found = problems(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{len(head.splitlines()) + line}: {expected}"), found


# -- the README ---------------------------------------------------------------------------------


def test_the_readme_follow_the_sun_example_works(tmp_path: Path) -> None:
    """The README's follow-the-sun example loads, and one window is open at any time."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [
        b for b in re.findall(r"^```yaml\n(.*?)^```$", text, re.M | re.S) if "follow-the-sun" in b
    ]
    config = load(tmp_path, block)
    for at in every("2027-03-08T00:00", 28, timedelta(hours=1)):
        assert sum(w.contains(at) for w in config.windows.values()) == 1, at
