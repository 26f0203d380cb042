"""Operator text overrides per route, in sandboxed Jinja2; checked at load time, not at 3 a.m."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from receiver.messages import escape, render, sms_length
from receiver.model import (
    Alert,
    AlertGroup,
    Channel,
    Notification,
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


def context(n: Notification, tz: tzinfo) -> dict[str, Any]:
    """The names a template may use."""
    return {
        "severity": n.severity.value,
        "status": n.status.value,
        "route": n.route,
        "recipient": n.recipient.name,
        "headline": render.headline(n),
        "name": render.name(n),
        "summary": render.summary(n),
        "where": render.where(n),
        "counts": render.counts(n),
        "since": render.clock(render.since(n, tz)),
        "link": render.short_link(n),
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
            for a in render.alerts_shown(n)
        ],
    }


def render_override(n: Notification, key: str, tz: tzinfo) -> str | None:
    """The route's override for `key`, rendered; None if the route has none."""
    source = n.templates.get(key)
    if source is None:
        return None
    try:
        return compile_template(source).render(context(n, tz)).strip()
    except (jinja2.TemplateError, TemplateError):
        # Checked at load; if real data still breaks it, the built-in text beats no page.
        log.exception("template failed, using the built-in text", extra={"key": key})
        return None


def sms_text(n: Notification, tz: tzinfo) -> str:
    override = render_override(n, "sms", tz)
    if override is None:
        return render.sms_text(n, tz)
    # An override cannot lose the acknowledgement code, nor carry raw alert text: its lines go
    # through escape.sms like the built-in text.
    ack = render.sms_ack(n)
    limit = render.SMS_LIMIT - sms_length.utf16_units(ack)
    return render.sms_cut(escape.sms_lines(override), limit) + ack


def call_speech(n: Notification, tz: tzinfo) -> str:
    override = render_override(n, "call", tz)
    return render.call_speech(n, tz) if override is None else override


def email_subject(n: Notification, tz: tzinfo) -> str:
    override = render_override(n, "email_subject", tz)
    return render.email_subject(n) if override is None else escape.email_header(override)


def email_text(n: Notification, tz: tzinfo) -> str:
    override = render_override(n, "email_text", tz)
    # Invisible format characters (a right-to-left override) out of the body too.
    text = escape.visible(render.email_text(n, tz) if override is None else override)
    if n.ack is not None and n.status is Status.FIRING:
        text += f"\n\nAcknowledge (pauses escalation): {n.ack.link}"
    return text


def slack_text(n: Notification, tz: tzinfo) -> str:
    override = render_override(n, "slack", tz)
    return render.slack_text(n) if override is None else override


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
    """Compile and render against a sample notification, so mistakes surface at `check`."""
    template = compile_template(source)
    try:
        template.render(context(_sample(key), UTC))
    except jinja2.TemplateError as e:
        raise TemplateError(f"template does not render: {e}") from None


def _sample(key: str) -> Notification:
    alert = Alert(
        source=Source.ALERTMANAGER,
        status=Status.FIRING,
        labels={"alertname": "Sample", "severity": "critical", "service": "api"},
        annotations={"summary": "sample summary", "description": "sample description"},
        starts_at=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        fingerprint="0000000000000000",
    )
    group = AlertGroup(Source.ALERTMANAGER, "{}:{}", Status.FIRING, (alert,))
    channel = Channel.EMAIL if key.startswith("email") else Channel(key)
    return Notification(
        "k", channel, Recipient("sample", "sample"), Severity.CRITICAL, "sample", group, (alert,)
    )
