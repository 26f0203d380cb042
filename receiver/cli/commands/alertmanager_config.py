"""`oncall-router alertmanager-config`: Alertmanager's side of the routing file, never drifting.

Prints, as YAML, the Alertmanager (0.25 and newer) `route`, `receivers` and `time_intervals` that
fit a routing file. `build()` makes the document as plain data; `render()` adds the comments.

Rules:

- **Tree**: first the dead man's switch (`alertname="Watchdog"`); then, with teams, one route per
  team in file order (its `matchers`, its `group_by`), the default team's last and without
  matchers, as the router picks an alert's team (a file without teams is one team, its routes at
  the root). A team's routes follow the router's severity decision: each `severity.rules` entry
  (its own matchers), then for each name in `severity.labels` one route per severity matching
  its words as the router does (`alertmanager_words`), with every earlier label name required
  blank (the router reads the first non-blank one); last a catch-all for unknown or missing
  severities, which the router takes as `severity.default`, so nothing is dropped. Every route
  has `continue: false`; one that an earlier route always takes first (its matchers hold all of
  that route's, like a rule for `Watchdog`) is left out, and a comment says so.
- **Receivers**: a team's routes send to `oncall-router/<team>/<severity>` (without teams
  `oncall-router/<severity>`), so `amtool config routes test` names where an alert lands; the root
  and the switch to `oncall-router`. All are one webhook: `send_resolved: true` (the router sends
  the resolved notice to everyone it paged), a bearer token read from a file, and `max_alerts`
  from `limits.max_body_bytes` (5 KiB per alert) so a storm's body stays under the router's limit.
- **Timers** per team and severity, from the team's routes that can take it: see
  `alertmanager_timers`.
- **Business hours**: each `time_windows` entry becomes a `time_intervals` entry in the window's
  zone, and its holidays a second one, `<name>-holidays`; a team's own window is named
  `<team>/<name>` (teams may each have a `business-hours`), one written at the file's top keeps
  its name. A severity whose every route has the same `window` gets `active_time_intervals:
  [<name>]` and `mute_time_intervals: [<name>-holidays]`; the router gates the window too, and a
  target's own `window` is left to the router (the rest of the group still has to arrive).
  Alertmanager drops the notice of a group that resolves outside its active time (0.25 flushes it
  as muted and forgets it), so a low-urgency alert resolved out of hours gets no resolved message.

Limits: severity words match exactly what the router takes, whitespace around a value included,
as far as Go's Unicode tables agree with Python's (a letter newer than Alertmanager's Go may fold
differently). Rule regexes are passed on as written; Alertmanager reads them as RE2 (no
look-around or backreferences), so run `amtool check-config`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Iterable, Sequence
from datetime import date, time
from typing import Any

import yaml

from receiver.cli.alertmanager_timers import as_yaml, severity_timers, warnings
from receiver.cli.alertmanager_tree import Child, Interval, receivers, route_data, route_tree
from receiver.cli.alertmanager_tree import matcher as matcher
from receiver.cli.alertmanager_tree import receiver_name as receiver_name
from receiver.cli.commands import ConfigArg
from receiver.cli.tools import UsageError
from receiver.config.load import load_config
from receiver.config.rotations import WEEKDAYS, TimeWindow
from receiver.config.types import Config
from receiver.sources.alertmanager import RECEIVER

DEFAULT_URL = "http://oncall-router:9095/webhooks/alertmanager"
DEFAULT_TOKEN_FILE = "/etc/alertmanager/secrets/oncall-router-token"  # noqa: S105 (a path)
# Budget per alert in a webhook body (labels, annotations, generatorURL): 5 KiB is generous.
ALERT_BUDGET_BYTES = 5 * 1024
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")


def _windows(config: Config) -> dict[str, dict[str, TimeWindow]]:
    """Each team's windows under their Alertmanager names: a window every team sees (written at
    the file's top) keeps its name; a team's own is `<team>/<name>`, as teams may each have a
    `business-hours` (`/` is in no name the routing file allows, so nothing clashes)."""
    teams = config.all_teams()
    return {
        team.team: {
            name: window
            if all(t.windows.get(name) == window for t in teams)
            else dataclasses.replace(window, name=f"{team.team}/{name}")
            for name, window in team.windows.items()
        }
        for team in teams
    }


def _tree(config: Config) -> list[Child]:
    """The route tree, each team's windows named as `time_intervals` names them."""
    named = {
        team: {
            name: Interval(w.name, holidays_name(w) if w.holidays else None)
            for name, w in windows.items()
        }
        for team, windows in _windows(config).items()
    }
    return route_tree(config, named)


def holidays_name(window: TimeWindow) -> str:
    return f"{window.name}-holidays"


def _day_ranges(days: Iterable[int]) -> list[str]:
    """{0, 1, 2, 3, 4, 6} -> ['monday:friday', 'sunday']."""
    ordered = sorted(days)
    out: list[str] = []
    start = prev = ordered[0]
    for day in [*ordered[1:], None]:
        if day is not None and day == prev + 1:
            prev = day
            continue
        first, last = WEEKDAYS[start], WEEKDAYS[prev]
        out.append(first if start == prev else f"{first}:{last}")
        if day is not None:
            start = prev = day
    return out


def _clock(t: time) -> str:
    return "24:00" if t == time.max else f"{t:%H:%M}"


def time_intervals(window: TimeWindow) -> list[dict[str, Any]]:
    """The window, and its holidays when it has any, as Alertmanager time intervals.

    Alertmanager's times end by midnight, so a night (`22:00-06:00` from Friday) is its evening
    on the day it starts (Friday 22:00-24:00) and its morning on the next (Saturday 00:00-06:00).
    Parts on the same weekdays share one interval.
    """
    zone = window.timezone.key
    parts: dict[frozenset[int], list[tuple[time, time]]] = {}
    for hours in window.hours:
        if hours.overnight:
            parts.setdefault(hours.weekdays, []).append((hours.start, time.max))
            morning = frozenset((d + 1) % 7 for d in hours.weekdays)
            parts.setdefault(morning, []).append((time(0, 0), hours.end))
        else:
            parts.setdefault(hours.weekdays, []).append((hours.start, hours.end))
    spans = []
    for days, times in parts.items():
        span: dict[str, Any] = {}
        if len(days) < len(WEEKDAYS):
            span["weekdays"] = _day_ranges(days)
        if (time(0, 0), time.max) not in times:
            span["times"] = [
                {"start_time": _clock(start), "end_time": _clock(end)}
                for start, end in sorted(set(times))
            ]
        span["location"] = zone
        spans.append(span)
    out = [{"name": window.name, "time_intervals": spans}]
    if window.holidays:
        # A yearly holiday (`--12-25`) has no `years`: Alertmanager then matches every year.
        holidays = [
            {
                "days_of_month": [str(d.day)],
                "months": [_MONTHS[d.month - 1]],
                **({"years": [str(d.year)]} if isinstance(d, date) else {}),
                "location": zone,
            }
            for d in sorted(window.holidays, key=lambda d: d.isoformat())
        ]
        out.append({"name": holidays_name(window), "time_intervals": holidays})
    return out


def max_alerts(config: Config) -> int:
    return max(1, config.limits.max_body_bytes // ALERT_BUDGET_BYTES)


def build(
    config: Config, url: str = DEFAULT_URL, token_file: str = DEFAULT_TOKEN_FILE
) -> dict[str, Any]:
    """The Alertmanager `route`, `receivers` and `time_intervals` for this routing file."""
    if not url.startswith(("http://", "https://")):
        # Alertmanager 0.25 refuses a webhook URL without a scheme.
        raise UsageError(f"--url {url!r}: expected an http:// or https:// URL")
    if not token_file:
        raise UsageError("--token-file: expected a path")
    windows = _windows(config)
    unique = {w.name: w for team in windows.values() for w in team.values()}
    intervals = [entry for w in unique.values() for entry in time_intervals(w)]
    names = [entry["name"] for entry in intervals]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise UsageError(f"time_windows: {', '.join(clash)} would name two time intervals")
    root: dict[str, Any] = {"receiver": RECEIVER, "group_by": list(config.group_by)}
    # The root's timers are what a pasted-in subtree inherits; the children set their own.
    root.update(as_yaml(severity_timers(config, config.severity.default)))
    root["routes"] = [route_data(c) for c in _tree(config) if c.route is not None]
    webhook = {
        "url": url,
        "send_resolved": True,
        "max_alerts": max_alerts(config),
        "http_config": {"authorization": {"type": "Bearer", "credentials_file": token_file}},
    }
    doc: dict[str, Any] = {
        "route": root,
        # One webhook under every name (copies: YAML anchors would only puzzle a reader).
        "receivers": [
            {"name": name, "webhook_configs": [copy.deepcopy(webhook)]}
            for name in dict.fromkeys(receivers(root))
        ],
    }
    if intervals:
        doc["time_intervals"] = intervals
    return doc


# -- YAML with comments ------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values (matchers, weekdays), which read best inline."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.SequenceNode:
    flow = all(isinstance(item, str | int | bool) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Quote clock times: a YAML 1.1 reader may take an unquoted 17:00 for a number (1020).
    style = "'" if _CLOCK.match(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def _yaml(value: Any, indent: int) -> list[str]:
    text = yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return [" " * indent + line for line in text.splitlines()]


def _comment(text: str, indent: int) -> list[str]:
    prefix = " " * indent + "# "
    flat = text.replace("\n", "\\n")
    return textwrap.wrap(
        flat,
        100,
        initial_indent=prefix,
        subsequent_indent=prefix + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def render(
    config: Config,
    url: str = DEFAULT_URL,
    token_file: str = DEFAULT_TOKEN_FILE,
    command: Sequence[str] = (),
) -> str:
    """`build()` as YAML, with comments saying where each value comes from."""
    doc = build(config, url, token_file)
    rerun = (
        shlex.join(command)
        if command
        else f"oncall-router alertmanager-config --config {config.path}"
    )
    lines = [
        "# Alertmanager route, receiver and time intervals for oncall-router.",
        f"# Generated from {config.path} by oncall-router alertmanager-config; edit the routing",
        "# file, not this, and regenerate:",
        f"#   {rerun}",
        "#   amtool check-config <this file>",
        "# Use it as the whole Alertmanager config (add `global:` as needed), or merge `receivers`",
        "# and `time_intervals` into yours and make `route` a child of your tree.",
        "#",
        "# Routes follow the router: the first team whose matchers match (else the default",
        "# team, last), then its severity.rules, then its severity labels in order (a word in",
        "# any case, spaces, - and _ anywhere); the catch-all takes the rest (severity.default).",
        "# Receivers are named oncall-router/<team>/<severity>, so `amtool config routes test",
        "# --config.file=<this file> severity=P1 team=...` names where an alert lands; every one",
        "# is the same webhook.",
        "# Timers: a paging severity (escalation ladder, repeat, SMS or calls) is re-sent every",
        "# third of its smallest ladder gap (whole minutes, at least 2m), since the router only",
        "# escalates when Alertmanager re-sends; Alertmanager re-sends every repeat_interval +",
        "# group_interval, so repeat_interval is one group_interval less. A batched severity",
        "# arrives hourly.",
    ]
    for w in warnings(config):
        lines += _comment(f"WARNING: {w}", 0)
    root = {k: v for k, v in doc["route"].items() if k != "routes"}
    lines += ["route:", *_yaml(root, 2), "  routes:"]
    lines += _render_children(_tree(config), 2)
    lines += _comment(
        f"max_alerts: at most {max_alerts(config)} alerts per webhook (5 KiB each) keep a storm "
        f"under the router's limits.max_body_bytes ({config.limits.max_body_bytes}); the rest "
        "are counted in truncatedAlerts, and a group is one message per target anyway. Every "
        "receiver is this one webhook; the names only tell where an alert landed.",
        0,
    )
    lines += _yaml({"receivers": doc["receivers"]}, 0)
    if "time_intervals" in doc:
        lines += _comment(
            "time_windows of the routing file (a team's own as <team>/<name>); holidays are "
            "whole local days. A group that "
            "resolves outside its route's active time gets no resolved notice (Alertmanager "
            "flushes it as muted and forgets it).",
            0,
        )
        lines += _yaml({"time_intervals": doc["time_intervals"]}, 0)
    return "\n".join(lines) + "\n"


def _render_children(children: Sequence[Child], indent: int) -> list[str]:
    lines = []
    for child in children:
        lines += _comment(child.comment, indent)
        if child.route is None:
            continue
        lines += _yaml([child.route], indent)
        if any(c.route is not None for c in child.children):
            lines += [" " * (indent + 2) + "routes:", *_render_children(child.children, indent + 2)]
    return lines


# -- the command -------------------------------------------------------------------------------


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_config_arg: ConfigArg
) -> None:
    parser = sub.add_parser(
        "alertmanager-config",
        help="print the Alertmanager route, receiver and time intervals for a routing file",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_config_arg(parser)
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="the router's Alertmanager webhook (default %(default)s)"
    )
    parser.add_argument(
        "--token-file",
        default=DEFAULT_TOKEN_FILE,
        help="file Alertmanager reads the bearer token from (default %(default)s)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Secrets are not needed to describe routes: unset ${VAR}s are warnings, not shown here.
    config = load_config(args.config, os.environ)
    command = ["oncall-router", "alertmanager-config", "--config", str(args.config)]
    if args.url != DEFAULT_URL:
        command += ["--url", args.url]
    if args.token_file != DEFAULT_TOKEN_FILE:
        command += ["--token-file", args.token_file]
    text = render(config, args.url, args.token_file, command)
    for w in warnings(config):
        print(f"warning: {w}", file=sys.stderr)
    sys.stdout.write(text)
    return 0
