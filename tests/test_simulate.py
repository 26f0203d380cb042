"""`oncall-router simulate`: an alert's timeline on the shipped routing file, as a user runs it."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from receiver.cli.main import main
from tests.helpers import ROUTING

CRITICAL = "alertname=HighErrorRate,severity=critical,service=payments-api"


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["simulate", "--config", str(ROUTING), *args])
    return code, capsys.readouterr().out


def blocks(out: str) -> dict[str, list[str]]:
    """The text timeline split by step: `+15m` -> the lines under it."""
    steps: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if m := re.match(r"^(\+\w+)\s", line):
            current = steps.setdefault(m[1], [])
        elif current is not None and line.startswith("        "):
            current.append(line.strip())
        else:
            current = None
    return steps


def paged(lines: list[str]) -> set[tuple[str, str]]:
    """(channel, person id or #channel) of each page line of a step."""
    return {
        (parts[0], parts[1])
        for line in lines
        if (parts := line.split()) and parts[0] in ("slack", "sms", "call", "email")
    }


@pytest.mark.parametrize(
    ("at", "primary", "secondary"),
    [
        # Monday 16 March: week 9 since the 12 January handoff -> alice, with bob behind her.
        ("2026-03-16T10:00", "alice", "bob"),
        # A week later the rotation has moved on by one.
        ("2026-03-24T10:00", "bob", "dave"),
    ],
)
def test_critical_weekday_timeline(
    capsys: pytest.CaptureFixture[str], at: str, primary: str, secondary: str
) -> None:
    """Primary at +0, secondary at +15m, tech lead +30m, EM +1h, CTO +2h, each step at the
    time it falls due."""
    code, out = simulate(capsys, "--labels", CRITICAL, "--at", at)
    assert code == 0
    assert "Severity: critical (label severity='critical' is critical)" in out
    assert "Routes:   critical" in out
    steps = blocks(out)
    assert list(steps) == ["+0m", "+15m", "+30m", "+1h", "+2h"]
    assert paged(steps["+0m"]) == {
        ("slack", "#incidents"),
        ("sms", primary),
        ("call", primary),
        ("email", "carol"),
        ("email", "erin"),
    }
    # The incidents channel hears of each escalation (its message is edited, and says so).
    slack = ("slack", "#incidents")
    assert paged(steps["+15m"]) == {slack, ("sms", secondary), ("call", secondary)}
    assert paged(steps["+30m"]) == {slack, ("sms", "carol"), ("call", "carol")}
    assert paged(steps["+1h"]) == {slack, ("sms", "erin"), ("call", "erin")}
    assert paged(steps["+2h"]) == {slack, ("sms", "frank"), ("call", "frank")}
    day = at[:10]
    assert re.search(rf"^\+15m\s+\w{{3}} {day} 10:15 GMT  critical level 1$", out, re.M)
    assert re.search(rf"^\+2h\s+\w{{3}} {day} 12:00 GMT  critical level 4$", out, re.M)
    assert any(
        line.startswith(f"sms    {secondary} ") and line.endswith("rotation secondary")
        for line in steps["+15m"]
    )
    assert "skipped" not in out


def test_handoff_during_escalation_pages_the_incoming_secondary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fired Monday 08:50 BST, just before the 09:00 handoff (in summer time): level 0 goes to
    the outgoing primary, level 1 (09:05) to the secondary of the new week."""
    code, out = simulate(capsys, "--labels", CRITICAL, "--at", "2026-03-30T08:50", "--json")
    assert code == 0
    timeline = json.loads(out)["timeline"]
    assert timeline[0]["at"] == "2026-03-30T08:50:00+01:00"
    assert {(p["channel"], p["recipient"]) for p in timeline[0]["pages"]} >= {
        ("sms", "bob"),
        ("call", "bob"),
    }
    assert {(p["channel"], p["recipient"]) for p in timeline[1]["pages"]} == {
        ("slack", "incidents"),
        ("sms", "alice"),
        ("call", "alice"),
    }


def test_warning_on_saturday_is_held_for_business_hours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = simulate(
        capsys, "--labels", "alertname=DiskFilling,severity=warning", "--at", "2026-03-21T10:00"
    )
    assert code == 0
    assert "Severity: medium (label severity='warning' is an alias of medium)" in out
    assert "Routes:   low-urgency (only in business-hours)" in out
    assert blocks(out)["+0m"] == [
        "skipped slack to channel alerts: outside business-hours, opens Mon 2026-03-23 09:00 GMT",
        "nobody new is paged now",
    ]


def test_warning_on_a_weekday_goes_to_slack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = simulate(
        capsys, "--labels", "alertname=DiskFilling,severity=warning", "--at", "2026-03-20T16:59"
    )
    assert code == 0
    assert paged(blocks(out)["+0m"]) == {("slack", "#alerts")}
    assert "skipped" not in out


def test_json_structure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = simulate(capsys, "--labels", CRITICAL, "--at", "2026-03-16T10:00", "--json")
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    assert data["start"] == "2026-03-16T10:00:00+00:00"
    assert data["labels"] == {
        "alertname": "HighErrorRate",
        "severity": "critical",
        "service": "payments-api",
    }
    assert (data["severity"], data["severity_defaulted"]) == ("critical", False)
    assert [r["name"] for r in data["routes"]] == ["critical"]
    assert [s["after_seconds"] for s in data["routes"][0]["steps"]] == [0, 900, 1800, 3600, 7200]
    timeline = data["timeline"]
    assert [s["after"] for s in timeline] == ["+0m", "+15m", "+30m", "+1h", "+2h"]
    assert [s["at"] for s in timeline][1] == "2026-03-16T10:15:00+00:00"
    assert [s["levels"] for s in timeline][4] == [{"route": "critical", "level": 4}]
    first = timeline[0]["pages"][1]
    assert set(first) == {"route", "level", "channel", "recipient", "to", "target", "key", "name"}
    assert first == first | {
        "route": "critical",
        "level": 0,
        "channel": "sms",
        "recipient": "alice",
        "to": "+447700900101",
        "target": "sms:rotation:primary",
        "name": "Alice Archer",
    }
    keys = [p["key"] for s in timeline for p in s["pages"]]
    # 5 at level 0, then per step 2 pages and the channel's note of the escalation.
    assert len(keys) == len(set(keys)) == 17
    assert all(s["skipped"] == [] and s["notes"] == [] for s in timeline)


def test_json_with_rendered_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = simulate(
        capsys, "--labels", CRITICAL, "--at", "2026-03-16T10:00", "--json", "--text"
    )
    assert code == 0
    sms = json.loads(out)["timeline"][0]["pages"][1]
    assert sms["text"].startswith("CRIT HighErrorRate @ payments-api, firing for <1m: simulated")


def test_json_skip_names_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = simulate(capsys, "--labels", "severity=info", "--at", "2026-12-25T11:00", "--json")
    assert code == 0
    step = json.loads(out)["timeline"][0]
    assert step["pages"] == []
    assert step["skipped"] == [
        {
            "route": "low-urgency",
            "level": 0,
            "target": "slack:channel:alerts",
            "window": "business-hours",
            # Christmas is a Friday, the 28th a holiday too: Tuesday the 29th.
            "window_opens": "2026-12-29T09:00:00+00:00",
        }
    ]


def test_default_severity_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = simulate(capsys, "--labels", "alertname=Mystery", "--at", "2026-03-16T10:00")
    assert code == 0
    assert "Severity: high (no severity label (severity, priority); default high)" in out
    assert paged(blocks(out)["+0m"]) == {("slack", "#alerts"), ("email", "alice")}
    assert paged(blocks(out)["+1h"]) == {("slack", "#alerts"), ("sms", "alice"), ("email", "bob")}


def test_repeat_rounds_and_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A route with `repeat` shows each round; someone reached twice is noted, not dropped."""
    config = tmp_path / "routing.yaml"
    config.write_text(
        """\
timezone: Europe/London
people:
  alice: {phone: "+447700900101"}
  bob: {phone: "+447700900102"}
groups:
  everyone: [alice, bob]
routes:
  - name: pager
    repeat: 10m
    targets: [{kind: sms, person: alice}]
    escalation:
      - after: 25m
        targets: [{kind: sms, group: everyone}]
"""
    )
    argv = ["simulate", "--config", str(config), "--labels", "alertname=X"]
    assert main([*argv, "--at", "2026-03-16T10:00"]) == 0
    steps = blocks(capsys.readouterr().out)
    assert list(steps) == ["+0m", "+10m", "+20m", "+25m", "+35m", "+45m"]
    assert paged(steps["+10m"]) == {("sms", "alice")}
    assert paged(steps["+35m"]) == {("sms", "bob")}
    assert (
        "note: sms to group everyone: alice already paged by sms (pager level 0)" in (steps["+25m"])
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [("severity", "'severity' is not k=v"), ("=x", "'=x' is not k=v"), (",", "at least one")],
)
def test_bad_labels(capsys: pytest.CaptureFixture[str], labels: str, message: str) -> None:
    assert main(["simulate", "--config", str(ROUTING), "--labels", labels]) == 2
    assert message in capsys.readouterr().err


DST_ROUTING = """\
timezone: {tz}
people:
  alice: {{phone: "+447700900101"}}
  bob: {{phone: "+447700900102"}}
  carol: {{phone: "+447700900103"}}
  dave: {{phone: "+447700900104"}}
rotations:
  primary:
    members: [alice, bob]
    handoff: "2027-01-01 {handoff}"
    turn: 1d
routes:
  - name: pager
    targets: [{{kind: sms, person: carol}}]
    escalation:
      - after: 45m
        targets: [{{kind: sms, person: dave}}]
      - after: 2h
        targets: [{{kind: sms, rotation: primary}}]
"""


@pytest.mark.parametrize(
    ("tz", "at", "handoff", "times", "holder"),
    [
        # Clocks go forward at 01:00 GMT: +45m is 02:15 BST (not 01:15 GMT), +2h is 03:30 BST,
        # after the 03:00 handoff (wall-clock arithmetic said 02:30 BST, before it: bob).
        (
            "Europe/London",
            "2027-03-28T00:30",
            "03:00",
            ["Sun 2027-03-28 00:30 GMT", "Sun 2027-03-28 02:15 BST", "Sun 2027-03-28 03:30 BST"],
            "alice",
        ),
        # Clocks go back at 02:00 BST: +2h is 01:30 GMT, the second 01:30 of the night, before
        # the 02:00 handoff (wall-clock arithmetic said 02:30 GMT, after it: bob).
        (
            "Europe/London",
            "2027-10-31T00:30",
            "02:00",
            ["Sun 2027-10-31 00:30 BST", "Sun 2027-10-31 01:15 BST", "Sun 2027-10-31 01:30 GMT"],
            "alice",
        ),
        # 02:00 EST becomes 03:00 EDT: +45m is 03:15 EDT (02:15 EST does not exist), +2h 04:30
        # EDT, after the 04:00 handoff (wall-clock arithmetic said 03:30 EDT: bob).
        (
            "America/New_York",
            "2027-03-14T01:30",
            "04:00",
            ["Sun 2027-03-14 01:30 EST", "Sun 2027-03-14 03:15 EDT", "Sun 2027-03-14 04:30 EDT"],
            "alice",
        ),
        # 02:00 EDT becomes 01:00 EST: +2h is 01:30 EST, before the 02:00 handoff (wall-clock
        # arithmetic said 02:30 EST, after it: alice).
        (
            "America/New_York",
            "2027-11-07T00:30",
            "02:00",
            ["Sun 2027-11-07 00:30 EDT", "Sun 2027-11-07 01:15 EDT", "Sun 2027-11-07 01:30 EST"],
            "bob",
        ),
    ],
)
def test_steps_are_real_elapsed_time_across_dst(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tz: str,
    at: str,
    handoff: str,
    times: list[str],
    holder: str,
) -> None:
    """Across both 2027 DST changes each step is printed at a local time that exists, the real
    time elapsed after the start, and pages whoever holds the rotation at that instant."""
    config = tmp_path / "routing.yaml"
    config.write_text(DST_ROUTING.format(tz=tz, handoff=handoff))
    argv = ["simulate", "--config", str(config), "--labels", "alertname=X", "--at", at]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^\+\w+\s+(\w{3} \S+ \S+ \w+)  ", out, re.M) == times
    assert paged(blocks(out)["+2h"]) == {("sms", holder)}

    assert main([*argv, "--json"]) == 0
    timeline = json.loads(capsys.readouterr().out)["timeline"]
    instants = [datetime.fromisoformat(step["at"]) for step in timeline]
    # The printed offsets are right too: the steps are 45m and 2h after the start, as instants.
    assert [(t - instants[0]).total_seconds() for t in instants] == [0, 2700, 7200]
    assert [(p["recipient"], p["to"]) for p in timeline[2]["pages"]] == [
        (holder, "+447700900101" if holder == "alice" else "+447700900102")
    ]
