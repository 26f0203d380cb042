"""The `routes` section: matchers, targets, escalation ladders, templates, windows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.config.rotations import Rotation, TimeWindow
from receiver.config.severity import parse_matchers, parse_severity
from receiver.config.types import (
    CONTACT_FIELD,
    RESOLVED_CHANNELS,
    Person,
    RefKind,
    Route,
    Step,
    Target,
)
from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader
from receiver.messages.templates import TEMPLATE_KEYS, TemplateError, check_template
from receiver.model import Channel, Severity

_TARGET_REFS: tuple[RefKind, ...] = ("person", "group", "rotation", "channel")
_CONTACT_WHAT = {"phone": "a phone number", "email": "an email address", "slack": "a Slack user id"}


def parse_routes(
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
        "repage_on_new_alerts",
        "resolved",
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
                parse_matchers(r, m, path),
                r.boolean(m, "continue", path, False),
                targets,
                _templates(r, m, path),
                _escalation(r, m, path, refs, people, windows),
                repeat,
                _window_ref(r, m, path, windows),
                r.boolean(m, "repage_on_new_alerts", path, False),
                _resolved_channels(r, m, path),
            )
        )
    return tuple(out)


def _resolved_channels(r: Reader, m: LineDict, path: str) -> frozenset[Channel]:
    if "resolved" not in m:
        return RESOLVED_CHANNELS
    out = set()
    for line, item_path, text in r.strings(m, "resolved", path):
        kind = r.convert(line, item_path, text, _parse_channel)
        if kind is Channel.CALL:
            r.error(line, item_path, "resolved notices are never phone calls (use sms)")
        elif kind is not None:
            out.add(kind)
    return frozenset(out)


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
        before = len(r.problems)
        after = r.duration(s, "after", step_path, 0.0)
        if len(r.problems) > before:
            pass  # not a duration: reported once, not again as "must be more than 0"
        elif after <= 0:
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
    table = r.section(m, "templates", f"{path}.templates", TEMPLATE_KEYS)
    for key in table:
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
        except Exception as e:
            # A template is a small program: `{{ 1 / 0 }}` fails in Python, not in Jinja.
            r.error(line, where, f"template does not render: {type(e).__name__}: {e}")
            continue
        out[key] = source
    return out


def check_coverage(r: Reader, top: LineDict, routes: tuple[Route, ...]) -> None:
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
