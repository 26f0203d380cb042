"""The `severity` and `sentry` sections: aliases, rules, Sentry level tables."""

from __future__ import annotations

import re
from collections.abc import Mapping

from receiver.config.matchers import Matcher, parse_line
from receiver.config.types import IssueOutcome, SentryPolicy, SeverityPolicy, SeverityRule
from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader
from receiver.model import Severity


def parse_severity(value: str) -> Severity:
    try:
        return Severity(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in Severity)
        raise ValueError(f"unknown severity {value!r} (one of {names})") from None


_SEPARATORS = re.compile(r"[\s_-]+")


def severity_word(text: str) -> str:
    """A severity word as matched: case, spaces, `-` and `_` do not count, so `Sev 1`, `SEV-1`
    and `sev_1` are one word, and so are `P0 - Critical` and `p0-critical`."""
    return _SEPARATORS.sub("", text).casefold()


def parse_severity_policy(
    r: Reader, top: LineDict, inherit: SeverityPolicy | None = None
) -> SeverityPolicy:
    """The `severity` section; with `inherit` (a team reading the file's), what the section
    leaves out is inherited: labels and default key by key, aliases and rules as a whole (a
    team that writes its own aliases means exactly those, never a mix with another scheme)."""
    base = inherit or SeverityPolicy()
    if inherit is not None and "severity" not in top:
        return inherit
    m = r.section(top, "severity", "severity", ("labels", "default", "aliases", "rules"))
    labels = tuple(v for _, _, v in r.strings(m, "labels", "severity")) or base.labels
    default = base.default
    if (text := r.string(m, "default", "severity")) is not None:
        default = (
            r.convert(r.line_of(m, "default"), "severity.default", text, parse_severity) or default
        )
    rules = _rules(r, m, base.rules)
    if "aliases" not in m:
        return SeverityPolicy(labels, base.aliases, rules, default, base.words, base.word_lines)
    aliases: dict[str, Severity] = {s.value: s for s in Severity}
    words: dict[str, str] = {}
    lines: dict[str, int] = {}
    alias_map = r.section(m, "aliases", "severity.aliases", [s.value for s in Severity])
    for name in alias_map:
        if name not in Severity.__members__.values():
            continue  # already reported as an unknown key
        sev = Severity(name)
        for item_line, item_path, alias in r.strings(alias_map, name, "severity.aliases"):
            key = severity_word(alias)
            if not key:
                r.error(item_line, item_path, "an alias needs a letter or digit")
                continue
            if key in aliases and aliases[key] is not sev:
                same = f" (as {words[key]!r})" if key in words and words[key] != alias else ""
                r.error(
                    item_line,
                    item_path,
                    f"alias {alias!r} already means {aliases[key].value}{same}",
                )
                continue
            aliases[key] = sev
            words.setdefault(key, alias)
            lines.setdefault(key, item_line)
    return SeverityPolicy(labels, aliases, rules, default, words, lines)


def _rules(r: Reader, m: LineDict, inherited: tuple[SeverityRule, ...]) -> tuple[SeverityRule, ...]:
    if "rules" not in m:
        return inherited
    rules = []
    for item_line, item_path, item in r.sequence(
        m.get("rules"), r.line_of(m, "rules"), "severity.rules"
    ):
        rule = r.mapping(item, item_line, item_path, ("matchers", "severity"))
        if rule is None:
            continue
        matchers = parse_matchers(r, rule, item_path)
        sev_text = r.string(rule, "severity", item_path, required=True)
        rule_sev: Severity | None = None
        if sev_text is not None:
            rule_sev = r.convert(
                r.line_of(rule, "severity"), f"{item_path}.severity", sev_text, parse_severity
            )
        if not matchers and not rule.get("matchers"):
            # (A rule whose matchers are all wrong has those problems already.)
            r.error(rule.line, f"{item_path}.matchers", "a rule needs at least one matcher")
        if rule_sev is not None:
            rules.append(SeverityRule(matchers, rule_sev, item_line))
    return tuple(rules)


def parse_matchers(r: Reader, m: LineDict, path: str) -> tuple[Matcher, ...]:
    out: list[Matcher] = []
    for line, item_path, text in r.strings(m, "matchers", path):
        # One item may hold several, as in Alertmanager: `{team="db", env=~"prod|staging"}`.
        out.extend(r.convert(line, item_path, text, parse_line) or ())
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


def parse_sentry(r: Reader, top: LineDict) -> SentryPolicy:
    m = r.section(top, "sentry", "sentry", ("levels", "metric_alerts", "issues", "legacy_token"))
    if not m:
        return SentryPolicy(_SENTRY_LEVELS, _SENTRY_METRIC, _SENTRY_ISSUES)
    levels = _severity_table(r, m, "levels", _SENTRY_LEVELS)
    metric = _severity_table(r, m, "metric_alerts", _SENTRY_METRIC)
    issues = dict(_SENTRY_ISSUES)
    table = r.section(m, "issues", "sentry.issues", _SENTRY_ISSUES)
    for action in table:
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
    table = r.section(parent, key, path, None if key == "levels" else list(defaults))
    for name in table:
        text = r.string(table, name, path)
        if text is not None:
            sev = r.convert(r.line_of(table, name), f"{path}.{name}", text, parse_severity)
            if sev is not None:
                out[name] = sev
    return out
