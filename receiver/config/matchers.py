"""Alertmanager's label matcher syntax: `name="value"`, `!=`, `=~`, `!~`, regexes fully anchored."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_MATCHER = re.compile(
    r"""^\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$"""
)


class MatcherError(ValueError):
    """A matcher string that Alertmanager would also reject."""


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if m is None:
            raise MatcherError(
                f'bad matcher {text!r}: expected name="value" with one of = != =~ !~'
            )
        raw = m["value"]
        if raw.startswith('"'):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as e:
                raise MatcherError(f"bad quoted value in matcher {text!r}: {e.msg}") from None
        else:
            value = raw
        op = Op(m["op"])
        regex = None
        if op in (Op.RE, Op.NRE):
            try:
                # Alertmanager anchors every regex at both ends.
                regex = re.compile(f"^(?:{value})$")
            except re.error as e:
                raise MatcherError(f"bad regex in matcher {text!r}: {e}") from None
        return cls(m["name"], op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        # As in Alertmanager, a missing label matches like an empty one.
        actual = labels.get(self.name, "")
        if self.op is Op.EQ:
            return actual == self.value
        if self.op is Op.NE:
            return actual != self.value
        assert self._regex is not None
        found = self._regex.match(actual) is not None
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
