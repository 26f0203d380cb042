"""Severity: how urgent each alert is, from rules, aliases and Sentry levels."""

from __future__ import annotations

from receiver.config.matchers import matches_all
from receiver.config.severity import severity_word
from receiver.config.types import Config
from receiver.model import Alert, AlertGroup, Severity, SeverityDecision, Source


def decide_severity(config: Config, alert: Alert) -> SeverityDecision:
    """The severity of an alert under its team's policy (`config` is the team's view)."""
    decision = _decide(config, alert)
    if not config.team:
        return decision
    return SeverityDecision(
        decision.severity, f"team {config.team}: {decision.reason}", decision.defaulted
    )


def _decide(config: Config, alert: Alert) -> SeverityDecision:
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
        key = severity_word(value)
        severity = policy.aliases.get(key)
        if severity is not None:
            word = policy.words.get(key, severity.value)
            how = f"is an alias of {severity.value}"
            if key == severity.value:
                how = f"is {severity.value}"
            elif value != word:
                how = f"matches the alias {word!r} of {severity.value}"
            return SeverityDecision(severity, f"label {name}={value!r} {how}")
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


def group_severity(config: Config, group: AlertGroup) -> Severity:
    """The most urgent severity among the group's alerts, each under its team's policy."""
    severities = [decide_severity(config.team_for(a.labels), a).severity for a in group.alerts]
    return min(severities, key=lambda s: s.rank, default=config.severity.default)
