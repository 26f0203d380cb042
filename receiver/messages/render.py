"""Built-in message texts, shared by the channels and the dry-run output."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from receiver.messages import escape, sms_length
from receiver.model import Alert, Notification, Severity, Status

SMS_LIMIT = 1600
_SHORT = {
    Severity.CRITICAL: "CRIT",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MED",
    Severity.LOW: "LOW",
}
# Labels that say *what* and *where in the fleet*, in the order a responder wants them.
_WHAT_LABELS = ("service", "job", "app", "project", "instance")
_WHERE_LABELS = ("cluster", "environment", "namespace")


def where(n: Notification) -> str:
    """The place the alerts are about, from labels every alert shares: `payments-api prod-eu-1`."""
    parts = [_shared(n.alerts, keys) for keys in (_WHAT_LABELS, _WHERE_LABELS)]
    return " ".join(p for p in parts if p)


def _shared(alerts: tuple[Alert, ...], keys: tuple[str, ...]) -> str:
    """The value of the first of `keys` that every alert has, non-empty and the same; or ""."""
    if not alerts:
        return ""
    first, rest = alerts[0].labels, alerts[1:]
    for key in keys:
        value = first.get(key)
        if not value:
            continue
        for alert in rest:
            if alert.labels.get(key) != value:
                break
        else:
            return value
    return ""


def name(n: Notification) -> str:
    names = sorted({a.name for a in n.alerts})
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"


def summary(n: Notification) -> str:
    summaries = {a.summary for a in n.alerts}
    first = n.alerts[0].summary if n.alerts else ""
    return first if len(summaries) == 1 else f"{first} (and {len(summaries) - 1} other)"


def counts(n: Notification) -> str:
    firing, resolved = len(n.firing), len(n.resolved)
    hidden = n.group.truncated_alerts
    parts = []
    if firing:
        parts.append(f"{firing + hidden if hidden else firing} firing")
    if resolved:
        parts.append(f"{resolved} resolved")
    return ", ".join(parts)


def since(n: Notification, tz: tzinfo) -> datetime:
    starts = [a.starts_at for a in (n.firing or n.alerts)]
    return min(starts).astimezone(tz)


def clock(when: datetime) -> str:
    return f"{when:%H:%M} {when.tzname()}"


def stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M %Z}"


def headline(n: Notification) -> str:
    """`[FIRING:2] HighErrorRate payments-api (critical)`, Alertmanager's familiar form."""
    place = where(n)
    state = f"FIRING:{len(n.firing)}" if n.status is Status.FIRING else "RESOLVED"
    return f"[{state}] {name(n)}{' ' + place if place else ''} ({n.severity})"


def short_link(n: Notification) -> str:
    """The runbook if there is one, else the shortest link (a PromQL graph URL is long).

    Only well-formed http(s) URLs, %-encoded (escape.web_url): a URL from an annotation must
    not carry words into a text message."""
    links = [
        (link.title, url) for a in n.alerts for link in a.links if (url := escape.web_url(link.url))
    ]
    runbooks = [url for title, url in links if title == "Runbook"]
    return runbooks[0] if runbooks else min((url for _, url in links), key=len, default="")


SMS_SEGMENT = 160
# The least of a summary worth sending in the one-segment form, "..." included.
_SMS_MIN_SUMMARY = 20


def sms_text(n: Notification, tz: tzinfo) -> str:
    """One SMS segment when it can: severity, what, where, since, one link, how to acknowledge.

    Segments are counted as Twilio bills them (sms_length): GSM-7 septets, or UCS-2 units once
    one character needs it. Never over 1600 characters (UTF-16 units), and the acknowledgement
    code is never cut off. Alert text goes through escape.sms.
    """
    place = escape.sms(where(n))
    what = escape.sms(name(n))
    head = f"RESOLVED {what}" if n.status is Status.RESOLVED else f"{_SHORT[n.severity]} {what}"
    at = f" @ {place}" if place else ""
    if n.status is Status.RESOLVED:
        tail = f" ({counts(n)}) resolved after {lasted(n)}"
    else:
        tail = f" ({counts(n)}) since {clock(since(n, tz))}"
    ack = sms_ack(n)
    link = short_link(n)
    text = escape.sms(summary(n))
    for suffix in (f" {link}" if link and len(link) <= 120 else "", ""):
        # Shorten the summary, not the facts a responder acts on.
        fitted = _fit_one_segment(f"{head}{at}: ", text, f"{tail}{suffix}{ack}")
        if fitted is not None:
            return fitted
    body = f"{head}{at}: {text}{tail} {link}".rstrip()
    return sms_cut(body, SMS_LIMIT - sms_length.utf16_units(ack)) + ack


def _fit_one_segment(before: str, text: str, after: str) -> str | None:
    """`before + text + after` with `text` cut (ending "...") so the whole is one segment;
    None when fewer than _SMS_MIN_SUMMARY characters of it would be left."""
    whole = f"{before}{text}{after}"
    if sms_length.fits_one_segment(whole):
        return whole
    # Fitting is monotone in the length kept (a shorter text never costs more), so bisect.
    # One segment is never over 160 characters, which bounds the search.
    fits, too_long = _SMS_MIN_SUMMARY - 1, min(len(text), SMS_SEGMENT) + 1
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if sms_length.fits_one_segment(f"{before}{text[: middle - 3]}...{after}"):
            fits = middle
        else:
            too_long = middle
    if fits < _SMS_MIN_SUMMARY:
        return None
    return f"{before}{text[: fits - 3]}...{after}"


def sms_cut(text: str, limit: int) -> str:
    """At most `limit` UTF-16 units (Twilio's 1600 counts those), ending "..." when cut."""
    if sms_length.utf16_units(text) <= limit:
        return text
    kept, used = [], 3
    for c in text:
        used += 2 if ord(c) > 0xFFFF else 1
        if used > limit:
            break
        kept.append(c)
    return "".join(kept) + "..."


def lasted(n: Notification) -> str:
    """How long a resolved group fired: "42m", "2h 13m", "3d 4h"."""
    start = min(a.starts_at for a in n.alerts)
    end = max((a.ends_at or start for a in n.alerts), default=start)
    minutes = max(0, int((end - start).total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def sms_ack(n: Notification) -> str:
    """How to acknowledge by reply, at the end of a firing SMS ("" when not configured)."""
    return f" Reply ACK {n.ack.code}" if n.ack and n.status is Status.FIRING else ""


def call_speech(n: Notification, tz: tzinfo) -> str:
    """Said aloud: no URLs, no label soup, numbers and names a voice can read."""
    when = since(n, tz)
    what = _speakable(name(n))
    place = _speakable(where(n))
    state = "resolved" if n.status is Status.RESOLVED else f"{n.severity} alert"
    count = len(n.firing) or len(n.alerts)
    plural = "alert is" if count == 1 else "alerts are"
    text = (
        f"This is oncall router. {state.capitalize()}: {what}"
        f"{' on ' + place if place else ''}. {_speakable(summary(n))}. "
        + (
            f"{count} {plural} resolved after {lasted(n)}."
            if n.status is Status.RESOLVED
            else f"{count} {plural} firing since {when:%H:%M} {when.tzname()}."
        )
    )
    return _cut(text, 1000)


_URL = re.compile(r"https?://\S+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-/:]+")
_SPACES = re.compile(r"\s+")


def _speakable(text: str) -> str:
    text = _URL.sub("", text)
    # CamelCase and snake_case into words: "HighErrorRate" -> "High Error Rate".
    text = _CAMEL.sub(" ", text)
    text = _SEPARATORS.sub(" ", text)
    text = text.replace("%", " percent").replace(">", " above ").replace("<", " below ")
    return _SPACES.sub(" ", text).strip()


def email_subject(n: Notification) -> str:
    return _cut(escape.email_header(f"[{n.severity.value.upper()}] {headline(n)}"), 200)


def email_text(n: Notification, tz: tzinfo) -> str:
    """A plain-text incident notice: what, impact, since, alerts, links."""
    lines = [
        f"What:     {summary(n)}",
        f"Where:    {where(n) or '-'}",
        f"Severity: {n.severity.value}",
        f"Since:    {stamp(since(n, tz))}",
        f"Alerts:   {counts(n)}",
    ]
    if n.status is Status.RESOLVED:
        lines.append(f"Lasted:   {lasted(n)}")
    lines.append("")
    for alert in alerts_shown(n):
        lines.append(f"- [{alert.status}] {alert.name}: {alert.summary}")
        description = alert.annotations.get("description")
        if description and description != alert.summary:
            lines.append(f"  {description}")
        for link in alert.links:
            lines.append(f"  {link.title}: {link.url}")
    hidden = len(n.alerts) - len(alerts_shown(n)) + n.group.truncated_alerts
    if hidden:
        lines.append(f"... and {hidden} more")
    return "\n".join(lines)


def alerts_shown(n: Notification, limit: int = 10) -> tuple[Alert, ...]:
    """Firing first, then resolved, bounded so a storm stays one readable message."""
    ordered = sorted(n.alerts, key=lambda a: (a.status is not Status.FIRING, a.starts_at))
    return tuple(ordered[:limit])


def slack_text(n: Notification) -> str:
    """The notification fallback text of a Slack message."""
    return _cut(f"{headline(n)}: {summary(n)}", 3000)


def _cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most `limit` characters; SMS passes "..." since "…" would force UCS-2 (70 per segment)."""
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis
