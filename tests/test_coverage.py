"""`check`'s look-ahead for gaps in on-call cover: how far it looks, and `--horizon`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.routing.coverage import default_horizon, gaps

# Week 0 starts Monday 4 January 2027 09:00; the secondary is the next member in line.
ROUTING = """\
timezone: Europe/London
people:
{people}
rotations:
  primary:
    members: [{members}]
    handoff: "2027-01-04 09:00"
    turn: {turn}
    overrides: [{overrides}]
  secondary: {{backs_up: primary}}
routes:
  - name: all
    targets: [{{kind: sms, rotation: primary}}, {{kind: sms, rotation: secondary}}]
"""
START = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
# Wednesday to Thursday of week 6 (days 35 to 41 after the first handoff).
WEEK_6 = ("2027-02-10 09:00", "2027-02-11 09:00")


def routing(tmp_path: Path, members: str, turn: str = "1w", override: str = "") -> Path:
    """A routing file with these rotation members, optionally one override."""
    names = [m.strip() for m in members.split(",")]
    people = "\n".join(f'  {n}: {{phone: "+4477009001{i:02d}"}}' for i, n in enumerate(names))
    path = tmp_path / "routing.yaml"
    text = ROUTING.format(people=people, members=members, turn=turn, overrides=override)
    path.write_text(text)
    return path


def week_6_override(person: str) -> str:
    return f'{{person: {person}, from: "{WEEK_6[0]}", until: "{WEEK_6[1]}"}}'


@pytest.mark.parametrize(
    ("members", "turn", "horizon"),
    [
        ("a, b, c", "1w", timedelta(weeks=4)),  # a 3-week cycle: never less than 4 weeks
        ("a, b, c, d, e, f, g", "1w", timedelta(weeks=7)),
        ("a, b", "30d", timedelta(days=60)),
        ("a, b", "12h", timedelta(weeks=4)),
    ],
)
def test_default_horizon_is_a_full_cycle_and_at_least_four_weeks(
    tmp_path: Path, members: str, turn: str, horizon: timedelta
) -> None:
    """The default look-ahead is the longest rotation's cycle (members times turn), at least 4w."""
    config = load_config(routing(tmp_path, members, turn), {})
    assert default_horizon(config) == horizon


def test_week_6_override_needs_a_horizon_past_four_weeks(tmp_path: Path) -> None:
    """An override in week 6 making the secondary also primary is a gap only a horizon past
    week 6 sees; the gap is reported with its exact span."""
    # Week 5 (0-based) of a, b, c: primary c, secondary a; the override makes a primary too.
    config = load_config(routing(tmp_path, "a, b, c", override=week_6_override("a")), {})
    assert gaps(config, START) == []
    (gap,) = gaps(config, START, timedelta(weeks=13))
    assert (gap.rotation, str(gap)) == (
        "secondary",
        f"rotations.secondary: {WEEK_6[0]} to {WEEK_6[1]} GMT: a holds both secondary and "
        "primary: nobody backs them up",
    )


def test_default_horizon_sees_week_6_of_a_seven_week_cycle(tmp_path: Path) -> None:
    """With seven weekly members the default look-ahead covers week 6 without asking."""
    path = routing(tmp_path, "a, b, c, d, e, f, g", override=week_6_override("g"))
    (gap,) = gaps(load_config(path, {}), START)
    assert gap.message == "g holds both secondary and primary: nobody backs them up"


def test_check_horizon_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check --horizon 13w` warns of the week-6 gap that the default 4 weeks do not reach."""
    path = routing(tmp_path, "a, b, c", override=week_6_override("a"))
    argv = ["check", "--config", str(path), "--at", "2027-01-04T10:00"]
    assert main(argv) == 0
    assert "holds both" not in capsys.readouterr().err
    assert main([*argv, "--horizon", "13w"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: {path}: rotations.secondary: {WEEK_6[0]} to {WEEK_6[1]} GMT: a holds both "
        "secondary and primary: nobody backs them up"
    ]


@pytest.mark.parametrize(
    ("horizon", "message"),
    [("13", "bad duration '13'"), ("0w", "must be more than 0"), ("soon", "bad duration")],
)
def test_check_rejects_a_bad_horizon(
    capsys: pytest.CaptureFixture[str], horizon: str, message: str
) -> None:
    """A horizon that is not a positive duration is a usage error (exit 2) naming the option."""
    assert main(["check", "--horizon", horizon]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --horizon: ")
    assert message in err


def test_a_gap_is_shown_in_the_rotations_zone(tmp_path: Path) -> None:
    """A UTC rotation in a London file: its handoffs, and so its gaps, are 10:00 UTC, and are
    printed in UTC, also in summer (when London is an hour ahead)."""
    text = ROUTING.format(
        people='  a: {phone: "+447700900100"}\n  b: {phone: "+447700900101"}',
        members="a, b",
        turn="1w",
        overrides='{person: b, from: "2027-06-07 10:00", until: "2027-06-08 10:00"}',
    )
    text = text.replace('    handoff: "2027-01-04 09:00"\n', '    handoff: "2027-01-04 10:00"\n')
    text = text.replace("  primary:\n", "  primary:\n    timezone: UTC\n")
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    # Week 22 (from Monday 7 June) is a's, so b is the secondary; the override makes b primary.
    (gap,) = gaps(load_config(path, {}), datetime(2027, 6, 1, tzinfo=UTC), timedelta(weeks=3))
    assert str(gap) == (
        "rotations.secondary: 2027-06-07 10:00 to 2027-06-08 10:00 UTC: b holds both secondary "
        "and primary: nobody backs them up"
    )
