"""The `teams` section: each team's own policy (zone, severity words, groups, rotations, windows,
Slack, routes), sharing the file's people and whatever the file defines at the top."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.config.matchers import Matcher, Op
from receiver.config.people import parse_groups, parse_slack
from receiver.config.rotations import parse_rotations, parse_windows
from receiver.config.routes import check_coverage, parse_routes
from receiver.config.severity import parse_matchers, parse_severity_policy
from receiver.config.types import Config, Person, RefKind
from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader

T = TypeVar("T")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# What a team may hold; `people` (and Sentry, delivery, acknowledgement, limits) stay file-wide.
TEAM_KEYS = (
    "matchers",
    "timezone",
    "group_by",
    "severity",
    "groups",
    "rotations",
    "time_windows",
    "slack",
    "routes",
)


def parse_team(
    r: Reader, m: LineDict, shared: Config, name: str, people: Mapping[str, Person]
) -> Config:
    """One team's view of the file: `shared` holds the file-level sections it sees too.

    `r` is scoped to the team, so every problem reads `teams.<name>.<key>`.
    """
    tz = parse_timezone(r, m, shared.timezone)
    severity = parse_severity_policy(r, m, shared.severity)
    groups = _own(r, m, "groups", "group", shared.groups, parse_groups(r, m, people))
    windows = _own(r, m, "time_windows", "time window", shared.windows, parse_windows(r, m, tz))
    own_rotations = {
        k: dataclasses.replace(v, name=f"{name}/{k}")
        for k, v in parse_rotations(r, m, people, tz).items()
    }
    rotations = _own(r, m, "rotations", "rotation", shared.rotations, own_rotations)
    # Team destinations are known by "<team>/<name>" outside it (senders, metrics, logs).
    own_slack = {
        k: dataclasses.replace(d, name=f"{name}/{k}") for k, d in parse_slack(r, m).items()
    }
    slack = _own(r, m, "slack", "Slack destination", shared.slack, own_slack)
    refs: dict[RefKind, Mapping[str, object]] = {
        "person": people,
        "group": groups,
        "rotation": rotations,
        "channel": slack,
    }
    routes = parse_routes(r, m, refs, people, windows)
    check_coverage(r, m, routes)
    group_by = parse_group_by(r, m, shared.group_by)
    return dataclasses.replace(
        shared,
        timezone=tz,
        severity=severity,
        groups=groups,
        rotations=rotations,
        windows=windows,
        slack=slack,
        # Route names carry the team, so metrics, logs and `route` never confuse two teams'.
        routes=tuple(dataclasses.replace(route, name=f"{name}/{route.name}") for route in routes),
        team=name,
        team_matchers=parse_matchers(r, m, ""),
        team_line=m.line,
        group_by=group_by,
        teams=(),
    )


def parse_group_by(r: Reader, m: LineDict, default: tuple[str, ...]) -> tuple[str, ...]:
    """Alertmanager's `group_by` for `alertmanager-config` (the file's, else the default)."""
    names = tuple(v for _, _, v in r.strings(m, "group_by", ""))
    for line, path, name in r.strings(m, "group_by", ""):
        if name != "..." and not _LABEL_NAME.fullmatch(name):
            r.error(line, path, f"{name!r} is not a label name (or '...', every label)")
    return names or default


def parse_timezone(r: Reader, m: LineDict, default: ZoneInfo) -> ZoneInfo:
    name = r.string(m, "timezone", "")
    if name is None:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        r.error(r.line_of(m, "timezone"), "timezone", f"unknown time zone {name!r}")
        return default


def _own(
    r: Reader,
    m: LineDict,
    key: str,
    what: str,
    shared: Mapping[str, T],
    own: Mapping[str, T],
) -> dict[str, T]:
    """A team's entries on top of the file's, which it may use too; one name means one thing."""
    table = m.get(key)
    for name in own:
        if name in shared:
            line = table.key_lines.get(name, m.line) if isinstance(table, LineDict) else m.line
            r.error(line, f"{key}.{name}", f"{what} {name!r} is also defined at the file's top")
    return {**shared, **own}


def check_word_clashes(r: Reader, teams: tuple[Config, ...]) -> None:
    """Warn where one severity word means different things in two teams an alert could reach
    both of (their matchers can match one alert, so only their order decides)."""
    for i, first in enumerate(teams):
        for second in teams[i + 1 :]:
            # A team without matchers (the default) only takes what no other team matches.
            if not (first.team_matchers and second.team_matchers):
                continue
            if not _may_overlap(first.team_matchers, second.team_matchers):
                continue
            for key, sev in first.severity.aliases.items():
                other = second.severity.aliases.get(key)
                if other is None or other is sev:
                    continue
                word = first.severity.words.get(key, key)
                r.warn(
                    second.severity.word_lines.get(key, second.team_line),
                    f"teams.{second.team}.severity.aliases.{other.value}",
                    f"{word!r} is {other.value} here but {sev.value} in team {first.team!r}, and "
                    "an alert can match both teams' matchers (it goes to "
                    f"{first.team!r}, listed first); make the matchers exclusive",
                )


def _may_overlap(a: tuple[Matcher, ...], b: tuple[Matcher, ...]) -> bool:
    """False only when no label set can match both: one side pins a label to a value the
    other side's matcher on that label refuses. (Two regexes are assumed to overlap.)"""
    for pins, others in ((a, b), (b, a)):
        for pin in pins:
            if pin.op is not Op.EQ:
                continue
            labels = {pin.name: pin.value}
            if any(o.name == pin.name and not o.matches(labels) for o in others):
                return False
    return True
