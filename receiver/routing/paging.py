"""What a message says about its escalation: the team's word for the severity, who each level
reached so far paged, and when the next level is due. Built once per route at plan time and
carried on the Notification (model.Paging), since the channels cannot read the routing file."""

from __future__ import annotations

from datetime import datetime, timedelta

from receiver.config.matchers import matches_all
from receiver.config.severity import severity_word
from receiver.config.types import Config, Route
from receiver.model import Ack, Alert, Channel, LevelPage, Paging, PersonPaged, Severity, Source
from receiver.routing.oncall import members_of

# A severity label value longer than this is not a word anyone wrote for a severity.
_WORD_LIMIT = 30


def paging_of(
    team: Config,
    route: Route,
    alerts: tuple[Alert, ...],
    severity: Severity,
    *,
    now: datetime,
    start: datetime,
    level: int,
    age: float,
    firing: bool,
    current: Ack | None,
) -> Paging:
    """`start`, `level` and `age` are where the route's ladder stands (routing.plan.Ladder)."""
    word, label = _word(team, alerts, severity)
    levels = tuple(
        _level_page(team, route, n, start + timedelta(seconds=route.level_after(n)))
        for n in range(level + 1)
    )
    following = None
    if firing and level < len(route.escalation):
        # Time under an acknowledgement does not count: the level's remaining time runs from
        # when the acknowledgement expires.
        left = max(0.0, route.level_after(level + 1) - age)
        base = current.until if current is not None and current.active(now) else now
        following = _level_page(team, route, level + 1, base + timedelta(seconds=left))
    return Paging(at=now, severity_word=word, severity_label=label, levels=levels, next=following)


def _level_page(team: Config, route: Route, level: int, at: datetime) -> LevelPage:
    """Whom the level pages at `at` (rotations resolved then) and how: people only (a Slack
    channel is where the message is read), in target order."""
    channels: dict[str, list[Channel]] = {}
    for target in route.level_targets(level):
        if target.ref_kind == "channel":
            continue
        for pid in members_of(team, target.ref_kind, target.ref, at):
            person = team.people.get(pid)
            how = channels.setdefault(person.name if person is not None else pid, [])
            if target.kind not in how:
                how.append(target.kind)
    people = tuple(PersonPaged(name, tuple(how)) for name, how in channels.items())
    return LevelPage(level, at, people)


def _word(team: Config, alerts: tuple[Alert, ...], severity: Severity) -> tuple[str, str]:
    """The first of the alerts at `severity` whose label an alias decided: its value as written
    ("P0") and the label's name. The label's name alone when the value is the canonical one."""
    policy = team.severity
    label = ""
    # Past the rules, only the severity labels' values count: a storm's alerts share a few.
    seen: set[tuple[str, ...]] = set()
    for alert in alerts:
        if alert.source is Source.SENTRY:
            continue  # its level decides, and the message shows the level with Sentry's facts
        if any(matches_all(rule.matchers, alert.labels) for rule in policy.rules):
            continue  # a rule decided, not the word
        values = tuple(alert.labels.get(name, "") for name in policy.labels)
        if values in seen:
            continue
        seen.add(values)
        for name in policy.labels:
            value = alert.labels.get(name, "").strip()
            if not value:
                continue
            key = severity_word(value)
            if policy.aliases.get(key) is not severity:
                break
            label = label or name
            if key != severity.value and len(value) <= _WORD_LIMIT:
                return value, name
            break
    return "", label
