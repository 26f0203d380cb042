"""Read a routing file: YAML with line numbers, each section parsed, every problem located."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from receiver.config.people import parse_groups, parse_people, parse_slack
from receiver.config.policies import parse_acknowledgement, parse_delivery, parse_limits
from receiver.config.rotations import parse_rotations, parse_windows
from receiver.config.routes import check_coverage, parse_routes
from receiver.config.severity import parse_sentry, parse_severity_policy
from receiver.config.teams import (
    TEAM_KEYS,
    check_word_clashes,
    parse_group_by,
    parse_team,
    parse_timezone,
)
from receiver.config.types import DEFAULT_GROUP_BY, Config, RefKind, Route
from receiver.config.yaml_file import FILE, ConfigError, LineDict, load_yaml
from receiver.config.yaml_source import Reader


def load_config(
    path: str | Path, environ: Mapping[str, str], *, secrets_required: bool = False
) -> Config:
    """Read and validate a routing file; raises ConfigError listing every problem."""
    path = Path(path)
    data, problems = load_yaml(path)
    reader = Reader(str(path), environ, secrets_required)
    reader.problems.extend(problems)
    try:
        config = _build(reader, data)
    except Exception as e:
        # Every value is type-checked on the way in (tests/test_config_fuzz.py); should one
        # still slip through, `check` and a reload get a located problem, not a traceback.
        config = None
        reader.error(1, FILE, f"internal error while reading the file: {type(e).__name__}: {e}")
    if reader.problems or config is None:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line))
    return config


_TOP_KEYS = (
    "timezone",
    "severity",
    "sentry",
    "people",
    "groups",
    "rotations",
    "slack",
    "routes",
    "limits",
    "delivery",
    "acknowledgement",
    "time_windows",
    "teams",
    "default_team",
    "group_by",
)


def _build(r: Reader, data: Any) -> Config | None:
    top = r.mapping(data, 1, "", _TOP_KEYS)
    if top is None:
        return None
    tz = parse_timezone(r, top, ZoneInfo("UTC"))
    severity = parse_severity_policy(r, top)
    people = parse_people(r, top)
    groups = parse_groups(r, top, people)
    windows = parse_windows(r, top, tz)
    rotations = parse_rotations(r, top, people, tz)
    slack = parse_slack(r, top)
    refs: dict[RefKind, Mapping[str, object]] = {
        "person": people,
        "group": groups,
        "rotation": rotations,
        "channel": slack,
    }
    has_teams = "teams" in top
    routes: tuple[Route, ...] = ()
    if not has_teams:
        routes = parse_routes(r, top, refs, people, windows)
        check_coverage(r, top, routes)
    elif "routes" in top:
        r.error(
            r.line_of(top, "routes"),
            "routes",
            "with teams, every route belongs to a team: move these under teams.<name>.routes",
        )
    config = Config(
        path=r.file,
        timezone=tz,
        severity=severity,
        sentry=parse_sentry(r, top),
        people=people,
        groups=groups,
        rotations=rotations,
        slack=slack,
        routes=routes,
        windows=windows,
        limits=parse_limits(r, top),
        delivery=parse_delivery(r, top),
        acknowledgement=parse_acknowledgement(r, top),
        group_by=parse_group_by(r, top, DEFAULT_GROUP_BY),
    )
    if has_teams:
        config = _teams(r, top, config) or config
    secrets = frozenset(s for s in r.secrets if s)
    warnings = tuple(sorted(r.warnings, key=lambda p: p.line))
    teams = tuple(dataclasses.replace(t, secrets=secrets, warnings=warnings) for t in config.teams)
    return dataclasses.replace(config, teams=teams, secrets=secrets, warnings=warnings)


def _teams(r: Reader, top: LineDict, shared: Config) -> Config | None:
    """The default team's view holding every team's (see `Config`)."""
    if "default_team" in top and "teams" not in top:
        r.error(r.line_of(top, "default_team"), "default_team", "there is no teams section")
    table = r.section(top, "teams", "teams")
    if not table:
        r.error(r.line_of(top, "teams"), "teams", "at least one team is needed")
        return None
    teams = []
    for name, line, path, value in r.entries(top, "teams", "teams"):
        r.check_name(line, path, name)
        team_reader = r.scoped(path)
        m = team_reader.mapping(value, line, "", TEAM_KEYS)
        if m is not None:
            teams.append(parse_team(team_reader, m, shared, name, shared.people))
    default = r.string(top, "default_team", "")
    if default is None and len(table) == 1:
        default = next(iter(table))
    if default is None:
        r.error(
            r.line_of(top, "teams"),
            "default_team",
            "required with several teams: the team of an alert no team's matchers match",
        )
        return None
    chosen = next((t for t in teams if t.team == default), None)
    if chosen is None:
        if default not in table:
            r.error(r.line_of(top, "default_team"), "default_team", f"unknown team {default!r}")
        return None
    for team in teams:
        if team is not chosen and not team.team_matchers:
            r.error(
                r.line_of(table, team.team),
                f"teams.{team.team}.matchers",
                "required: only the default team may go without (it takes every alert no "
                "team's matchers match)",
            )
    check_word_clashes(r, tuple(teams))
    return dataclasses.replace(chosen, teams=tuple(teams))
