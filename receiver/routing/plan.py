"""Route matching, escalation level and targets: what one webhook leads to, decided once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.config.matchers import matches_all
from receiver.config.types import Config, Route, Target
from receiver.model import (
    Ack,
    Alert,
    AlertGroup,
    Notification,
    Recipient,
    RoutedAlert,
    Severity,
    Status,
)
from receiver.routing.oncall import escalation_level, in_window, members_of, window_was_open
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
        return (Recipient(target.ref, target.ref),)
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

    start: datetime  # earliest start of the alerts that count
    end: datetime  # `now` while firing, when the last alert ended once resolved
    level: int

    @property
    def age(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


def ladder(
    route: Route, alerts: tuple[Alert, ...], now: datetime, acks: tuple[Ack, ...] = ()
) -> Ladder:
    """Escalation is measured from the earliest *firing* alert; a resolved group from its end.

    Time under an acknowledgement does not count: the ladder stands where it was when the
    acknowledgement was made until it expires.
    """
    firing = [a for a in alerts if a.status is Status.FIRING]
    if firing:
        start, end = min(a.starts_at for a in firing), now
    else:
        start = min(a.starts_at for a in alerts)
        end = max((a.ends_at or now for a in alerts), default=now)
    end = unacknowledged_until(end, acks)
    age = max(0.0, (end - start).total_seconds())
    return Ladder(start, end, escalation_level(route, age))


def unacknowledged_until(end: datetime, acks: tuple[Ack, ...]) -> datetime:
    """The last moment up to `end` that no acknowledgement covered (chained ones included)."""
    moved = True
    while moved:
        moved = False
        for ack in acks:
            if ack.at < end < ack.until:
                end, moved = ack.at, True
    return end


def _expired_ack(acks: tuple[Ack, ...], start: datetime, now: datetime) -> str:
    """The end of the last acknowledgement of this firing spell that has run out ("" if none).

    It goes into the current level's idempotency key, so an expired acknowledgement pages the
    current level again.
    """
    ends = [a.until for a in acks if a.at >= start and a.until <= now]
    return max(ends).isoformat() if ends else ""


def plan(config: Config, group: AlertGroup, now: datetime, acks: tuple[Ack, ...] = ()) -> Plan:
    routed: list[RoutedAlert] = []
    by_route: dict[str, list[tuple[Alert, Severity]]] = {}
    routes: dict[str, Route] = {}
    for alert in group.alerts:
        decision = decide_severity(config, alert)
        matched = match_routes(config, alert, decision.severity)
        routed.append(RoutedAlert(alert, decision, tuple(r.name for r in matched)))
        for route in matched:
            routes[route.name] = route
            by_route.setdefault(route.name, []).append((alert, decision.severity))

    current = next((a for a in reversed(acks) if a.active(now)), None)
    notifications: list[Notification] = []
    skipped: list[Skipped] = []
    seen: set[tuple[str, str]] = set()
    for name, members in by_route.items():
        route = routes[name]
        alerts = tuple(a for a, _ in members)
        severity = min((s for _, s in members), key=lambda s: s.rank)
        where = ladder(route, alerts, now, acks)
        firing = any(a.status is Status.FIRING for a in alerts)
        renewed = _expired_ack(acks, where.start, now) if firing else ""
        prefix = _key_prefix(group, alerts)
        for level in range(where.level + 1):
            # Each level goes to whoever held the role when that level was reached, so a
            # handoff between re-sends does not page a second person for the same level.
            due = where.start + timedelta(seconds=route.level_after(level))
            round_ = _repeat_round(route, where, level) if firing else None
            after_ack = renewed if level == where.level else ""
            for target in route.level_targets(level):
                # A page goes out only while its window is open. A resolved notice goes to
                # whoever could have been paged: the window was open at some re-send between
                # the level falling due and the end.
                closed = _closed_window(config, route, target, firing, now, due, where.end)
                if closed is not None:
                    skipped.append(Skipped(name, level, target, closed))
                    continue
                # Acknowledged: nobody is paged again (not even after a restart emptied the
                # dedupe store) until it expires; Slack channels still hear of the group.
                if firing and current is not None and target.ref_kind != "channel":
                    continue
                for recipient in recipients(config, target, due):
                    # One message per channel and address, even when routes or levels overlap.
                    if (target.kind.value, recipient.address) in seen:
                        continue
                    seen.add((target.kind.value, recipient.address))
                    notifications.append(
                        Notification(
                            key=_key(prefix, level, target, recipient, round_, after_ack),
                            channel=target.kind,
                            recipient=recipient,
                            severity=severity,
                            route=name,
                            group=group,
                            alerts=alerts,
                            level=level,
                            templates=route.templates,
                        )
                    )
    return Plan(group, tuple(routed), tuple(notifications), tuple(skipped), current)


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


def _key_prefix(group: AlertGroup, alerts: tuple[Alert, ...]) -> str:
    """The part of a key every target of a route shares, so plan() builds it once per route."""
    states = sorted(f"{a.fingerprint}:{a.status}:{a.starts_at.isoformat()}" for a in alerts)
    return "\n".join([group.source.value, group.group_key, *states])


def _key(
    prefix: str,
    level: int,
    target: Target,
    recipient: Recipient,
    round_: int | None,
    after_ack: str = "",
) -> str:
    """The idempotency key: same group, alert set and states, level (repeat round, expired
    acknowledgement) and target mean the same send."""
    # Round 0 of a repeating level is the level's first page: same key as once it is passed.
    step = f"{level}.{round_}" if round_ else str(level)
    if after_ack:
        step += f"@{after_ack}"
    text = f"{prefix}\n{step}\n{target}\n{recipient.address}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
