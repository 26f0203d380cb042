"""Read a routing file: YAML with line numbers, each section parsed, every problem located."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.config.people import parse_groups, parse_people, parse_slack
from receiver.config.policies import parse_acknowledgement, parse_delivery, parse_limits
from receiver.config.rotations import parse_rotations, parse_windows
from receiver.config.routes import check_coverage, parse_routes
from receiver.config.severity import parse_sentry, parse_severity_policy
from receiver.config.types import Config, RefKind
from receiver.config.yaml_file import FILE, ConfigError, LineDict, load_yaml
from receiver.config.yaml_source import Reader


def load_config(
    path: str | Path, environ: Mapping[str, str], *, secrets_required: bool = False
) -> Config:
    """Read and validate a routing file; raises ConfigError listing every problem."""
    path = Path(path)
    data, problems = load_yaml(path)
    reader = Reader(str(path), environ, secrets_required)
    reader.problems.extend(problems)
    try:
        config = _build(reader, data)
    except Exception as e:
        # Every value is type-checked on the way in (tests/test_config_fuzz.py); should one
        # still slip through, `check` and a reload get a located problem, not a traceback.
        config = None
        reader.error(1, FILE, f"internal error while reading the file: {type(e).__name__}: {e}")
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
    severity = parse_severity_policy(r, top)
    people = parse_people(r, top)
    groups = parse_groups(r, top, people)
    windows = parse_windows(r, top, tz)
    rotations = parse_rotations(r, top, people, tz)
    slack = parse_slack(r, top)
    sentry = parse_sentry(r, top)
    refs: dict[RefKind, Mapping[str, object]] = {
        "person": people,
        "group": groups,
        "rotation": rotations,
        "channel": slack,
    }
    routes = parse_routes(r, top, refs, people, windows)
    check_coverage(r, top, routes)
    limits = parse_limits(r, top)
    delivery = parse_delivery(r, top)
    acknowledgement = parse_acknowledgement(r, top)
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
    except (ZoneInfoNotFoundError, ValueError, OSError):
        r.error(r.line_of(top, "timezone"), "timezone", f"unknown time zone {name!r}")
        return ZoneInfo("UTC")
