"""One view of a group, computed once per message: every fact any channel shows, and the
words for them. The channels choose and arrange; they do not derive facts of their own, so
Slack, email, SMS and the call never disagree about what, where, since when or who.

Text here is raw (as the alerts wrote it): each channel escapes it for its format
(messages.escape) where it renders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from receiver.messages import links, spoken
from receiver.model import (
    AckRef,
    Alert,
    Link,
    Notification,
    Paging,
    Severity,
    Status,
)

SHORT_SEVERITY = {
    Severity.CRITICAL: "CRIT",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MED",
    Severity.LOW: "LOW",
}
# Labels that say where in the fleet, each the first of its list that every alert shares.
SERVICE_LABELS = ("service", "job", "app", "project")
CLUSTER_LABELS = ("cluster", "environment", "env")
NAMESPACE_LABELS = ("namespace",)
# Labels the router itself sets, or that every message already shows another way.
_HIDDEN_LABELS = frozenset({"alertname", "source", "sentry_resource", "sentry_trigger"})
# A Sentry event's labels that its facts show.
_SENTRY_LABELS = frozenset({"level", "issue", "environment", "project"})
# Alert names the Sentry source gives an event that has no rule name of its own.
GENERIC_NAMES = frozenset({"SentryIssue", "SentryEvent"})
LABEL_LIMIT = 12  # a compact list, not the label soup
VALUE_LIMIT = 80
ALERTS_SHOWN = 10


@dataclass(frozen=True)
class Place:
    """Where the alerts are: the service, the cluster (or environment) and the namespace."""

    service: str = ""
    cluster: str = ""
    namespace: str = ""
    keys: tuple[str, ...] = ()  # the labels they came from

    @property
    def area(self) -> str:
        """`prod-eu-1/payments`: the cluster and namespace, as kubectl users say it."""
        return "/".join(p for p in (self.cluster, self.namespace) if p)

    @property
    def text(self) -> str:
        """`payments-api in prod-eu-1/payments`, or whichever part is known."""
        if self.service and self.area:
            return f"{self.service} in {self.area}"
        return self.service or self.area


@dataclass(frozen=True)
class SentryFacts:
    """What Sentry said about the issue (sources.sentry keeps it in labels and annotations)."""

    level: str = ""
    issue: str = ""  # the short id, PAYMENTS-API-3K
    events: str = ""
    users: str = ""
    release: str = ""
    environment: str = ""
    culprit: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    link: Link | None = None


@dataclass(frozen=True)
class AlertLine:
    """One alert of the group as the detailed channels list it."""

    status: Status
    name: str
    summary: str
    description: str  # "" when it only repeats the summary
    started: datetime  # in the message's zone
    started_text: str  # `09:12 GMT`, with the date when not the message's day
    identity: str  # the labels that tell it from the others, `instance=10.42.3.17:8080`
    links: tuple[Link, ...]


@dataclass(frozen=True)
class View:
    status: Status
    severity: Severity
    severity_word: str  # the team's own word ("P0"), "" when it has none
    names: tuple[str, ...]  # the alert names, sorted (a Sentry issue's short id for its name)
    summary: str  # the first alert's (firing first); its description's first line instead
    # when the summary only restates the name (`Critical: Payments API error spike`)
    summaries: int  # how many different summaries the group has
    place: Place
    now: datetime  # in the message's zone: the plan's time
    started: datetime  # earliest start of the firing alerts (of all, once resolved)
    ended: datetime | None  # when the last alert ended, once resolved
    firing: int  # Alertmanager's truncated alerts included
    resolved: int
    labels: tuple[tuple[str, str], ...]  # shared by every alert, not shown elsewhere
    links: tuple[Link, ...]
    alertmanager: str  # the group in Alertmanager's UI, or ""
    silence: str  # Alertmanager's silence form for the group, or ""
    sentry: SentryFacts | None
    paging: Paging | None
    ack: AckRef | None
    alerts: tuple[AlertLine, ...]  # up to ALERTS_SHOWN, firing first
    hidden: int  # alerts not in `alerts`
    route: str
    recipient: str

    # -- words ------------------------------------------------------------------------------

    @property
    def is_firing(self) -> bool:
        return self.status is Status.FIRING

    @property
    def severity_text(self) -> str:
        """`critical · P0`, or `critical`."""
        word = f" · {self.severity_word}" if self.severity_word else ""
        return f"{self.severity.value}{word}"

    @property
    def name(self) -> str:
        """`HighErrorRate`, or `HighErrorRate (+1 more)` for a group of several names."""
        more = len(self.names) - 1
        return self.names[0] + (f" (+{more} more)" if more else "")

    @property
    def counts(self) -> str:
        """`2 firing`, `2 firing, 1 resolved`."""
        parts = [f"{self.firing} firing" if self.firing else ""]
        parts.append(f"{self.resolved} resolved" if self.resolved else "")
        return ", ".join(p for p in parts if p)

    @property
    def started_today(self) -> bool:
        return self.started.date() == self.now.date()

    @property
    def age(self) -> str:
        """How long it has been firing, or how long it fired once resolved: `2h 13m`."""
        end = self.ended if self.ended is not None and not self.is_firing else self.now
        return duration((end - self.started).total_seconds())

    @property
    def started_text(self) -> str:
        """`09:12 GMT` today, `Sat 7 Mar 09:12 GMT` on another day (with the year if not this
        one): a 9-day-old alert must not read as if it started this morning."""
        return when_text(self.started, self.now)

    def link_titled(self, title: str) -> str:
        return next((link.url for link in self.links if link.title == title), "")

    @property
    def short_link(self) -> str:
        """The one link a text message carries: see `short_links`."""
        return next(iter(self.short_links), "")

    @property
    def short_links(self) -> tuple[str, ...]:
        """Links for a text message, best first: the acknowledgement page (while firing; the SMS's
        short link to it when it has one), the runbook, the Sentry page, Alertmanager's view of
        the group."""
        ack = self.ack if self.is_firing else None
        found = [
            (ack.short_link or ack.link) if ack is not None else "",
            self.link_titled(links.RUNBOOK),
            self.sentry.link.url if self.sentry is not None and self.sentry.link else "",
            self.alertmanager,
        ]
        return tuple(dict.fromkeys(url for url in found if url))


def duration(seconds: float) -> str:
    """`42m`, `2h 13m`, `9d 3h`; under a minute is `<1m`."""
    days, hours, minutes = spoken.whole_minutes(seconds)
    if not (days or hours or minutes):
        return "<1m"
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def when_text(when: datetime, now: datetime) -> str:
    """`09:12 GMT` on `now`'s day, else `Sat 7 Mar 09:12 GMT` (`Sat 7 Mar 2025 ...` another year);
    `when` and `now` in the same zone."""
    # Attributes, not strftime: English names whatever the locale (and ~4 times faster).
    clock = f"{when.hour:02d}:{when.minute:02d} {when.tzname()}"
    if when.date() == now.date():
        return clock
    year = f" {when.year}" if when.year != now.year else ""
    day, month = _DAYS[when.weekday()], _MONTHS[when.month - 1]
    return f"{day} {when.day} {month}{year} {clock}"


def of(n: Notification, tz: tzinfo, alertmanager_url: str | None = None) -> View:
    """The view of a notification's alerts in zone `tz`; `alertmanager_url` stands in for a
    payload without `externalURL`.

    The messages of one route's share of a group (every recipient, every channel, each message
    several times) share one view: only the recipient and its acknowledgement differ. Rendering
    was 29% of the router's CPU per webhook in `python -m bench` (py-spy); the 13 messages of a
    fully escalated critical group of the shipped file take 1.0 ms sharing, 1.9 ms without
    (median of 15 runs). tests/test_message_view.py checks a shared view equals its own."""
    key = (id(n.alerts), id(n.paging), id(n.group), n.severity, n.route, tz, alertmanager_url)
    found = _SHARED.get(key)
    if found is None:
        found = (n.alerts, n.paging, n.group, _of(n, tz, alertmanager_url))
        if len(_SHARED) >= _SHARED_MAX:
            del _SHARED[next(iter(_SHARED))]  # the oldest: a plan's messages render together
        _SHARED[key] = found
    shared = found[3]
    if shared.ack is n.ack and shared.recipient == n.recipient.name:
        return shared
    return dataclasses.replace(shared, ack=n.ack, recipient=n.recipient.name)


# Views by what they are computed from. The key holds ids; the entry holds the objects, so no
# id is reused while its entry lives.
_SHARED: dict[tuple[object, ...], tuple[object, object, object, View]] = {}
_SHARED_MAX = 256


def _of(n: Notification, tz: tzinfo, alertmanager_url: str | None) -> View:
    now = (n.paging.at if n.paging is not None else datetime.now(UTC)).astimezone(tz)
    ordered = sorted(n.alerts, key=lambda a: (a.status is not Status.FIRING, a.starts_at))
    current = n.firing or n.alerts
    started = min((a.starts_at for a in current), default=now).astimezone(tz)
    ended = None
    if not n.firing and n.alerts:
        ended = max(a.ends_at or a.starts_at for a in n.alerts).astimezone(tz)
    place = _place(n.alerts)
    sentry = bool(n.alerts) and all(links.is_sentry(a) for a in n.alerts)
    hidden_keys = _hidden(n, place, sentry)
    shown = tuple(ordered[:ALERTS_SHOWN])
    varying = _varying(shown, hidden_keys)
    summaries = {a.summary for a in n.alerts}
    group_links = links.group_links(ordered)
    firing = len(n.firing)
    return View(
        status=n.status,
        severity=n.severity,
        severity_word=n.paging.severity_word if n.paging is not None else "",
        names=tuple(sorted({display_name(a) for a in n.alerts})) or ("alert",),
        summary=_summary(ordered[0]) if ordered else "",
        summaries=len(summaries),
        place=place,
        now=now,
        started=started,
        ended=ended,
        firing=firing + n.group.truncated_alerts if firing else 0,
        resolved=len(n.resolved),
        labels=_shared_labels(n.alerts, hidden_keys, place),
        links=group_links,
        alertmanager=links.view_url(n.group, alertmanager_url),
        silence=links.silence_url(n.group, alertmanager_url),
        sentry=_sentry(ordered, group_links, tz) if sentry else None,
        paging=n.paging,
        ack=n.ack,
        alerts=tuple(_line(a, varying, tz, now, group_links) for a in shown),
        hidden=len(n.alerts) - len(shown) + n.group.truncated_alerts,
        route=n.route,
        recipient=n.recipient.name,
    )


def _shared(alerts: tuple[Alert, ...], keys: tuple[str, ...]) -> tuple[str, str]:
    """The first of `keys` that every alert has, non-empty and the same: (key, value)."""
    if not alerts:
        return "", ""
    first, rest = alerts[0].labels, alerts[1:]
    for key in keys:
        value = first.get(key)
        if value and all(a.labels.get(key) == value for a in rest):
            return key, value
    return "", ""


def _place(alerts: tuple[Alert, ...]) -> Place:
    found = [_shared(alerts, keys) for keys in (SERVICE_LABELS, CLUSTER_LABELS, NAMESPACE_LABELS)]
    (_, service), (_, cluster), (_, namespace) = found
    return Place(service, cluster, namespace, tuple(k for k, _ in found if k))


def display_name(alert: Alert) -> str:
    """The alert's name; a Sentry issue without a rule name is known by its short id."""
    if alert.name in GENERIC_NAMES:
        return alert.labels.get("issue") or "Sentry issue"
    return alert.name


def _summary(alert: Alert) -> str:
    """The summary, or the description's first line when the summary only restates the name
    (Sentry's metric alerts: `Critical: Payments API error spike`, then `312 events in ...`)."""
    summary = alert.summary
    description = alert.annotations.get("description", "").strip()
    restates = (
        summary.casefold().endswith(alert.name.casefold()) and len(summary) < len(alert.name) + 12
    )
    if restates and description and description != summary:
        return description.splitlines()[0]
    return summary


def _hidden(n: Notification, place: Place, sentry: bool) -> frozenset[str]:
    """Labels every message shows another way: the name, the place, the severity label, and a
    Sentry event's facts."""
    severity_label = n.paging.severity_label if n.paging is not None else ""
    hidden = _HIDDEN_LABELS | set(place.keys) | {severity_label or "severity"}
    return hidden | _SENTRY_LABELS if sentry else hidden


def _shared_labels(
    alerts: tuple[Alert, ...], hidden: frozenset[str], place: Place
) -> tuple[tuple[str, str], ...]:
    """Labels every alert has with the same value, without the hidden ones and those whose value
    is already shown."""
    if not alerts:
        return ()
    # `job=payments-api` next to the service payments-api says nothing new; `team=payments`
    # next to the namespace payments may well (only the service and the name count).
    shown_values = {place.service, alerts[0].labels.get("alertname", "")}
    common: Mapping[str, str] = alerts[0].labels
    out = []
    for key in sorted(common):
        value = common[key]
        if key in hidden or not value or value in shown_values:
            continue
        if all(a.labels.get(key) == value for a in alerts[1:]):
            out.append((key, _cut(value, VALUE_LIMIT)))
            if len(out) == LABEL_LIMIT:
                break
    return tuple(out)


def _varying(alerts: tuple[Alert, ...], hidden: frozenset[str]) -> tuple[str, ...]:
    """The labels that tell the listed alerts apart (at most three: `instance`, `pod`...)."""
    if len(alerts) < 2:
        return ()
    keys = sorted({k for a in alerts for k in a.labels} - hidden)
    differing = [k for k in keys if len({a.labels.get(k, "") for a in alerts}) > 1]
    preferred = [k for k in ("instance", "pod", "node", "host") if k in differing]
    return tuple((preferred + [k for k in differing if k not in preferred])[:3])


def _line(
    alert: Alert, varying: tuple[str, ...], tz: tzinfo, now: datetime, shared: tuple[Link, ...]
) -> AlertLine:
    """The alert as listed; its links only where they are not the group's (its own dashboard)."""
    description = alert.annotations.get("description", "")
    identity = " ".join(
        f"{k}={_cut(alert.labels[k], VALUE_LIMIT)}" for k in varying if alert.labels.get(k)
    )
    return AlertLine(
        status=alert.status,
        name=display_name(alert),
        summary=alert.summary,
        description="" if description == alert.summary else description,
        started=alert.starts_at.astimezone(tz),
        started_text=when_text(alert.starts_at.astimezone(tz), now),
        identity=identity,
        links=tuple(k for k in links.alert_links(alert) if k not in shared),
    )


def _sentry(alerts: list[Alert], found: tuple[Link, ...], tz: tzinfo) -> SentryFacts | None:
    """Sentry's facts of the first alert (the caller checked they are all Sentry's)."""
    alert = alerts[0]
    labels, notes = alert.labels, alert.annotations
    link = next((k for k in found if k.title.startswith("Sentry")), None)
    return SentryFacts(
        level=labels.get("level", ""),  # a metric alert's trigger is its severity, shown already
        issue=labels.get("issue", ""),
        events=notes.get("event_count", ""),
        users=notes.get("user_count", ""),
        release=notes.get("release", ""),
        environment=labels.get("environment", ""),
        culprit=notes.get("culprit", ""),
        first_seen=_time(notes.get("first_seen"), tz),
        last_seen=_time(notes.get("last_seen"), tz),
        link=link,
    )


def _time(value: str | None, tz: tzinfo) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None  # an annotation someone else set: not a time, not shown
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(tz)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
