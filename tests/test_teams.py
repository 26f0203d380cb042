"""Several teams in one routing file: each alert decided by its own team's words and routes."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from receiver.cli.commands.simulate import synthetic_group
from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.config.yaml_file import ConfigError
from receiver.model import Channel, Severity
from receiver.routing.plan import plan
from receiver.routing.severity import decide_severity

START = datetime(2027, 3, 16, 9, 0, tzinfo=UTC)  # a Tuesday

TEAMS = """\
timezone: Europe/London
people:
  alice: {phone: "+447700900101", email: alice@example.com}
  bob: {phone: "+447700900102", email: bob@example.com}
  carol: {phone: "+447700900103", email: carol@example.com}
  dave: {phone: "+447700900104", email: dave@example.com}
slack:
  shared: {channel: C0SHARED}
default_team: platform
teams:
  profile:
    matchers: ['team="profile"']
    timezone: America/New_York
    severity:
      aliases:
        critical: [P1, Critical]
        high: [P2, Warning]
        medium: [P3]
        low: [P4, Info]
    rotations:
      primary: {members: [alice], handoff: "2027-01-04 10:00"}
    slack:
      alerts: {channel: C0PROFILE}
    routes:
      - name: critical
        severity: [critical]
        targets:
          - {kind: call, rotation: primary}
          - {kind: slack, channel: alerts}
        escalation:
          - {after: 1h30m, targets: [{kind: sms, person: carol}]}
      - name: rest
        targets: [{kind: slack, channel: alerts}]
  madplan:
    matchers: ['service=~"madplan-.*"']
    severity:
      labels: [priority]
      aliases:
        critical: ["P0 - Critical (Sev 1)", P0, Sev 1]
        high: ["P1 - High (Sev 2)", P1, Sev 2]
        medium: ["P2 - Medium (Sev 3)", P2, Sev 3]
        low: ["P3 - Low (Sev 4)", P3, Sev 4]
    rotations:
      primary: {members: [bob]}
    slack:
      alerts: {channel: C0MADPLAN}
    routes:
      - name: critical
        severity: [critical]
        targets: [{kind: call, rotation: primary}, {kind: slack, channel: alerts}]
      - name: rest
        targets: [{kind: slack, channel: alerts}]
  platform:
    severity:
      aliases:
        critical: [P0]
        high: [P1]
    routes:
      - name: critical
        severity: [critical]
        targets: [{kind: call, person: dave}, {kind: slack, channel: shared}]
      - name: rest
        targets: [{kind: slack, channel: shared}]
"""


def write(tmp_path: Path, text: str, name: str = "routing.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write(tmp_path, TEAMS), {})


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    return [str(p) for p in info.value.problems]


def decide(config: Config, labels: dict[str, str]) -> tuple[str, Severity, str]:
    team = config.team_for(labels)
    group = synthetic_group(labels, START)
    decision = decide_severity(team, group.alerts[0])
    return team.team, decision.severity, decision.reason


@pytest.mark.parametrize(
    ("labels", "team", "severity"),
    [
        # The same word, two meanings: P1 is critical to profile and high to madplan.
        ({"team": "profile", "severity": "P1"}, "profile", Severity.CRITICAL),
        ({"service": "madplan-api", "priority": "P1"}, "madplan", Severity.HIGH),
        ({"service": "madplan-api", "priority": "P0"}, "madplan", Severity.CRITICAL),
        ({"severity": "P1"}, "platform", Severity.HIGH),  # no team's matchers: the default
        ({"team": "profile", "severity": "warning"}, "profile", Severity.HIGH),
        ({"team": "profile", "severity": "P4"}, "profile", Severity.LOW),
        # The first team whose matchers match wins.
        (
            {"team": "profile", "service": "madplan-api", "severity": "P1"},
            "profile",
            Severity.CRITICAL,
        ),
    ],
)
def test_each_alert_is_decided_by_its_team(
    config: Config, labels: dict[str, str], team: str, severity: Severity
) -> None:
    got_team, got, reason = decide(config, labels)
    assert (got_team, got) == (team, severity)
    assert reason.startswith(f"team {team}: ")


@pytest.mark.parametrize(
    "word",
    [
        "Sev 1",
        "SEV-1",
        "sev_1",
        "sev1",
        "  Sev 1 ",
        "P0 - Critical (Sev 1)",
        "p0-critical (sev-1)",
        "P0_CRITICAL_(SEV_1)",
        "P0",
        "p0",
    ],
)
def test_severity_words_ignore_case_spaces_dashes_and_underscores(
    config: Config, word: str
) -> None:
    team, severity, reason = decide(config, {"service": "madplan-db", "priority": word})
    assert (team, severity) == ("madplan", Severity.CRITICAL)
    assert reason.endswith(("of critical", "is an alias of critical")), reason


def test_route_shows_the_team_and_the_alias_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, TEAMS)
    body = {
        "version": "4",
        "status": "firing",
        "groupKey": '{}:{service="madplan-api"}',
        "receiver": "oncall-router",
        "groupLabels": {"service": "madplan-api"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am.example",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ApiDown", "service": "madplan-api", "priority": "sev-1"},
                "annotations": {"summary": "down"},
                "startsAt": "2027-03-16T09:00:00Z",
                "fingerprint": "aa11",
            }
        ],
    }
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(body))
    assert main(["route", "--config", str(path), str(payload), "--at", "2027-03-16T09:01Z"]) == 0
    out = json.loads(capsys.readouterr().out)
    (routed,) = out["alerts"]
    assert routed["team"] == "madplan"
    assert routed["routes"] == ["madplan/critical"]
    assert routed["severity_reason"] == (
        "team madplan: label priority='sev-1' matches the alias 'Sev 1' of critical"
    )
    sent = {(n["channel"], n["to"]) for n in out["notifications"]}
    assert sent == {("call", "+447700900102"), ("slack", "madplan/alerts")}


def test_team_destinations_rotations_and_zones_are_the_teams(config: Config) -> None:
    """Both teams call their rotation `primary` and their channel `alerts`: each pages its own,
    and each message carries its team's zone."""
    profile = plan(config, synthetic_group({"team": "profile", "severity": "P1"}, START), START)
    madplan = plan(
        config, synthetic_group({"service": "madplan-x", "priority": "P0"}, START), START
    )
    assert {(n.channel, n.recipient.address) for n in profile.notifications} == {
        (Channel.CALL, "+447700900101"),
        (Channel.SLACK, "profile/alerts"),
    }
    assert {(n.channel, n.recipient.address) for n in madplan.notifications} == {
        (Channel.CALL, "+447700900102"),
        (Channel.SLACK, "madplan/alerts"),
    }
    assert {n.timezone for n in profile.notifications} == {ZoneInfo("America/New_York")}
    assert {n.timezone for n in madplan.notifications} == {ZoneInfo("Europe/London")}
    destinations = config.slack_destinations()
    assert destinations["profile/alerts"].channel == "C0PROFILE"
    assert destinations["madplan/alerts"].channel == "C0MADPLAN"
    assert destinations["shared"].channel == "C0SHARED"
    # Editable (Web API) messages are recognised by their team-qualified name too.
    assert all(n.editable for n in profile.notifications if n.channel is Channel.SLACK)


def test_a_group_mixing_teams_pages_each_alert_by_its_own_team(config: Config) -> None:
    one = synthetic_group({"team": "profile", "severity": "P1", "alertname": "A"}, START)
    two = synthetic_group({"service": "madplan-x", "priority": "P1", "alertname": "B"}, START)
    mixed = type(one)(one.source, "{}:{}", one.status, (*one.alerts, *two.alerts))
    result = plan(config, mixed, START)
    assert [(r.team, r.severity.severity) for r in result.alerts] == [
        ("profile", Severity.CRITICAL),
        ("madplan", Severity.HIGH),
    ]
    assert {n.route for n in result.notifications} == {"profile/critical", "madplan/rest"}


def test_compound_durations_in_a_ladder(config: Config) -> None:
    team = config.team_named("profile")
    assert team is not None
    route = team.all_routes()["profile/critical"]
    assert route.escalation[0].after == 90 * 60


def test_a_file_without_teams_is_one_implicit_team(tmp_path: Path) -> None:
    shipped = load_config(Path("routing.yaml"), {})
    assert shipped.teams == ()
    assert shipped.team == ""
    assert shipped.all_teams() == (shipped,)
    assert shipped.team_for({"team": "anything"}) is shipped
    assert [r.name for r in shipped.routes] == ["critical", "high", "low-urgency"]
    # No "team ..." prefix in explanations of a file without teams.
    _, severity, reason = decide(shipped, {"severity": "SEV 1"})
    assert severity is Severity.CRITICAL
    assert reason == "label severity='SEV 1' matches the alias 'SEV-1' of critical"


def test_check_names_the_teams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, TEAMS)
    assert main(["check", "--config", str(path), "--at", "2027-03-16T09:00Z"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        f"{path}: OK (3 teams: profile 2 routes, madplan 2 routes, platform 2 routes; "
        "default platform; 4 people)"
    )


def _broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "default_team: platform\n",
            "",
            ":9: default_team: required with several teams",
        ),
        ("default_team: platform", "default_team: plat", ":9: default_team: unknown team 'plat'"),
        (
            "    matchers: ['service=~\"madplan-.*\"']\n",
            "",
            ":34: teams.madplan.matchers: required: only the default team may go without",
        ),
        (
            "    timezone: America/New_York",
            "    timezone: America/Gotham",
            ":13: teams.profile.timezone: unknown time zone 'America/Gotham'",
        ),
        (
            "    rotations:\n      primary: {members: [bob]}",
            "    rotations:\n      primary: {members: [zed]}",
            ":44: teams.madplan.rotations.primary.members[0]: unknown person 'zed'",
        ),
        (
            "        high: [P2, Warning]",
            "        high: [P2, Warning, p-1]",
            ":17: teams.profile.severity.aliases.high[2]: alias 'p-1' already means critical "
            "(as 'P1')",
        ),
        (
            "      alerts: {channel: C0PROFILE}",
            "      shared: {channel: C0PROFILE}",
            ":23: teams.profile.slack.shared: Slack destination 'shared' is also defined at the "
            "file's top",
        ),
        (
            "          - {after: 1h30m, targets: [{kind: sms, person: carol}]}",
            "          - {after: 30m1h, targets: [{kind: sms, person: carol}]}",
            ":31: teams.profile.routes[0].escalation[0].after: bad duration '30m1h'",
        ),
        (
            "    routes:\n      - name: critical\n        severity: [critical]\n"
            "        targets: [{kind: call, person: dave}",
            "    routez:\n      - name: critical\n        severity: [critical]\n"
            "        targets: [{kind: call, person: dave}",
            ":58: teams.platform.routez: unknown key (did you mean 'routes'?)",
        ),
        (
            "default_team: platform\n",
            "default_team: platform\nroutes: []\n",
            ":10: routes: with teams, every route belongs to a team",
        ),
    ],
)
def test_team_mistakes_are_located(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = write(tmp_path, _broken(TEAMS, old, new))
    found = problems(path)
    assert any(p.startswith(f"{path}{expected}") for p in found), found


def test_a_word_meaning_two_things_is_flagged_only_where_an_alert_can_reach_both(
    tmp_path: Path,
) -> None:
    # profile (team="profile") and madplan (service=~"madplan-.*") can both match one alert,
    # and P1, P2, P3 mean more urgent things to profile than to madplan.
    config = load_config(write(tmp_path, TEAMS), {})
    warned = [str(w) for w in config.warnings]
    assert [w.split(": ", 2)[2].split(" here")[0] for w in warned] == [
        "'P1' is high",
        "'P2' is medium",
        "'P3' is low",
    ]
    assert warned[0].startswith(
        f"{tmp_path / 'routing.yaml'}:40: teams.madplan.severity.aliases.high:"
    )
    assert "but critical in team 'profile', and an alert can match both" in warned[0]
    # Pinned to different teams, no alert reaches both; the default team only takes the rest.
    exclusive = TEAMS.replace(
        "matchers: ['service=~\"madplan-.*\"']", "matchers: ['team=\"madplan\"']"
    )
    assert exclusive != TEAMS
    assert load_config(write(tmp_path, exclusive, "b.yaml"), {}).warnings == ()


def test_who_shows_each_team(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, TEAMS)
    assert main(["who", "--config", str(path), "--at", "2027-03-16T12:00Z"]) == 0
    out = capsys.readouterr().out
    assert "Team profile, at 2027-03-16 08:00 EDT:" in out
    assert "Team madplan, at 2027-03-16 12:00 GMT:" in out
    assert main(["who", "--config", str(path), "--team", "madplan", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["teams"]) == ["madplan"]
    assert report["teams"]["madplan"]["rotations"]["primary"]["on_call"] == ["bob"]
    assert main(["who", "--config", str(path), "--team", "nope"]) == 2
    assert "unknown team (teams: profile, madplan, platform)" in capsys.readouterr().err


def test_group_by_is_the_files_then_the_teams(tmp_path: Path) -> None:
    """`group_by` (for `alertmanager-config`): a team's own, else the file's, else the default."""
    text = TEAMS.replace(
        "default_team: platform\n", "default_team: platform\ngroup_by: [alertname, team]\n"
    )
    text = text.replace(
        "    matchers: ['team=\"profile\"']\n",
        "    matchers: ['team=\"profile\"']\n    group_by: [alertname, instance]\n",
    )
    config = load_config(write(tmp_path, text), {})
    assert {t.team: t.group_by for t in config.teams} == {
        "profile": ("alertname", "instance"),
        "madplan": ("alertname", "team"),
        "platform": ("alertname", "team"),
    }
    assert load_config(Path("routing.yaml"), {}).group_by == ("alertname", "cluster", "service")
    bad = write(
        tmp_path, text.replace("group_by: [alertname, team]", "group_by: [alert-name]"), "bad.yaml"
    )
    assert problems(bad) == [
        f"{bad}:10: group_by[0]: 'alert-name' is not a label name (or '...', every label)"
    ]


def test_test_page_resolves_names_in_the_team(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both teams have a rotation `primary`: `--team` says whose."""
    path = write(tmp_path, TEAMS)
    args = ["test-page", "--config", str(path), "--to", "rotation:primary", "--dry-run"]
    at = ["--at", "2027-03-16T12:00Z"]
    assert main([*args, *at, "--team", "madplan"]) == 0
    assert "Test page to rotation primary: bob" in capsys.readouterr().out
    assert main([*args, *at, "--team", "profile"]) == 0
    assert "Test page to rotation primary: alice" in capsys.readouterr().out
    assert main([*args, *at, "--team", "nobody"]) == 2
    assert "--team 'nobody': unknown team (teams: profile, madplan, platform)" in (
        capsys.readouterr().err
    )
