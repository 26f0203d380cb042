"""Route matching, escalation level and targets: what one webhook leads to, decided once."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.config.matchers import matches_all
from receiver.config.types import Config, Route, Target
from receiver.model import (
    Ack,
    Alert,
    AlertGroup,
    Channel,
    GroupMemory,
    Notification,
    Recipient,
    RoutedAlert,
    Severity,
    SeverityDecision,
    Source,
    Status,
)
from receiver.routing.oncall import escalation_level, in_window, members_of, window_was_open
from receiver.routing.paging import paging_of
from receiver.routing.severity import decide_severity


@dataclass(frozen=True)
class Plan:
    """What one webhook leads to: each alert's severity and routes, and the messages to send."""

    group: AlertGroup
    alerts: tuple[RoutedAlert, ...]
    notifications: tuple[Notification, ...]
    skipped: tuple[Skipped, ...] = ()
    # The acknowledgement holding escalation right now, if any.
    acknowledged: Ack | None = None
    # Where the escalation ladder counts from: the group's first page (see `ladder_start`).
    started: datetime | None = None
    spell: str = ""  # see `spell_of`
    # "<level>:<person>" not paged again because an acknowledgement holds the group.
    held: frozenset[str] = frozenset()


def match_routes(config: Config, alert: Alert, severity: Severity) -> tuple[Route, ...]:
    """Routes in file order; the first match stops the search unless it says `continue`."""
    matched = []
    for route in config.routes:
        if route.severities and severity not in route.severities:
            continue
        if not matches_all(route.matchers, alert.labels):
            continue
        matched.append(route)
        if not route.continue_:
            break
    return tuple(matched)


def recipients(config: Config, target: Target, now: datetime) -> tuple[Recipient, ...]:
    """The people or Slack destination a target means at this moment."""
    if target.ref_kind == "channel":
        # A team's own destination is known by "<team>/<name>" outside the team.
        destination = config.slack.get(target.ref)
        name = target.ref if destination is None else destination.name
        return (Recipient(name, name),)
    out = []
    for pid in members_of(config, target.ref_kind, target.ref, now):
        person = config.people[pid]
        address = person.address(target.kind)
        if address:
            out.append(Recipient(pid, address))
    return tuple(out)


@dataclass(frozen=True)
class Skipped:
    """A target left out because its time window (or its route's) was closed."""

    route: str
    level: int
    target: Target
    window: str


@dataclass(frozen=True)
class Ladder:
    """Where one route's share of a group stands on its escalation ladder."""

    start: datetime  # when the group was first paged (see `ladder_start`)
    end: datetime  # `now` while firing, when the last alert ended once resolved
    level: int
    age: float  # seconds from start to end that no acknowledgement held


def spell_of(group: AlertGroup, memory: GroupMemory | None) -> str:
    """The firing spell a webhook belongs to: the remembered one, else its earliest start.

    Every replica computes the same id from the same body, so claims agree before anything is
    stored; a group that fires again after its resolved notices went out is a new spell.
    """
    if memory is not None and not (memory.resolved and _firing(group.alerts)):
        return memory.spell
    alerts = _firing(group.alerts) or group.alerts
    return min(a.starts_at for a in alerts).isoformat()


def ladder_start(
    group: AlertGroup, memory: GroupMemory | None, now: datetime, *, remembered: bool
) -> datetime:
    """Escalation counts from the group's first page, not from its alerts' `startsAt`: an alert
    that reaches the router hours after it started (a silence or window just ended) pages its
    first level first. Only when the store could not be read does `startsAt` stand in for it,
    which pages more, never less."""
    if memory is not None and not (memory.resolved and _firing(group.alerts)):
        return memory.first_paged
    if not remembered:
        alerts = _firing(group.alerts) or group.alerts
        return min(a.starts_at for a in alerts)
    if _firing(group.alerts):
        return now  # paged for the first time now
    # Resolved before anyone was paged: the ladder never started.
    return max((a.ends_at or now for a in group.alerts), default=now)


def ladder(
    route: Route,
    alerts: tuple[Alert, ...],
    start: datetime,
    now: datetime,
    acks: tuple[Ack, ...] = (),
) -> Ladder:
    """The level reached `start` plus the route's steps; a resolved group stops at its end.

    Time under an acknowledgement does not count: the ladder stands where it was when the
    acknowledgement was made, and resumes from there when it expires (the current level is
    asked again; no level is passed for the time it held).
    """
    end = now if _firing(alerts) else max((a.ends_at or now for a in alerts), default=now)
    end = max(start, end)
    age = unacknowledged_age(start, end, acks)
    return Ladder(start, end, escalation_level(route, age), age)


def _firing(alerts: tuple[Alert, ...]) -> tuple[Alert, ...]:
    return tuple(a for a in alerts if a.status is Status.FIRING)


def unacknowledged_age(start: datetime, end: datetime, acks: tuple[Ack, ...]) -> float:
    """Seconds from `start` to `end` that no acknowledgement covered (overlaps counted once)."""
    held = 0.0
    covered_until = start
    for ack in sorted(acks, key=lambda a: a.at):
        begin, until = max(ack.at, covered_until), min(ack.until, end)
        if until > begin:
            held += (until - begin).total_seconds()
            covered_until = until
    return max(0.0, (end - start).total_seconds() - held)


def _expired_ack(acks: tuple[Ack, ...], start: datetime, now: datetime) -> str:
    """The end of the last acknowledgement of this firing spell that has run out ("" if none).

    It goes into the current level's idempotency key, so an expired acknowledgement pages the
    current level again.
    """
    ends = [a.until for a in acks if a.at >= start and a.until <= now]
    return max(ends).isoformat() if ends else ""


def plan(
    config: Config,
    group: AlertGroup,
    now: datetime,
    acks: tuple[Ack, ...] = (),
    memory: GroupMemory | None = None,
    *,
    remembered: bool = True,
) -> Plan:
    """The messages one webhook leads to.

    `memory` is what the store remembers of the group's spell (None: never paged); with
    `remembered` False the store could not be read, and the plan pages as if nothing had been
    (escalation from `startsAt`, resolved notices to everyone who could have been paged).
    """
    routed: list[RoutedAlert] = []
    by_route: dict[str, list[Alert]] = {}
    routes: dict[str, tuple[Config, Route]] = {}
    urgent: dict[str, Severity] = {}  # each route's most urgent severity
    # A storm's alerts differ in labels no decision reads (pod, instance): each distinct set of
    # the labels that count is decided once. The 5,000-alert group of `python -m bench` is
    # planned in 31 ms with this (and `paging._word`'s), 58 ms without (in the process, the
    # fastest of 7).
    decided: dict[tuple[str | None, ...], _Decided] = {}
    for alert in group.alerts:
        alike = None
        if alert.source is not Source.SENTRY:
            alike = tuple(alert.labels.get(name) for name in config.routing_labels)
        found = decided.get(alike) if alike is not None else None
        if found is None:
            # Each alert is decided by its team's policy (a group may mix teams when
            # Alertmanager's group_by leaves the team out); team route names are "<team>/<route>".
            team = config.team_for(alert.labels)
            decision = decide_severity(team, alert)
            matched = match_routes(team, alert, decision.severity)
            found = _Decided(team, decision, matched, tuple(r.name for r in matched))
            for route in found.routes:
                routes[route.name] = (team, route)
                known = urgent.get(route.name, decision.severity)
                urgent[route.name] = min(known, decision.severity, key=lambda s: s.rank)
            if alike is not None:
                decided[alike] = found
        routed.append(RoutedAlert(alert, found.decision, found.names, found.team.team))
        for route in found.routes:
            by_route.setdefault(route.name, []).append(alert)

    spell = spell_of(group, memory)
    start = ladder_start(group, memory, now, remembered=remembered)
    paged = memory if memory is not None and memory.spell == spell else None
    current = next((a for a in reversed(acks) if a.active(now)), None)
    notifications: list[Notification] = []
    skipped: list[Skipped] = []
    seen: set[tuple[str, str]] = set()
    held: set[str] = set()
    for name, members in by_route.items():
        team, route = routes[name]
        alerts = tuple(members)
        severity = urgent[name]
        where = ladder(route, alerts, start, now, acks)
        firing = any(a.status is Status.FIRING for a in alerts)
        renewed = _expired_ack(acks, where.start, now) if firing else ""
        keys = _Keys(group, spell, alerts, route.repage_on_new_alerts)
        stage, stage_text = _stage(team, route, where, current) if firing else ("resolved", "")
        facts = paging_of(
            team,
            route,
            alerts,
            severity,
            now=now,
            start=where.start,
            level=where.level,
            age=where.age,
            firing=firing,
            current=current,
        )
        for level in range(where.level + 1):
            # Each level goes to whoever held the role when that level was reached, so a
            # handoff between re-sends does not page a second person for the same level.
            due = where.start + timedelta(seconds=route.level_after(level))
            round_ = _repeat_round(route, where, level) if firing else None
            after_ack = renewed if level == where.level else ""
            first = firing and level == 0 and not round_ and not after_ack
            paging = dataclasses.replace(facts, first=True) if first else facts
            for target in route.level_targets(level):
                kind = target.kind if firing else _resolved_kind(route, target)
                if kind is None:
                    continue
                # A page goes out only while its window is open. A resolved notice goes to
                # whoever could have been paged: the window was open at some re-send between
                # the level falling due and the end.
                closed = _closed_window(team, route, target, firing, now, due, where.end)
                if closed is not None:
                    skipped.append(Skipped(name, level, target, closed))
                    continue
                person = target.ref_kind != "channel"
                # Acknowledged: nobody is paged again (not even after a restart emptied the
                # dedupe store) until it expires; Slack channels still hear of the group.
                if firing and current is not None and person:
                    # They were paged before it was acknowledged (else nobody could have
                    # acknowledged it): the resolved notice still owes them a word.
                    held.update(f"{level}:{r.name}" for r in recipients(team, target, due))
                    continue
                for recipient in recipients(team, dataclasses.replace(target, kind=kind), due):
                    # Resolved notices go to the people who were paged. With nothing remembered
                    # (never paged, or an in-process store restarted) the ladder stands at
                    # level 0: whoever would have had the first page hears of it.
                    unpaged = paged is not None and not paged.was_paged(recipient.name, where.level)
                    if not firing and person and remembered and unpaged:
                        continue
                    # One message per channel and address, even when routes or levels overlap.
                    if (kind.value, recipient.address) in seen:
                        continue
                    seen.add((kind.value, recipient.address))
                    key, covered_by = keys.of(
                        firing, person, level, target, kind, recipient, severity, round_, after_ack
                    )
                    follows = not person and kind is Channel.SLACK
                    if follows:
                        key = _hash(key, stage)  # the channel hears of escalations and acks
                    notifications.append(
                        Notification(
                            key=key,
                            channel=kind,
                            recipient=recipient,
                            severity=severity,
                            route=name,
                            group=group,
                            alerts=alerts,
                            level=level,
                            templates=route.templates,
                            covered_by=covered_by,
                            spell=spell,
                            stage=stage if follows else "",
                            stage_text=stage_text if follows else "",
                            editable=follows and _web_api(team, recipient.address),
                            timezone=team.timezone,
                            paging=paging,
                        )
                    )
    return Plan(
        group,
        tuple(routed),
        tuple(notifications),
        tuple(skipped),
        current,
        start,
        spell,
        frozenset(held),
    )


def _stage(config: Config, route: Route, where: Ladder, current: Ack | None) -> tuple[str, str]:
    """Where a firing group stands, for the Slack message that follows it, and in words."""
    if current is not None:
        until = current.until.astimezone(config.timezone)
        who = config.people[current.by].name if current.by in config.people else current.by
        return (
            f"{where.level}|ack:{current.by}:{current.at.isoformat()}",
            f"Acknowledged by {who} via {current.channel.value}; "
            f"escalation paused until {until:%H:%M %Z}",
        )
    if where.level == 0:
        return "0", ""
    due = where.start + timedelta(seconds=route.level_after(where.level))
    names = sorted(
        {
            config.people[r.name].name
            for t in route.level_targets(where.level)
            if t.ref_kind != "channel"
            for r in recipients(config, t, due)
        }
    )
    return str(where.level), (
        f"Escalated to level {where.level}: paging {', '.join(names) or 'nobody reachable'}"
    )


def _web_api(config: Config, destination: str) -> bool:
    """A Slack destination given as a Web API channel (an incoming webhook cannot edit)."""
    return any(d.name == destination and d.channel for d in config.slack.values())


def _resolved_kind(route: Route, target: Target) -> Channel | None:
    """How a target hears that its group resolved: never by a call (an SMS instead)."""
    kind = Channel.SMS if target.kind is Channel.CALL else target.kind
    return kind if kind in route.resolved_channels else None


def _closed_window(
    config: Config,
    route: Route,
    target: Target,
    firing: bool,
    now: datetime,
    due: datetime,
    end: datetime,
) -> str | None:
    """The first of the route's and the target's windows that keeps this page from going."""
    for window in (route.window, target.window):
        if window is None:
            continue
        if firing:
            is_open = in_window(config, window, now)
        else:
            is_open = window_was_open(config, window, due, end)
        if not is_open:
            return window
    return None


def _repeat_round(route: Route, where: Ladder, level: int) -> int | None:
    """With `repeat`, the current level is paged again every `repeat` seconds."""
    if route.repeat is None or level != where.level:
        return None
    return int((where.age - route.level_after(level)) // route.repeat)


@dataclass(frozen=True)
class _Decided:
    """An alert's team, severity and routes."""

    team: Config
    decision: SeverityDecision
    routes: tuple[Route, ...]
    names: tuple[str, ...]  # the routes'


class _Keys:
    """Idempotency keys of one route's share of a group.

    A page to a person is one per spell, level (repeat round, expired acknowledgement), target
    and address: alerts joining or resolving do not make it new, and only a more urgent
    severity does (the key carries the severity; the more urgent keys cover it). A resolved
    notice is one per spell and address. A Slack channel message is new whenever the alert set
    or a state changes, so the channel sees every change.
    """

    def __init__(
        self, group: AlertGroup, spell: str, alerts: tuple[Alert, ...], repage: bool
    ) -> None:
        states = sorted(f"{a.fingerprint}:{a.status}:{a.starts_at.isoformat()}" for a in alerts)
        self.base = [group.source.value, group.group_key, spell]
        self.states = states
        self.repage = repage

    def of(
        self,
        firing: bool,
        person: bool,
        level: int,
        target: Target,
        kind: Channel,
        recipient: Recipient,
        severity: Severity,
        round_: int | None,
        after_ack: str,
    ) -> tuple[str, tuple[str, ...]]:
        if person and not self.repage:
            if not firing:
                return _hash(*self.base, "resolved", kind.value, recipient.address), ()
            head = _hash(
                *self.base, _step(level, round_, after_ack), str(target), recipient.address
            )
            more_urgent = [s for s in Severity if s.rank < severity.rank]
            return f"{head}:{severity}", tuple(f"{head}:{s}" for s in more_urgent)
        # The channel sees every change, severity included.
        parts = [*self.base, *self.states, severity, _step(level, round_, after_ack), str(target)]
        return _hash(*parts, recipient.address), ()


def _step(level: int, round_: int | None, after_ack: str) -> str:
    # Round 0 of a repeating level is the level's first page: same key as once it is passed.
    step = f"{level}.{round_}" if round_ else str(level)
    return f"{step}@{after_ack}" if after_ack else step


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
