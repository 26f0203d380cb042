"""Severity decisions, route matching and target expansion."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.model import Alert, AlertGroup, Channel, Severity, Source, Status
from receiver.routing.plan import match_routes, plan
from receiver.routing.severity import decide_severity
from receiver.sources import alertmanager
from tests.helpers import NOW, fixture, shipped_config

START = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def alert(
    labels: dict[str, str],
    status: Status = Status.FIRING,
    source: Source = Source.ALERTMANAGER,
    fingerprint: str = "f1",
) -> Alert:
    return Alert(source, status, labels, {"summary": "s"}, START, fingerprint)


def group(*alerts: Alert, key: str = "{}:{}") -> AlertGroup:
    firing = any(a.status is Status.FIRING for a in alerts)
    return AlertGroup(
        Source.ALERTMANAGER, key, Status.FIRING if firing else Status.RESOLVED, alerts
    )


@pytest.fixture(scope="module")
def config() -> Config:
    return shipped_config()


@pytest.mark.parametrize(
    ("labels", "severity", "defaulted"),
    [
        ({"severity": "critical"}, Severity.CRITICAL, False),
        ({"severity": "P0"}, Severity.CRITICAL, False),
        ({"severity": "sev-1"}, Severity.CRITICAL, False),
        ({"severity": "P1 - Critical"}, Severity.CRITICAL, False),
        ({"severity": "P1"}, Severity.HIGH, False),
        ({"severity": "warning"}, Severity.MEDIUM, False),
        ({"severity": "INFO"}, Severity.LOW, False),
        ({"severity": "P4"}, Severity.LOW, False),
        ({"priority": "P2"}, Severity.MEDIUM, False),
        ({"severity": "", "priority": "P0"}, Severity.CRITICAL, False),
        ({"severity": "banana"}, Severity.HIGH, True),
        ({"alertname": "NoSeverity"}, Severity.HIGH, True),
        ({"alertname": "Watchdog", "severity": "critical"}, Severity.LOW, False),
        ({"alertname": "EtcdNoLeader", "severity": "warning"}, Severity.CRITICAL, False),
    ],
)
def test_severity_table(
    config: Config, labels: dict[str, str], severity: Severity, defaulted: bool
) -> None:
    """Rules first, then the label names in order through the alias table, else the default."""
    decision = decide_severity(config, alert(labels))
    assert (decision.severity, decision.defaulted) == (severity, defaulted)


def test_severity_reasons_explain(config: Config) -> None:
    """The reason names the rule line, the alias, or why the default was used."""
    assert decide_severity(config, alert({"severity": "P0"})).reason == (
        "label severity='P0' is an alias of critical"
    )
    assert "rule at " in decide_severity(config, alert({"alertname": "Watchdog"})).reason
    assert decide_severity(config, alert({"severity": "banana"})).reason == (
        "label severity='banana' is not a known severity; default high"
    )


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        ({"level": "fatal"}, Severity.CRITICAL),
        ({"level": "error"}, Severity.HIGH),
        ({"level": "warning"}, Severity.MEDIUM),
        ({"level": "debug"}, Severity.LOW),
        ({"level": "log"}, Severity.HIGH),  # unknown level: default
        ({"sentry_trigger": "critical"}, Severity.CRITICAL),
        ({"sentry_trigger": "warning"}, Severity.MEDIUM),
    ],
)
def test_sentry_severity(config: Config, labels: dict[str, str], severity: Severity) -> None:
    """Sentry levels and metric-alert triggers map through the sentry section."""
    a = alert({"source": "sentry", **labels}, source=Source.SENTRY)
    assert decide_severity(config, a).severity is severity


def test_aliases_belong_to_the_file(config: Config) -> None:
    """Moving P1 to critical (a P1-P4 org) changes the decision with no code change."""
    aliases = dict(config.severity.aliases)
    aliases["p1"] = Severity.CRITICAL
    p1_org = dataclasses.replace(
        config, severity=dataclasses.replace(config.severity, aliases=aliases)
    )
    assert decide_severity(p1_org, alert({"severity": "P1"})).severity is Severity.CRITICAL
    assert decide_severity(config, alert({"severity": "P1"})).severity is Severity.HIGH


def test_critical_fixture_plan(config: Config) -> None:
    """Two critical alerts in one group: one message per target, not one per alert."""
    result = plan(config, alertmanager.parse(fixture("alertmanager-firing-critical.json")), NOW)
    sent = [(n.channel, n.recipient.address) for n in result.notifications]
    assert sent == [
        (Channel.SLACK, "incidents"),
        (Channel.SMS, "+447700900101"),
        (Channel.CALL, "+447700900101"),
        (Channel.EMAIL, "carol@example.com"),
        (Channel.EMAIL, "erin@example.com"),
    ]
    assert all(len(n.alerts) == 2 for n in result.notifications)
    assert len({n.key for n in result.notifications}) == 5


def test_mixed_severities_split_by_route(config: Config) -> None:
    """A group holding a critical and a warning alert pages for one, posts the other."""
    result = plan(
        config,
        group(
            alert({"severity": "critical"}, fingerprint="a"),
            alert({"severity": "warning"}, fingerprint="b"),
        ),
        NOW,
    )
    by_route = {n.route for n in result.notifications}
    assert by_route == {"critical", "low-urgency"}
    medium = [n for n in result.notifications if n.route == "low-urgency"]
    assert [a.fingerprint for a in medium[0].alerts] == ["b"]
    assert medium[0].severity is Severity.MEDIUM


def test_first_match_and_continue(tmp_path: Path) -> None:
    """First matching route wins; continue: true lets the next ones match too."""
    path = tmp_path / "r.yaml"
    path.write_text(
        """\
people:
  a: {email: a@example.com, slack: U1}
slack:
  payments: {channel: C1}
  alerts: {channel: C2}
  audit: {channel: C3}
routes:
  - name: payments
    matchers: ['team="payments"']
    continue: true
    targets: [{kind: slack, channel: payments}]
  - name: payments-db
    matchers: ['team="payments"', 'component=~"db|cache"']
    targets: [{kind: email, person: a}]
  - name: everything
    targets: [{kind: slack, channel: alerts}]
  - name: never
    targets: [{kind: slack, channel: audit}]
"""
    )
    config = load_config(path, {})

    def routes_for(labels: dict[str, str]) -> list[str]:
        return [n.route for n in plan(config, group(alert(labels)), NOW).notifications]

    assert routes_for({"team": "payments", "component": "db"}) == ["payments", "payments-db"]
    assert routes_for({"team": "payments", "component": "api"}) == ["payments", "everything"]
    assert routes_for({"team": "search"}) == ["everything"]


def test_same_target_twice_gets_one_message(tmp_path: Path) -> None:
    """Overlapping routes never send the same person the same channel twice."""
    path = tmp_path / "r.yaml"
    path.write_text(
        """\
people:
  a: {email: a@example.com}
groups:
  leads: [a]
routes:
  - name: one
    continue: true
    targets: [{kind: email, person: a}]
  - name: two
    targets: [{kind: email, group: leads}]
"""
    )
    result = plan(load_config(path, {}), group(alert({})), NOW)
    assert [(n.route, n.recipient.address) for n in result.notifications] == [
        ("one", "a@example.com")
    ]


def test_idempotency_key_tracks_alert_state(config: Config) -> None:
    """Same group and states: same key; an alert resolving: a new key (a new message)."""
    firing = plan(config, group(alert({"severity": "critical"})), NOW).notifications
    again = plan(config, group(alert({"severity": "critical"})), NOW).notifications
    resolved = plan(
        config, group(alert({"severity": "critical"}, Status.RESOLVED)), NOW
    ).notifications
    assert [n.key for n in firing] == [n.key for n in again]
    assert not {n.key for n in firing} & {n.key for n in resolved}


def test_resolved_notice_follows_a_page_sent_in_business_hours(config: Config) -> None:
    """A warning that started before hours, was posted at 09:30 and resolved at 10:00 gets its
    resolved notice, although the window was closed when the alert started."""
    start = datetime(2026, 3, 16, 7, 0, tzinfo=UTC)  # Monday, before business hours
    end = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
    firing = Alert(Source.ALERTMANAGER, Status.FIRING, {"severity": "warning"}, {}, start, "w")
    resolved = dataclasses.replace(firing, status=Status.RESOLVED, ends_at=end)
    at_0930 = plan(config, group(firing), datetime(2026, 3, 16, 9, 30, tzinfo=UTC))
    assert [(n.channel, n.recipient.address) for n in at_0930.notifications] == [
        (Channel.SLACK, "alerts")
    ]
    at_1001 = plan(config, group(resolved), datetime(2026, 3, 16, 10, 1, tzinfo=UTC))
    assert [n.status for n in at_1001.notifications] == [Status.RESOLVED]
    # Entirely outside hours (a Saturday), nothing was posted, so no resolved notice either.
    saturday = dataclasses.replace(
        resolved,
        starts_at=datetime(2026, 3, 14, 7, 0, tzinfo=UTC),
        ends_at=datetime(2026, 3, 14, 10, 0, tzinfo=UTC),
    )
    assert (
        plan(config, group(saturday), datetime(2026, 3, 14, 10, 1, tzinfo=UTC)).notifications == ()
    )


# --- A storm's alerts alike in the labels that count are decided once ------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STORM_LABELS = {
    "alertname": st.sampled_from(["Watchdog", "EtcdNoLeader", "HighErrorRate", "PodCrash"]),
    "severity": st.sampled_from(["critical", "P0", "P1", "SEV-1", "sev 2", "warning", "banana"]),
    "priority": st.sampled_from(["P0", "P2", "", "P1 - Critical"]),
    "team": st.sampled_from(["profile", "madplan", "metabolic-tracker", "mother-harness", "x"]),
    "pod": st.sampled_from(["a", "b", "c"]),
}
storm_alerts = st.lists(
    st.fixed_dictionaries({}, optional=STORM_LABELS).filter(bool).map(lambda labels: alert(labels)),
    min_size=1,
    max_size=12,
)


@pytest.mark.parametrize("path", ["routing.yaml", "examples/company.yaml"])
@settings(max_examples=150, deadline=None)
@given(alerts=storm_alerts)
def test_each_alert_is_routed_as_if_alone(path: str, alerts: list[Alert]) -> None:
    """Deciding each distinct set of the labels that count once (plan's memo) routes every alert
    exactly as deciding it on its own would: team, severity, reason and routes."""
    config = _configs(path)
    planned = plan(config, group(*alerts), NOW)
    for routed in planned.alerts:
        team = config.team_for(routed.alert.labels)
        decision = decide_severity(team, routed.alert)
        routes = match_routes(team, routed.alert, decision.severity)
        assert (routed.team, routed.severity, routed.routes) == (
            team.team,
            decision,
            tuple(r.name for r in routes),
        )


def test_the_labels_that_count_are_every_one_a_decision_reads() -> None:
    config = _configs("examples/company.yaml")
    assert set(config.routing_labels) >= {"team", "severity"}
    assert set(shipped_config().routing_labels) == {"alertname", "severity", "priority"}


@functools.cache
def _configs(path: str) -> Config:
    return load_config(EXAMPLES.parent / path, {})
