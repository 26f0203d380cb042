"""Alertmanager matcher syntax, as operators already write it, evaluated with RE2.

tests/test_matchers_alertmanager.py runs these tables through a real Alertmanager as well.
"""

from __future__ import annotations

import pytest

from receiver.config.matchers import Matcher, MatcherError, matches_all, parse_line

MATCHING: tuple[tuple[str, dict[str, str], bool], ...] = (
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
    # RE2, not Python's re: `$` is the very end, and \d is ASCII
    ('severity=~"critical"', {"severity": "critical\n"}, False),
    ('code=~"\\\\d+"', {"code": "42"}, True),
    ('code=~"\\\\d+"', {"code": "\u0664\u0662"}, False),
    ('severity=~"(?i)critical"', {"severity": "CRITICAL"}, True),  # Python 3.11 refuses it
    # Alertmanager's unquoting: only \" \\ \n are escapes; other backslashes stay
    ('path="C:\\temp"', {"path": "C:\\temp"}, True),
    ('text="a\\nb"', {"text": "a\nb"}, True),
    ("text=two words", {"text": "two words"}, True),
    ("job=", {}, True),
)

BAD_MATCHERS: tuple[str, ...] = (
    'severity=="x"',
    "=x",
    '1abc="x"',
    'a=~"(unclosed"',
    'a="unterminated',
    "a~x",
    "",
    "{}",
    'a="x"y"',
    "a=~x,y",  # two matchers, and `y` is not one
    'a=~"(?!Watchdog)Kube.*"',  # RE2 has no look-around
    'a=~"(x)\\\\1"',  # nor backreferences
    'a=~"x\\\\Z"',
    'a=~"x*+"',
    'a=~"(?<name>x)"',  # C++ RE2 takes it, Go 1.19 does not
    'a=~"\\\\C"',
)


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHING)
def test_matching(text: str, labels: dict[str, str], expected: bool) -> None:
    """Each operator behaves as in Alertmanager, including missing labels and anchoring."""
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text", BAD_MATCHERS)
def test_bad_matchers_are_rejected(text: str) -> None:
    """Anything Alertmanager would refuse is a MatcherError with the text in the message."""
    with pytest.raises(MatcherError) as info:
        parse_line(text)
    assert repr(text) in str(info.value)


def test_round_trip() -> None:
    """str() gives back a matcher that parses to the same thing, escapes included."""
    for text in ('job=~"api|web"', 'msg="say \\"hi\\"\\nC:\\\\x"', 'x=~"\\\\d+ é"'):
        m = Matcher.parse(text)
        assert Matcher.parse(str(m)) == m


def test_a_line_may_hold_several_matchers() -> None:
    """`{a="1", b=~"2|3"}` is two matchers, as in Alertmanager; commas inside quotes stay."""
    found = parse_line('{team="db", env=~"prod|staging", msg="a, b"}')
    assert [str(m) for m in found] == ['team="db"', 'env=~"prod|staging"', 'msg="a, b"']
    assert matches_all(found, {"team": "db", "env": "prod", "msg": "a, b"})
    assert not matches_all(found, {"team": "db", "env": "dev", "msg": "a, b"})


def test_regex_errors_are_re2s() -> None:
    """The message is RE2's own reason, not a Python re one, and nothing is logged by RE2."""
    with pytest.raises(MatcherError, match=r"invalid perl operator: \(\?!"):
        Matcher.parse('alertname=~"(?!Watchdog)Kube.*"')


def test_label_value_that_is_not_utf8() -> None:
    """A lone surrogate (JSON "\\ud800") is matched as U+FFFD, as Go decodes it, not an error."""
    m = Matcher.parse('x=~".+"')
    assert m.matches({"x": "a\ud800"})
    assert not Matcher.parse('x=~"[a-z]+"').matches({"x": "a\ud800"})
    with pytest.raises(MatcherError, match="not valid UTF-8"):
        Matcher.parse('x="\ud800"')
