"""Load and validate the routing file into frozen dataclasses; problems name file, line, key."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.config_oncall import (
    Override,
    Rotation,
    TimeWindow,
    parse_rotations,
    parse_windows,
)
from receiver.matchers import Matcher
from receiver.model import Channel, Severity
from receiver.templates import TEMPLATE_KEYS, TemplateError, check_template
from receiver.yamlsource import (
    ConfigError,
    LineDict,
    Problem,
    Reader,
    load_yaml,
)

__all__ = [
    "Config",
    "ConfigError",
    "Override",
    "Problem",
    "Rotation",
    "TimeWindow",
    "load_config",
]

IssueOutcome = Literal["firing", "resolved", "skip"]
RefKind = Literal["person", "group", "rotation", "channel"]
E = TypeVar("E", bound=enum.StrEnum)

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    aliases: Mapping[str, Severity] = field(default_factory=dict)
    rules: tuple[SeverityRule, ...] = ()
    default: Severity = Severity.HIGH


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


# How long an acknowledgement holds escalation, per severity: the status-update cadence.
DEFAULT_ACK_EXPIRY: Mapping[Severity, float] = {
    Severity.CRITICAL: 30 * 60.0,
    Severity.HIGH: 3600.0,
    Severity.MEDIUM: 4 * 3600.0,
    Severity.LOW: 24 * 3600.0,
}


@dataclass(frozen=True)
class Acknowledgement:
    """How acknowledgements behave (they are stored in Alertmanager, see receiver.acks)."""

    expires_after: Mapping[Severity, float] = field(
        default_factory=lambda: dict(DEFAULT_ACK_EXPIRY)
    )
    # How long a link, button or key press in a message stays usable.
    links_valid_for: float = 12 * 3600.0
    # The Slack "Silence" button's silence length.
    silence_for: float = 3600.0


@dataclass(frozen=True)
class Config:
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


def load_config(
    path: str | Path, environ: Mapping[str, str], *, secrets_required: bool = False
) -> Config:
    """Read and validate a routing file; raises ConfigError listing every problem."""
    path = Path(path)
    data, problems = load_yaml(path)
    reader = Reader(str(path), environ, secrets_required)
    reader.problems.extend(problems)
    config = _build(reader, data)
    if reader.problems or config is None:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line))
    return config


_TOP_KEYS = (
    "timezone",
    "severity",
    "sentry",
    "people",
    "groups",
    "rotations",
    "slack",
    "routes",
    "limits",
    "delivery",
    "acknowledgement",
    "time_windows",
)


def _build(r: Reader, data: Any) -> Config | None:
    top = r.mapping(data, 1, "", _TOP_KEYS)
    if top is None:
        return None
    tz = _timezone(r, top)
    severity = _severity(r, top)
    people = _people(r, top)
    groups = _groups(r, top, people)
    windows = parse_windows(r, top, tz)
    rotations = parse_rotations(r, top, people, tz)
    slack = _slack(r, top)
    sentry = _sentry(r, top)
    refs: dict[RefKind, Mapping[str, object]] = {
        "person": people,
        "group": groups,
        "rotation": rotations,
        "channel": slack,
    }
    routes = _routes(r, top, refs, people, windows)
    _check_coverage(r, top, routes)
    limits = _limits(r, top)
    delivery = _delivery(r, top)
    acknowledgement = _acknowledgement(r, top)
    return Config(
        path=r.file,
        timezone=tz,
        severity=severity,
        sentry=sentry,
        people=people,
        groups=groups,
        rotations=rotations,
        slack=slack,
        routes=routes,
        windows=windows,
        limits=limits,
        delivery=delivery,
        acknowledgement=acknowledgement,
        secrets=frozenset(s for s in r.secrets if s),
        warnings=tuple(r.warnings),
    )


def _timezone(r: Reader, top: LineDict) -> ZoneInfo:
    name = r.string(top, "timezone", "") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        r.error(r.line_of(top, "timezone"), "timezone", f"unknown time zone {name!r}")
        return ZoneInfo("UTC")


def parse_severity(value: str) -> Severity:
    try:
        return Severity(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in Severity)
        raise ValueError(f"unknown severity {value!r} (one of {names})") from None


def _severity(r: Reader, top: LineDict) -> SeverityPolicy:
    line = r.line_of(top, "severity")
    m = r.mapping(top.get("severity"), line, "severity", ("labels", "default", "aliases", "rules"))
    if m is None:
        return SeverityPolicy()
    labels = tuple(v for _, _, v in r.strings(m, "labels", "severity")) or ("severity",)
    default = Severity.HIGH
    if (text := r.string(m, "default", "severity")) is not None:
        default = (
            r.convert(r.line_of(m, "default"), "severity.default", text, parse_severity) or default
        )
    aliases: dict[str, Severity] = {s.value: s for s in Severity}
    alias_map = r.mapping(
        m.get("aliases"), r.line_of(m, "aliases"), "severity.aliases", [s.value for s in Severity]
    )
    for name in alias_map or {}:
        assert alias_map is not None
        if name not in Severity.__members__.values():
            continue  # already reported as an unknown key
        sev = Severity(name)
        for item_line, item_path, alias in r.strings(alias_map, name, "severity.aliases"):
            key = alias.strip().lower()
            if key in aliases and aliases[key] is not sev:
                r.error(item_line, item_path, f"alias {alias!r} already means {aliases[key].value}")
            aliases[key] = sev
    rules = []
    for item_line, item_path, item in r.sequence(
        m.get("rules"), r.line_of(m, "rules"), "severity.rules"
    ):
        rule = r.mapping(item, item_line, item_path, ("matchers", "severity"))
        if rule is None:
            continue
        matchers = _matchers(r, rule, item_path)
        sev_text = r.string(rule, "severity", item_path, required=True)
        rule_sev: Severity | None = None
        if sev_text is not None:
            rule_sev = r.convert(
                r.line_of(rule, "severity"), f"{item_path}.severity", sev_text, parse_severity
            )
        if not matchers:
            r.error(rule.line, f"{item_path}.matchers", "a rule needs at least one matcher")
        if rule_sev is not None:
            rules.append(SeverityRule(matchers, rule_sev, item_line))
    return SeverityPolicy(labels, aliases, tuple(rules), default)


def _matchers(r: Reader, m: LineDict, path: str) -> tuple[Matcher, ...]:
    out = []
    for line, item_path, text in r.strings(m, "matchers", path):
        matcher = r.convert(line, item_path, text, Matcher.parse)
        if matcher is not None:
            out.append(matcher)
    return tuple(out)


_SENTRY_LEVELS = {
    "fatal": Severity.CRITICAL,
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "info": Severity.LOW,
    "debug": Severity.LOW,
}
_SENTRY_METRIC = {"critical": Severity.CRITICAL, "warning": Severity.MEDIUM}
_ISSUE_OUTCOMES: dict[str, IssueOutcome] = {
    "firing": "firing",
    "resolved": "resolved",
    "skip": "skip",
}
_SENTRY_ISSUES: dict[str, IssueOutcome] = {
    "created": "firing",
    "unresolved": "firing",
    "resolved": "resolved",
    "ignored": "resolved",
    "assigned": "skip",
}


def _sentry(r: Reader, top: LineDict) -> SentryPolicy:
    m = r.mapping(
        top.get("sentry"),
        r.line_of(top, "sentry"),
        "sentry",
        ("levels", "metric_alerts", "issues", "legacy_token"),
    )
    if m is None:
        return SentryPolicy(_SENTRY_LEVELS, _SENTRY_METRIC, _SENTRY_ISSUES)
    levels = _severity_table(r, m, "levels", _SENTRY_LEVELS)
    metric = _severity_table(r, m, "metric_alerts", _SENTRY_METRIC)
    issues = dict(_SENTRY_ISSUES)
    table = r.mapping(m.get("issues"), r.line_of(m, "issues"), "sentry.issues", _SENTRY_ISSUES)
    for action in table or {}:
        assert table is not None
        value = r.string(table, action, "sentry.issues")
        outcome = _ISSUE_OUTCOMES.get(value or "")
        if outcome is None:
            r.error(
                r.line_of(table, action),
                f"sentry.issues.{action}",
                "expected firing, resolved or skip",
            )
        else:
            issues[action] = outcome
    return SentryPolicy(levels, metric, issues, r.secret(m, "legacy_token", "sentry"))


def _severity_table(
    r: Reader, parent: LineDict, key: str, defaults: Mapping[str, Severity]
) -> dict[str, Severity]:
    out = dict(defaults)
    path = f"sentry.{key}"
    # Any level name may be mapped (SDKs add their own, e.g. Ruby's "log").
    allowed = list(parent.get(key) or {}) if key == "levels" else list(defaults)
    table = r.mapping(parent.get(key), r.line_of(parent, key), path, allowed)
    for name in table or {}:
        assert table is not None
        text = r.string(table, name, path)
        if text is not None:
            sev = r.convert(r.line_of(table, name), f"{path}.{name}", text, parse_severity)
            if sev is not None:
                out[name] = sev
    return out


def _people(r: Reader, top: LineDict) -> dict[str, Person]:
    out: dict[str, Person] = {}
    table = r.mapping(
        top.get("people"), r.line_of(top, "people"), "people", list(top.get("people") or [])
    )
    for pid in table or {}:
        assert table is not None
        path = f"people.{pid}"
        line = r.line_of(table, pid)
        r.check_name(line, path, pid)
        m = r.mapping(table[pid], line, path, ("name", "phone", "email", "slack"))
        if m is None:
            continue
        phone = r.string(m, "phone", path)
        if phone is not None and phone and not _E164.match(phone):
            r.error(
                r.line_of(m, "phone"),
                f"{path}.phone",
                f"{phone!r} is not an E.164 phone number (e.g. +447700900123)",
            )
        email = r.string(m, "email", path)
        if email is not None and email and not _EMAIL.match(email):
            r.error(r.line_of(m, "email"), f"{path}.email", f"{email!r} is not an email address")
        out[pid] = Person(
            pid,
            r.string(m, "name", path) or pid,
            phone or None,
            email or None,
            r.string(m, "slack", path) or None,
        )
    return out


def _groups(r: Reader, top: LineDict, people: Mapping[str, Person]) -> dict[str, tuple[str, ...]]:
    out = {}
    table = r.mapping(
        top.get("groups"), r.line_of(top, "groups"), "groups", list(top.get("groups") or [])
    )
    for name in table or {}:
        assert table is not None
        r.check_name(r.line_of(table, name), f"groups.{name}", name)
        members = r.members(table, name, "groups", people)
        if not members:
            r.error(r.line_of(table, name), f"groups.{name}", "a group needs at least one member")
        out[name] = members
    return out


def _slack(r: Reader, top: LineDict) -> dict[str, SlackDestination]:
    out = {}
    table = r.mapping(
        top.get("slack"), r.line_of(top, "slack"), "slack", list(top.get("slack") or [])
    )
    for name in table or {}:
        assert table is not None
        path = f"slack.{name}"
        r.check_name(r.line_of(table, name), path, name)
        m = r.mapping(
            table[name],
            r.line_of(table, name),
            path,
            ("channel", "webhook_url", "webhook_url_file"),
        )
        if m is None:
            continue
        channel = r.string(m, "channel", path)
        has_webhook = "webhook_url" in m or "webhook_url_file" in m
        url = r.secret(m, "webhook_url", path) if has_webhook else None
        if channel is None and not has_webhook:
            r.error(m.line, path, "give channel (Web API) or webhook_url / webhook_url_file")
        elif channel is not None and has_webhook:
            r.error(m.line, path, "give channel or a webhook, not both")
        if url and not url.startswith(("https://", "http://")):
            # Never echo the value: a webhook URL is a secret.
            r.error(r.line_of(m, "webhook_url"), f"{path}.webhook_url", "not an http(s) URL")
        out[name] = SlackDestination(name, channel, url or None)
    return out


_TARGET_REFS: tuple[RefKind, ...] = ("person", "group", "rotation", "channel")
_CONTACT_WHAT = {"phone": "a phone number", "email": "an email address", "slack": "a Slack user id"}


def _routes(
    r: Reader,
    top: LineDict,
    refs: Mapping[RefKind, Mapping[str, object]],
    people: Mapping[str, Person],
    windows: Mapping[str, TimeWindow],
) -> tuple[Route, ...]:
    out = []
    seen: set[str] = set()
    items = r.sequence(top.get("routes"), r.line_of(top, "routes"), "routes")
    if not items:
        r.error(r.line_of(top, "routes"), "routes", "at least one route is needed")
    keys = (
        "name",
        "severity",
        "matchers",
        "continue",
        "targets",
        "templates",
        "escalation",
        "repeat",
        "window",
    )
    for line, path, item in items:
        m = r.mapping(item, line, path, keys)
        if m is None:
            continue
        name = r.string(m, "name", path, required=True) or path
        if name in seen:
            r.error(r.line_of(m, "name"), f"{path}.name", f"route name {name!r} is used twice")
        seen.add(name)
        severities = frozenset(
            s
            for ln, p, v in r.strings(m, "severity", path)
            if (s := r.convert(ln, p, v, parse_severity)) is not None
        )
        targets = _targets(r, m, path, refs, people, windows)
        if not targets:
            r.error(m.line, f"{path}.targets", "a route needs at least one target")
        repeat = None
        if "repeat" in m:
            repeat = r.duration(m, "repeat", path, 0.0)
            if repeat < 60:
                r.error(r.line_of(m, "repeat"), f"{path}.repeat", "repeat at most every 1m")
        out.append(
            Route(
                name,
                line,
                severities,
                _matchers(r, m, path),
                r.boolean(m, "continue", path, False),
                targets,
                _templates(r, m, path),
                _escalation(r, m, path, refs, people, windows),
                repeat,
                _window_ref(r, m, path, windows),
            )
        )
    return tuple(out)


def _targets(
    r: Reader,
    m: LineDict,
    path: str,
    refs: Mapping[RefKind, Mapping[str, object]],
    people: Mapping[str, Person],
    windows: Mapping[str, TimeWindow],
) -> tuple[Target, ...]:
    items = r.sequence(m.get("targets"), r.line_of(m, "targets"), f"{path}.targets")
    return tuple(
        t for ln, p, v in items if (t := _target(r, ln, p, v, refs, people, windows)) is not None
    )


def _window_ref(r: Reader, m: LineDict, path: str, windows: Mapping[str, TimeWindow]) -> str | None:
    name = r.string(m, "window", path)
    if name is not None and name not in windows:
        r.error(
            r.line_of(m, "window"),
            f"{path}.window",
            f"unknown time window {name!r} (not in time_windows)",
        )
        return None
    return name


def _escalation(
    r: Reader,
    m: LineDict,
    path: str,
    refs: Mapping[RefKind, Mapping[str, object]],
    people: Mapping[str, Person],
    windows: Mapping[str, TimeWindow],
) -> tuple[Step, ...]:
    """Cumulative ages: each step's `after` is counted from the alert's start, not the last step."""
    steps: list[Step] = []
    items = r.sequence(m.get("escalation"), r.line_of(m, "escalation"), f"{path}.escalation")
    for line, step_path, item in items:
        s = r.mapping(item, line, step_path, ("after", "targets"))
        if s is None:
            continue
        if "after" not in s:
            r.error(s.line, f"{step_path}.after", "required (e.g. 15m)")
            continue
        after = r.duration(s, "after", step_path, 0.0)
        if after <= 0:
            r.error(r.line_of(s, "after"), f"{step_path}.after", "must be more than 0")
        elif steps and after <= steps[-1].after:
            r.error(
                r.line_of(s, "after"),
                f"{step_path}.after",
                "steps are cumulative ages and must increase",
            )
        targets = _targets(r, s, step_path, refs, people, windows)
        if not targets:
            r.error(s.line, f"{step_path}.targets", "a step needs at least one target")
        steps.append(Step(after, targets))
    return tuple(steps)


def _templates(r: Reader, m: LineDict, path: str) -> dict[str, str]:
    out = {}
    table = r.mapping(
        m.get("templates"), r.line_of(m, "templates"), f"{path}.templates", TEMPLATE_KEYS
    )
    for key in table or {}:
        assert table is not None
        line, where = r.line_of(table, key), f"{path}.templates.{key}"
        source = table[key]
        if not isinstance(source, str):
            r.error(line, where, "expected template text")
            continue
        try:
            check_template(source, key)
        except TemplateError as e:
            r.error(line, where, str(e))
            continue
        out[key] = source
    return out


def _check_coverage(r: Reader, top: LineDict, routes: tuple[Route, ...]) -> None:
    """Every severity needs a route without matchers, or some alerts would reach nobody."""
    covered: set[Severity] = set()
    for route in routes:
        if not route.matchers:
            covered |= route.severities or set(Severity)
    for severity in Severity:
        if routes and severity not in covered:
            r.error(
                r.line_of(top, "routes"),
                "routes",
                f"no route without matchers takes {severity.value} alerts; add one "
                "(or a catch-all route at the end) so no alert is dropped",
            )


def _target(
    r: Reader,
    line: int,
    path: str,
    item: Any,
    refs: Mapping[RefKind, Mapping[str, object]],
    people: Mapping[str, Person],
    windows: Mapping[str, TimeWindow],
) -> Target | None:
    m = r.mapping(item, line, path, ("kind", "window", *_TARGET_REFS))
    if m is None:
        return None
    kind_text = r.string(m, "kind", path, required=True)
    kind = None
    if kind_text is not None:
        kind = r.convert(r.line_of(m, "kind"), f"{path}.kind", kind_text, _parse_channel)
    given = [k for k in _TARGET_REFS if k in m]
    if len(given) != 1:
        r.error(m.line, path, "name exactly one of person, group, rotation or channel")
        return None
    ref_kind = given[0]
    ref = r.string(m, ref_kind, path, required=True)
    if ref is None or kind is None:
        return None
    ref_line = r.line_of(m, ref_kind)
    if ref not in refs[ref_kind]:
        where = "slack" if ref_kind == "channel" else f"{ref_kind}s"
        r.error(ref_line, f"{path}.{ref_kind}", f"unknown {ref_kind} {ref!r} (not in {where})")
        return None
    if ref_kind == "channel" and kind is not Channel.SLACK:
        r.error(ref_line, f"{path}.{ref_kind}", f"a Slack channel cannot receive {kind.value}")
        return None
    if ref_kind != "channel":
        _check_reachable(
            r, ref_line, f"{path}.{ref_kind}", kind, _members(ref_kind, ref, refs), people
        )
    return Target(kind, ref_kind, ref, _window_ref(r, m, path, windows))


def _members(
    ref_kind: RefKind, ref: str, refs: Mapping[RefKind, Mapping[str, object]]
) -> tuple[str, ...]:
    value = refs[ref_kind][ref]
    if isinstance(value, Rotation):
        # Whoever an override puts on call must be reachable too.
        return (
            *value.members,
            *(o.person for o in value.overrides if o.person not in value.members),
        )
    if isinstance(value, Person):
        return (value.id,)
    assert isinstance(value, tuple)
    return value


def _check_reachable(
    r: Reader,
    line: int,
    path: str,
    kind: Channel,
    members: tuple[str, ...],
    people: Mapping[str, Person],
) -> None:
    attr = CONTACT_FIELD[kind]
    what = _CONTACT_WHAT[attr]
    for pid in members:
        person = people.get(pid)
        if person is not None and not person.address(kind):
            r.error(line, path, f"{pid} has no {attr} ({what} is needed for {kind.value})")


def _parse_channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        kinds = ", ".join(c.value for c in Channel)
        raise ValueError(f"unknown target kind {value!r} (one of {kinds})") from None


def _limits(r: Reader, top: LineDict) -> Limits:
    m = r.mapping(top.get("limits"), r.line_of(top, "limits"), "limits", ("max_body_bytes",))
    if m is None:
        return Limits()
    return Limits(int(r.number(m, "max_body_bytes", "limits", Limits.max_body_bytes, 1024)))


def _delivery(r: Reader, top: LineDict) -> Delivery:
    keys = (
        "deadline",
        "attempts",
        "dedupe_ttl",
        "dedupe_max_entries",
        "rate_limits",
        "background_deadline",
        "sentry_alert_ttl",
    )
    m = r.mapping(top.get("delivery"), r.line_of(top, "delivery"), "delivery", keys)
    if m is None:
        return Delivery()
    d = Delivery()
    rates = _duration_table(
        r, m, "rate_limits", "delivery", DEFAULT_RATE_LIMITS, Channel, positive=False
    )
    return Delivery(
        deadline=_positive(r, m, "deadline", "delivery", d.deadline),
        attempts=int(r.number(m, "attempts", "delivery", d.attempts, 1)),
        dedupe_ttl=r.duration(m, "dedupe_ttl", "delivery", d.dedupe_ttl),
        dedupe_max_entries=int(
            r.number(m, "dedupe_max_entries", "delivery", d.dedupe_max_entries, 100)
        ),
        rate_limits=rates,
        background_deadline=r.duration(m, "background_deadline", "delivery", d.background_deadline),
        sentry_alert_ttl=r.duration(m, "sentry_alert_ttl", "delivery", d.sentry_alert_ttl),
    )


def _acknowledgement(r: Reader, top: LineDict) -> Acknowledgement:
    path = "acknowledgement"
    keys = ("expires_after", "links_valid_for", "silence_for")
    m = r.mapping(top.get(path), r.line_of(top, path), path, keys)
    if m is None:
        return Acknowledgement()
    d = Acknowledgement()
    expiry = _duration_table(
        r, m, "expires_after", path, DEFAULT_ACK_EXPIRY, Severity, positive=True
    )
    return Acknowledgement(
        expires_after=expiry,
        links_valid_for=_positive(r, m, "links_valid_for", path, d.links_valid_for),
        silence_for=_positive(r, m, "silence_for", path, d.silence_for),
    )


def _duration_table(
    r: Reader,
    m: LineDict,
    key: str,
    path: str,
    defaults: Mapping[E, float],
    kind: type[E],
    *,
    positive: bool,
) -> dict[E, float]:
    """`{<member>: <duration>, ...}` over an enum, on top of `defaults`."""
    out = dict(defaults)
    where = f"{path}.{key}"
    table = r.mapping(m.get(key), r.line_of(m, key), where, [k.value for k in kind])
    for name in table or {}:
        assert table is not None
        if name not in kind.__members__.values():
            continue  # already reported as an unknown key
        value = r.duration(table, name, where, 0.0)
        if positive and value <= 0:
            r.error(r.line_of(table, name), f"{where}.{name}", "must be more than 0")
        out[kind(name)] = value
    return out


def _positive(r: Reader, m: LineDict, key: str, path: str, default: float) -> float:
    value = r.duration(m, key, path, default)
    if value <= 0:
        r.error(r.line_of(m, key), f"{path}.{key}", "must be more than 0")
    return value
