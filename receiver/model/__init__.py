"""The values that flow through the router: alerts in, notifications out.

Severity, status, sources and channels as enums; frozen alerts, groups, notifications
and acknowledgements.

May import: nothing of ours.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo


class Severity(enum.StrEnum):
    """The four canonical severities, most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical; a lower rank is more urgent."""
        return _RANK[self]


_RANK = {severity: rank for rank, severity in enumerate(Severity)}


class Status(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Source(enum.StrEnum):
    ALERTMANAGER = "alertmanager"
    SENTRY = "sentry"


class Channel(enum.StrEnum):
    """Kinds of target a route can page through."""

    SLACK = "slack"
    SMS = "sms"
    CALL = "call"
    EMAIL = "email"


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Alert:
    """One alert as the sources report it; severity is decided later, by routing."""

    source: Source
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    fingerprint: str
    ends_at: datetime | None = None
    links: tuple[Link, ...] = ()

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def summary(self) -> str:
        return (
            self.annotations.get("summary")
            or self.annotations.get("description")
            or self.annotations.get("message")
            or self.name
        )


@dataclass(frozen=True)
class AlertGroup:
    """One webhook's worth of alerts: an Alertmanager group, or one Sentry event."""

    source: Source
    group_key: str
    status: Status
    alerts: tuple[Alert, ...]
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    receiver: str = ""
    truncated_alerts: int = 0


@dataclass(frozen=True)
class SeverityDecision:
    severity: Severity
    reason: str
    defaulted: bool = False


@dataclass(frozen=True)
class RoutedAlert:
    alert: Alert
    severity: SeverityDecision
    routes: tuple[str, ...]
    team: str = ""  # "" when the routing file has no teams


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: a person or a Slack channel, with the address to use."""

    name: str
    address: str


@dataclass(frozen=True)
class AckRef:
    """How the recipient of a firing message acknowledges it (receiver.ack.flow)."""

    code: str  # the group's code for an `ACK <code>` SMS reply
    token: str  # signed and expiring: Slack button value, email link, call-back
    public_url: str  # where Twilio and browsers reach the router
    # The SMS's short link to the same page (receiver.ack.short_links): its id and the SMS token
    # it stands for. On an SMS, and on a call, whose SMS after two unanswered calls repeats the
    # page's SMS; "" elsewhere.
    short: str = ""
    short_token: str = ""

    @property
    def link(self) -> str:
        """The email link: GET shows a confirmation page, only its POST acknowledges."""
        return f"{self.public_url}/ack/{self.token}"

    @property
    def short_link(self) -> str:
        """The SMS's link to the same page, `/a/<id>`: short enough for one segment ("" if none)."""
        return f"{self.public_url}/a/{self.short}" if self.short else ""

    @property
    def voice_action(self) -> str:
        """Where Twilio posts the key pressed during the call (`<Gather action>`)."""
        return f"{self.public_url}/webhooks/twilio/voice?token={self.token}"


@dataclass(frozen=True)
class SlackRef:
    """A Slack message the router posted through the Web API, which it can edit and thread."""

    channel: str  # the channel id Slack answered with (chat.update needs the id)
    ts: str
    stage: str = ""  # Notification.stage when it was last written


@dataclass(frozen=True)
class PersonPaged:
    name: str  # as the routing file's `name` writes it
    channels: tuple[Channel, ...]


@dataclass(frozen=True)
class LevelPage:
    """One level of a route's escalation ladder: when it is due and whom it pages, how."""

    level: int
    at: datetime
    people: tuple[PersonPaged, ...]


@dataclass(frozen=True)
class Paging:
    """What the plan knew when it made a message, for its text (routing.paging builds it):
    the channels cannot read the routing file, and the text must not depend on the clock."""

    at: datetime  # the plan's `now`: ages and "today" in the text count from it
    # The alerts' own word for the severity, as their team writes it ("P0"), and the label it
    # came from; "" when no alias decided it or the word is the canonical name.
    severity_word: str = ""
    severity_label: str = ""
    levels: tuple[LevelPage, ...] = ()  # levels reached so far, with whom each paged
    # The next level and when it is due; None at the top of the ladder or once resolved (while
    # acknowledged: due when the acknowledgement expires plus the time the level had left).
    next: LevelPage | None = None
    # The spell's first page at level 0: its email opens the thread later emails reply to.
    first: bool = False


@dataclass(frozen=True)
class Notification:
    """One message to one recipient on one channel, for a set of alerts of one group."""

    key: str
    channel: Channel
    recipient: Recipient
    severity: Severity
    route: str
    group: AlertGroup
    alerts: tuple[Alert, ...]
    level: int = 0
    # Per-route text overrides (receiver.messages.templates.TEMPLATE_KEYS -> Jinja2 source).
    templates: Mapping[str, str] = field(default_factory=dict)
    # Set on firing messages when acknowledgement is configured.
    ack: AckRef | None = None
    # Signed delivery-receipt token (receiver.delivery.receipt_tokens) for SMS, calls and email to a
    # person: Twilio's StatusCallback URL and SendGrid's custom_args carry it back to us.
    receipt: str = ""
    # Keys of this same message at a more urgent severity: if one was delivered, this one was too
    # (a group is re-paged only when its severity goes up).
    covered_by: tuple[str, ...] = ()
    # The group's firing spell (routing.plan.spell_of): a Slack message follows one spell.
    spell: str = ""
    # For a Slack channel: where the group stands (level reached, acknowledgement), and in words
    # what changed to get there; a message that follows the group adds that to its thread.
    stage: str = ""
    stage_text: str = ""
    # A Slack channel reached through the Web API, whose message of the group can be edited.
    editable: bool = False
    # The channel's message of this group, when there is one to update instead of a new post.
    follows: SlackRef | None = None
    # The team's time zone, for the times in the text (None: the sender's default).
    timezone: tzinfo | None = None
    # Escalation facts and the plan's time, for the text (None: made outside a plan; the text
    # then counts ages from the clock and names nobody paged).
    paging: Paging | None = None
    # Derived from `alerts` once, at construction: every renderer asks several times per message
    # (cached_property would lock on each first access, which costs more than the split).
    firing: tuple[Alert, ...] = field(init=False, repr=False, compare=False)
    resolved: tuple[Alert, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        firing = tuple(a for a in self.alerts if a.status is Status.FIRING)
        resolved = tuple(a for a in self.alerts if a.status is Status.RESOLVED)
        object.__setattr__(self, "firing", firing)
        object.__setattr__(self, "resolved", resolved)

    @property
    def status(self) -> Status:
        return Status.FIRING if self.firing else Status.RESOLVED


@dataclass(frozen=True)
class Ack:
    """One acknowledgement of a group: who, how, from when until when."""

    group: str
    by: str
    channel: Channel
    level: int
    at: datetime
    until: datetime
    token: str = ""  # signature of the token used; "" for an SMS code
    silence_id: str = ""

    def active(self, now: datetime) -> bool:
        return self.at <= now < self.until


@dataclass(frozen=True)
class GroupMemory:
    """What the shared store remembers of a group's current firing spell."""

    # The spell's id (its earliest firing start when first paged), part of every idempotency key,
    # so the same group firing again after it resolved is a new incident.
    spell: str
    first_paged: datetime  # escalation is counted from here
    paged: frozenset[str] = frozenset()  # "<level>:<person>" for every page delivered
    resolved: bool = False  # its resolved notices went out: the next firing is a new spell

    def was_paged(self, person: str, up_to_level: int) -> bool:
        return any(f"{level}:{person}" in self.paged for level in range(up_to_level + 1))
