"""Built-in message texts, shared by the channels and the dry-run output: each from one view of
the group (messages.view), so every channel tells the same facts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, tzinfo

from receiver.messages import escape, sms_length, spoken, view
from receiver.messages.view import SHORT_SEVERITY, View
from receiver.model import Channel, LevelPage, Notification, Status

SMS_LIMIT = 1600
SMS_SEGMENT = 160
# The least of a summary worth sending in the one-segment form, "..." included.
_SMS_MIN_SUMMARY = 20
# A link longer than this never fits one segment next to the facts; it is not tried.
_SMS_LINK_LIMIT = 120
_CHANNEL_WORDS = {Channel.SMS: "SMS", Channel.CALL: "call", Channel.EMAIL: "email"}


def clock(when: datetime) -> str:
    return f"{when:%H:%M} {when.tzname()}"


def stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M %Z}"


def state(v: View) -> str:
    return "Firing" if v.is_firing else "Resolved"


def title(v: View) -> str:
    """`Firing: HighErrorRate — critical · P0`: what a header or a first line says."""
    return f"{state(v)}: {v.name} — {v.severity_text}"


def headline(v: View) -> str:
    """`[FIRING:2] HighErrorRate payments-api in prod-eu-1/payments (critical · P0)`, in
    Alertmanager's familiar form."""
    place = v.place.text
    status = f"FIRING:{v.firing}" if v.is_firing else "RESOLVED"
    return f"[{status}] {v.name}{' ' + place if place else ''} ({v.severity_text})"


def age_text(v: View) -> str:
    """`firing for 7m`, `firing for 9d 2h`, `resolved after 29m`."""
    return f"firing for {v.age}" if v.is_firing else f"resolved after {v.age}"


def started_text(v: View) -> str:
    """`09:12 GMT, firing for 7m`; the date when it did not start today."""
    return f"{v.started_text}, {age_text(v)}"


def paged_text(level: LevelPage) -> str:
    """`Alice Archer by SMS and call, Carol Chen by email`."""
    people = [
        f"{p.name} by {' and '.join(_CHANNEL_WORDS.get(c, str(c)) for c in p.channels)}"
        for p in level.people
    ]
    return ", ".join(people) or "nobody"


def paging_lines(v: View, tz: tzinfo) -> list[tuple[str, str]]:
    """("Paged", "level 0: ...") for each level reached, then ("Next", "level 1 at 09:27 GMT:
    ...") while it is still to come."""
    if v.paging is None:
        return []
    # A level that pages nobody (a route to Slack channels only) is not worth a line.
    lines = [
        ("Paged", f"level {lv.level}: {paged_text(lv)}") for lv in v.paging.levels if lv.people
    ]
    following = v.paging.next
    if following is not None and following.people and v.is_firing:
        at = view.when_text(following.at.astimezone(tz), v.now)
        lines.append(("Next", f"level {following.level} at {at}: {paged_text(following)}"))
    return lines


def sentry_lines(v: View) -> list[tuple[str, str]]:
    """Sentry's facts as (label, value), the ones it sent."""
    s = v.sentry
    if s is None:
        return []
    # What the title or the start already says is not said again.
    first_seen = s.first_seen if s.first_seen and s.first_seen != v.started else None
    last_seen = s.last_seen if s.last_seen and s.last_seen != v.started else None
    issue = s.issue if v.names != (s.issue,) else ""
    seen = [
        ("First seen", view.when_text(first_seen, v.now) if first_seen else ""),
        ("Last seen", view.when_text(last_seen, v.now) if last_seen else ""),
    ]
    facts = [
        ("Events", s.events),
        ("Users", s.users),
        ("Level", s.level),
        ("Release", s.release),
        ("Environment", s.environment),
        ("Culprit", s.culprit),
        ("Issue", issue),
        *seen,
    ]
    return [(label, value) for label, value in facts if value]


def labels_text(v: View) -> str:
    """`job=node-exporter, team=platform`."""
    return ", ".join(f"{k}={value}" for k, value in v.labels)


# -- SMS -------------------------------------------------------------------------------------


def sms_place(v: View) -> str:
    """`payments-api prod-eu-1`: the service and cluster (the namespace when there is no
    service), in as few characters as it reads; the link counts more than the namespace."""
    place = v.place
    return " ".join(p for p in (place.service, place.cluster or place.area) if p)


def sms_text(n: Notification, tz: tzinfo, v: View | None = None) -> str:
    """One SMS segment when it can: severity, name, where, age, one link, how to acknowledge;
    the summary fills what is left.

    Segments are counted as Twilio bills them (sms_length): GSM-7 septets, or UCS-2 units once
    one character needs it. Never over 1600 characters (UTF-16 units), and the acknowledgement
    code is never cut off. Alert text goes through escape.sms.
    """
    v = v or view.of(n, tz)
    what = escape.sms(v.name)
    place = escape.sms(sms_place(v))
    at = f" @ {place}" if place else ""
    if v.is_firing:
        word = f" {escape.sms(v.severity_word)}" if v.severity_word else ""
        count = f"{v.firing} firing" if v.firing > 1 else "firing"
        since = "" if v.started_today else f" since {v.started_text}"
        head = f"{SHORT_SEVERITY[v.severity]}{word} {what}{at}, {count} for {v.age}{since}"
        candidates = [url for url in v.short_links if len(url) <= _SMS_LINK_LIMIT]
    else:
        head = f"RESOLVED {what}{at} after {v.age}"
        candidates = []  # nothing to do: no link to open
    ack = sms_ack(n)
    text = escape.sms(v.summary) if v.summary != v.names[0] else ""
    before = f"{head}: " if text else head
    for link in (*candidates, ""):
        # Shorten the summary, not the facts a responder acts on; then try a shorter link.
        fitted = _fit_one_segment(before, text, f"{' ' + link if link else ''}{ack}")
        if fitted is not None:
            return fitted
    link = f" {v.short_link}" if v.is_firing and v.short_link else ""
    return sms_cut(f"{before}{text}{link}", SMS_LIMIT - sms_length.utf16_units(ack)) + ack


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


def sms_ack(n: Notification) -> str:
    """How to acknowledge by reply, at the end of a firing SMS ("" when not configured)."""
    return f" Reply ACK {n.ack.code}" if n.ack and n.status is Status.FIRING else ""


# -- call ------------------------------------------------------------------------------------


def call_speech(n: Notification, tz: tzinfo, v: View | None = None) -> str:
    """Said aloud: sentences for the ear, no URLs or symbols, numbers and times as a person
    says them (messages.spoken)."""
    v = v or view.of(n, tz)
    where = []
    if v.place.service:
        where.append(f"on {spoken.words(v.place.service)}")
    if v.place.cluster:
        where.append(f"in {spoken.words(v.place.cluster)}")
    if v.place.namespace:
        where.append(f"namespace {spoken.words(v.place.namespace)}")
    sentry = v.sentry
    # A Sentry issue's short id is no word: it is "a Sentry issue".
    generic = sentry is not None and sentry.issue and v.names == (sentry.issue,)
    what = ", ".join(["Sentry issue" if generic else spoken.names(v.names), *where])
    # One summary for the group, or none: the first of several is not the group's.
    summary = spoken.words(v.summary) if v.summary != v.names[0] and v.summaries == 1 else ""
    said_summary = f" {_sentence(summary)}" if summary else ""
    if sentry is not None and (sentry.events or sentry.users):
        counts = [f"{sentry.events} events" if sentry.events else ""]
        counts.append(f"{sentry.users} users affected" if sentry.users else "")
        said_summary += f" {_sentence(', '.join(c for c in counts if c))}"
    if v.is_firing:
        word = f", {spoken.code(v.severity_word)}" if v.severity_word else ""
        count = f"{v.firing} alerts, firing" if v.firing > 1 else "Firing"
        since = "" if v.started_today else f", since {spoken.when(v.started, v.now)}"
        age = spoken.duration((v.now - v.started).total_seconds())
        text = (
            f"This is the on-call router. {v.severity.value.capitalize()} alert{word}: {what}."
            f"{said_summary} {count} for {age}{since}."
        )
    else:
        end = v.ended or v.now
        lasted = spoken.duration((end - v.started).total_seconds())
        text = f"This is the on-call router. Resolved: {what}, after {lasted}.{said_summary}"
    return _cut(text, 1000)


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


# -- email -----------------------------------------------------------------------------------


def email_subject(n: Notification, v: View | None = None) -> str:
    """Short and the same for every message of the group (its labels, its severity), so mail
    clients thread the firing page, its escalations and its resolved notice together; the state
    is the body's first line."""
    v = v or view.of(n, n.timezone or UTC)
    word = f" · {v.severity_word}" if v.severity_word else ""
    labels = n.group.group_labels
    if labels:
        rest = [value for key, value in sorted(labels.items()) if key != "alertname" and value]
        what = " ".join([labels.get("alertname", v.names[0]), *rest])
    elif v.sentry is not None and v.sentry.issue and v.names == (v.sentry.issue,):
        what = f"{v.sentry.issue}: {v.summary}"  # the issue's title is as stable as its id
    else:
        what = v.name + (f" · {v.place.text}" if v.place.text else "")
    return _cut(escape.email_header(f"[{v.severity.value.upper()}{word}] {what}"), 200)


def thread_id(n: Notification, domain: str) -> str:
    """The Message-ID every email of the group's firing spell refers to: the spell's first page
    carries it, later messages name it in In-Reply-To and References."""
    digest = hashlib.sha256(f"{n.group.source}\n{n.group.group_key}\n{n.spell}".encode())
    return f"<{digest.hexdigest()[:32]}@{domain}>"


def message_id(n: Notification, domain: str) -> str:
    """This message's own Message-ID: the same for a retry of it, never for another message."""
    # The key names the recipient's address: two people's copies are two messages.
    return f"<{hashlib.sha256(n.key.encode()).hexdigest()[:32]}@{domain}>"


def email_facts(v: View, tz: tzinfo) -> list[tuple[str, str]]:
    """The facts of the incident notice, in reading order, as (label, value)."""
    facts = [
        ("What", v.name),
        ("Where", v.place.text or "-"),
        ("Severity", v.severity_text),
        ("Started", f"{stamp(v.started)}, {age_text(v)}"),
        ("Alerts", v.counts),
    ]
    if v.labels:
        facts.append(("Labels", labels_text(v)))
    facts += sentry_lines(v)
    facts += paging_lines(v, tz)
    facts.append(("Route", v.route))
    return facts


def email_text(n: Notification, tz: tzinfo, v: View | None = None) -> str:
    """The plain-text incident notice: the state first (the subject does not change), facts,
    links, then the alerts."""
    v = v or view.of(n, tz)
    lines = [title(v), v.summary, ""]
    facts = email_facts(v, tz) + [(link.title, link.url) for link in v.links]
    facts += [("Alertmanager", v.alertmanager), ("Silence", v.silence)]
    width = max(len(label) for label, value in facts if value) + 2
    lines += [f"{label + ':':<{width}}{value}" for label, value in facts if value]
    lines += ["", "Alerts in the group:"]
    for line in v.alerts:
        who = f" {line.identity}" if line.identity else ""
        lines.append(f"- [{line.status}] {line.name}{who}, since {line.started_text}")
        lines.append(f"  {line.summary}")
        if line.description:
            lines.append(f"  {line.description}")
    if v.hidden:
        lines.append(f"... and {v.hidden} more")
    return "\n".join(lines)


# -- Slack -----------------------------------------------------------------------------------


def slack_text(n: Notification, tz: tzinfo | None = None, v: View | None = None) -> str:
    """The notification fallback text of a Slack message (what a phone's lock screen shows)."""
    v = v or view.of(n, tz or n.timezone or UTC)
    return _cut(f"{headline(v)}: {v.summary}", 3000)


def _cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most `limit` characters; SMS passes "..." since "…" would force UCS-2 (70 per segment)."""
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis
