"""`oncall-router simulate`: the timeline of one alert, step by step up its escalation ladder.

Every answer comes from `receiver.routing.plan`, evaluated at the moment each step falls due, so
the timeline shows what the running service would do rather than a second reading of the policy.
`plan` returns every level reached so far; what is *new* at a step is what the service's dedupe
store has not seen yet, i.e. the idempotency keys no earlier step produced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from receiver.cli.commands import ConfigArg
from receiver.cli.tools import UsageError, parse_time
from receiver.config.load import load_config
from receiver.config.types import Config, Route, Target
from receiver.messages import templates
from receiver.model import Alert, AlertGroup, GroupMemory, Notification, Source, Status
from receiver.routing.oncall import members_of
from receiver.routing.plan import Plan, Skipped, plan

# Repeats of the last level are shown this many times; after that the cadence is stated.
REPEATS_SHOWN = 2
# A window closed for longer than this is reported as never opening (a typo'd holiday list).
WINDOW_SEARCH_DAYS = 400
_ADDRESS_FIELD = {"sms": "phone", "call": "phone", "email": "email", "slack": "slack"}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_config: ConfigArg
) -> None:
    parser = sub.add_parser(
        "simulate",
        help="show who an alert with these labels would page, step by step; sends nothing",
        description=(
            "The timeline of one alert: the severity decided and why, the routes matched, and for "
            "level 0 and every escalation step the people and channels paged at the time that "
            "step falls due, with the targets a time window leaves out."
        ),
    )
    add_config(parser)
    parser.add_argument(
        "--labels",
        action="append",
        required=True,
        metavar="K=V,...",
        help="alert labels, e.g. alertname=DiskFull,severity=critical (may be repeated)",
    )
    parser.add_argument("--at", help="ISO 8601 time the alert starts firing (default: now)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--text", action="store_true", help="include each rendered message")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    labels = parse_labels(args.labels)
    # The alert's team decides everything here: its severity words, routes, zone and windows.
    config = load_config(args.config, os.environ).team_for(labels)
    start = parse_time(args.at, config.timezone)
    timeline = simulate(config, labels, start)
    if args.json:
        print(json.dumps(timeline_json(timeline, config, args.text), indent=2, ensure_ascii=False))
    else:
        print(timeline_text(timeline, config, args.text))
    return 0


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """`k=v,k2=v2` (possibly given several times); a later value for a key wins."""
    labels: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise UsageError(f"--labels: {part.strip()!r} is not k=v")
            # Quotes allowed, as in Alertmanager's matcher syntax: severity="critical".
            labels[key] = val.strip().strip("\"'")
    if not labels:
        raise UsageError("--labels: give at least one k=v")
    return labels


@dataclass(frozen=True)
class Page:
    notification: Notification
    # The target that produced it; absent only if the plan's notification matches none.
    target: Target | None


@dataclass(frozen=True)
class Note:
    """A target of a newly reached level that pages nobody new, and why."""

    route: str
    level: int
    target: Target
    person: str
    why: str


@dataclass
class Step:
    """One moment of the timeline: the levels (or repeats) that fall due then."""

    offset: float  # seconds after the alert started
    at: datetime
    reached: list[tuple[str, int]] = field(default_factory=list)  # (route, level) newly due
    repeats: list[tuple[str, int, int]] = field(default_factory=list)  # (route, level, round)
    pages: list[Page] = field(default_factory=list)
    skipped: list[tuple[Skipped, datetime | None]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    start: datetime
    labels: Mapping[str, str]
    first: Plan
    routes: tuple[Route, ...]
    steps: tuple[Step, ...]


def synthetic_group(labels: Mapping[str, str], start: datetime) -> AlertGroup:
    """One firing alert, as Alertmanager would send it, starting at `start`."""
    ident = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    fingerprint = hashlib.sha256(ident.encode()).hexdigest()[:16]
    alert = Alert(
        source=Source.ALERTMANAGER,
        status=Status.FIRING,
        labels=dict(labels),
        annotations={"summary": "simulated alert"},
        starts_at=start,
        fingerprint=fingerprint,
    )
    return AlertGroup(
        Source.ALERTMANAGER,
        f"simulate:{{{ident}}}",
        Status.FIRING,
        (alert,),
        common_labels=dict(labels),
    )


def simulate(config: Config, labels: Mapping[str, str], start: datetime) -> Timeline:
    # Steps are real elapsed time: add them to a UTC instant and convert only to print. Added
    # in the local zone they are wall-clock time, wrong by an hour across a DST change.
    start = start.astimezone(UTC)
    group = synthetic_group(labels, start)
    first = plan(config, group, start)
    by_name = {r.name: r for r in config.routes}
    matched = tuple(by_name[name] for name in first.alerts[0].routes)
    steps: dict[float, Step] = {}
    for route in matched:
        for offset, level, round_ in _events(route):
            step = steps.setdefault(offset, Step(offset, start + timedelta(seconds=offset)))
            if round_ == 0:
                step.reached.append((route.name, level))
            else:
                step.repeats.append((route.name, level, round_))
    paged = GroupMemory(first.spell, start)
    delivered: dict[str, Notification] = {}  # the dedupe store: key -> first send
    first_by_address: dict[tuple[str, str], Notification] = {}
    for offset in sorted(steps):
        step = steps[offset]
        # Escalation counts from the first page, which is at `start`.
        result = first if offset == 0 else plan(config, group, step.at, memory=paged)
        new = [n for n in result.notifications if n.key not in delivered]
        delivered.update((n.key, n) for n in new)
        for n in new:
            first_by_address.setdefault((n.channel.value, n.recipient.address), n)
            due = start + timedelta(seconds=by_name[n.route].level_after(n.level))
            step.pages.append(Page(n, _target_of(config, by_name[n.route], n, due)))
        # A repeat round asks again, so a window closed by then skips the repeated level too.
        reached = set(step.reached) | {(route, level) for route, level, _ in step.repeats}
        step.skipped = [
            (s, _opens(config, s.window, step.at))
            for s in result.skipped
            if (s.route, s.level) in reached
        ]
        step.notes = _notes(config, by_name, step, result, first_by_address)
    return Timeline(start, labels, first, matched, tuple(steps[o] for o in sorted(steps)))


def _events(route: Route) -> list[tuple[float, int, int]]:
    """(age, level, round): each level at its cumulative age (round 0), then with `repeat` its
    re-pages until the next level is due (the last level's only REPEATS_SHOWN times)."""
    out: list[tuple[float, int, int]] = []
    levels = len(route.escalation) + 1
    for level in range(levels):
        after = route.level_after(level)
        out.append((after, level, 0))
        if route.repeat is None:
            continue
        following = route.level_after(level + 1) if level + 1 < levels else None
        round_ = 1
        while True:
            when = after + round_ * route.repeat
            if following is None and round_ > REPEATS_SHOWN:
                break
            if following is not None and when >= following:
                break
            out.append((when, level, round_))
            round_ += 1
    return out


def _target_of(config: Config, route: Route, n: Notification, due: datetime) -> Target | None:
    """The target of `n`'s level that yields its channel and recipient (for display)."""
    for target in route.level_targets(n.level):
        if target.kind is not n.channel:
            continue
        if target.ref_kind == "channel":
            if target.ref == n.recipient.name:
                return target
        elif n.recipient.name in members_of(config, target.ref_kind, target.ref, due):
            return target
    return None


def _notes(
    config: Config,
    by_name: Mapping[str, Route],
    step: Step,
    result: Plan,
    first_by_address: Mapping[tuple[str, str], Notification],
) -> list[Note]:
    """People a newly due level names but does not page now: no address, or paged already.

    `plan` sends one message per channel and address, so a person reached twice is silent the
    second time; saying so keeps the timeline from looking as if someone was forgotten.
    """
    skipped = {(s.route, s.level, s.target) for s in result.skipped}
    sent = (p.notification for p in step.pages)
    fresh = {(n.channel.value, n.recipient.address, n.route, n.level) for n in sent}
    notes: list[Note] = []
    for name, level in step.reached:
        for target in by_name[name].level_targets(level):
            if target.ref_kind == "channel" or (name, level, target) in skipped:
                continue
            kind = target.kind.value
            for pid in members_of(config, target.ref_kind, target.ref, step.at):
                address = _address(config, pid, kind)
                if address is None:
                    what = _ADDRESS_FIELD[kind]
                    notes.append(Note(name, level, target, pid, f"has no {what} in the file"))
                    continue
                if (kind, address, name, level) in fresh:
                    continue
                first = first_by_address.get((kind, address))
                if first is not None:
                    why = f"already paged by {kind} ({first.route} level {first.level})"
                    notes.append(Note(name, level, target, pid, why))
    return notes


def _address(config: Config, pid: str, kind: str) -> str | None:
    value: str | None = getattr(config.people[pid], _ADDRESS_FIELD[kind])
    return value


def _opens(config: Config, window: str, after: datetime) -> datetime | None:
    """When a closed window next opens, if within a year."""
    return config.windows[window].next_opening(after, timedelta(days=WINDOW_SEARCH_DAYS))


# -- output ------------------------------------------------------------------------------------


def _offset(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    text += f"{secs}s" if secs else ""
    return "+" + (text or "0m")


def _when(at: datetime, tz: tzinfo, day: bool = True) -> str:
    return f"{at.astimezone(tz):{'%a %Y-%m-%d %H:%M %Z' if day else '%a %H:%M %Z'}}"


def _person(config: Config, pid: str) -> str:
    person = config.people.get(pid)
    return pid if person is None or person.name == pid else f"{pid} ({person.name})"


def _who(config: Config, n: Notification) -> tuple[str, str]:
    """Display name and address. A Slack destination is named, never its webhook URL."""
    if n.recipient.name in config.people:
        return _person(config, n.recipient.name), n.recipient.address
    destination = config.slack_destinations().get(n.recipient.name)
    if destination is not None:
        where = destination.channel or "incoming webhook"
        return f"#{destination.name}", where
    return n.recipient.name, n.recipient.address


def _target_text(target: Target) -> str:
    return f"{target.kind.value} to {target.ref_kind} {target.ref}"


def _step_title(step: Step) -> str:
    parts = [f"{route} level {level}" for route, level in step.reached]
    parts += [f"{route} level {level}, repeat {r}" for route, level, r in step.repeats]
    return "; ".join(parts)


def timeline_text(t: Timeline, config: Config, with_text: bool) -> str:
    tz = config.timezone
    decision = t.first.alerts[0].severity
    labels = ", ".join(f'{k}="{v}"' for k, v in t.labels.items())
    lines = [
        f"Alert {{{labels}}} firing from {_when(t.start, tz)}",
        f"Severity: {decision.severity.value} ({decision.reason})",
    ]
    if not t.routes:
        lines.append("Routes:   none match: nothing would be sent")
        return "\n".join(lines)
    lines.append(f"Routes:   {', '.join(_route_summary(r) for r in t.routes)}")
    for step in t.steps:
        lines.append("")
        lines.append(f"{_offset(step.offset):<7} {_when(step.at, tz)}  {_step_title(step)}")
        lines.extend(_page_rows(step, config))
        if with_text:
            for page in step.pages:
                n = page.notification
                text = templates.text_for(n.channel, n, tz).replace("\n", "\n          | ")
                lines.append(f"        [{n.channel.value} to {n.recipient.name}]")
                lines.append(f"          | {text}")
        for skipped, opens in step.skipped:
            reopen = f", opens {_when(opens, tz)}" if opens else ", does not open within a year"
            lines.append(
                f"        skipped {_target_text(skipped.target)}: outside {skipped.window}{reopen}"
            )
        for note in step.notes:
            lines.append(
                f"        note: {_target_text(note.target)}: {_person(config, note.person)} "
                f"{note.why}"
            )
        if not step.pages:
            lines.append("        nobody new is paged now")
    skipped_any = any(step.skipped for step in t.steps)
    if skipped_any:
        lines.append("")
        lines.append(
            "A skipped target is paged by the first Alertmanager re-send after its window "
            "opens, if the alert is still firing."
        )
    return "\n".join(lines)


def _page_rows(step: Step, config: Config) -> list[str]:
    """Aligned columns: channel, who, address, and through which target (rotation, group)."""
    rows = []
    for page in step.pages:
        n = page.notification
        who, address = _who(config, n)
        via = ""
        if page.target is not None and page.target.ref_kind in ("rotation", "group"):
            via = f"{page.target.ref_kind} {page.target.ref}"
        due = set(step.reached) | {(route, level) for route, level, _ in step.repeats}
        if (n.route, n.level) not in due:
            # Reached earlier but held back (a window was closed, or a repeat round).
            via = f"{via}, level {n.level}" if via else f"level {n.level}"
        rows.append((n.channel.value, who, address, via))
    who_width = max((len(r[1]) for r in rows), default=0)
    address_width = max((len(r[2]) for r in rows), default=0)
    return [
        f"        {channel:<6} {who:<{who_width}}  {address:<{address_width}}  {via}".rstrip()
        for channel, who, address, via in rows
    ]


def _route_summary(route: Route) -> str:
    extra = []
    if route.window:
        extra.append(f"only in {route.window}")
    if route.repeat:
        extra.append(f"re-pages every {_offset(route.repeat)[1:]} until acknowledged")
    return route.name + (f" ({'; '.join(extra)})" if extra else "")


def timeline_json(t: Timeline, config: Config, with_text: bool) -> dict[str, Any]:
    tz = config.timezone
    routed = t.first.alerts[0]
    return {
        "start": t.start.astimezone(tz).isoformat(),
        "labels": dict(t.labels),
        "severity": routed.severity.severity.value,
        "severity_reason": routed.severity.reason,
        "severity_defaulted": routed.severity.defaulted,
        "routes": [
            {
                "name": r.name,
                "window": r.window,
                "repeat_seconds": r.repeat,
                "steps": [
                    {"level": level, "after_seconds": r.level_after(level)}
                    for level in range(len(r.escalation) + 1)
                ],
            }
            for r in t.routes
        ],
        "timeline": [_step_json(step, config, tz, with_text) for step in t.steps],
    }


def _step_json(step: Step, config: Config, tz: tzinfo, with_text: bool) -> dict[str, Any]:
    pages = []
    for page in step.pages:
        n = page.notification
        entry: dict[str, Any] = {
            "route": n.route,
            "level": n.level,
            "channel": n.channel.value,
            "recipient": n.recipient.name,
            "to": n.recipient.address,
            "target": str(page.target) if page.target else None,
            "key": n.key,
        }
        if n.recipient.name in config.people:
            entry["name"] = config.people[n.recipient.name].name
        if with_text:
            entry["text"] = templates.text_for(n.channel, n, tz)
        pages.append(entry)
    return {
        "after_seconds": step.offset,
        "after": _offset(step.offset),
        "at": step.at.astimezone(tz).isoformat(),
        "levels": [{"route": r, "level": lv} for r, lv in step.reached],
        "repeats": [{"route": r, "level": lv, "round": n} for r, lv, n in step.repeats],
        "pages": pages,
        "skipped": [
            {
                "route": s.route,
                "level": s.level,
                "target": str(s.target),
                "window": s.window,
                "window_opens": opens.astimezone(tz).isoformat() if opens else None,
            }
            for s, opens in step.skipped
        ],
        "notes": [
            {
                "route": note.route,
                "level": note.level,
                "target": str(note.target),
                "person": note.person,
                "why": note.why,
            }
            for note in step.notes
        ],
    }
