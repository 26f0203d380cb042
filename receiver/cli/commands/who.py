"""`oncall-router who`: who holds each rotation and group at a time, team by team."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from receiver.cli.commands import ConfigArg
from receiver.cli.tools import parse_time, pick_team
from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.routing.oncall import Shift, shift


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config_arg: ConfigArg
) -> None:
    who = sub.add_parser("who", help="who holds each rotation and group at a time")
    config_arg(who)
    who.add_argument("--at", help="ISO 8601 time (default: now, in the team's zone)")
    who.add_argument("--team", help="only this team (default: every team)")
    who.add_argument("--json", action="store_true", help="print JSON")
    who.set_defaults(func=_who)


def _who(args: argparse.Namespace) -> int:
    config = load_config(args.config, os.environ)
    teams = config.all_teams()
    if args.team is not None:
        teams = (pick_team(config, args.team),)
    if args.json:
        reports = {team.team: _report(team, args.at) for team in teams}
        print(json.dumps({"teams": reports} if config.teams else reports[""], indent=2))
        return 0
    for team in teams:
        _print(config, team, args.at)
    return 0


def _shifts(team: Config, at_text: str | None) -> tuple[datetime, dict[str, Shift]]:
    at = parse_time(at_text, team.timezone)
    return at, {name: shift(team, name, at) for name in team.rotations}


def _report(team: Config, at_text: str | None) -> dict[str, Any]:
    """One team's rotations (until: in the rotation's zone) and groups."""
    at, shifts = _shifts(team, at_text)
    return {
        "at": at.astimezone(team.timezone).isoformat(),
        "rotations": {
            name: {
                "on_call": [s.person],
                "until": s.until.isoformat(),
                "next": [s.next_person],
                **({"override": True} if s.override else {}),
            }
            for name, s in shifts.items()
        },
        "groups": {name: list(members) for name, members in team.groups.items()},
    }


def _print(config: Config, team: Config, at_text: str | None) -> None:
    at, shifts = _shifts(team, at_text)
    when = f"{at.astimezone(team.timezone):%Y-%m-%d %H:%M %Z}"
    out = [f"Team {team.team}, at {when}:" if team.team else f"At {when}:"]
    for name, s in shifts.items():
        note = " (override)" if s.override else ""
        out.append(
            f"  rotation {name}: {_person(config, s.person)}{note} "
            f"until {s.until:%a %Y-%m-%d %H:%M %Z}, then {_person(config, s.next_person)}"
        )
    for name, members in team.groups.items():
        out.append(f"  group {name}: {', '.join(_person(config, p) for p in members)}")
    sys.stdout.write("\n".join(out) + "\n")


def _person(config: Config, pid: str) -> str:
    person = config.people[pid]
    return pid if person.name == pid else f"{pid} ({person.name})"
