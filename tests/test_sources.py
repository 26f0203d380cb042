"""Payload parsers: every shipped fixture, the payload shapes we must accept, and the refusals."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from receiver.config.types import Config
from receiver.model import AlertGroup, Link, Source, Status
from receiver.sources import PayloadError, alertmanager, sentry
from tests.helpers import fixture, shipped_config
from tests.test_fuzz import almost_valid_alertmanager, valid_alertmanager

# The three Sentry payloads for issue 5871234409 must dedupe together: one fingerprint.
SENTRY_ISSUE_FINGERPRINT = "b2a88e1685544a59"
SENTRY_METRIC_FINGERPRINT = "a26eaffc81b31188"
CRITICAL_GROUP_KEY = '{}/{severity="critical"}:{alertname="HighErrorRate", service="payments-api"}'
PLATFORM_GROUP_KEY = '{}/{team="platform"}:{alertname="NodeFilesystemAlmostFull"}'
RUNBOOK = "https://runbooks.example.com/payments/high-error-rate"
PROMETHEUS = "http://prometheus-0.prometheus.monitoring.svc:9090/graph?"
METRIC_WEB_URL = (
    "https://sentry.io/organizations/acme/alerts/rules/details/218844/"
    "?alert=418&referrer=metric_alert_sentry_app"
)


@pytest.fixture(scope="module")
def config() -> Config:
    return shipped_config()


@pytest.fixture(scope="module")
def issue_actions(config: Config) -> Mapping[str, str]:
    return config.sentry.issues


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def assert_utc(when: datetime) -> None:
    assert when.tzinfo is not None
    assert when.utcoffset() == timedelta(0)


def minimal_alert(**overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "severity": "warning", "instance": "node-1:9100"},
        "annotations": {"summary": "Disk almost full"},
        "startsAt": "2026-03-16T09:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "c0ffee0000000001",
    }
    alert.update(overrides)
    return alert


def minimal_payload(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The Alertmanager 0.25 shape: no notification_reason, nothing newer."""
    payload: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "warning"},
        "commonAnnotations": {"summary": "Disk almost full"},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) or [minimal_alert()],
    }
    payload.update(overrides)
    return payload


# --- Alertmanager fixtures -------------------------------------------------------------------


def test_alertmanager_firing_critical_fixture() -> None:
    """The critical fixture parses to one firing group of two alerts with exact values."""
    group = alertmanager.parse(fixture("alertmanager-firing-critical.json"))

    assert group.source is Source.ALERTMANAGER
    assert group.group_key == CRITICAL_GROUP_KEY
    assert group.status is Status.FIRING
    assert group.receiver == "oncall-critical"
    assert group.truncated_alerts == 0
    assert group.external_url == "http://alertmanager.monitoring.svc:9093"
    assert group.group_labels == {"alertname": "HighErrorRate", "service": "payments-api"}
    assert group.common_labels["severity"] == "critical"
    assert group.common_annotations["runbook_url"] == RUNBOOK
    assert [a.status for a in group.alerts] == [Status.FIRING, Status.FIRING]
    assert [a.fingerprint for a in group.alerts] == ["6f1c3a9e2b7d4058", "b04e7d21c95a3f68"]
    assert [a.labels["instance"] for a in group.alerts] == ["10.42.3.17:8080", "10.42.5.9:8080"]
    first, second = group.alerts
    assert first.starts_at == utc(2026, 3, 16, 9, 12, 30, 455000)
    assert second.starts_at == utc(2026, 3, 16, 9, 13, 0, 455000)
    assert first.ends_at == utc(2026, 3, 16, 9, 20, 30, 455000)
    for alert in group.alerts:
        assert_utc(alert.starts_at)
        assert alert.name == "HighErrorRate"
        assert alert.summary == "payments-api 5xx error rate above 5%"
        assert [link.title for link in alert.links] == ["Source", "Runbook"]
        assert alert.links[0].url.startswith(PROMETHEUS)
        assert alert.links[1] == Link("Runbook", RUNBOOK)


def test_alertmanager_mixed_truncated_fixture() -> None:
    """Mixed fixture: 2 firing + 1 resolved, truncatedAlerts 4, Go zero endsAt becomes None."""
    group = alertmanager.parse(fixture("alertmanager-mixed-truncated.json"))

    assert group.group_key == PLATFORM_GROUP_KEY
    assert group.status is Status.FIRING
    assert group.receiver == "platform-warnings"
    assert group.truncated_alerts == 4
    assert len(group.alerts) == 3
    assert [a.status for a in group.alerts] == [Status.FIRING, Status.FIRING, Status.RESOLVED]
    assert [a.fingerprint for a in group.alerts] == [
        "0a4d7e55c3b1f902",
        "3c92e0f7a8d64b15",
        "91e6b2d04f7ac385",
    ]
    firing_a, firing_b, resolved = group.alerts
    # endsAt "0001-01-01T00:00:00Z" is Go's zero time: "no end yet".
    assert firing_a.ends_at is None
    assert firing_b.ends_at is None
    assert resolved.ends_at == utc(2026, 3, 16, 8, 58, 10, 12000)
    assert firing_a.starts_at == utc(2026, 3, 16, 7, 55, 10, 12000)
    assert resolved.starts_at == utc(2026, 3, 16, 6, 40, 10, 12000)
    for alert in group.alerts:
        assert_utc(alert.starts_at)
        assert alert.labels["severity"] == "warning"
        assert alert.labels["team"] == "platform"
        # No runbook_url annotation: only the Prometheus link.
        assert [link.title for link in alert.links] == ["Source"]
    assert resolved.labels["device"] == "/dev/nvme0n1"


def test_alertmanager_resolved_fixture() -> None:
    """The resolved fixture parses to a resolved group whose alerts carry real end times."""
    group = alertmanager.parse(fixture("alertmanager-resolved.json"))

    assert group.group_key == CRITICAL_GROUP_KEY
    assert group.status is Status.RESOLVED
    assert [a.status for a in group.alerts] == [Status.RESOLVED, Status.RESOLVED]
    assert [a.fingerprint for a in group.alerts] == ["6f1c3a9e2b7d4058", "b04e7d21c95a3f68"]
    assert [a.ends_at for a in group.alerts] == [
        utc(2026, 3, 16, 9, 41, 30, 455000),
        utc(2026, 3, 16, 9, 40, 0, 455000),
    ]
    for alert in group.alerts:
        assert alert.ends_at is not None
        assert_utc(alert.ends_at)
        assert alert.ends_at > alert.starts_at


# --- Sentry fixtures -------------------------------------------------------------------------


def test_sentry_event_alert_fixture(issue_actions: Mapping[str, str]) -> None:
    """event_alert/triggered becomes one firing alert labelled with project and level."""
    group = sentry.parse("event_alert", fixture("sentry-event-alert-triggered.json"), issue_actions)

    assert group is not None
    assert group.source is Source.SENTRY
    assert group.group_key == "sentry:issue:5871234409"
    assert group.status is Status.FIRING
    (alert,) = group.alerts
    assert alert.status is Status.FIRING
    assert alert.labels == {
        "source": "sentry",
        "alertname": "Payments: new unhandled error in production",
        "sentry_resource": "event_alert",
        "project": "payments-api",
        "environment": "production",
        "level": "error",
    }
    assert alert.summary == "GatewayTimeout: upstream timed out after 10.0s"
    assert alert.annotations["release"] == "payments-api@2026.3.14+a1b2c3d"
    assert alert.annotations["culprit"] == "payments.gateway.client in charge"
    assert alert.starts_at == utc(2026, 3, 16, 9, 14, 2, 318000)
    assert_utc(alert.starts_at)
    assert alert.ends_at is None
    assert alert.fingerprint == SENTRY_ISSUE_FINGERPRINT
    # The issue's page, not the one event's (shorter, and it shows every event and the counts).
    assert alert.links == (
        Link(
            "Sentry issue",
            "https://sentry.io/organizations/acme/issues/5871234409/",
        ),
    )


def test_sentry_issue_created_fixture(issue_actions: Mapping[str, str]) -> None:
    """issue/created becomes a firing alert with the short id and the issue's web_url."""
    group = sentry.parse("issue", fixture("sentry-issue-created.json"), issue_actions)

    assert group is not None
    assert group.group_key == "sentry:issue:5871234409"
    assert group.status is Status.FIRING
    (alert,) = group.alerts
    assert alert.labels == {
        "source": "sentry",
        "alertname": "SentryIssue",
        "sentry_resource": "issue",
        "project": "payments-api",
        "level": "error",
        "issue": "PAYMENTS-API-3K",
    }
    assert "sentry_trigger" not in alert.labels
    # What Sentry says of the issue is kept for the messages (and survives Alertmanager).
    assert alert.annotations == {
        "summary": "GatewayTimeout: upstream timed out after 10.0s",
        "culprit": "payments.gateway.client in charge",
        "event_count": "1",
        "user_count": "1",
        "first_seen": "2026-03-16T09:14:02.318000+00:00",
        "last_seen": "2026-03-16T09:14:02.318000+00:00",
    }
    assert alert.starts_at == utc(2026, 3, 16, 9, 14, 2, 318000)
    assert alert.fingerprint == SENTRY_ISSUE_FINGERPRINT
    # permalink is null in the fixture: only web_url becomes a link.
    assert alert.links == (
        Link("Sentry issue", "https://sentry.io/organizations/acme/issues/5871234409/"),
    )


@pytest.mark.parametrize(
    ("name", "action", "status", "ends_at", "summary"),
    [
        (
            "sentry-metric-alert-critical.json",
            "critical",
            Status.FIRING,
            None,
            "Critical: Payments API error spike",
        ),
        (
            "sentry-metric-alert-resolved.json",
            "resolved",
            Status.RESOLVED,
            utc(2026, 3, 16, 9, 52),
            "Resolved: Payments API error spike",
        ),
    ],
)
def test_sentry_metric_alert_fixtures(
    issue_actions: Mapping[str, str],
    name: str,
    action: str,
    status: Status,
    ends_at: datetime | None,
    summary: str,
) -> None:
    """metric_alert fixtures keep the critical trigger (a resolve routes like its page)."""
    body = fixture(name)
    assert body["action"] == action
    group = sentry.parse("metric_alert", body, issue_actions)

    assert group is not None
    assert group.group_key == "sentry:metric_alert:218844:418"
    assert group.status is status
    (alert,) = group.alerts
    assert alert.status is status
    assert alert.labels == {
        "source": "sentry",
        "alertname": "Payments API error spike",
        "sentry_resource": "metric_alert",
        "project": "payments-api",
        "environment": "production",
        "sentry_trigger": "critical",
    }
    assert alert.summary == summary
    assert alert.starts_at == utc(2026, 3, 16, 9, 5)
    assert_utc(alert.starts_at)
    assert alert.ends_at == ends_at
    assert alert.fingerprint == SENTRY_METRIC_FINGERPRINT
    assert alert.links == (Link("Sentry alert", METRIC_WEB_URL),)


def test_sentry_legacy_plugin_fixture(issue_actions: Mapping[str, str]) -> None:
    """A legacy plugin body (no resource header) becomes a firing alert for the same issue."""
    group = sentry.parse(None, fixture("sentry-legacy-plugin.json"), issue_actions)

    assert group is not None
    assert group.group_key == "sentry:issue:5871234409"
    (alert,) = group.alerts
    assert alert.status is Status.FIRING
    assert alert.labels == {
        "source": "sentry",
        "alertname": "Payments: new unhandled error in production",
        "sentry_resource": "legacy",
        "project": "payments-api",
        "environment": "production",
        "level": "error",
    }
    assert alert.starts_at == utc(2026, 3, 16, 9, 14, 2, 318000)
    assert alert.fingerprint == SENTRY_ISSUE_FINGERPRINT
    assert alert.links == (
        Link("Sentry issue", "https://acme.sentry.io/issues/5871234409/?referrer=webhooks_plugin"),
    )


# --- Alertmanager shapes and values ----------------------------------------------------------


def _newest_shape(payload: dict[str, Any]) -> dict[str, Any]:
    newer = copy.deepcopy(payload)
    newer["notification_reason"] = "first notification"
    newer["routeLabels"] = {"team": "platform"}
    newer["someFutureField"] = {"nested": [1, 2, {"x": None}]}
    for alert in newer["alerts"]:
        alert["someFutureAlertField"] = ["ignored"]
    return newer


@pytest.mark.parametrize(
    "name",
    [
        "alertmanager-firing-critical.json",
        "alertmanager-mixed-truncated.json",
        "alertmanager-resolved.json",
    ],
)
def test_newest_shape_parses_like_025_shape(name: str) -> None:
    """notification_reason, routeLabels and unknown keys change nothing in the parsed group."""
    old = fixture(name)
    old.pop("notification_reason", None)
    new = _newest_shape(old)
    assert "notification_reason" not in old
    assert alertmanager.parse(new) == alertmanager.parse(old)


def test_minimal_025_and_newest_shapes_parse_identically() -> None:
    """A hand-built 0.25 payload and its newest-shape twin give equal groups."""
    old = minimal_payload()
    assert alertmanager.parse(_newest_shape(old)) == alertmanager.parse(old)


@pytest.mark.parametrize(
    ("alert_status", "ends_at", "expected"),
    [
        # endsAt in the past while firing: Alertmanager sets endsAt = now + resolve_timeout.
        ("firing", "2020-01-01T00:00:00Z", Status.FIRING),
        ("firing", "0001-01-01T00:00:00Z", Status.FIRING),
        ("resolved", "2099-01-01T00:00:00Z", Status.RESOLVED),
        ("resolved", "2026-03-16T09:10:00Z", Status.RESOLVED),
    ],
)
def test_state_comes_from_status_not_ends_at(
    alert_status: str, ends_at: str, expected: Status
) -> None:
    """An alert's and group's state follow `status`, whatever `endsAt` says."""
    group = alertmanager.parse(minimal_payload(minimal_alert(status=alert_status, endsAt=ends_at)))
    assert group.alerts[0].status is expected
    assert group.status is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-16T09:12:30.123456789Z", utc(2026, 3, 16, 9, 12, 30, 123456)),
        ("2026-03-16T09:12:30.999999999Z", utc(2026, 3, 16, 9, 12, 30, 999999)),
        ("2026-03-16T09:12:30.1Z", utc(2026, 3, 16, 9, 12, 30, 100000)),
        ("2026-03-16T09:12:30Z", utc(2026, 3, 16, 9, 12, 30)),
        ("2026-03-16T10:12:30.5+01:00", utc(2026, 3, 16, 9, 12, 30, 500000)),
        ("2026-03-16T04:12:30-05:00", utc(2026, 3, 16, 9, 12, 30)),
        ("2026-03-16T09:12:30", utc(2026, 3, 16, 9, 12, 30)),
        (1773652350, utc(2026, 3, 16, 9, 12, 30)),
        (1773652350.25, utc(2026, 3, 16, 9, 12, 30, 250000)),
    ],
)
def test_start_times_are_utc(raw: str | float, expected: datetime) -> None:
    """Nanoseconds are cut to micros, offsets and epochs all become UTC-aware times."""
    group = alertmanager.parse(minimal_payload(minimal_alert(startsAt=raw)))
    starts_at = group.alerts[0].starts_at
    assert starts_at == expected
    assert_utc(starts_at)


def test_nanosecond_ends_at() -> None:
    """A nanosecond endsAt on a resolved alert parses to the truncated UTC time."""
    group = alertmanager.parse(
        minimal_payload(minimal_alert(status="resolved", endsAt="2026-03-16T09:30:00.987654321Z"))
    )
    ends_at = group.alerts[0].ends_at
    assert ends_at == utc(2026, 3, 16, 9, 30, 0, 987654)
    assert ends_at is not None
    assert_utc(ends_at)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("web\\.hook", "web.hook"),
        ("team\\-a\\.pager", "team-a.pager"),
        ("plain", "plain"),
    ],
)
def test_receiver_name_is_unescaped(raw: str, expected: str) -> None:
    """Alertmanager QuoteMeta-escapes the receiver name; the parser removes the backslashes."""
    group = alertmanager.parse(minimal_payload(receiver=raw))
    assert group.receiver == expected


def test_missing_group_key_falls_back_to_fingerprints() -> None:
    """Without groupKey the sorted fingerprints identify the group."""
    payload = minimal_payload(minimal_alert(fingerprint="bbbb"), minimal_alert(fingerprint="aaaa"))
    del payload["groupKey"]
    assert alertmanager.parse(payload).group_key == "fp:aaaa,bbbb"


def test_missing_fingerprint_is_derived_from_labels() -> None:
    """Without a fingerprint, equal label sets get equal fingerprints and different ones differ."""
    one = minimal_alert()
    del one["fingerprint"]
    same = copy.deepcopy(one)
    same["labels"] = dict(reversed(list(one["labels"].items())))
    other = copy.deepcopy(one)
    other["labels"]["instance"] = "node-2:9100"
    group = alertmanager.parse(minimal_payload(one, same, other))
    a, b, c = (alert.fingerprint for alert in group.alerts)
    assert a == b
    assert a != c
    assert len(a) == 16


@pytest.mark.parametrize(
    ("generator", "runbook", "titles"),
    [
        ("https://prom/graph", "https://runbooks/x", ["Source", "Runbook"]),
        ("", "https://runbooks/x", ["Runbook"]),
        ("javascript:alert(1)", "ftp://runbooks/x", []),
        ("http://prom/graph", None, ["Source"]),
    ],
)
def test_links_only_for_http_urls(generator: str, runbook: str | None, titles: list[str]) -> None:
    """Only http(s) generatorURL and runbook_url become Source and Runbook links."""
    annotations = {"summary": "s"} | ({"runbook_url": runbook} if runbook else {})
    alert = minimal_alert(generatorURL=generator, annotations=annotations)
    parsed = alertmanager.parse(minimal_payload(alert)).alerts[0]
    assert [link.title for link in parsed.links] == titles


def _without(key: str) -> dict[str, Any]:
    alert = minimal_alert()
    del alert[key]
    return minimal_payload(alert)


MALFORMED_ALERTMANAGER: list[tuple[str, Any]] = [
    ("alerts not a list", minimal_payload(alerts={"0": minimal_alert()})),
    ("alerts a string", minimal_payload(alerts="firing")),
    ("alerts missing", {"version": "4", "groupKey": "x"}),
    ("empty alerts", minimal_payload(alerts=[])),
    ("alert not an object", minimal_payload(alerts=["firing"])),
    ("alert null", minimal_payload(alerts=[None])),
    ("bad status", minimal_payload(minimal_alert(status="pending"))),
    ("status missing", _without("status")),
    ("status not a string", minimal_payload(minimal_alert(status=["firing"]))),
    ("labels not an object", minimal_payload(minimal_alert(labels=["alertname", "x"]))),
    ("labels empty", minimal_payload(minimal_alert(labels={}))),
    ("label value an object", minimal_payload(minimal_alert(labels={"alertname": {"x": 1}}))),
    ("label value a list", minimal_payload(minimal_alert(labels={"alertname": ["x"]}))),
    ("label value a bool", minimal_payload(minimal_alert(labels={"alertname": True}))),
    ("annotations a list", minimal_payload(minimal_alert(annotations=["x"]))),
    ("missing startsAt", _without("startsAt")),
    ("garbage startsAt", minimal_payload(minimal_alert(startsAt="yesterday at noon"))),
    ("startsAt an object", minimal_payload(minimal_alert(startsAt={"t": 1}))),
    ("startsAt overflows", minimal_payload(minimal_alert(startsAt=1e300))),
    (
        "startsAt offset overflows",
        minimal_payload(minimal_alert(startsAt="9999-12-31T23:59:59-01:00")),
    ),
    ("garbage endsAt", minimal_payload(minimal_alert(endsAt="soon"))),
    ("version 3", minimal_payload(version="3")),
    ("version 5 as number", minimal_payload(version=5)),
    ("negative truncatedAlerts", minimal_payload(truncatedAlerts=-1)),
    ("truncatedAlerts a string", minimal_payload(truncatedAlerts="4")),
    ("truncatedAlerts a bool", minimal_payload(truncatedAlerts=True)),
    ("groupLabels a list", minimal_payload(groupLabels=["alertname"])),
    ("commonLabels a string", minimal_payload(commonLabels="x")),
    ("groupKey an object", minimal_payload(groupKey={"k": "v"})),
    ("receiver a list", minimal_payload(receiver=["a"])),
    ("payload a list", [minimal_payload()]),
    ("payload a string", "alerts"),
    ("payload a number", 4),
    ("payload null", None),
    ("payload a bool", True),
]


@pytest.mark.parametrize(
    "payload", [p for _, p in MALFORMED_ALERTMANAGER], ids=[n for n, _ in MALFORMED_ALERTMANAGER]
)
def test_malformed_alertmanager_raises_payload_error(payload: Any) -> None:
    """Each malformed payload raises PayloadError (a 400), never another exception (a 500)."""
    with pytest.raises(PayloadError):
        alertmanager.parse(payload)


def test_valid_base_of_malformed_table_parses() -> None:
    """The payload the malformed cases are built from is itself valid (so each case fails alone)."""
    group = alertmanager.parse(minimal_payload())
    assert group.group_key == '{}:{alertname="DiskFull"}'
    assert group.alerts[0].ends_at is None


# --- Sentry actions, resources and refusals --------------------------------------------------


def _issue_body(action: str) -> dict[str, Any]:
    body: dict[str, Any] = fixture("sentry-issue-created.json")
    body["action"] = action
    return body


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("created", Status.FIRING),
        ("unresolved", Status.FIRING),
        ("resolved", Status.RESOLVED),
        ("ignored", Status.RESOLVED),
        ("assigned", None),
        ("archived", None),
    ],
)
def test_sentry_issue_actions(
    issue_actions: Mapping[str, str], action: str, expected: Status | None
) -> None:
    """Issue actions per routing.yaml: created fires, resolved/ignored resolve, assigned skips."""
    group = sentry.parse("issue", _issue_body(action), issue_actions)
    if expected is None:
        assert group is None
    else:
        assert group is not None
        assert group.status is expected
        assert group.alerts[0].status is expected
        assert group.alerts[0].fingerprint == SENTRY_ISSUE_FINGERPRINT


def test_shipped_config_skips_assigned(config: Config) -> None:
    """The shipped routing.yaml maps issue actions as the table above assumes."""
    assert dict(config.sentry.issues) == {
        "created": "firing",
        "unresolved": "firing",
        "resolved": "resolved",
        "ignored": "resolved",
        "assigned": "skip",
    }


def _metric_body(action: str, status: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = fixture("sentry-metric-alert-critical.json")
    body["action"] = action
    if status is not None:
        body["data"]["metric_alert"]["status"] = status
    return body


@pytest.mark.parametrize(
    ("action", "incident_status", "status", "trigger"),
    [
        ("critical", None, Status.FIRING, "critical"),
        ("warning", None, Status.FIRING, "warning"),
        ("open", 20, Status.FIRING, "critical"),
        ("open", 10, Status.FIRING, "warning"),
        ("resolved", None, Status.RESOLVED, "critical"),
    ],
)
def test_sentry_metric_alert_actions(
    issue_actions: Mapping[str, str],
    action: str,
    incident_status: int | None,
    status: Status,
    trigger: str,
) -> None:
    """Metric alert critical/warning/open fire with their trigger; resolved resolves."""
    group = sentry.parse("metric_alert", _metric_body(action, incident_status), issue_actions)
    assert group is not None
    assert group.status is status
    assert group.alerts[0].labels["sentry_trigger"] == trigger


def test_sentry_metric_resolve_of_warning_only_rule(issue_actions: Mapping[str, str]) -> None:
    """Resolving a rule whose only trigger is `warning` keeps `warning`, to route like its page."""
    body = _metric_body("resolved")
    triggers = body["data"]["metric_alert"]["alert_rule"]["triggers"]
    body["data"]["metric_alert"]["alert_rule"]["triggers"] = [
        t for t in triggers if t["label"] == "warning"
    ]
    group = sentry.parse("metric_alert", body, issue_actions)
    assert group is not None
    assert group.alerts[0].labels["sentry_trigger"] == "warning"


@pytest.mark.parametrize(
    ("resource", "action"),
    [("event_alert", "created"), ("metric_alert", "assigned")],
)
def test_sentry_actions_without_a_page(
    issue_actions: Mapping[str, str], resource: str, action: str
) -> None:
    """Actions that carry nothing to page about give None."""
    name = {
        "event_alert": "sentry-event-alert-triggered.json",
        "metric_alert": "sentry-metric-alert-critical.json",
    }[resource]
    body = fixture(name)
    body["action"] = action
    assert sentry.parse(resource, body, issue_actions) is None


@pytest.mark.parametrize("resource", ["installation", "comment", "error", "seer", "size_analysis"])
def test_sentry_ignored_resources(issue_actions: Mapping[str, str], resource: str) -> None:
    """Resources Sentry sends that we acknowledge but ignore parse to None."""
    body = {"action": "created", "data": {"comment": "looks bad"}, "installation": {"uuid": "u"}}
    assert sentry.parse(resource, body, issue_actions) is None


@pytest.mark.parametrize("resource", ["alert", "issues", "Issue", "", "metric-alert"])
def test_sentry_unknown_resource(issue_actions: Mapping[str, str], resource: str) -> None:
    """An unknown Sentry-Hook-Resource is refused with PayloadError naming it."""
    body = fixture("sentry-issue-created.json")
    with pytest.raises(PayloadError, match="unknown Sentry-Hook-Resource"):
        sentry.parse(resource, body, issue_actions)


MALFORMED_SENTRY: list[tuple[str, str | None, Any]] = [
    ("body a list", "issue", []),
    ("body null", "event_alert", None),
    ("action missing", "issue", {"data": {}}),
    ("action an object", "metric_alert", {"action": {}, "data": {}}),
    ("data missing", "issue", {"action": "created"}),
    ("data a string", "event_alert", {"action": "triggered", "data": "x"}),
    ("event missing", "event_alert", {"action": "triggered", "data": {}}),
    ("issue missing", "issue", {"action": "created", "data": {}}),
    ("issue id missing", "issue", {"action": "created", "data": {"issue": {"title": "t"}}}),
    ("incident missing", "metric_alert", {"action": "critical", "data": {}}),
    ("legacy without project", None, {"message": "boom"}),
    ("legacy project an object", None, {"project": {"slug": "x"}}),
]


@pytest.mark.parametrize(
    ("resource", "body"),
    [(r, b) for _, r, b in MALFORMED_SENTRY],
    ids=[n for n, _, _ in MALFORMED_SENTRY],
)
def test_malformed_sentry_raises_payload_error(
    issue_actions: Mapping[str, str], resource: str | None, body: Any
) -> None:
    """Malformed Sentry bodies raise PayloadError, never another exception."""
    with pytest.raises(PayloadError):
        sentry.parse(resource, body, issue_actions)


def _parse_refuses_cleanly(
    resource: str | None, body: Any, issue_actions: Mapping[str, str]
) -> AlertGroup | None:
    """Parse, treating PayloadError (a 400) as acceptable: any other exception is a 500."""
    try:
        return sentry.parse(resource, body, issue_actions)
    except PayloadError:
        return None


def test_metric_resolve_with_unhashable_trigger_label(issue_actions: Mapping[str, str]) -> None:
    """A trigger whose `label` is a list must not crash the parser (TypeError would be a 500)."""
    body = _metric_body("resolved")
    body["data"]["metric_alert"]["alert_rule"]["triggers"] = [{"label": ["critical"]}]
    group = _parse_refuses_cleanly("metric_alert", body, issue_actions)
    if group is not None:
        assert group.status is Status.RESOLVED


def test_event_alert_with_malformed_event_url(issue_actions: Mapping[str, str]) -> None:
    """An unparsable event `url` (bad IPv6 host) must not crash the parser (ValueError → 500)."""
    body = fixture("sentry-event-alert-triggered.json")
    body["data"]["event"]["url"] = "https://[sentry.io/api/0/projects/acme/payments-api/events/1/"
    group = _parse_refuses_cleanly("event_alert", body, issue_actions)
    if group is not None:
        assert group.alerts[0].labels["sentry_resource"] == "event_alert"


def _am_label_surrogate() -> tuple[str | None, Any]:
    body = fixture("alertmanager-mixed-truncated.json")
    del body["alerts"][0]["fingerprint"]
    body["alerts"][0]["labels"]["instance"] = "node-\ud800"
    return "alertmanager", body


def _sentry_surrogate(resource: str | None, name: str, *path: str) -> tuple[str | None, Any]:
    body = fixture(name)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "58712\ud800"
    return resource, body


@pytest.mark.parametrize(
    ("resource", "body"),
    [
        _am_label_surrogate(),
        _sentry_surrogate("issue", "sentry-issue-created.json", "data", "issue", "id"),
        _sentry_surrogate(
            "event_alert", "sentry-event-alert-triggered.json", "data", "event", "issue_id"
        ),
        _sentry_surrogate(None, "sentry-legacy-plugin.json", "id"),
    ],
    ids=["am-label-no-fingerprint", "sentry-issue-id", "sentry-event-issue-id", "legacy-id"],
)
def test_unpaired_surrogate_is_not_a_crash(
    issue_actions: Mapping[str, str], resource: str | None, body: Any
) -> None:
    """A `\\ud800` escape (valid JSON, not UTF-8) is refused or parsed, never UnicodeEncodeError."""
    if resource == "alertmanager":
        try:
            group: AlertGroup | None = alertmanager.parse(body)
        except PayloadError:
            return
    else:
        group = _parse_refuses_cleanly(resource, body, issue_actions)
    if group is not None:
        assert group.alerts[0].fingerprint.encode()


# --- The typed way in (msgspec) and the long way agree ------------------------------------------

ALERTMANAGER_FIXTURES = (
    "alertmanager-firing-critical.json",
    "alertmanager-mixed-truncated.json",
    "alertmanager-resolved.json",
)


def _both_ways(raw: bytes) -> tuple[AlertGroup | str | None, AlertGroup | str]:
    """What `decode` and `parse` make of one body: a group, a PayloadError's text, or (for
    `decode` only) None when it leaves the body to `parse`."""
    try:
        fast: AlertGroup | str | None = alertmanager.decode(raw)
    except PayloadError as e:
        fast = str(e)
    try:
        slow: AlertGroup | str = alertmanager.parse(json.loads(raw))
    except PayloadError as e:
        slow = str(e)
    return fast, slow


@pytest.mark.parametrize("name", ALERTMANAGER_FIXTURES)
def test_fixtures_take_the_typed_way_and_agree(name: str) -> None:
    raw = json.dumps(fixture(name)).encode()
    fast, slow = _both_ways(raw)
    assert isinstance(fast, AlertGroup)
    assert fast == slow


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"alerts": [{"status": "firing", "labels": {"n": 1}, "startsAt": "%s"}]}', "number"),
        (
            b'{"alerts": [{"status": "firing", "labels": {"a": "\\ud800"}, "startsAt": "%s"}]}',
            "lone",
        ),
        (
            b'{"alerts": [{"status": "firing", "labels": {"a": "b"}, "annotations": null, '
            b'"startsAt": "%s"}]}',
            "null",
        ),
        (
            b'{"version": 4, "alerts": [{"status": "firing", "labels": {"a": "b"}, '
            b'"startsAt": "%s"}]}',
            "number version",
        ),
    ],
)
def test_what_the_typed_way_refuses_the_long_way_reads(body: bytes, why: str) -> None:
    raw = body.replace(b"%s", b"2026-03-07T12:42:00Z")
    fast, slow = _both_ways(raw)
    assert fast is None, why
    assert isinstance(slow, AlertGroup), why


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=valid_alertmanager | almost_valid_alertmanager())
def test_typed_and_long_way_agree(payload: Any) -> None:
    """Every body either goes the typed way to the same group (or the same refusal) as the long
    way, or is left to the long way."""
    fast, slow = _both_ways(json.dumps(payload).encode())
    if fast is not None:
        assert fast == slow


def test_a_storm_of_well_formed_alerts_takes_the_typed_way() -> None:
    """The typed way is the one a large group takes (what it is for), with every alert kept."""
    template = fixture("alertmanager-firing-critical.json")
    alerts = [
        {**template["alerts"][0], "fingerprint": f"{i:016x}", "labels": {"pod": f"p{i}", "x": "y"}}
        for i in range(2000)
    ]
    raw = json.dumps({**template, "alerts": alerts}).encode()
    fast, slow = _both_ways(raw)
    assert isinstance(fast, AlertGroup)
    assert len(fast.alerts) == 2000
    assert fast == slow
