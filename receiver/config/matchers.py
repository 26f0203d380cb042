"""Alertmanager's label matchers, read and evaluated as Alertmanager 0.25 reads and evaluates them.

Syntax (Alertmanager's `pkg/labels/parse.go`): a line holds one or more comma-separated matchers
`name op value`, optionally in braces; the value may be double-quoted, and inside it `\\"`, `\\\\`
and `\\n` are escapes while any other backslash stays a backslash. Regexes are RE2 as Go's
`regexp` reads them, anchored at both ends (`^(?:...)$`). The router compiles them with RE2 too
(google-re2) so that a matcher means the same here as in Alertmanager: Python's `re` differs in
many small ways (look-arounds, backreferences, `\\Z`, possessive quantifiers, Unicode `\\d` `\\w`
`\\s` `\\b`, `$` before a final newline, `(?i)` in the middle of a pattern). What the C++ RE2
accepts but Go 1.19 (Debian's Alertmanager 0.25) refuses, `\\C` and `(?<name>...)`, is refused
here too.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import re2

# Alertmanager's own pattern; Go's `\s` is [\t\n\f\r ] and its `$` is the end of the text.
_MATCHER = re.compile(
    r"[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*(.*?)[\t\n\f\r ]*",
    re.DOTALL,
)
# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip also takes \x1c-\x1f).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


class MatcherError(ValueError):
    """A matcher string that Alertmanager would also reject."""


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


class _Regex(Protocol):
    def match(self, text: str) -> object | None: ...


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: _Regex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Exactly one matcher (see `parse_line` for a line that may hold several)."""
        found = parse_line(text)
        if len(found) != 1:
            raise MatcherError(f"expected one matcher in {text!r}, found {len(found)}")
        return found[0]

    def matches(self, labels: Mapping[str, str]) -> bool:
        # As in Alertmanager, a missing label matches like an empty one.
        actual = labels.get(self.name, "")
        if self.op is Op.EQ:
            return actual == self.value
        if self.op is Op.NE:
            return actual != self.value
        assert self._regex is not None
        try:
            found = self._regex.match(actual) is not None
        except UnicodeEncodeError:
            # A lone surrogate (JSON "\ud800") is not UTF-8; Go's JSON decoder reads it as U+FFFD.
            found = self._regex.match(_SURROGATE.sub("\ufffd", actual)) is not None
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        """Alertmanager's syntax: `parse` reads it back, and so does Alertmanager."""
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


_SURROGATE = re.compile(r"[\ud800-\udfff]")
# RE2's defaults are Go's Perl-like syntax; only its own logging of bad patterns (onto stderr,
# which carries the service's JSON log) is switched off: the error comes back as MatcherError.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


def parse_line(text: str) -> tuple[Matcher, ...]:
    """A matcher line as Alertmanager's `ParseMatchers` reads it: `{a="1", b=~"2|3"}`, `a=1`.

    Stricter in one way: a line with no matcher at all (Alertmanager takes `""` or `{}` as
    matching everything) is refused, since it is surely a mistake in a routing file.
    """
    s = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside = escaped = False
    # Commas outside double quotes separate matchers; `\"` does not open or close a quote.
    for ch in s:
        if ch == ",":
            if not inside:
                tokens.append("".join(token))
                token = []
                continue
        elif ch == '"':
            if escaped:
                escaped = False
            else:
                inside = not inside
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip(_GO_SPACE)
    if last:
        tokens.append(last)
    if not tokens:
        raise MatcherError(f'no matcher in {text!r}: expected name="value"')
    if len(tokens) == 1 and tokens[0].strip(_GO_SPACE) == text.strip(_GO_SPACE):
        return (_parse_one(tokens[0]),)
    out = []
    for t in tokens:
        try:
            out.append(_parse_one(t))
        except MatcherError as e:
            raise MatcherError(f"{e} (in {text!r})") from None
    return tuple(out)


def _parse_one(text: str) -> Matcher:
    m = _MATCHER.fullmatch(text)
    if m is None:
        raise MatcherError(f'bad matcher {text!r}: expected name="value" with one of = != =~ !~')
    name, op, raw = m[1], Op(m[2]), m[3]
    if _SURROGATE.search(raw):
        raise MatcherError(f"matcher value not valid UTF-8: {text!r}")
    value = _unescape(raw, text)
    regex = None
    if op in (Op.RE, Op.NRE):
        problem = _go_refuses(value)
        if problem is not None:
            raise MatcherError(f"bad regex in matcher {text!r}: {problem}")
        try:
            # Alertmanager anchors every regex at both ends, the same way.
            regex = re2.compile(f"^(?:{value})$", _OPTIONS)
        except re2.error as e:
            reason = e.args[0] if e.args else "invalid"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise MatcherError(f"bad regex in matcher {text!r}: {reason}") from None
    return Matcher(name, op, value, regex)


def _unescape(raw: str, text: str) -> str:
    """The value inside optional double quotes: `\\"`, `\\\\` and `\\n` are escapes; any other
    backslash is literal; an unescaped quote may only close a quoted value."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    last = len(raw) - 1
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            out.append("\n" if ch == "n" else ch if ch in '"\\' else "\\" + ch)
        elif ch == "\\":
            if i < last:
                escaped = True
            else:
                out.append("\\")
        elif ch == '"':
            if not quoted or i < last:
                raise MatcherError(f"matcher value contains unescaped double quote: {text!r}")
            quoted = False
        else:
            out.append(ch)
    if quoted:
        raise MatcherError(f"matcher value contains unescaped double quote: {text!r}")
    return "".join(out)


def _go_refuses(pattern: str) -> str | None:
    """What Go 1.19's regexp refuses although the C++ RE2 accepts it; None if nothing."""
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        if pattern[i] == "\\":
            follower = pattern[i + 1 : i + 2]
            if follower == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                if end < 0:
                    return None  # literal to the end
                i = end + 2
                continue
            if follower == "C":
                return "invalid escape sequence: \\C (Go's regexp has no any-byte escape)"
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) >= 0:
                i = end + 2
                continue
            in_class = pattern[i] != "]"
            i += 1
            continue
        if pattern[i] == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1  # a leading ] is a literal
            continue
        if pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            return "named group (?<name>...) needs Go 1.22; write (?P<name>...)"
        i += 1
    return None


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    # Most routes and rules have none; each alert of a storm asks every one of them.
    return not matchers or all(m.matches(labels) for m in matchers)
