"""The routing file as frozen dataclasses: what every other part reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo

from receiver.config.matchers import Matcher, matches_all
from receiver.config.rotations import Rotation, TimeWindow
from receiver.config.yaml_file import Problem
from receiver.model import Channel, Severity

IssueOutcome = Literal["firing", "resolved", "skip"]
RefKind = Literal["person", "group", "rotation", "channel"]


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    slack: str | None = None

    def address(self, channel: Channel) -> str | None:
        """Where this person is reached on a channel (None if the file gives no such contact)."""
        value: str | None = getattr(self, CONTACT_FIELD[channel])
        return value


# The Person field each channel needs.
CONTACT_FIELD: Mapping[Channel, str] = {
    Channel.SMS: "phone",
    Channel.CALL: "phone",
    Channel.EMAIL: "email",
    Channel.SLACK: "slack",
}


@dataclass(frozen=True)
class SlackDestination:
    """A Slack channel: by ID/name through the Web API, or by incoming-webhook URL (a secret)."""

    name: str
    channel: str | None = None
    webhook_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SeverityRule:
    matchers: tuple[Matcher, ...]
    severity: Severity
    line: int


@dataclass(frozen=True)
class SeverityPolicy:
    labels: tuple[str, ...] = ("severity",)
    # Keyed by `severity.severity_word` (no case, spaces, `-`, `_`); canonical names included.
    aliases: Mapping[str, Severity] = field(default_factory=lambda: {s.value: s for s in Severity})
    rules: tuple[SeverityRule, ...] = ()
    default: Severity = Severity.HIGH
    # Each alias key as the file first wrote it, for explanations ("P0 - Critical"), and where.
    words: Mapping[str, str] = field(default_factory=dict)
    word_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SentryPolicy:
    levels: Mapping[str, Severity] = field(default_factory=dict)
    metric_alerts: Mapping[str, Severity] = field(default_factory=dict)
    issues: Mapping[str, IssueOutcome] = field(default_factory=dict)
    legacy_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Target:
    """Where a route sends: a channel kind and a reference to people or a Slack destination."""

    kind: Channel
    ref_kind: RefKind
    ref: str
    # Only inside this named time window (e.g. business-hours); None = always.
    window: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref_kind}:{self.ref}"


@dataclass(frozen=True)
class Step:
    """An escalation step: once the group has fired `after` seconds, these targets are paged too."""

    after: float
    targets: tuple[Target, ...]


RESOLVED_CHANNELS = frozenset({Channel.SLACK, Channel.SMS, Channel.EMAIL})


@dataclass(frozen=True)
class Route:
    name: str
    line: int
    severities: frozenset[Severity] = frozenset()
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    targets: tuple[Target, ...] = ()
    templates: Mapping[str, str] = field(default_factory=dict)
    # Level 1.. of the ladder (level 0 is `targets`), by cumulative age of the group.
    escalation: tuple[Step, ...] = ()
    # Re-page the current level this often until acknowledged; None = each level once.
    repeat: float | None = None
    # The whole route only inside this named time window; None = always.
    window: str | None = None
    # Page people again when an alert joins their firing group (default: Slack hears of it).
    repage_on_new_alerts: bool = False
    # Channels that carry resolved notices, to the people who were paged; never a call.
    resolved_channels: frozenset[Channel] = RESOLVED_CHANNELS

    def level_targets(self, level: int) -> tuple[Target, ...]:
        return self.targets if level == 0 else self.escalation[level - 1].targets

    def level_after(self, level: int) -> float:
        return 0.0 if level == 0 else self.escalation[level - 1].after


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1024 * 1024


# Vendor-safe pacing per destination: Slack allows ~1 message/s per channel; one SMS or call
# per second per phone number keeps a storm from flooding a person's phone.
DEFAULT_RATE_LIMITS: Mapping[Channel, float] = {
    Channel.SLACK: 1.0,
    Channel.SMS: 1.0,
    Channel.CALL: 1.0,
    Channel.EMAIL: 0.0,
}


@dataclass(frozen=True)
class Delivery:
    """Retry and pacing policy of every target send."""

    deadline: float = 10.0
    attempts: int = 5
    dedupe_ttl: float = 24 * 3600.0
    dedupe_max_entries: int = 50_000
    # Minimum seconds between two messages to one destination; 0 switches pacing off.
    rate_limits: Mapping[Channel, float] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # Sentry events have no upstream retrier unless forwarded to Alertmanager.
    background_deadline: float = 120.0
    # How long a forwarded Sentry event stays firing in Alertmanager without a resolve.
    sentry_alert_ttl: float = 24 * 3600.0
    # Seconds a page call rings before Twilio gives up (Twilio's own default, 60, lets most
    # voicemail boxes answer first).
    call_timeout: float = 30.0
    # A page call nobody answered (or a machine did) is placed once more after this; 0 = never.
    call_retry_after: float = 120.0
    # Webhooks worked on at once; more wait for a slot at most a quarter of `deadline`, or are
    # answered 503 at once (receiver.web.admission).
    max_in_flight: int = 64


# How long an acknowledgement holds escalation, per severity: the status-update cadence.
DEFAULT_ACK_EXPIRY: Mapping[Severity, float] = {
    Severity.CRITICAL: 30 * 60.0,
    Severity.HIGH: 3600.0,
    Severity.MEDIUM: 4 * 3600.0,
    Severity.LOW: 24 * 3600.0,
}


@dataclass(frozen=True)
class Acknowledgement:
    """How acknowledgements behave (they are stored in Alertmanager, see receiver.ack.store)."""

    expires_after: Mapping[Severity, float] = field(
        default_factory=lambda: dict(DEFAULT_ACK_EXPIRY)
    )
    # How long a link, button or key press in a message stays usable.
    links_valid_for: float = 12 * 3600.0
    # The Slack "Silence" button's silence length.
    silence_for: float = 3600.0


# Alertmanager's grouping for a team that does not set its own.
DEFAULT_GROUP_BY = ("alertname", "cluster", "service")


@dataclass(frozen=True)
class Config:
    """The routing file. Its policy fields (zone, severity, groups, rotations, windows, Slack,
    routes) are one team's: a file without `teams:` is one implicit team, and a file with teams
    is read as its default team's view, each team in `teams` as a view of its own sharing the
    rest (people, Sentry, delivery, acknowledgement, limits) — so code that decides for one alert
    takes `team_for(labels)` and reads the fields as before."""

    path: str
    timezone: ZoneInfo
    severity: SeverityPolicy
    sentry: SentryPolicy
    people: Mapping[str, Person]
    groups: Mapping[str, tuple[str, ...]]
    rotations: Mapping[str, Rotation]
    slack: Mapping[str, SlackDestination]
    routes: tuple[Route, ...]
    windows: Mapping[str, TimeWindow] = field(default_factory=dict)
    limits: Limits = Limits()
    delivery: Delivery = Delivery()
    acknowledgement: Acknowledgement = Acknowledgement()
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    warnings: tuple[Problem, ...] = ()
    team: str = ""  # "" when the file has no teams
    team_matchers: tuple[Matcher, ...] = ()
    team_line: int = 0
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    teams: tuple[Config, ...] = ()  # in file order; () when the file has no teams

    def team_for(self, labels: Mapping[str, str]) -> Config:
        """An alert's team: the first whose matchers all match its labels, else the default."""
        for team in self.teams:
            if team.team_matchers and matches_all(team.team_matchers, labels):
                return team
        return self

    def all_teams(self) -> tuple[Config, ...]:
        """Every team's view, in file order (the file itself when it has no teams)."""
        return self.teams or (self,)

    @cached_property
    def routing_labels(self) -> tuple[str, ...]:
        """Every label an alert's team, severity and routes are decided by: the teams', severity
        rules' and routes' matchers, and the severity labels. Alerts alike in these are routed
        alike (outside Sentry's own events, whose level decides)."""
        names: dict[str, None] = {}
        for team in self.all_teams():
            policy = team.severity
            matchers = [*team.team_matchers, *(m for r in policy.rules for m in r.matchers)]
            matchers += [m for route in team.routes for m in route.matchers]
            names.update(dict.fromkeys(m.name for m in matchers))
            names.update(dict.fromkeys(policy.labels))
        return tuple(names)

    def all_routes(self) -> dict[str, Route]:
        """Every team's routes by name ("<team>/<route>" in a file with teams)."""
        return {route.name: route for team in self.all_teams() for route in team.routes}

    def slack_destinations(self) -> dict[str, SlackDestination]:
        """Every team's Slack destinations by their `name` (what a Recipient addresses)."""
        return {d.name: d for team in self.all_teams() for d in team.slack.values()}

    def team_named(self, name: str) -> Config | None:
        return next((t for t in self.all_teams() if t.team == name), None)
