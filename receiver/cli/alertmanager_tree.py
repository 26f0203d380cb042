"""The Alertmanager route tree of a routing file, decided as the router decides.

First the dead man's switch; then each team's subtree (its matchers, its `group_by`) in the order
the router picks an alert's team, the default team last without matchers (a file without teams
is one team whose routes sit at the root); in each, the routes of the router's severity
decision: rules, then the severity labels' words, then a catch-all. A route Alertmanager could
never reach is left out, with a comment. Every route names its team and severity in its
receiver. See `receiver.cli.commands.alertmanager_config` for the rest of the document.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from receiver.cli.alertmanager_timers import Timers, as_yaml, reachable_routes, severity_timers
from receiver.cli.alertmanager_words import SPACE, words_regex
from receiver.config.matchers import Matcher
from receiver.config.types import Config
from receiver.model import Severity
from receiver.sources.alertmanager import RECEIVER

_PLAIN = re.compile(r"[\w.+-]+")


@dataclass(frozen=True)
class Interval:
    """A time window of the routing file as Alertmanager names it, with its holidays' interval
    when it has holidays."""

    active: str
    mute: str | None


@dataclass(frozen=True)
class SeverityClass:
    """What Alertmanager needs to know about one canonical severity of one team."""

    severity: Severity
    timers: Timers
    window: Interval | None
    window_note: str


@dataclass(frozen=True)
class Child:
    """A route and why it is there; `route` is None where one was left out as unreachable."""

    comment: str
    route: dict[str, Any] | None
    children: tuple[Child, ...] = ()


def severity_class(
    config: Config, severity: Severity, windows: Mapping[str, Interval]
) -> SeverityClass:
    """`windows`: the team's windows by their names in the routing file."""
    routes = reachable_routes(config, severity)
    names = {r.window for r in routes}
    window = None
    if len(names) == 1 and None not in names:
        (name,) = names
        assert name is not None
        window = windows[name]
        note = f"only in {name}, like its routes"
    elif names - {None}:
        # Alertmanager cannot say "route A's hours or route B's": leave gating to the router.
        note = "any time here (its routes differ in windows; the router gates them)"
    else:
        note = "any time"
    return SeverityClass(severity, severity_timers(config, severity), window, note)


# -- matchers ----------------------------------------------------------------------------------


def matcher(name: str, op: str, value: str) -> str:
    """An Alertmanager matcher string; the value quoted as Alertmanager unquotes it."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}{op}"{escaped}"'


def severity_regex(config: Config, severity: Severity) -> str:
    """The canonical name and every alias of the severity, as the router reads a label."""
    return words_regex(key for key, sev in config.severity.aliases.items() if sev is severity)


def _am_matcher(m: Matcher) -> str:
    return matcher(m.name, m.op.value, m.value)


# -- the tree ----------------------------------------------------------------------------------


def receiver_name(team: Config, severity: Severity) -> str:
    """`oncall-router/<team>/<severity>`: what `amtool config routes test` prints for it."""
    return "/".join((RECEIVER, *((team.team,) if team.team else ()), severity.value))


def _route(receiver: str, matchers: list[str], cls: SeverityClass) -> dict[str, Any]:
    route: dict[str, Any] = {"receiver": receiver}
    if matchers:
        route["matchers"] = matchers
    route["continue"] = False
    route.update(as_yaml(cls.timers))
    if cls.window is not None:
        route["active_time_intervals"] = [cls.window.active]
        if cls.window.mute is not None:
            route["mute_time_intervals"] = [cls.window.mute]
    return route


# The dead man's switch: Prometheus's always-firing Watchdog must reach the router every few
# minutes at any hour (deploy/prometheus/rules.yml alerts when it stops), whatever its severity.
HEARTBEAT = {
    "receiver": RECEIVER,
    "matchers": ['alertname="Watchdog"'],
    "continue": False,
    "group_wait": "0s",
    "group_interval": "1m",
    "repeat_interval": "4m",
}


def _severities(team: Config, windows: Mapping[str, Interval]) -> list[Child]:
    """A team's routes, in the order the router decides an alert's severity."""
    classes = {s: severity_class(team, s, windows) for s in Severity}
    out = []
    for rule in team.severity.rules:
        cls = classes[rule.severity]
        matchers = [_am_matcher(m) for m in rule.matchers]
        out.append(
            Child(
                f"{rule.severity.value} by the rule at {team.path}:{rule.line}; "
                f"{cls.timers.why}; {cls.window_note}",
                _route(receiver_name(team, rule.severity), matchers, cls),
            )
        )
    labels = team.severity.labels
    for i, label in enumerate(labels):
        # The router reads the first label of `labels` that is not blank (it strips values).
        earlier = [matcher(name, "=~", SPACE + "*") for name in labels[:i]]
        for severity in Severity:
            cls = classes[severity]
            where = f"{label} (with {', '.join(labels[:i])} blank)" if i else label
            regex = matcher(label, "=~", severity_regex(team, severity))
            out.append(
                Child(
                    f"{severity.value} by {where}: {_words(team, severity)}; "
                    f"{cls.timers.why}; {cls.window_note}",
                    _route(receiver_name(team, severity), [*earlier, regex], cls),
                )
            )
    default = classes[team.severity.default]
    out.append(
        Child(
            f"catch-all: unknown or missing severity, which the router takes as "
            f"{team.severity.default.value} (severity.default); {default.timers.why}; "
            f"{default.window_note}",
            _route(receiver_name(team, team.severity.default), [], default),
        )
    )
    return out


def _words(team: Config, severity: Severity) -> str:
    """The severity's words as the routing file writes them, for a reader of the regex."""
    words = [
        team.severity.words.get(k, k) for k, s in team.severity.aliases.items() if s is severity
    ]
    return ", ".join(w if _PLAIN.fullmatch(w) else json.dumps(w, ensure_ascii=False) for w in words)


def _team(team: Config, windows: Mapping[str, Interval], *, default: bool) -> Child:
    """A team's subtree: its matchers (none for the default team, which takes the rest)."""
    route: dict[str, Any] = {"receiver": receiver_name(team, team.severity.default)}
    where = f"teams.{team.team} at {team.path}:{team.team_line}"
    if default:
        who = f"team {team.team} ({where}), the default_team: every alert no team above takes"
    else:
        route["matchers"] = [_am_matcher(m) for m in team.team_matchers]
        who = f"team {team.team} ({where}): alerts matching {', '.join(route['matchers'])}"
    route["continue"] = False
    route["group_by"] = list(team.group_by)
    comment = f"{who}; grouped by {', '.join(team.group_by)}"
    return Child(comment, route, tuple(_severities(team, windows)))


def route_tree(config: Config, windows: Mapping[str, Mapping[str, Interval]]) -> list[Child]:
    """The root's children: the switch, then each team's subtree as the router picks teams."""
    heartbeat = Child(
        "dead man's switch: the always-firing Watchdog, re-sent every 5m at any hour; "
        "OncallRouterWebhooksNotArriving fires when it stops arriving",
        dict(HEARTBEAT),
    )
    if not config.teams:
        return _reachable([heartbeat, *_severities(config, windows[config.team])])
    # The router tries every team with matchers in file order (the default team too), then
    # falls back to the default team.
    teams = [_team(t, windows[t.team], default=False) for t in config.teams if t.team_matchers]
    fallback = _team(config, windows[config.team], default=True)
    return _reachable([heartbeat, *teams, fallback])


def _reachable(
    children: Sequence[Child],
    path: frozenset[str] = frozenset(),
    earlier: Sequence[frozenset[str]] = (),
) -> list[Child]:
    """Leave out each route Alertmanager can never reach: one whose matchers, with its
    ancestors', hold all of an earlier route's (with its ancestors'), since every alert it
    would take matches that route first. Matchers are compared as text: this finds duplicates
    and narrower copies (a rule for `Watchdog` after the switch), not every implied regex."""
    out = []
    seen = list(earlier)
    for child in children:
        if child.route is None:
            out.append(child)
            continue
        full = path | frozenset(child.route.get("matchers", ()))
        first = next((s for s in seen if s <= full), None)
        if first is not None:
            taken = ", ".join(sorted(first)) or "no matchers"
            note = f"left out, never reached (the route above with {taken} takes its alerts)"
            out.append(Child(f"{note}: {child.comment}", None))
            continue
        kept = tuple(_reachable(child.children, full, seen))
        out.append(dataclasses.replace(child, children=kept))
        seen.append(full)
    return out


def route_data(child: Child) -> dict[str, Any]:
    assert child.route is not None
    kept = [route_data(c) for c in child.children if c.route is not None]
    return {**child.route, "routes": kept} if kept else dict(child.route)


def receivers(route: Mapping[str, Any]) -> Iterator[str]:
    """Every receiver the route and those under it send to, in tree order."""
    yield route["receiver"]
    for child in route.get("routes", ()):
        yield from receivers(child)
