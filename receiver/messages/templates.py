"""Operator text overrides per route, in sandboxed Jinja2; checked at load time, not at 3 a.m."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from receiver.messages import escape, render, sms_length, view
from receiver.model import (
    Alert,
    AlertGroup,
    Channel,
    LevelPage,
    Notification,
    Paging,
    PersonPaged,
    Recipient,
    Severity,
    Source,
    Status,
)

log = logging.getLogger("receiver.templates")

# What an override can replace; the channel renders everything else itself.
TEMPLATE_KEYS = ("slack", "sms", "call", "email_subject", "email_text")

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class TemplateError(ValueError):
    """A template that does not compile or does not render against a sample alert."""


def compile_template(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template syntax error on its line {e.lineno}: {e.message}") from None


def context(n: Notification, tz: tzinfo, v: view.View | None = None) -> dict[str, Any]:
    """The names a template may use (README, "The routing file": `templates`)."""
    v = v or view.of(n, tz)
    paging = v.paging
    following = paging.next if paging is not None and v.is_firing else None
    return {
        "severity": n.severity.value,
        "severity_word": v.severity_word,
        "status": n.status.value,
        "route": n.route,
        "recipient": n.recipient.name,
        "title": render.title(v),
        "headline": render.headline(v),
        "name": v.name,
        "summary": v.summary,
        "where": v.place.text,
        "service": v.place.service,
        "cluster": v.place.cluster,
        "namespace": v.place.namespace,
        "counts": v.counts,
        "since": v.started_text,
        "age": v.age,
        "labels": dict(v.labels),
        "link": v.short_link,
        "links": [{"title": link.title, "url": link.url} for link in v.links],
        "alertmanager_url": v.alertmanager,
        "silence_url": v.silence,
        "sentry": _sentry(v),
        "paged": [_level(level, tz) for level in paging.levels] if paging else [],
        "next_level": _level(following, tz) if following is not None else None,
        "group_key": n.group.group_key,
        "common_labels": dict(n.group.common_labels),
        "alerts": [
            {
                "status": a.status.value,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "starts_at": a.starts_at.astimezone(tz).isoformat(),
                "links": [{"title": link.title, "url": link.url} for link in a.links],
            }
            for a in sorted(n.alerts, key=lambda a: (a.status is not Status.FIRING, a.starts_at))[
                : view.ALERTS_SHOWN
            ]
        ],
    }


def _sentry(v: view.View) -> dict[str, str] | None:
    s = v.sentry
    if s is None:
        return None
    return {
        "level": s.level,
        "issue": s.issue,
        "events": s.events,
        "users": s.users,
        "release": s.release,
        "environment": s.environment,
        "culprit": s.culprit,
        "first_seen": s.first_seen.isoformat() if s.first_seen else "",
        "last_seen": s.last_seen.isoformat() if s.last_seen else "",
        "url": s.link.url if s.link else "",
    }


def _level(level: LevelPage, tz: tzinfo) -> dict[str, Any]:
    return {
        "level": level.level,
        "at": level.at.astimezone(tz).isoformat(),
        "people": [
            {"name": p.name, "channels": [c.value for c in p.channels]} for p in level.people
        ],
    }


def render_override(
    n: Notification, key: str, tz: tzinfo, v: view.View | None = None
) -> str | None:
    """The route's override for `key`, rendered; None if the route has none."""
    source = n.templates.get(key)
    if source is None:
        return None
    try:
        return compile_template(source).render(context(n, tz, v)).strip()
    except (jinja2.TemplateError, TemplateError):
        # Checked at load; if real data still breaks it, the built-in text beats no page.
        log.exception("template failed, using the built-in text", extra={"key": key})
        return None


def sms_text(n: Notification, tz: tzinfo) -> str:
    v = view.of(n, tz)
    override = render_override(n, "sms", tz, v)
    if override is None:
        return render.sms_text(n, tz, v)
    # An override cannot lose the acknowledgement code, nor carry raw alert text: its lines go
    # through escape.sms like the built-in text.
    ack = render.sms_ack(n)
    limit = render.SMS_LIMIT - sms_length.utf16_units(ack)
    return render.sms_cut(escape.sms_lines(override), limit) + ack


def call_speech(n: Notification, tz: tzinfo) -> str:
    v = view.of(n, tz)
    override = render_override(n, "call", tz, v)
    return render.call_speech(n, tz, v) if override is None else override


def email_subject(n: Notification, tz: tzinfo, v: view.View | None = None) -> str:
    v = v or view.of(n, tz)
    override = render_override(n, "email_subject", tz, v)
    return render.email_subject(n, v) if override is None else escape.email_header(override)


def email_text(n: Notification, tz: tzinfo, v: view.View | None = None) -> str:
    v = v or view.of(n, tz)
    override = render_override(n, "email_text", tz, v)
    # Invisible format characters (a right-to-left override) out of the body too.
    text = escape.visible(render.email_text(n, tz, v) if override is None else override)
    if n.ack is not None and n.status is Status.FIRING:
        text += f"\n\nAcknowledge (pauses escalation): {n.ack.link}"
    return text


def slack_text(n: Notification, tz: tzinfo, v: view.View | None = None) -> str:
    v = v or view.of(n, tz)
    override = render_override(n, "slack", tz, v)
    return render.slack_text(n, tz, v) if override is None else override


def text_for(channel: Channel, n: Notification, tz: tzinfo) -> str:
    """The main text of a message, as the dry-run and `route` outputs show it."""
    if channel is Channel.SMS:
        return sms_text(n, tz)
    if channel is Channel.CALL:
        return call_speech(n, tz)
    if channel is Channel.EMAIL:
        return f"{email_subject(n, tz)}\n\n{email_text(n, tz)}"
    return slack_text(n, tz)


def check_template(source: str, key: str) -> None:
    """Compile and render against sample notifications, so mistakes surface at `check`: a firing
    group with a next level to come, and a resolved one, which has none (`next_level` is None:
    a template must say `{% if next_level %}`; so is `sentry` for other alerts)."""
    template = compile_template(source)
    for resolved in (False, True):
        try:
            template.render(context(_sample(key, resolved=resolved), UTC))
        except jinja2.TemplateError as e:
            state = "a resolved" if resolved else "a firing"
            raise TemplateError(f"template does not render for {state} group: {e}") from None


def _sample(key: str, *, resolved: bool = False) -> Notification:
    started = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    alert = Alert(
        source=Source.ALERTMANAGER,
        status=Status.RESOLVED if resolved else Status.FIRING,
        labels={"alertname": "Sample", "severity": "critical", "service": "api"},
        annotations={"summary": "sample summary", "description": "sample description"},
        starts_at=started,
        fingerprint="0000000000000000",
        ends_at=started + timedelta(minutes=20) if resolved else None,
    )
    group = AlertGroup(Source.ALERTMANAGER, "{}:{}", alert.status, (alert,))
    channel = Channel.EMAIL if key.startswith("email") else Channel(key)
    person = PersonPaged("Sample Person", (Channel.SMS, Channel.CALL))
    paging = Paging(
        at=started + timedelta(minutes=5),
        severity_word="P0",
        severity_label="severity",
        levels=(LevelPage(0, started, (person,)),),
        next=None if resolved else LevelPage(1, started + timedelta(minutes=15), (person,)),
    )
    return Notification(
        "k",
        channel,
        Recipient("sample", "sample"),
        Severity.CRITICAL,
        "sample",
        group,
        (alert,),
        paging=paging,
    )
