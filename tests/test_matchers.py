"""Alertmanager matcher syntax, as operators already write it."""

from __future__ import annotations

import pytest

from receiver.config.matchers import Matcher, MatcherError


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "Critical"}, False),
        ("severity=critical", {"severity": "critical"}, True),
        ('team!="platform"', {"team": "payments"}, True),
        ('team!="platform"', {}, True),
        ('team=""', {}, True),
        ('severity=~"crit.*|page"', {"severity": "critical"}, True),
        ('severity=~"crit"', {"severity": "critical"}, False),  # anchored at both ends
        ('severity=~"crit"', {"severity": "xcrit"}, False),
        ('env!~"dev|staging"', {"env": "prod"}, True),
        ('env!~"dev|staging"', {"env": "dev"}, False),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
        (' alertname = "A" ', {"alertname": "A"}, True),
    ],
)
def test_matching(text: str, labels: dict[str, str], expected: bool) -> None:
    """Each operator behaves as in Alertmanager, including missing labels and anchoring."""
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    "text",
    ['severity=="x"', "=x", '1abc="x"', 'a=~"(unclosed"', 'a="unterminated', "a~x", ""],
)
def test_bad_matchers_are_rejected(text: str) -> None:
    """Anything Alertmanager would refuse is a MatcherError with the text in the message."""
    with pytest.raises(MatcherError):
        Matcher.parse(text)


def test_round_trip() -> None:
    """str() gives back a matcher that parses to the same thing."""
    m = Matcher.parse('job=~"api|web"')
    assert Matcher.parse(str(m)) == m
