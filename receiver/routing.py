"""Severity, route matching and targets: the only place those decisions are made."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from receiver.config import Config, Route, Target
from receiver.matchers import matches_all
from receiver.model import (
    Alert,
    AlertGroup,
    Notification,
    Recipient,
    RoutedAlert,
    Severity,
    SeverityDecision,
    Source,
)
from receiver.oncall import members_of


@dataclass(frozen=True)
class Plan:
    """What one webhook leads to: each alert's severity and routes, and the messages to send."""

    group: AlertGroup
    alerts: tuple[RoutedAlert, ...]
    notifications: tuple[Notification, ...]

    @property
    def unrouted(self) -> tuple[Alert, ...]:
        return tuple(r.alert for r in self.alerts if not r.routes)


def decide_severity(config: Config, alert: Alert) -> SeverityDecision:
    policy = config.severity
    for rule in policy.rules:
        if matches_all(rule.matchers, alert.labels):
            matchers = ", ".join(str(m) for m in rule.matchers)
            return SeverityDecision(
                rule.severity, f"rule at {config.path}:{rule.line} ({matchers})"
            )
    if alert.source is Source.SENTRY:
        return _sentry_severity(config, alert)
    for name in policy.labels:
        value = alert.labels.get(name, "").strip()
        if not value:
            continue
        severity = policy.aliases.get(value.lower())
        if severity is not None:
            how = "is" if value.lower() == severity.value else "is an alias of"
            return SeverityDecision(severity, f"label {name}={value!r} {how} {severity.value}")
        return SeverityDecision(
            policy.default,
            f"label {name}={value!r} is not a known severity; default {policy.default.value}",
            defaulted=True,
        )
    names = ", ".join(policy.labels)
    return SeverityDecision(
        policy.default,
        f"no severity label ({names}); default {policy.default.value}",
        defaulted=True,
    )


def _sentry_severity(config: Config, alert: Alert) -> SeverityDecision:
    sentry = config.sentry
    default = config.severity.default
    trigger = alert.labels.get("sentry_trigger")
    if trigger is not None:
        table, what = sentry.metric_alerts, f"metric alert trigger {trigger!r}"
        key = trigger
    else:
        key = alert.labels.get("level", "")
        table, what = sentry.levels, f"Sentry level {key!r}"
    severity = table.get(key.lower())
    if severity is None:
        return SeverityDecision(
            default, f"{what} is not mapped; default {default.value}", defaulted=True
        )
    return SeverityDecision(severity, f"{what} maps to {severity.value}")


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
        address = {
            "sms": person.phone,
            "call": person.phone,
            "email": person.email,
            "slack": person.slack,
        }[target.kind.value]
        if address:
            out.append(Recipient(pid, address))
    return tuple(out)


def plan(config: Config, group: AlertGroup, now: datetime) -> Plan:
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

    notifications: list[Notification] = []
    seen: set[tuple[str, str]] = set()
    for name, members in by_route.items():
        route = routes[name]
        alerts = tuple(a for a, _ in members)
        severity = min((s for _, s in members), key=lambda s: s.rank)
        for target in route.targets:
            for recipient in recipients(config, target, now):
                # One message per channel and address, even when routes overlap.
                if (target.kind.value, recipient.address) in seen:
                    continue
                seen.add((target.kind.value, recipient.address))
                notifications.append(
                    Notification(
                        key=idempotency_key(group, alerts, 0, target, recipient),
                        channel=target.kind,
                        recipient=recipient,
                        severity=severity,
                        route=name,
                        group=group,
                        alerts=alerts,
                        templates=route.templates,
                    )
                )
    return Plan(group, tuple(routed), tuple(notifications))


def idempotency_key(
    group: AlertGroup,
    alerts: tuple[Alert, ...],
    level: int,
    target: Target,
    recipient: Recipient,
) -> str:
    """Same group, alert set and states, level and target: the same send."""
    states = sorted(f"{a.fingerprint}:{a.status}:{a.starts_at.isoformat()}" for a in alerts)
    parts = [
        group.source.value,
        group.group_key,
        *states,
        str(level),
        str(target),
        recipient.address,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def labels_of(alerts: tuple[Alert, ...]) -> Mapping[str, str]:
    """Labels every alert shares."""
    if not alerts:
        return {}
    common = dict(alerts[0].labels)
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
    return common
