"""When Alertmanager sends a severity's groups to the router: its timers, from one team's routes.

- *paging* (a route with an `escalation` ladder, `repeat`, or SMS/call targets): `group_wait` 10s
  for critical and 30s otherwise, `group_interval` 1m, and a re-send every third of the smallest
  gap between ladder steps (or of `repeat`), in whole minutes, at least 2m. The router escalates
  only when Alertmanager re-sends the group (DESIGN §5), so a step is at most a third of a gap
  late. Alertmanager re-sends on the first `group_interval` tick *after* `repeat_interval` has
  passed since the last send was logged (the log is written once the send is done), i.e. every
  `repeat_interval` + `group_interval` (tests/test_e2e_escalation.py measures it), so
  `repeat_interval` is the wanted period less one `group_interval`. Without a ladder, 4h.
- *batched* (everything else): `group_wait` 5m, `group_interval` 1h (new alerts of a group
  arrive hourly), `repeat_interval` 4h, or 24h for low.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from receiver.config.types import Config, Route
from receiver.model import Channel, Severity

PAGING_GROUP_INTERVAL = 60
BATCHED_GROUP_INTERVAL = 3600
# Without a ladder a paging group is re-sent as a reminder; Alertmanager's own default.
REMINDER = 4 * 3600


@dataclass(frozen=True)
class Timers:
    """Alertmanager timers of one severity class, in seconds, and why they were chosen."""

    group_wait: int
    group_interval: int
    repeat_interval: int
    why: str
    warning: str | None = None


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
        team = f"team {config.team}, " if config.team else ""
        warning = (
            f"{team}{severity.value}: a ladder gap of {duration(smallest)} is shorter than "
            f"Alertmanager's re-send every {duration(period)}; those steps will be late"
        )
    return Timers(wait, gi, repeat, why, warning)


def warnings(config: Config) -> list[str]:
    """Every team's ladders Alertmanager cannot honour."""
    found = (severity_timers(team, s).warning for team in config.all_teams() for s in Severity)
    return [w for w in found if w is not None]


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


def as_yaml(t: Timers) -> dict[str, str]:
    """The three timers as an Alertmanager route writes them."""
    return {
        "group_wait": duration(t.group_wait),
        "group_interval": duration(t.group_interval),
        "repeat_interval": duration(t.repeat_interval),
    }
