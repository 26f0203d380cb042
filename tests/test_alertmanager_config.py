"""`oncall-router alertmanager-config`: the Alertmanager tree fits the routing file (DESIGN §5).

The generated tree is checked three ways: its shape (`build()`), the real `amtool` from the
Debian package (config check and `config routes test`), and a walk of the tree with the router's
own matcher code compared with the router's own severity decision.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import re2
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from receiver.cli.alertmanager_words import SEPARATOR, SPACE, quote_meta, words_regex
from receiver.cli.commands.alertmanager_config import (
    DEFAULT_TOKEN_FILE,
    DEFAULT_URL,
    build,
    matcher,
    receiver_name,
    render,
)
from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.config.matchers import Matcher, matches_all
from receiver.config.severity import severity_word
from receiver.config.types import Config
from receiver.model import Alert, Severity, Source, Status
from receiver.routing.severity import decide_severity
from tests.helpers import ROOT, ROUTING, require_tool, shipped_config

_DURATION = re.compile(r"(\d+)(h|m|s)")
_UNIT = {"h": 3600, "m": 60, "s": 1}
# Every alias of the shipped routing.yaml, as written there (the config keeps them normalized).
SHIPPED_ALIASES = {
    Severity.CRITICAL: ["P0", "SEV-1", "SEV1", "P1 - Critical", "page", "fatal", "emergency"],
    Severity.HIGH: ["P1", "SEV-2", "SEV2", "error", "major"],
    Severity.MEDIUM: ["P2", "SEV-3", "SEV3", "warning", "minor"],
    Severity.LOW: ["P3", "P4", "SEV-4", "SEV4", "info", "debug", "none"],
}


def seconds(text: str) -> int:
    """An Alertmanager duration (`1h30m`) in seconds."""
    assert re.fullmatch(r"(\d+[hms])+", text), text
    return sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(text))


def children(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = doc["route"]["routes"]
    return routes


def walk(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A route and every route under it."""
    yield route
    for child in route.get("routes", ()):
        yield from walk(child)


def regex_body(text: str) -> str:
    """`severity=~"..."` -> the regex Alertmanager compiles (it anchors it at both ends)."""
    parsed = Matcher.parse(text)
    assert parsed.op == "=~"
    return parsed.value


def takes(regex: str, value: str) -> bool:
    """Whether Alertmanager's anchored RE2 match takes the value (the router's own matcher code,
    google-re2, compiles it as Go does)."""
    return Matcher.parse(matcher("x", "=~", regex)).matches({"x": value})


def child_for(doc: Mapping[str, Any], label: str, severity: Severity) -> dict[str, Any]:
    """The child route matching `label` against `severity`'s words."""
    canonical = severity.value
    for child in children(doc):
        parsed = [Matcher.parse(m) for m in child.get("matchers", [])]
        if any(m.name == label and m.op == "=~" and m.matches({label: canonical}) for m in parsed):
            return child
    raise AssertionError(f"no child route for {label}={canonical}")


def first_match(doc: Mapping[str, Any], labels: Mapping[str, str]) -> int:
    """Index of the child Alertmanager picks (first match, continue: false), with our matchers."""
    for i, child in enumerate(children(doc)):
        if matches_all(tuple(Matcher.parse(m) for m in child.get("matchers", [])), labels):
            return i
    raise AssertionError(f"no child route (not even the catch-all) takes {labels}")


def routing_file(tmp_path: Path, aliases: Mapping[str, list[str]], extra: str = "") -> Path:
    """A small valid routing file with these aliases."""
    lines = ["timezone: UTC", "severity:", "  labels: [severity, priority]", "  aliases:"]
    lines += [
        f"    {sev}: {yaml.safe_dump(words, default_flow_style=True).strip()}"
        for sev, words in aliases.items()
    ]
    lines += [
        "people:",
        '  alice: {phone: "+447700900101"}',
        "routes:",
        "  - name: everything",
        "    targets: [{kind: sms, person: alice}]",
        extra,
    ]
    path = tmp_path / "routing.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def amtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
    )


def check_config(doc_text: str, tmp_path: Path, name: str = "alertmanager.yml") -> None:
    path = tmp_path / name
    path.write_text(doc_text)
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr + doc_text
    assert "SUCCESS" in result.stdout


def routes_test(path: Path, labels: Mapping[str, str]) -> str:
    """The receiver(s) the real Alertmanager routing code picks for a label set."""
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={path}",
        *(matcher(k, "=", v) for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


# -- build() on the shipped routing.yaml --------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return build(shipped_config())


@pytest.mark.parametrize("label", ["severity", "priority"])
@pytest.mark.parametrize("severity", list(Severity))
def test_matchers_take_every_alias(shipped: dict[str, Any], label: str, severity: Severity) -> None:
    """Each severity's child route matches its name and every alias, however the router would
    still read it (any case, spaces, `-` and `_` anywhere), and no other severity's words."""
    child = child_for(shipped, label, severity)
    body = next(regex_body(m) for m in child["matchers"] if m.startswith(f"{label}=~"))
    for word in [severity.value, *SHIPPED_ALIASES[severity]]:
        spaced = " - ".join(word)
        for variant in (word, word.upper(), word.swapcase(), f" {word}\t", spaced, "_".join(word)):
            assert takes(body, variant), (body, variant)
    for other, words in SHIPPED_ALIASES.items():
        if other is not severity:
            for word in [other.value, *words]:
                assert not takes(body, word), (body, word)
    assert child["continue"] is False
    assert child["receiver"] == f"oncall-router/{severity.value}"


def test_second_label_needs_the_first_blank(shipped: dict[str, Any]) -> None:
    """The router reads `priority` only when `severity` is empty or whitespace (it strips
    values), so does the tree."""
    child = child_for(shipped, "priority", Severity.CRITICAL)
    blank = Matcher.parse(child["matchers"][0])
    assert blank.name == "severity"
    for value in ("", " ", "\t\n", "\u00a0\u3000"):
        assert blank.matches({"severity": value}), value
    for value in ("-", "_", "P0", " x "):
        assert not blank.matches({"severity": value}), value


def test_severity_rules_come_first(shipped: dict[str, Any]) -> None:
    """severity.rules decide before labels do, in the router and in the tree. The shipped rule
    for Watchdog is left out: the dead man's switch before it takes every Watchdog alert."""
    heartbeat, second = children(shipped)[:2]
    assert heartbeat["matchers"] == ['alertname="Watchdog"']
    assert heartbeat["receiver"] == "oncall-router"
    assert (heartbeat["repeat_interval"], heartbeat["group_interval"]) == ("4m", "1m")
    assert "active_time_intervals" not in heartbeat  # the switch must beat at night too
    assert second["matchers"] == ['alertname=~"KubeAPIDown|EtcdNoLeader"']
    assert second["receiver"] == "oncall-router/critical"
    watchdog = [c for c in children(shipped) if 'alertname="Watchdog"' in c.get("matchers", [])]
    assert watchdog == [heartbeat]
    # The rule's severity decides the timers, not the alert's severity label.
    assert (
        second["repeat_interval"]
        == child_for(shipped, "severity", Severity.CRITICAL)["repeat_interval"]
    )


@pytest.mark.parametrize(
    ("severity", "smallest_gap"),
    [(Severity.CRITICAL, 15 * 60), (Severity.HIGH, 3600)],
)
def test_paging_repeat_fits_the_ladder(
    shipped: dict[str, Any], severity: Severity, smallest_gap: int
) -> None:
    """A paging route is re-sent at most a third of its smallest step gap apart, so every
    ladder step is reached that late at worst. Alertmanager re-sends every repeat_interval +
    group_interval (measured in test_e2e_escalation), hence the sum."""
    child = child_for(shipped, "severity", severity)
    repeat, interval = seconds(child["repeat_interval"]), seconds(child["group_interval"])
    assert interval == 60
    assert repeat + interval == smallest_gap / 3
    assert repeat >= 60
    assert repeat % interval == 0
    assert 10 <= seconds(child["group_wait"]) <= 30


@pytest.mark.parametrize("severity", [Severity.MEDIUM, Severity.LOW])
def test_low_urgency_is_batched(shipped: dict[str, Any], severity: Severity) -> None:
    """Medium and low are batched hourly and re-sent rarely."""
    child = child_for(shipped, "severity", severity)
    assert seconds(child["group_interval"]) == 3600
    assert seconds(child["repeat_interval"]) >= 4 * 3600


def test_business_hours_become_time_intervals(shipped: dict[str, Any]) -> None:
    """time_windows -> time_intervals in the window's zone; holidays are a second interval."""
    intervals = {entry["name"]: entry["time_intervals"] for entry in shipped["time_intervals"]}
    assert intervals["business-hours"] == [
        {
            "weekdays": ["monday:friday"],
            "times": [{"start_time": "09:00", "end_time": "17:00"}],
            "location": "Europe/London",
        }
    ]
    holidays = {
        (d["years"][0], d["months"][0], d["days_of_month"][0], d["location"])
        for d in intervals["business-hours-holidays"]
    }
    assert holidays == {
        ("2026", "december", "25", "Europe/London"),
        ("2026", "december", "28", "Europe/London"),
        ("2027", "january", "1", "Europe/London"),
    }


def test_only_windowed_routes_are_gated(shipped: dict[str, Any]) -> None:
    """low-urgency (medium, low) has `window: business-hours`; critical and high page 24/7."""
    for severity in Severity:
        child = child_for(shipped, "severity", severity)
        if severity in (Severity.MEDIUM, Severity.LOW):
            assert child["active_time_intervals"] == ["business-hours"]
            assert child["mute_time_intervals"] == ["business-hours-holidays"]
        else:
            assert "active_time_intervals" not in child
            assert "mute_time_intervals" not in child


def test_catch_all_takes_unknown_severity(shipped: dict[str, Any]) -> None:
    """The last child has no matchers and the timers of severity.default (high)."""
    last = children(shipped)[-1]
    assert "matchers" not in last
    high = child_for(shipped, "severity", Severity.HIGH)
    timers = ("group_wait", "group_interval", "repeat_interval")
    assert {k: last[k] for k in timers} == {k: high[k] for k in timers}
    assert (
        first_match(shipped, {"alertname": "X", "severity": "bogus"}) == len(children(shipped)) - 1
    )
    assert first_match(shipped, {"alertname": "X"}) == len(children(shipped)) - 1


def test_receiver(shipped: dict[str, Any]) -> None:
    """One webhook under a name per severity: resolved notices on, a bounded body, a bearer
    token from a file. Every route's receiver is declared, and only those are."""
    assert shipped["route"]["receiver"] == "oncall-router"
    names = [r["name"] for r in shipped["receivers"]]
    assert names == ["oncall-router", *(f"oncall-router/{s.value}" for s in Severity)]
    for receiver in shipped["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        assert webhook == {
            "url": DEFAULT_URL,
            "send_resolved": True,
            "max_alerts": 204,
            "http_config": {
                "authorization": {"type": "Bearer", "credentials_file": DEFAULT_TOKEN_FILE}
            },
        }
    assert {c["receiver"] for c in walk(shipped["route"])} == set(names)


def test_rendered_yaml_is_build_plus_comments() -> None:
    """The comments never change the data: the printed YAML loads back to `build()`."""
    config = shipped_config()
    text = render(config, "https://router.example/webhooks/alertmanager", "/run/token")
    assert yaml.safe_load(text) == build(
        config, "https://router.example/webhooks/alertmanager", "/run/token"
    )
    assert text.startswith("# Alertmanager route, receiver and time intervals for oncall-router.")
    assert "oncall-router alertmanager-config --config" in text


@settings(max_examples=200, deadline=None)
@given(
    severity=st.one_of(
        st.none(),
        st.sampled_from(
            [w for ws in SHIPPED_ALIASES.values() for w in ws] + ["high", "x", "", " P0"]
        ),
    ),
    priority=st.one_of(
        st.none(), st.sampled_from(["P0", "p1", "Sev-3", "info", "nope", "", " ", "-"])
    ),
    alertname=st.sampled_from(["Watchdog", "KubeAPIDown", "EtcdNoLeader", "HighErrorRate"]),
    case=st.sampled_from(
        [
            str.lower,
            str.upper,
            str.title,
            lambda s: f" {s}\u00a0",
            lambda s: s.replace("-", " _ "),
            lambda s: "-".join(s),
        ]
    ),
)
def test_tree_agrees_with_the_router(
    severity: str | None, priority: str | None, alertname: str, case: Callable[[str], str]
) -> None:
    """For any labels, the child Alertmanager picks sends to the receiver of the severity the
    router decides and carries that severity's timers."""
    config, doc = _shipped_pair()
    labels = {"alertname": alertname}
    if severity is not None:
        labels["severity"] = case(severity)
    if priority is not None:
        labels["priority"] = case(priority)
    decided = decide_severity(config, _alert(labels)).severity
    picked = children(doc)[first_match(doc, labels)]
    if alertname == "Watchdog":
        assert picked == children(doc)[0]  # the dead man's switch route, whatever its severity
        return
    assert picked["receiver"] == receiver_name(config, decided), labels
    expected = child_for(doc, "severity", decided)
    keys = ("group_wait", "group_interval", "repeat_interval", "active_time_intervals")
    assert {k: picked.get(k) for k in keys} == {k: expected.get(k) for k in keys}, labels


@functools.cache
def _shipped_pair() -> tuple[Config, dict[str, Any]]:
    config = shipped_config()
    return config, build(config)


def _alert(labels: Mapping[str, str]) -> Alert:
    return Alert(
        source=Source.ALERTMANAGER,
        status=Status.FIRING,
        labels=labels,
        annotations={},
        starts_at=datetime(2026, 3, 16, 9, 0, tzinfo=UTC),
        fingerprint="0" * 16,
    )


# -- the command ------------------------------------------------------------------------------


def test_command_prints_build(capsys: pytest.CaptureFixture[str]) -> None:
    """The subcommand prints `build()` for the file, with --url and --token-file applied."""
    url, token = "http://10.0.0.7:9095/webhooks/alertmanager", "/var/run/secrets/am/token"
    code = main(
        ["alertmanager-config", "--config", str(ROUTING), "--url", url, "--token-file", token]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert yaml.safe_load(out) == build(shipped_config(), url, token)
    assert f"Generated from {ROUTING}" in out
    assert f"--url {url} --token-file {token}" in out


def test_command_refuses_a_url_without_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    """Alertmanager 0.25 refuses a webhook URL without http(s)://; say so before it does."""
    code = main(["alertmanager-config", "--config", str(ROUTING), "--url", "oncall-router:9095"])
    assert code == 2
    assert "--url 'oncall-router:9095'" in capsys.readouterr().err


def test_short_ladder_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ladder step shorter than a minute cannot be honoured by Alertmanager: say so."""
    path = routing_file(
        tmp_path,
        {"critical": ["P0"]},
        "    escalation: [{after: 30s, targets: [{kind: sms, person: alice}]}]",
    )
    assert main(["alertmanager-config", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning: critical: a ladder gap of 30s is shorter than" in captured.err
    assert "# WARNING: critical: a ladder gap of 30s" in captured.out


MIXED_WINDOWS = "\n".join(
    [
        "    severity: [critical, high, medium]",
        "  - name: low-a",
        "    severity: [low]",
        "    matchers: ['team=\"a\"']",
        "    window: office",
        "    targets: [{kind: sms, person: alice}]",
        "  - name: low-b",
        "    severity: [low]",
        "    window: night",
        "    targets: [{kind: sms, person: alice}]",
        "time_windows:",
        "  office: {weekdays: [monday-wednesday, friday, sunday], hours: '09:00-17:00'}",
        "  night: {hours: '20:00-24:00', timezone: America/New_York, holidays: [2026-07-04]}",
    ]
)


def test_mixed_windows_are_left_to_the_router(tmp_path: Path) -> None:
    """Two routes with different windows for one severity: Alertmanager cannot express
    "A's hours or B's", so that severity is not gated in the tree (the router gates it)."""
    doc = build(load_config(routing_file(tmp_path, {}, MIXED_WINDOWS), {}))
    low = child_for(doc, "severity", Severity.LOW)
    assert "active_time_intervals" not in low
    intervals = {entry["name"]: entry["time_intervals"] for entry in doc["time_intervals"]}
    assert intervals["office"][0]["weekdays"] == ["monday:wednesday", "friday", "sunday"]
    assert intervals["night"] == [
        {
            "weekdays": ["monday:friday"],  # the routing file's default weekdays
            "times": [{"start_time": "20:00", "end_time": "24:00"}],
            "location": "America/New_York",
        }
    ]
    assert intervals["night-holidays"][0]["months"] == ["july"]


# -- the real amtool ---------------------------------------------------------------------------


def test_amtool_accepts_the_shipped_config(tmp_path: Path) -> None:
    """The printed YAML, alone and completed with a `global:` section, passes amtool 0.25."""
    printed = subprocess.run(
        [sys.executable, "-m", "receiver", "alertmanager-config", "--config", str(ROUTING)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout
    check_config(printed, tmp_path, "alone.yml")
    check_config("global:\n  resolve_timeout: 5m\n" + printed, tmp_path, "with-global.yml")


def test_amtool_accepts_other_windows(tmp_path: Path) -> None:
    """Split weekdays, a span to 24:00, another zone and holidays: amtool accepts them."""
    check_config(render(load_config(routing_file(tmp_path, {}, MIXED_WINDOWS), {})), tmp_path)


TRICKY = {
    "critical": ["P1 - Critical", "sev.1", "c++", "(urgent)", "a|b", "[x]", "^up$", 'say "hi"'],
    "high": ["P1", "back\\slash", "50%", "{2}", "ÉLEVÉ", "x?", "Straße"],
    "medium": ["p2 (minor)", "*", "fire"],
    "low": ["p3.", "$", "İ"],
}
# Values the router reads as a word above however spelled: case, separators, Unicode spaces,
# characters that fold to several letters (ß, ẞ to ss; the ligature ﬁ to fi; İ to i and a dot).
SPELLINGS = [
    " P1 - CRITICAL ",
    "p1\u00a0critical",
    "P1_-_critical\u3000",
    "\x1cp1critical\x85",
    "s e v . 1",
    "C + +",
    "( URGENT )",
    "-50%-",
    "élevé",
    "Élevé",
    "STRASSE",
    "strasse",
    "STRAẞE",
    "stra-sse",
    "ﬁre",
    "FIRE",
    "i\u0307",
    "I\u0307",
    "P-3.",
    "$ ",
]
# Strings an unescaped or too loose alias regex would wrongly take, with the severity the
# router gives them.
NEAR_MISSES = [
    "p1 - criticalx",
    "sevx1",
    "c",
    "cc",
    "urgent",
    "a",
    "b",
    "x",
    "up",
    "say hi",
    "backslash",
    "back\\\\slash",
    "5",
    "xx",
    "",
    "p2 minor",
    "p3x",
    "anything",
    "-",
    " _ ",
    "stras",
    "straß",
    "ﬁ",
    "i",
    "İİ",
    "p1.critical",
]


def test_tricky_aliases_pass_amtool_and_match_exactly(tmp_path: Path) -> None:
    """Aliases with spaces, dots, +, parentheses, |, brackets, anchors, quotes, backslashes and
    letters that fold to several: amtool accepts the tree, and the real Alertmanager routing
    (amtool config routes test) and RE2 on the regex body both take exactly the values the
    router maps there, however they are spelled."""
    config = load_config(routing_file(tmp_path, TRICKY), {})
    doc = build(config)
    check_config(render(config), tmp_path)

    # A copy with one receiver per child tells which child Alertmanager picked.
    labelled = build(config)
    for i, child in enumerate(children(labelled)):
        child["receiver"] = f"child-{i}"
    labelled["receivers"] += [{"name": f"child-{i}"} for i in range(len(children(labelled)))]
    probe = tmp_path / "probe.yml"
    probe.write_text(yaml.safe_dump(labelled, allow_unicode=True))

    words = [w for ws in TRICKY.values() for w in ws]
    for value in [*words, *(w.upper() for w in words), *SPELLINGS, *NEAR_MISSES]:
        decided = decide_severity(config, _alert({"severity": value}))
        expected = (
            len(children(doc)) - 1
            if decided.defaulted
            else children(doc).index(child_for(doc, "severity", decided.severity))
        )
        assert first_match(doc, {"severity": value}) == expected, value
        assert routes_test(probe, {"severity": value}) == f"child-{expected}", value
        body = regex_body(child_for(doc, "severity", decided.severity)["matchers"][0])
        assert takes(body, value) is not decided.defaulted, (body, value)
    # The spellings really are the words (a typo here would make the test vacuous).
    assert all(not decide_severity(config, _alert({"severity": v})).defaulted for v in SPELLINGS)


# -- severity words as the router reads them -------------------------------------------------


def test_separators_and_case_are_pythons() -> None:
    """Across all of Unicode: SEPARATOR takes exactly what `severity_word` drops, SPACE what
    `str.strip` strips; `(?i)` takes exactly the characters that casefold to a word's letter,
    and a character that folds to several letters is taken where those letters stand."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    assert set(re2.findall(SEPARATOR, every)) == {c for c in every if not severity_word(c)}
    assert set(re2.findall(SPACE, every)) == {c for c in every if c.isspace()}
    cased = [c for c in every if c.casefold() != c or c.upper() != c or c.lower() != c]
    letters = {c.casefold() for c in cased if len(c.casefold()) == 1}
    for letter in letters:
        found = set(re2.findall(f"(?i:{quote_meta(letter)})", "".join(cased) + letter))
        assert found == {c for c in [*cased, letter] if c.casefold() == letter}, letter
    for c in (c for c in cased if len(c.casefold()) > 1):
        word = Matcher.parse(matcher("x", "=~", words_regex([severity_word(c)])))
        assert word.matches({"x": c}), c
        assert [x for x in cased if word.matches({"x": x})] == [
            x for x in cased if x.casefold() == c.casefold()
        ], c


# Letters with several foldings, separators of each kind, metacharacters.
_ALPHABET = "aAsSßẞ\u017ffFﬁﬀﬃiIİ\u0131\u0307kK\u212a1.+|( -_\t\u00a0\u2028\x1c"
_SPELL: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [str, str.upper, str.lower, str.casefold, str.title]
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_words_regex_takes_exactly_the_words(data: st.DataObject) -> None:
    """A value matches the regex of some words exactly when its `severity_word` is one of them,
    for words and values of letters that fold oddly, separators and metacharacters."""
    words = data.draw(st.lists(st.text(_ALPHABET, min_size=1, max_size=6), min_size=1, max_size=3))
    keys = sorted({severity_word(w) for w in words} - {""})
    assume(keys)
    # Mostly a word respelled (each letter in some case, separators between), sometimes spoilt.
    base = data.draw(st.sampled_from(words))
    seps = st.sampled_from(["", "", " ", "-", "_\u00a0", "\u3000"])
    value = "".join(data.draw(_SPELL)(c) + data.draw(seps) for c in base)
    value += data.draw(st.text(_ALPHABET, max_size=2))
    assert takes(words_regex(keys), value) is (severity_word(value) in keys), (keys, value)


# -- teams -------------------------------------------------------------------------------------

TEAMS = """\
timezone: Europe/London
people:
  alice: {phone: "+447700900101"}
time_windows:
  office: {weekdays: monday-friday, hours: "09:00-17:00"}
default_team: platform
teams:
  profile:
    matchers: ['team="profile"']
    group_by: [alertname, team]
    severity:
      aliases: {critical: [P1, Critical], high: [P2, Warning], medium: [P3], low: [P4, Info]}
    time_windows:
      business-hours: {weekdays: monday-friday, hours: "10:00-18:00", holidays: [2027-01-01]}
    routes:
      - {name: critical, severity: [critical], targets: [{kind: call, person: alice}]}
      - {name: rest, window: business-hours, targets: [{kind: sms, person: alice}]}
  madplan:
    matchers: ['service=~"madplan-.*"']
    severity:
      labels: [priority, severity]
      aliases:
        critical: ["P0 - Critical (Sev 1)", P0, Sev 1]
        high: ["P1 - High (Sev 2)", P1, Sev 2]
        medium: ["P2 - Medium (Sev 3)", P2]
        low: ["P3 - Low (Sev 4)", P3]
      rules:
        - {matchers: ['alertname="Watchdog"'], severity: low}
        - {matchers: ['alertname="DiskFull"'], severity: critical}
        - {matchers: ['alertname="DiskFull"', 'env="prod"'], severity: high}
    time_windows:
      business-hours: {weekdays: monday-friday, hours: "08:00-16:00", timezone: Europe/Berlin}
    routes:
      - {name: all, window: business-hours, targets: [{kind: sms, person: alice}]}
  platform:
    routes:
      - {name: all, window: office, targets: [{kind: sms, person: alice}]}
"""
# Labels that put an alert in each team.
TEAM_LABELS = {
    "profile": {"team": "profile"},
    "madplan": {"service": "madplan-api"},
    "platform": {},
}


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    """The teams file and its Alertmanager config, which amtool accepts."""
    path = tmp_path_factory.mktemp("teams") / "routing.yaml"
    path.write_text(TEAMS)
    config = load_config(path, {})
    text = render(config)
    assert yaml.safe_load(text) == build(config)
    check_config(text, path.parent)
    return config, path.parent / "alertmanager.yml"


def landing(config: Config, labels: Mapping[str, str]) -> str:
    """The receiver the router's own decision names: the alert's team, then its severity."""
    team = config.team_for(labels)
    return receiver_name(team, decide_severity(team, _alert(labels)).severity)


def test_teams_get_a_subtree_each(teams: tuple[Config, Path]) -> None:
    """The switch, then one route per team in file order with its matchers and group_by, the
    default team last without matchers; each team's routes send to its own receivers."""
    config, _ = teams
    doc = build(config)
    heartbeat, profile, madplan, platform = children(doc)
    assert heartbeat["matchers"] == ['alertname="Watchdog"']
    assert profile["matchers"] == ['team="profile"']
    assert profile["group_by"] == ["alertname", "team"]
    assert madplan["matchers"] == ['service=~"madplan-.*"']
    assert madplan["group_by"] == platform["group_by"] == ["alertname", "cluster", "service"]
    assert "matchers" not in platform
    for name, team in (("profile", profile), ("madplan", madplan), ("platform", platform)):
        assert team["continue"] is False
        assert all(r["receiver"].startswith(f"oncall-router/{name}/") for r in walk(team))
        assert "matchers" not in team["routes"][-1]  # its catch-all
    # Each team's own window is its own interval; the file's is shared under its name.
    intervals = {entry["name"] for entry in doc["time_intervals"]}
    assert intervals == {
        "office",
        "profile/business-hours",
        "profile/business-hours-holidays",
        "madplan/business-hours",
    }
    assert profile["routes"][1]["active_time_intervals"] == ["profile/business-hours"]
    assert platform["routes"][0]["active_time_intervals"] == ["office"]


def test_a_route_never_reached_is_left_out(teams: tuple[Config, Path]) -> None:
    """madplan's rule for Watchdog comes after the switch, its DiskFull-in-prod rule after its
    DiskFull rule: Alertmanager never reaches them, so they are left out, and the comments
    say so."""
    config, _ = teams
    madplan = children(build(config))[2]
    rules = [r["matchers"] for r in madplan["routes"] if "alertname" in str(r.get("matchers"))]
    assert rules == [['alertname="DiskFull"']]
    assert render(config).count("left out, never reached") == 2


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"team": "profile", "severity": "P1"}, "oncall-router/profile/critical"),
        ({"service": "madplan-api", "severity": "P1"}, "oncall-router/madplan/high"),
        ({"service": "madplan-api", "priority": "p0 - critical (SEV-1)"}, "madplan/critical"),
        ({"service": "madplan-api", "priority": " ", "severity": "Sev_1"}, "madplan/critical"),
        ({"service": "madplan-api", "alertname": "DiskFull", "env": "prod"}, "madplan/critical"),
        ({"team": "profile", "severity": " warning "}, "oncall-router/profile/high"),
        ({"severity": "P1"}, "oncall-router/platform/high"),
        ({"severity": "Critical", "alertname": "Disk"}, "oncall-router/platform/critical"),
        ({"team": "profile", "alertname": "Watchdog", "severity": "P1"}, "oncall-router"),
    ],
)
def test_amtool_lands_each_team_in_its_subtree(
    teams: tuple[Config, Path], labels: dict[str, str], receiver: str
) -> None:
    """`amtool config routes test` names the team and severity the router decides: P1 is
    critical for profile, high for madplan; an alert of no team is the default team's."""
    config, am = teams
    expected = receiver if receiver.startswith("oncall-router") else f"oncall-router/{receiver}"
    assert routes_test(am, labels) == expected
    if labels.get("alertname") != "Watchdog":
        assert landing(config, labels) == expected


def test_amtool_lands_every_word_of_every_team(teams: tuple[Config, Path]) -> None:
    """Every word each team writes, in each of its severity labels (earlier ones blank) and
    respelled, lands where the router's own decision says."""
    config, am = teams
    for team in config.teams:
        words = [team.severity.words.get(k, k) for k in team.severity.aliases]
        for i, label in enumerate(team.severity.labels):
            for word in words:
                for spelling in (word, f" {word.upper().replace(' ', '_')} "):
                    labels = {
                        **TEAM_LABELS[team.team],
                        **dict.fromkeys(team.severity.labels[:i], " "),
                        label: spelling,
                    }
                    assert routes_test(am, labels) == landing(config, labels), labels


@pytest.mark.parametrize("source", ["shipped", "teams"])
def test_no_route_repeats_an_earlier_sibling(
    source: str, shipped: dict[str, Any], teams: tuple[Config, Path]
) -> None:
    """Nowhere in the tree does a route hold all the matchers of an earlier sibling (which
    would take all its alerts first), so no two siblings have the same matchers."""
    doc = shipped if source == "shipped" else build(teams[0])
    for route in walk(doc["route"]):
        sets = [frozenset(c.get("matchers", ())) for c in route.get("routes", ())]
        for i, later in enumerate(sets):
            assert not any(earlier <= later for earlier in sets[:i]), (route["receiver"], later)
