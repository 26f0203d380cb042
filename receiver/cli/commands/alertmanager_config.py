"""`oncall-router alertmanager-config`: Alertmanager's side of the routing file, never drifting.

Prints, as YAML, the Alertmanager (0.25 and newer) `route`, `receivers` and `time_intervals` that
fit a routing file. `build()` makes the document as plain data; `render()` adds the comments.

Rules:

- **Receiver**: one webhook receiver, `oncall-router`, with `send_resolved: true` (the router sends
  the resolved notice to everyone it paged), a bearer token read from a file, and `max_alerts` set
  from `limits.max_body_bytes` (5 KiB per alert) so a storm's body stays under the router's limit.
- **Routes**: one child route per canonical severity and per severity label name, in the order
  the router decides severity: first each `severity.rules` entry (its own matchers), then for each
  name in `severity.labels` a case-insensitive regex of the canonical name and all its aliases,
  with every earlier label name required empty (the router reads the first non-empty one). A last
  catch-all route takes unknown or missing severities, which the router maps to
  `severity.default`, so nothing is dropped. Every child has `continue: false`.
- **Timers** per severity, from the routes of the routing file that can take it:
  - *paging* (a route with an `escalation` ladder, `repeat`, or SMS/call targets): `group_wait`
    10s for critical and 30s otherwise, `group_interval` 1m, and a re-send every third of the
    smallest gap between ladder steps (or of `repeat`), in whole minutes, at least 2m. The router
    escalates only when Alertmanager re-sends the group (DESIGN §5), so a step is at most a third
    of a gap late. Alertmanager re-sends on the first `group_interval` tick *after*
    `repeat_interval` has passed since the last send was logged (the log is written once the
    send is done), i.e. every `repeat_interval` + `group_interval` (tests/test_e2e_escalation.py
    measures it), so `repeat_interval` is the wanted period less one `group_interval`. Without a
    ladder, 4h.
  - *batched* (everything else): `group_wait` 5m, `group_interval` 1h (new alerts of a group
    arrive hourly), `repeat_interval` 4h, or 24h for low.
- **Business hours**: each `time_windows` entry becomes a `time_intervals` entry in the window's
  zone, and its holidays a second one, `<name>-holidays`. A severity whose every route has the
  same `window` gets `active_time_intervals: [<name>]` and `mute_time_intervals:
  [<name>-holidays]`; the router gates the window too, and a target's own `window` is left to the
  router (the rest of the group still has to arrive). Alertmanager drops the notice of a group
  that resolves outside its active time (0.25 flushes it as muted and forgets it), so a
  low-urgency alert resolved out of hours gets no resolved message.

Limits: label values with surrounding whitespace (which the router strips) fall to the catch-all,
so they still arrive, with the default severity's timers. Rule regexes are passed on as written;
Alertmanager reads them as RE2 (no look-around or backreferences), so run `amtool check-config`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

import yaml

from receiver.cli.commands import ConfigArg
from receiver.cli.tools import UsageError
from receiver.config.load import load_config
from receiver.config.matchers import Matcher
from receiver.config.rotations import WEEKDAYS, TimeWindow
from receiver.config.types import Config, Route
from receiver.model import Channel, Severity
from receiver.sources.alertmanager import RECEIVER

DEFAULT_URL = "http://oncall-router:9095/webhooks/alertmanager"
DEFAULT_TOKEN_FILE = "/etc/alertmanager/secrets/oncall-router-token"  # noqa: S105 (a path)
# One notification per incident rather than per instance; alerts of one group share a ladder.
GROUP_BY = ("alertname", "cluster", "service")
# Budget per alert in a webhook body (labels, annotations, generatorURL): 5 KiB is generous.
ALERT_BUDGET_BYTES = 5 * 1024

PAGING_GROUP_INTERVAL = 60
BATCHED_GROUP_INTERVAL = 3600
# Without a ladder a paging group is re-sent as a reminder; Alertmanager's own default.
REMINDER = 4 * 3600
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
# Go's regexp.QuoteMeta: the characters RE2 gives a meaning to.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")


@dataclass(frozen=True)
class Timers:
    """Alertmanager timers of one severity class, in seconds, and why they were chosen."""

    group_wait: int
    group_interval: int
    repeat_interval: int
    why: str
    warning: str | None = None


@dataclass(frozen=True)
class SeverityClass:
    """What Alertmanager needs to know about one canonical severity."""

    severity: Severity
    timers: Timers
    window: TimeWindow | None
    window_note: str


@dataclass(frozen=True)
class _Child:
    comment: str
    route: dict[str, Any]


# -- decisions ---------------------------------------------------------------------------------


def reachable_routes(config: Config, severity: Severity) -> tuple[Route, ...]:
    """Routes of the routing file that can take an alert of this severity, in file order.

    A route without matchers that does not `continue` takes every such alert, so none after it
    can be reached.
    """
    out = []
    for route in config.routes:
        if route.severities and severity not in route.severities:
            continue
        out.append(route)
        if not route.matchers and not route.continue_:
            break
    return tuple(out)


def _gaps(route: Route) -> list[float]:
    """Seconds between consecutive ladder rungs (level 0 at 0s), and the route's `repeat`."""
    rungs = [0.0, *(step.after for step in route.escalation)]
    gaps = [b - a for a, b in itertools.pairwise(rungs)]
    if route.repeat is not None:
        gaps.append(route.repeat)
    return gaps


def _pages(route: Route) -> bool:
    targets = [*route.targets, *(t for step in route.escalation for t in step.targets)]
    return (
        bool(route.escalation)
        or route.repeat is not None
        or any(t.kind in (Channel.SMS, Channel.CALL) for t in targets)
    )


def severity_timers(config: Config, severity: Severity) -> Timers:
    routes = reachable_routes(config, severity)
    if not any(_pages(r) for r in routes):
        repeat = 24 * 3600 if severity is Severity.LOW else REMINDER
        return Timers(
            5 * 60,
            BATCHED_GROUP_INTERVAL,
            repeat,
            f"batched (no route pages it): hourly, reminder every {duration(repeat)}",
        )
    wait = 10 if severity is Severity.CRITICAL else 30
    gi = PAGING_GROUP_INTERVAL
    gaps = [g for r in routes for g in _gaps(r)]
    if not gaps:
        return Timers(wait, gi, REMINDER, "pages, no ladder: reminder every 4h")
    smallest = min(gaps)
    # Re-sent every repeat_interval + group_interval (see the module docstring).
    period = max(2 * gi, math.floor(smallest / 3 / gi) * gi)
    repeat = period - gi
    ladders = "; ".join(
        f"route {r.name} steps at "
        + " ".join(duration(a) for a in (0.0, *(s.after for s in r.escalation)))
        + (f", repeats every {duration(r.repeat)}" if r.repeat is not None else "")
        for r in routes
        if r.escalation or r.repeat is not None
    )
    why = (
        f"pages; {ladders}: smallest gap {duration(smallest)}, so re-sent every "
        f"{duration(period)} (repeat_interval + group_interval): a step is at most that late"
    )
    warning = None
    if period > smallest:
        warning = (
            f"{severity.value}: a ladder gap of {duration(smallest)} is shorter than "
            f"Alertmanager's re-send every {duration(period)}; those steps will be late"
        )
    return Timers(wait, gi, repeat, why, warning)


def severity_class(config: Config, severity: Severity) -> SeverityClass:
    routes = reachable_routes(config, severity)
    windows = {r.window for r in routes}
    window = None
    if len(windows) == 1 and None not in windows:
        (name,) = windows
        assert name is not None
        window = config.windows[name]
        note = f"only in {name}, like its routes"
    elif windows - {None}:
        # Alertmanager cannot say "route A's hours or route B's": leave gating to the router.
        note = "any time here (its routes differ in windows; the router gates them)"
    else:
        note = "any time"
    return SeverityClass(severity, severity_timers(config, severity), window, note)


# -- matchers ----------------------------------------------------------------------------------


def quote_meta(text: str) -> str:
    """Escape RE2 metacharacters, as Go's regexp.QuoteMeta does."""
    return "".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in text)


def matcher(name: str, op: str, value: str) -> str:
    """An Alertmanager matcher string; the value quoted as Alertmanager unquotes it."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}{op}"{escaped}"'


def severity_regex(config: Config, severity: Severity) -> str:
    """`(?i:critical|p0|...)`: the canonical name and every alias, any case, nothing else.

    The scoped flag keeps it valid inside Alertmanager's anchoring `^(?:...)$`.
    """
    words = [word for word, sev in config.severity.aliases.items() if sev is severity]
    return "(?i:" + "|".join(quote_meta(w) for w in words) + ")"


def _am_matcher(m: Matcher) -> str:
    return matcher(m.name, m.op.value, m.value)


# -- the document ------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """Seconds as an Alertmanager duration: `10s`, `5m`, `1h30m`, `24h`."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds <= 0:
        return "0s"
    rest = round(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def _timers(t: Timers) -> dict[str, Any]:
    return {
        "group_wait": duration(t.group_wait),
        "group_interval": duration(t.group_interval),
        "repeat_interval": duration(t.repeat_interval),
    }


def _child(matchers: list[str], cls: SeverityClass) -> dict[str, Any]:
    route: dict[str, Any] = {"receiver": RECEIVER}
    if matchers:
        route["matchers"] = matchers
    route["continue"] = False
    route.update(_timers(cls.timers))
    if cls.window is not None:
        route["active_time_intervals"] = [cls.window.name]
        if cls.window.holidays:
            route["mute_time_intervals"] = [holidays_name(cls.window)]
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


def _children(config: Config) -> list[_Child]:
    classes = {s: severity_class(config, s) for s in Severity}
    out = [
        _Child(
            "dead man's switch: the always-firing Watchdog, re-sent every 5m at any hour; "
            "OncallRouterWebhooksNotArriving fires when it stops arriving",
            dict(HEARTBEAT),
        )
    ]
    for rule in config.severity.rules:
        cls = classes[rule.severity]
        matchers = [_am_matcher(m) for m in rule.matchers]
        out.append(
            _Child(
                f"{rule.severity.value} by the rule at {config.path}:{rule.line}; "
                f"{cls.timers.why}; {cls.window_note}",
                _child(matchers, cls),
            )
        )
    labels = config.severity.labels
    for i, label in enumerate(labels):
        # The router reads the first non-empty label of `labels`; earlier ones must be empty.
        earlier = [matcher(name, "=", "") for name in labels[:i]]
        for severity in Severity:
            cls = classes[severity]
            where = f"{label} (with {', '.join(labels[:i])} empty)" if i else label
            out.append(
                _Child(
                    f"{severity.value} by {where}; {cls.timers.why}; {cls.window_note}",
                    _child([*earlier, matcher(label, "=~", severity_regex(config, severity))], cls),
                )
            )
    default = classes[config.severity.default]
    out.append(
        _Child(
            f"catch-all: unknown or missing severity, which the router takes as "
            f"{config.severity.default.value} (severity.default); {default.timers.why}; "
            f"{default.window_note}",
            _child([], default),
        )
    )
    return out


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
    """The window, and its holidays when it has any, as Alertmanager time intervals."""
    zone = window.timezone.key
    span: dict[str, Any] = {}
    if len(window.weekdays) < len(WEEKDAYS):
        span["weekdays"] = _day_ranges(window.weekdays)
    if (window.start, window.end) != (time(0, 0), time.max):
        span["times"] = [{"start_time": _clock(window.start), "end_time": _clock(window.end)}]
    span["location"] = zone
    out = [{"name": window.name, "time_intervals": [span]}]
    if window.holidays:
        days = [
            {
                "days_of_month": [str(d.day)],
                "months": [_MONTHS[d.month - 1]],
                "years": [str(d.year)],
                "location": zone,
            }
            for d in sorted(window.holidays)
        ]
        out.append({"name": holidays_name(window), "time_intervals": days})
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
    intervals = [entry for w in config.windows.values() for entry in time_intervals(w)]
    names = [entry["name"] for entry in intervals]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise UsageError(f"time_windows: {', '.join(clash)} would name two time intervals")
    root: dict[str, Any] = {"receiver": RECEIVER, "group_by": list(GROUP_BY)}
    # The root's timers are what a pasted-in subtree inherits; the children set their own.
    root.update(_timers(severity_timers(config, config.severity.default)))
    root["routes"] = [c.route for c in _children(config)]
    doc: dict[str, Any] = {
        "route": root,
        "receivers": [
            {
                "name": RECEIVER,
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "max_alerts": max_alerts(config),
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": token_file}
                        },
                    }
                ],
            }
        ],
    }
    if intervals:
        doc["time_intervals"] = intervals
    return doc


def warnings(config: Config) -> list[str]:
    found = (severity_timers(config, s).warning for s in Severity)
    return [w for w in found if w is not None]


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
        "# Severity routes follow the router: severity.rules first, then the severity labels in",
        "# order (each word any case); the catch-all takes the rest (severity.default).",
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
    for child in _children(config):
        lines += [*_comment(child.comment, 2), *_yaml([child.route], 2)]
    lines += _comment(
        f"max_alerts: at most {max_alerts(config)} alerts per webhook (5 KiB each) keep a storm "
        f"under the router's limits.max_body_bytes ({config.limits.max_body_bytes}); the rest "
        "are counted in truncatedAlerts, and a group is one message per target anyway.",
        0,
    )
    lines += _yaml({"receivers": doc["receivers"]}, 0)
    if "time_intervals" in doc:
        lines += _comment(
            "time_windows of the routing file; holidays are whole local days. A group that "
            "resolves outside its route's active time gets no resolved notice (Alertmanager "
            "flushes it as muted and forgets it).",
            0,
        )
        lines += _yaml({"time_intervals": doc["time_intervals"]}, 0)
    return "\n".join(lines) + "\n"


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
