"""The shipped examples (examples/*.yaml): each team's procedure, checked row by row against the
table its document gives: every severity word as written there, the severity it means, who and
what is paged at once, the escalation ladder, the handoff across DST, and business hours.

`examples/company.yaml` holds four of them as teams; every table must hold there too, with the
alert's `team` label added.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from receiver.cli.commands.simulate import simulate as timeline_of
from receiver.cli.commands.simulate import synthetic_group
from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.model import Channel, Severity
from receiver.routing.plan import plan
from tests.helpers import ROOT

EXAMPLES = ROOT / "examples"
COMPANY = EXAMPLES / "company.yaml"
# Tuesday 16 March 2027, 15:00 UTC: inside every example's business hours (11:00 New York,
# 15:00 London, 16:00 Warsaw).
AT = datetime(2027, 3, 16, 15, 0, tzinfo=UTC)
MINUTE = 60
HOUR = 3600

CRITICAL, HIGH, MEDIUM, LOW = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW


@dataclass(frozen=True)
class Row:
    """Label values a document uses for one level -> the severity and the level-0 pages.

    A page is "<channel> <who>": who is a person id, `primary`/`secondary` (whoever holds that
    rotation at AT), or `#<slack destination>`.
    """

    words: tuple[str, ...]
    severity: Severity
    pages: frozenset[str]


def row(words: tuple[str, ...], severity: Severity, *pages: str) -> Row:
    return Row(words, severity, frozenset(pages))


@dataclass(frozen=True)
class Example:
    file: str
    team: str  # its team in company.yaml
    table: tuple[Row, ...]
    on_call: Mapping[str, str]  # who holds each rotation at AT
    # The critical ladder: (minutes after the first page, pages newly made at that level).
    ladder: tuple[tuple[int, frozenset[str]], ...]
    critical_word: str
    # Handoff: the rotation's zone and local time, every Monday.
    handoff_zone: str
    handoff_time: time
    # How soon a person (SMS or call) must be reached, per severity, at any hour.
    reach_within: Mapping[Severity, int]
    # A "next business day" word: held outside business hours until Monday 09:00 in `zone`.
    business_word: str
    zone: str
    rotations: tuple[str, ...] = ("primary", "secondary")


def ladder(*steps: tuple[int, tuple[str, ...]]) -> tuple[tuple[int, frozenset[str]], ...]:
    return tuple((minutes, frozenset(pages)) for minutes, pages in steps)


METABOLIC_TRACKER = Example(
    file="metabolic-tracker.yaml",
    team="metabolic-tracker",
    table=(
        row(
            ("P0", "CRITICAL", "CRITICAL (P0)", "🚨 CRITICAL (P0)", "P0/P1"),
            CRITICAL,
            "slack #metabolic-alerts-critical",
            "sms primary",
            "call primary",
            "email tess",  # "Email: All team leads"
            "email manny",
        ),
        row(
            ("P1", "HIGH", "HIGH (P1)", "⚠️ HIGH (P1)"),
            HIGH,
            "slack #metabolic-alerts",
            "email primary",  # "Email: On-call engineer"
            "sms primary",
        ),
        row(
            ("P2", "MEDIUM", "MEDIUM (P2)", "📢 MEDIUM (P2)", "P2/P3"),
            MEDIUM,
            "slack #metabolic-alerts",
        ),
        row(
            # The heading "\N{INFORMATION SOURCE}\ufe0f LOW (P3)" (written escaped: ruff finds
            # the information sign ambiguous).
            ("P3", "LOW", "LOW (P3)", "\N{INFORMATION SOURCE}\ufe0f LOW (P3)"),
            LOW,
            "slack #metabolic-alerts",
        ),
    ),
    on_call={"primary": "ada", "secondary": "ben"},
    # Level 2 tech lead (30 min), Level 3 engineering manager (1 h), Level 4 CTO (2 h).
    ladder=ladder(
        (
            0,
            (
                "slack #metabolic-alerts-critical",
                "sms primary",
                "call primary",
                "email tess",
                "email manny",
            ),
        ),
        (30, ("sms tess", "call tess")),
        (60, ("sms manny", "call manny")),
        (120, ("sms cora", "call cora")),
    ),
    critical_word="P0",
    handoff_zone="America/New_York",
    handoff_time=time(9, 0),
    reach_within={CRITICAL: 15 * MINUTE, HIGH: HOUR},
    business_word="P3",
    zone="America/New_York",
)

INCIDENT_PLAYBOOK = Example(
    file="incident-playbook.yaml",
    team="metabolic-tracker",
    table=(
        row(
            ("SEV-1", "SEV-1: Critical", "SEV-1/2"),
            CRITICAL,
            "slack #incidents",
            "sms primary",
            "call primary",
        ),
        row(
            ("SEV-2", "SEV-2: High"),
            HIGH,
            "slack #incidents",
            "sms primary",
            "email primary",
            "email tess",  # "Notify: On-call engineer, Team lead"
        ),
        row(("SEV-3", "SEV-3: Medium", "SEV-3/4"), MEDIUM, "slack #incidents"),
        row(("SEV-4", "SEV-4: Low"), LOW, "slack #incidents"),
    ),
    on_call={"primary": "ada", "secondary": "ben"},
    # No response in 15 minutes: the secondary, then the tech lead.
    ladder=ladder(
        (0, ("slack #incidents", "sms primary", "call primary")),
        (15, ("sms secondary", "call secondary")),
        (30, ("sms tess", "call tess", "email sid")),
    ),
    critical_word="SEV-1",
    handoff_zone="America/New_York",
    handoff_time=time(9, 0),
    reach_within={CRITICAL: 15 * MINUTE, HIGH: 15 * MINUTE},
    business_word="SEV-4",
    zone="America/New_York",
)

MADPLAN = Example(
    file="madplan.yaml",
    team="madplan",
    table=(
        row(
            ("P0 - Critical (Sev 1)", "P0 - Critical", "P0", "Sev 1", "P0/P1"),
            CRITICAL,
            "slack #incidents",
            "sms primary",
            "call primary",
            "email primary",  # on-call@ and engineering-manager@
            "email tara",
        ),
        row(
            ("P1 - High (Sev 2)", "P1 - High", "P1", "Sev 2"),
            HIGH,
            "slack #incidents",
            "sms primary",
            "email primary",
        ),
        row(
            ("P2 - Medium (Sev 3)", "P2 - Medium", "P2", "Sev 3"),
            MEDIUM,
            "slack #incidents",
            "sms primary",
            "email sam",  # team-lead@
        ),
        row(
            ("P3 - Low (Sev 4)", "P3 - Low", "P3", "Sev 4"),
            LOW,
            # dev-team@
            *(f"email {p}" for p in ("mia", "noah", "omar", "pia", "quinn", "rosa", "sam")),
        ),
    ),
    on_call={"primary": "noah", "secondary": "quinn"},
    # Primary (15min) → Secondary (30min) → Team Lead (45min) → Engineering Manager (60min).
    ladder=ladder(
        (
            0,
            ("slack #incidents", "sms primary", "call primary", "email primary", "email tara"),
        ),
        (15, ("sms secondary", "call secondary")),
        (30, ("sms sam", "call sam")),
        (45, ("sms tara", "call tara")),
        (60, ("sms uri", "call uri", "sms vera", "call vera")),
    ),
    critical_word="P0 - Critical (Sev 1)",
    handoff_zone="UTC",
    handoff_time=time(9, 0),
    reach_within={CRITICAL: 15 * MINUTE, HIGH: 15 * MINUTE, MEDIUM: HOUR},
    business_word="P3",
    zone="Europe/London",
)

MOTHER_HARNESS = Example(
    file="mother-harness.yaml",
    team="mother-harness",
    table=(
        row(
            ("P1", "P1 - Critical", "critical (P1)", "P1/P2"),
            CRITICAL,
            "slack #incidents",
            "sms primary",
            "call primary",
            "email primary",
            # "Simultaneously notify Secondary On-Call + Engineering Manager"
            "sms secondary",
            "call secondary",
            "sms yara",
            "call yara",
        ),
        row(
            ("P2", "P2 - High", "P2/P3"),
            HIGH,
            "slack #alerts",
            "sms primary",
            "email mh-eng-list",
        ),
        row(
            ("P3", "P3 - Medium", "P3/P4"),
            MEDIUM,
            "slack #monitoring",
            "email mh-eng-list",
        ),
        row(("P4", "P4 - Low"), LOW, "email mh-eng-list"),
    ),
    on_call={"primary": "wanda", "secondary": "xavier"},
    ladder=ladder(
        (
            0,
            (
                "slack #incidents",
                "sms primary",
                "call primary",
                "email primary",
                "sms secondary",
                "call secondary",
                "sms yara",
                "call yara",
            ),
        ),
        (30, ("sms zane", "call zane")),
    ),
    critical_word="P1",
    handoff_zone="America/New_York",
    handoff_time=time(9, 0),
    reach_within={CRITICAL: 5 * MINUTE, HIGH: 15 * MINUTE},
    business_word="P3",
    zone="America/New_York",
)

PROFILE = Example(
    file="profile.yaml",
    team="profile",
    table=(
        row(
            ("P1", "P1 - Critical", "P1/P2", "Critical"),
            CRITICAL,
            "slack #profile-alerts",
            "sms primary",
            "call primary",
        ),
        row(("P2", "P2 - High"), HIGH, "slack #profile-alerts", "sms primary"),
        row(
            ("P3", "P3 - Medium", "Warning"),
            MEDIUM,
            "slack #profile-alerts",
            "sms primary",
        ),
        row(("P4", "P4 - Low", "Info"), LOW, "slack #profile-alerts"),
    ),
    on_call={"primary": "lena", "secondary": "marek"},
    ladder=ladder(
        (0, ("slack #profile-alerts", "sms primary", "call primary")),
        (15, ("sms secondary", "call secondary")),
        (30, ("sms olek", "call olek")),
        (60, ("sms pawel", "call pawel")),
    ),
    critical_word="P1",
    handoff_zone="UTC",
    handoff_time=time(10, 0),
    # Warning: a 1-hour response at any hour.
    reach_within={CRITICAL: 15 * MINUTE, HIGH: 15 * MINUTE, MEDIUM: HOUR},
    business_word="Info",
    zone="Europe/Warsaw",
)

ALL = (METABOLIC_TRACKER, INCIDENT_PLAYBOOK, MADPLAN, MOTHER_HARNESS, PROFILE)


@functools.cache
def load(path: Path) -> Config:
    return load_config(path, {})


def where(example: Example, company: bool) -> tuple[Path, dict[str, str]]:
    """The file to read and the labels that pick the example's team in it."""
    if company:
        return COMPANY, {"team": example.team}
    return EXAMPLES / example.file, {}


def expand(example: Example, pages: frozenset[str]) -> set[tuple[str, str]]:
    """Pages as (channel, person id or #destination): `sms primary` is an SMS to whoever
    holds the primary rotation at AT."""
    out = set()
    for page in pages:
        channel, who = page.split()
        out.add((channel, example.on_call.get(who, who)))
    return out


def level0(config: Config, labels: dict[str, str]) -> tuple[str, Severity, bool, set[Any]]:
    result = plan(config, synthetic_group(labels, AT), AT)
    (routed,) = result.alerts
    got = set()
    for n in result.notifications:
        assert n.level == 0
        who = n.recipient.name
        if who not in config.people:
            who = "#" + who.rsplit("/", 1)[-1]  # a team's destination is "<team>/<name>"
        got.add((n.channel.value, who))
    return routed.team, routed.severity.severity, routed.severity.defaulted, got


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(list(args)) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


def simulate(
    capsys: pytest.CaptureFixture[str], path: Path, labels: Mapping[str, str], at: datetime
) -> Any:
    text = ",".join(f"{k}={v}" for k, v in labels.items())
    return run(
        capsys,
        "simulate",
        "--config",
        str(path),
        "--labels",
        text,
        "--at",
        at.isoformat(),
        "--json",
    )


# -- check -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_check_passes_without_warnings(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(path), "--at", "2027-03-16T15:00Z"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"{path}: OK (")


def test_every_example_is_tested() -> None:
    """A new example file needs its table here (company.yaml is the four teams)."""
    tested = {e.file for e in ALL} | {COMPANY.name}
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == tested


def test_company_has_the_four_teams_and_a_default() -> None:
    config = load(COMPANY)
    assert [t.team for t in config.teams] == [
        "metabolic-tracker",
        "madplan",
        "mother-harness",
        "profile",
    ]
    assert config.team == "metabolic-tracker"  # default_team
    # An alert without a team label, or with an unknown one, is the default team's.
    assert config.team_for({"severity": "P1"}).team == "metabolic-tracker"
    assert config.team_for({"team": "payments"}).team == "metabolic-tracker"
    for team in ("madplan", "mother-harness", "profile"):
        assert config.team_for({"team": team}).team == team


# -- the tables: every word of each document -> severity and level-0 pages ---------------------


def _table_cases() -> list[Any]:
    cases = []
    for example in ALL:
        for r in example.table:
            for word in r.words:
                for company in (False, True):
                    name = f"{'company:' if company else ''}{example.file}:{word}"
                    cases.append(pytest.param(example, r, word, company, id=name))
    return cases


@pytest.mark.parametrize(("example", "r", "word", "company"), _table_cases())
def test_each_word_reaches_its_severity_channels_and_people(
    example: Example, r: Row, word: str, company: bool
) -> None:
    path, labels = where(example, company)
    config = load(path)
    expected = expand(example, r.pages)
    # As the document writes it, and as people type it: any case, spaces, - or _.
    for spelling in (word, word.swapcase(), f" {word.lower().replace(' ', '_')} "):
        team, severity, defaulted, pages = level0(config, {**labels, "severity": spelling})
        assert team == (example.team if company else "")
        assert (severity, defaulted) == (r.severity, False), spelling
        assert pages == expected, spelling


@pytest.mark.parametrize("example", ALL, ids=lambda e: e.file)
def test_the_on_call_people_of_the_tables(
    example: Example, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tables' `primary` and `secondary` are who `who` says holds them at AT."""
    for company in (False, True):
        path, _ = where(example, company)
        args = ["who", "--config", str(path), "--at", AT.isoformat(), "--json"]
        report = run(capsys, *([*args, "--team", example.team] if company else args))
        if company:
            report = report["teams"][example.team]
        held = {name: r["on_call"] for name, r in report["rotations"].items()}
        assert held == {name: [person] for name, person in example.on_call.items()}


# -- the issue's table, with company.yaml ------------------------------------------------------


def _company(team: str, word: str) -> tuple[Severity, set[Any]]:
    got_team, severity, defaulted, pages = level0(load(COMPANY), {"team": team, "severity": word})
    assert (got_team, defaulted) == (team, False)
    return severity, pages


@pytest.mark.parametrize(
    ("team", "word", "severity"),
    [
        ("metabolic-tracker", "P0", CRITICAL),
        ("metabolic-tracker", "P1", HIGH),
        ("metabolic-tracker", "P2", MEDIUM),
        ("metabolic-tracker", "P3", LOW),
        ("metabolic-tracker", "SEV-1", CRITICAL),
        ("metabolic-tracker", "SEV-2", HIGH),
        ("metabolic-tracker", "SEV-3", MEDIUM),
        ("metabolic-tracker", "SEV-4", LOW),
        ("madplan", "P0 - Critical (Sev 1)", CRITICAL),
        ("madplan", "Sev 1", CRITICAL),
        ("madplan", "P0 - Critical", CRITICAL),
        ("madplan", "P1 - High (Sev 2)", HIGH),
        ("mother-harness", "P1", CRITICAL),
        ("mother-harness", "P2", HIGH),
        ("mother-harness", "P3", MEDIUM),
        ("mother-harness", "P3 - Medium", MEDIUM),
        ("mother-harness", "P4 - Low", LOW),
        ("profile", "P1", CRITICAL),
        ("profile", "P3 - Medium", MEDIUM),
        ("profile", "P4 - Low", LOW),
        ("profile", "Warning", MEDIUM),
    ],
)
def test_the_issue_rows_with_company(team: str, word: str, severity: Severity) -> None:
    assert _company(team, word)[0] is severity


@pytest.mark.parametrize(
    ("team", "phoned_at_once"),
    [
        ("mother-harness", True),
        ("profile", True),
        ("metabolic-tracker", False),
        ("madplan", False),
    ],
)
def test_p1_is_phoned_at_once_only_where_it_is_critical(team: str, phoned_at_once: bool) -> None:
    severity, pages = _company(team, "P1")
    assert severity is (CRITICAL if phoned_at_once else HIGH)
    assert any(channel == "call" for channel, _ in pages) is phoned_at_once
    # Either way somebody is texted at once.
    assert any(channel == "sms" for channel, _ in pages)


# -- simulate: the critical ladder -------------------------------------------------------------


@pytest.mark.parametrize("company", [False, True], ids=["file", "company"])
@pytest.mark.parametrize("example", ALL, ids=lambda e: e.file)
def test_simulate_shows_the_critical_ladder(
    example: Example, company: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path, labels = where(example, company)
    out = simulate(capsys, path, {**labels, "severity": example.critical_word}, AT)
    assert out["severity"] == "critical"
    (route,) = out["routes"]
    times = [minutes * MINUTE for minutes, _ in example.ladder]
    assert [s["after_seconds"] for s in route["steps"]] == times
    assert [s["level"] for s in route["steps"]] == list(range(len(times)))
    assert [s["after_seconds"] for s in out["timeline"]] == times
    for level, (step, (_, pages)) in enumerate(zip(out["timeline"], example.ladder, strict=True)):
        assert step["levels"] == [{"route": route["name"], "level": level}]
        assert (
            step["at"]
            == (AT + timedelta(seconds=step["after_seconds"]))
            .astimezone(ZoneInfo(example.zone))
            .isoformat()
        )
        new = {
            (p["channel"], p["recipient"].rsplit("/", 1)[-1])
            for p in step["pages"]
            if p["level"] == level
        }
        # Slack destinations by name, people by id.
        new = {(c, w if c != "slack" else "#" + w) for c, w in new}
        assert new == expand(example, pages), level


# -- a person is reached within the response time, at any hour --------------------------------


def _night_and_weekend_starts(zone: str) -> list[datetime]:
    """Every 3 hours through a week (Saturday 20 March 2027 on, local), and Christmas night."""
    tz = ZoneInfo(zone)
    first = datetime(2027, 3, 20, 0, 30, tzinfo=tz)
    starts = [first + timedelta(hours=3 * n) for n in range(8 * 7)]
    return [*starts, datetime(2027, 12, 25, 3, 0, tzinfo=tz)]


def first_person_reached(config: Config, labels: dict[str, str], start: datetime) -> float | None:
    """Seconds from the alert's start to its first text or call to a person (None: never)."""
    team = config.team_for(labels)
    timeline = timeline_of(team, labels, start)
    assert timeline.first.alerts[0].severity.defaulted is False
    reached = [
        step.offset
        for step in timeline.steps
        for page in step.pages
        if page.notification.channel in (Channel.SMS, Channel.CALL)
        and page.notification.recipient.name in config.people
    ]
    return min(reached, default=None)


def _reach_cases() -> list[Any]:
    return [
        pytest.param(example, r, company, id=f"{'company:' if company else ''}{example.file}:{w}")
        for example in ALL
        for r in example.table
        if r.severity in example.reach_within
        for w in r.words[:1]
        for company in (False, True)
    ]


@pytest.mark.parametrize(("example", "r", "company"), _reach_cases())
def test_a_person_is_texted_or_called_within_the_response_time_at_any_hour(
    example: Example, r: Row, company: bool
) -> None:
    """High (15 min-1 h) and critical reach a person, not only Slack and email, at night and at
    weekends; so do ProFile's Warning and MadPlan's P2 (1 h)."""
    limit = example.reach_within[r.severity]
    path, labels = where(example, company)
    config = load(path)
    for word in r.words:
        for start in _night_and_weekend_starts(example.zone):
            first = first_person_reached(config, {**labels, "severity": word}, start)
            assert first is not None, (word, start)
            assert first <= limit, (word, start)


def test_profile_warning_pages_a_person_around_the_clock() -> None:
    """The issue's row: ProFile's "Warning" is not business-hours Slack only."""
    config = load(COMPANY)
    for start in _night_and_weekend_starts("Europe/Warsaw"):
        first = first_person_reached(config, {"team": "profile", "severity": "Warning"}, start)
        assert first == 0, start


# -- business hours ----------------------------------------------------------------------------


@pytest.mark.parametrize("company", [False, True], ids=["file", "company"])
@pytest.mark.parametrize("example", ALL, ids=lambda e: e.file)
def test_next_business_day_waits_for_business_hours(
    example: Example, company: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A "next business day" alert on a Saturday pages nobody; it opens Monday 09:00 in the
    team's zone."""
    path, labels = where(example, company)
    tz = ZoneInfo(example.zone)
    saturday = datetime(2027, 3, 20, 12, 0, tzinfo=tz)
    out = simulate(capsys, path, {**labels, "severity": example.business_word}, saturday)
    first = out["timeline"][0]
    assert first["pages"] == []
    assert first["skipped"]
    opens = {s["window_opens"] for s in first["skipped"]}
    assert opens == {datetime(2027, 3, 22, 9, 0, tzinfo=tz).isoformat()}
    # Inside business hours the same alert goes out at once.
    out = simulate(capsys, path, {**labels, "severity": example.business_word}, AT)
    assert out["timeline"][0]["pages"]
    assert out["timeline"][0]["skipped"] == []


# -- who: the handoff at its day, time and zone across the DST changes of 2027 ---------------

# Europe/London (and Warsaw) and America/New_York change their clocks on these days.
DST_CHANGES = (date(2027, 3, 14), date(2027, 3, 28), date(2027, 10, 31), date(2027, 11, 7))


def handoffs_around(day: date, zone: str, at: time) -> list[datetime]:
    """The Mondays at `at` in `zone` from 10 days before `day` to 10 days after it."""
    tz = ZoneInfo(zone)
    out = []
    for offset in range(-10, 11):
        d = day + timedelta(days=offset)
        if d.weekday() == 0:
            out.append(datetime.combine(d, at, tz))
    return out


@pytest.mark.parametrize("company", [False, True], ids=["file", "company"])
@pytest.mark.parametrize("example", ALL, ids=lambda e: e.file)
def test_who_hands_off_at_the_documented_time_across_dst(
    example: Example, company: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = where(example, company)

    def who(at: datetime) -> dict[str, Any]:
        args = ["who", "--config", str(path), "--at", at.isoformat(), "--json"]
        report = run(capsys, *([*args, "--team", example.team] if company else args))
        rotations: dict[str, Any] = (report["teams"][example.team] if company else report)[
            "rotations"
        ]
        assert set(rotations) == set(example.rotations)
        return rotations

    checked = 0
    for day in DST_CHANGES:
        for handoff in handoffs_around(day, example.handoff_zone, example.handoff_time):
            before, after = who(handoff - timedelta(minutes=1)), who(handoff)
            following = handoff + timedelta(weeks=1)  # same wall-clock time a week on
            for name in example.rotations:
                # Until the handoff, in the rotation's zone; then the next person, for a week.
                assert before[name]["until"] == handoff.isoformat(), (name, handoff)
                assert after[name]["until"] == following.isoformat(), (name, handoff)
                assert after[name]["on_call"] == before[name]["next"]
                assert after[name]["on_call"] != before[name]["on_call"]
                checked += 1
    assert checked >= len(DST_CHANGES) * 2 * len(example.rotations)
