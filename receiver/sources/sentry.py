"""Sentry webhooks: integration-platform resources and the legacy WebHooks plugin body."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from receiver.model import Alert, AlertGroup, Link, Source, Status
from receiver.sources import PayloadError, obj, text, timestamp

# Integration-platform resources that carry something to page about.
RESOURCES = ("event_alert", "metric_alert", "issue")
# Resources Sentry also sends that we acknowledge and ignore.
IGNORED_RESOURCES = ("installation", "comment", "error", "seer", "size_analysis")
_METRIC_FIRING = ("critical", "warning", "open")


def parse(resource: str | None, body: Any, issue_actions: Mapping[str, str]) -> AlertGroup | None:
    """An AlertGroup of one, or None for a webhook that is valid but not worth a page."""
    payload = obj(body, "payload")
    if resource is None:
        return _legacy(payload)
    if resource in IGNORED_RESOURCES:
        return None
    action = text(payload.get("action"), "action")
    data = obj(payload.get("data"), "data")
    if resource == "event_alert":
        return _event_alert(action, data)
    if resource == "metric_alert":
        return _metric_alert(action, data)
    if resource == "issue":
        outcome = issue_actions.get(action, "skip")
        if outcome == "skip":
            return None
        return _issue(Status(outcome), data)
    raise PayloadError(f"unknown Sentry-Hook-Resource {resource!r}")


def _group(resource: str, identity: str, alert: Alert) -> AlertGroup:
    return AlertGroup(
        source=Source.SENTRY,
        group_key=f"sentry:{resource}:{identity}",
        status=alert.status,
        alerts=(alert,),
        common_labels=alert.labels,
        common_annotations=alert.annotations,
    )


def _fingerprint(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _labels(**values: str) -> dict[str, str]:
    return {"source": "sentry", **{k: v for k, v in values.items() if v}}


def _links(*pairs: tuple[str, Any]) -> tuple[Link, ...]:
    return tuple(
        Link(title, url)
        for title, url in pairs
        if isinstance(url, str) and url.startswith(("https://", "http://"))
    )


def _project_from_url(url: Any) -> str:
    """`…/api/0/projects/{org}/{project}/events/…` names the project slug."""
    if not isinstance(url, str):
        return ""
    try:
        parts = urlsplit(url).path.strip("/").split("/")
    except ValueError:  # e.g. "https://[broken" (an invalid IPv6 host)
        return ""
    if "projects" in parts:
        i = parts.index("projects")
        if len(parts) > i + 2:
            return parts[i + 2]
    return ""


def _when(value: Any, where: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return timestamp(value, where)


def _event_alert(action: str, data: Mapping[str, Any]) -> AlertGroup | None:
    if action != "triggered":
        return None
    event = obj(data.get("event"), "data.event")
    rule = text(data.get("triggered_rule"), "data.triggered_rule", default="")
    title = text(event.get("title"), "data.event.title", default="Sentry event")
    issue_id = text(event.get("issue_id"), "data.event.issue_id", default="")
    event_id = text(event.get("event_id"), "data.event.event_id", default="")
    identity = issue_id or event_id or title
    project = _project_from_url(event.get("url")) or text(
        event.get("project"), "data.event.project", default=""
    )
    alert = Alert(
        source=Source.SENTRY,
        status=Status.FIRING,
        labels=_labels(
            alertname=rule or "SentryEvent",
            sentry_resource="event_alert",
            project=project,
            environment=text(event.get("environment"), "data.event.environment", default=""),
            level=text(event.get("level"), "data.event.level", default="error"),
        ),
        annotations=_annotations(
            summary=title,
            culprit=text(event.get("culprit"), "data.event.culprit", default=""),
            release=text(event.get("release"), "data.event.release", default=""),
        ),
        starts_at=_when(event.get("datetime") or event.get("timestamp"), "data.event.datetime"),
        fingerprint=_fingerprint(f"issue:{identity}"),
        links=_links(
            ("Sentry issue", _issue_page(event.get("web_url"))), ("Sentry issue", data.get("url"))
        ),
    )
    return _group("issue", identity, alert)


_EVENT_PAGE = re.compile(r"^(https?://[^?#]*/issues/[^/?#]+/)events/[^/?#]+/?$")


def _issue_page(url: Any) -> Any:
    """The issue's page rather than one event's: shorter (it fits a text message), and it shows
    every event and their counts."""
    if isinstance(url, str) and (match := _EVENT_PAGE.match(url)):
        return match[1]
    return url


def _annotations(**values: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def _metric_alert(action: str, data: Mapping[str, Any]) -> AlertGroup | None:
    if action not in (*_METRIC_FIRING, "resolved"):
        return None
    incident = obj(data.get("metric_alert"), "data.metric_alert")
    rule = obj(incident.get("alert_rule") or {}, "data.metric_alert.alert_rule")
    name = text(
        rule.get("name") or incident.get("title"),
        "data.metric_alert.title",
        default="Sentry metric alert",
    )
    rule_id = text(rule.get("id"), "data.metric_alert.alert_rule.id", default=name)
    identifier = text(
        incident.get("identifier") or incident.get("id"), "data.metric_alert.identifier", default=""
    )
    projects = incident.get("projects") or rule.get("projects") or []
    project = projects[0] if isinstance(projects, list) and projects else ""
    status = Status.RESOLVED if action == "resolved" else Status.FIRING
    identity = f"{rule_id}:{identifier}"
    alert = Alert(
        source=Source.SENTRY,
        status=status,
        labels=_labels(
            alertname=name,
            sentry_resource="metric_alert",
            project=text(project, "data.metric_alert.projects[0]", default=""),
            environment=text(rule.get("environment"), "alert_rule.environment", default=""),
            sentry_trigger=_trigger(action, incident, rule),
        ),
        annotations=_annotations(
            summary=text(data.get("description_title"), "data.description_title", default=name),
            description=text(data.get("description_text"), "data.description_text", default=""),
        ),
        starts_at=_when(
            incident.get("date_started") or incident.get("date_detected"),
            "data.metric_alert.date_started",
        ),
        ends_at=_optional_time(incident.get("date_closed"), "data.metric_alert.date_closed"),
        fingerprint=_fingerprint(f"metric:{identity}"),
        links=_links(("Sentry alert", data.get("web_url"))),
    )
    return _group("metric_alert", identity, alert)


def _trigger(action: str, incident: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """Which threshold fired; a resolve keeps the rule's highest so it routes like the page."""
    if action in ("critical", "warning"):
        return action
    if action == "open":
        return "critical" if incident.get("status") == 20 else "warning"
    triggers = rule.get("triggers")
    labels = {
        t["label"]
        for t in (triggers if isinstance(triggers, list) else [])
        if isinstance(t, dict) and isinstance(t.get("label"), str)
    }
    return "critical" if "critical" in labels or not labels else "warning"


def _optional_time(value: Any, where: str) -> datetime | None:
    return None if value is None else timestamp(value, where)


def _time_text(value: Any, where: str) -> str:
    """An annotation's time: RFC 3339 in UTC, "" when Sentry sent none."""
    when = _optional_time(value, where)
    return "" if when is None else when.isoformat()


def _issue(status: Status, data: Mapping[str, Any]) -> AlertGroup:
    issue = obj(data.get("issue"), "data.issue")
    issue_id = text(issue.get("id"), "data.issue.id")
    project = issue.get("project")
    slug = (
        text(project.get("slug"), "data.issue.project.slug", default="")
        if isinstance(project, dict)
        else ""
    )
    alert = Alert(
        source=Source.SENTRY,
        status=status,
        labels=_labels(
            alertname="SentryIssue",
            sentry_resource="issue",
            project=slug,
            level=text(issue.get("level"), "data.issue.level", default="error"),
            issue=text(issue.get("shortId"), "data.issue.shortId", default=issue_id),
        ),
        annotations=_annotations(
            summary=text(issue.get("title"), "data.issue.title", default="Sentry issue"),
            culprit=text(issue.get("culprit"), "data.issue.culprit", default=""),
            # Sentry's own counts and times, so the page says how big and how recent it is.
            event_count=text(issue.get("count"), "data.issue.count", default=""),
            user_count=text(issue.get("userCount"), "data.issue.userCount", default=""),
            first_seen=_time_text(issue.get("firstSeen"), "data.issue.firstSeen"),
            last_seen=_time_text(issue.get("lastSeen"), "data.issue.lastSeen"),
        ),
        starts_at=_when(issue.get("firstSeen"), "data.issue.firstSeen"),
        fingerprint=_fingerprint(f"issue:{issue_id}"),
        links=_links(
            ("Sentry issue", issue.get("web_url")), ("Sentry issue", issue.get("permalink"))
        ),
    )
    return _group("issue", issue_id, alert)


def _legacy(payload: Mapping[str, Any]) -> AlertGroup:
    if "project" not in payload and "project_slug" not in payload:
        raise PayloadError("not a Sentry payload: no Sentry-Hook-Resource header and no project")
    event = payload.get("event")
    event = event if isinstance(event, dict) else {}
    issue_id = text(payload.get("id"), "id", default="")
    rules = payload.get("triggering_rules")
    rule = rules[0] if isinstance(rules, list) and rules and isinstance(rules[0], str) else ""
    message = text(payload.get("message"), "message", default="")
    title = text(event.get("title"), "event.title", default=message or "Sentry event")
    alert = Alert(
        source=Source.SENTRY,
        status=Status.FIRING,
        labels=_labels(
            alertname=rule or "SentryEvent",
            sentry_resource="legacy",
            project=text(payload.get("project_slug") or payload.get("project"), "project"),
            environment=text(event.get("environment"), "event.environment", default=""),
            level=text(payload.get("level") or event.get("level"), "level", default="error"),
        ),
        annotations=_annotations(
            summary=title,
            culprit=text(payload.get("culprit") or event.get("culprit"), "culprit", default=""),
            release=text(event.get("release"), "event.release", default=""),
        ),
        starts_at=_when(event.get("timestamp") or event.get("datetime"), "event.timestamp"),
        fingerprint=_fingerprint(f"issue:{issue_id or title}"),
        links=_links(("Sentry issue", payload.get("url"))),
    )
    return _group("issue", issue_id or title, alert)
