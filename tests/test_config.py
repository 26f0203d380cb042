"""The routing file: the shipped one is valid, and every mistake is reported with its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from receiver.config.load import load_config
from receiver.config.yaml_file import ConfigError
from receiver.model import Channel, Severity
from tests.helpers import ROUTING

MINIMAL = """\
people:
  alice: {phone: "+447700900101", email: alice@example.com}
rotations:
  primary: {members: [alice]}
slack:
  alerts: {channel: C0ALERTS}
routes:
  - name: all
    targets:
      - {kind: slack, channel: alerts}
      - {kind: sms, rotation: primary}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, environ: dict[str, str] | None = None, **kw: bool) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {}, **kw)
    return [str(p) for p in info.value.problems]


def test_shipped_routing_file_expresses_the_policy() -> None:
    """The shipped file loads and routes each severity to the channels DESIGN §1 asks for."""
    config = load_config(ROUTING, {})
    by_name = {r.name: r for r in config.routes}
    critical = {(t.kind, t.ref_kind, t.ref) for t in by_name["critical"].targets}
    assert critical == {
        (Channel.SLACK, "channel", "incidents"),
        (Channel.SMS, "rotation", "primary"),
        (Channel.CALL, "rotation", "primary"),
        (Channel.EMAIL, "group", "team-leads"),
    }
    assert by_name["high"].severities == {Severity.HIGH}
    assert by_name["low-urgency"].severities == {Severity.MEDIUM, Severity.LOW}
    assert config.severity.default is Severity.HIGH
    assert config.severity.aliases["p0"] is Severity.CRITICAL
    assert config.severity.aliases["p1critical"] is Severity.CRITICAL
    assert config.severity.aliases["p1"] is Severity.HIGH


def test_minimal_file_loads(tmp_path: Path) -> None:
    """Everything except people, a route and its target has a default."""
    config = load_config(write(tmp_path, MINIMAL), {})
    assert [r.name for r in config.routes] == ["all"]
    assert config.delivery.deadline == 10.0
    assert config.delivery.rate_limits[Channel.SLACK] == 1.0
    assert config.limits.max_body_bytes == 1024 * 1024
    assert config.acknowledgement.expires_after[Severity.CRITICAL] == 30 * 60
    assert config.acknowledgement.links_valid_for == 12 * 3600
    assert (config.delivery.call_timeout, config.delivery.call_retry_after) == (30.0, 120.0)


def test_call_ring_and_retry_settings(tmp_path: Path) -> None:
    """`delivery.call_timeout` (Twilio's ring Timeout) and `delivery.call_retry_after` (the
    second call to a page call nobody answered; 0s: none)."""
    text = MINIMAL + "delivery: {call_timeout: 45s, call_retry_after: 5m}\n"
    delivery = load_config(write(tmp_path, text), {}).delivery
    assert (delivery.call_timeout, delivery.call_retry_after) == (45.0, 300.0)
    text = MINIMAL + "delivery: {call_retry_after: 0s}\n"
    assert load_config(write(tmp_path, text), {}).delivery.call_retry_after == 0.0


def test_acknowledgement_settings(tmp_path: Path) -> None:
    text = "acknowledgement: {expires_after: {critical: 15m}, silence_for: 2h}\n"
    ack = load_config(write(tmp_path, MINIMAL + text), {}).acknowledgement
    assert ack.expires_after[Severity.CRITICAL] == 900
    assert ack.expires_after[Severity.HIGH] == 3600  # the others keep their defaults
    assert ack.silence_for == 7200


def test_three_mistakes_all_reported_with_lines(tmp_path: Path) -> None:
    """A typo'd key, a bad matcher and an unknown person are reported together, each located."""
    path = write(
        tmp_path,
        """\
        people:
          alice: {phone: "+447700900101"}
        rotations:
          primary: {members: [alice, zoe]}
        routes:
          - name: all
            contiue: true
            matchers: ['team=~"(unclosed"']
            targets:
              - {kind: sms, rotation: primary}
        """,
    )
    found = problems(path)
    assert f"{path}:4: rotations.primary.members[1]: unknown person 'zoe'" in found
    assert f"{path}:7: routes[0].contiue: unknown key (did you mean 'continue'?)" in found
    assert any(p.startswith(f"{path}:8: routes[0].matchers[0]: bad regex") for p in found)
    assert len(found) == 3


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("timezone: Mars/Olympus\n", "timezone: unknown time zone 'Mars/Olympus'"),
        ("severity: {default: urgent}\n", "severity.default: unknown severity 'urgent'"),
        ("severity: {aliases: {critical: [P1], high: [p1]}}\n", "alias 'p1' already means"),
        ("severity: {rules: [{matchers: ['x=\"y\"'], severity: huge}]}\n", "unknown severity"),
        ("severity: {rules: [{severity: low}]}\n", "a rule needs at least one matcher"),
        ("severity: {aliases: {urgent: [x]}}\n", "severity.aliases.urgent: unknown key"),
        ("sentry: {issues: {created: maybe}}\n", "expected firing, resolved or skip"),
        ("delivery: {deadline: soon}\n", "delivery.deadline: bad duration 'soon'"),
        ("delivery: {deadline: 0s}\n", "delivery.deadline: must be more than 0"),
        ("delivery: {rate_limits: {fax: 1s}}\n", "delivery.rate_limits.fax: unknown key"),
        ("delivery: {attempts: 0}\n", "delivery.attempts: expected a number >= 1"),
        ("delivery: {call_timeout: 0s}\n", "delivery.call_timeout: must be more than 0"),
        ("delivery: {call_timeout: 11m}\n", "delivery.call_timeout: must be whole seconds"),
        ("delivery: {call_timeout: 1500ms}\n", "delivery.call_timeout: must be whole seconds"),
        ("delivery: {call_retry_after: later}\n", "delivery.call_retry_after: bad duration"),
        ("limits: {max_body_bytes: 10}\n", "expected a number >= 1024"),
        ("groups: {leads: [nobody]}\n", "groups.leads[0]: unknown person 'nobody'"),
        ("slack: {ops: {}}\n", "give channel (Web API) or webhook_url"),
        ("slack: {ops: {channel: C1, webhook_url: 'https://x'}}\n", "not both"),
        ("Slack: {}\n", "Slack: unknown key (did you mean 'slack'?)"),
        (
            "acknowledgement: {expires_after: {critical: 0s}}\n",
            "acknowledgement.expires_after.critical: must be more than 0",
        ),
        ("acknowledgement: {expires_after: {p1: 1h}}\n", "expires_after.p1: unknown key"),
        ("acknowledgement: {links_valid_for: forever}\n", "bad duration 'forever'"),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, snippet: str, expected: str) -> None:
    """One wrong setting gives one message that says what is wrong."""
    found = problems(write(tmp_path, MINIMAL + snippet))
    assert any(expected in p for p in found), found


def test_people_contacts_are_validated(tmp_path: Path) -> None:
    """Phone numbers must be E.164 and emails addresses, reported at their own lines."""
    path = write(
        tmp_path,
        MINIMAL.replace('"+447700900101"', '"07700 900101"').replace(
            "alice@example.com", "alice-at-example"
        ),
    )
    found = problems(path)
    assert any(":2: people.alice.phone: '07700 900101' is not an E.164" in p for p in found)
    assert any(":2: people.alice.email: 'alice-at-example' is not an email" in p for p in found)


def test_targets_must_reach_someone(tmp_path: Path) -> None:
    """A target naming nothing known, or a person without the needed contact, is an error."""
    path = write(
        tmp_path,
        """\
        people:
          bob: {email: bob@example.com}
        slack:
          ops: {channel: C1}
        routes:
          - name: all
            targets:
              - {kind: sms, person: bob}
              - {kind: email, group: leads}
              - {kind: email, channel: ops}
              - {kind: pager, person: bob}
              - {kind: slack, person: bob, channel: ops}
        """,
    )
    found = problems(path)
    assert any("targets[0].person: bob has no phone" in p for p in found)
    assert any("targets[1].group: unknown group 'leads'" in p for p in found)
    assert any("a Slack channel cannot receive email" in p for p in found)
    assert any("unknown target kind 'pager'" in p for p in found)
    assert any("name exactly one of person, group, rotation or channel" in p for p in found)


def test_unrouted_severity_is_an_error(tmp_path: Path) -> None:
    """If some severity has no route without matchers, alerts could be dropped: refuse."""
    path = write(
        tmp_path,
        MINIMAL.replace("  - name: all\n", "  - name: all\n    severity: [critical, high]\n"),
    )
    found = problems(path)
    assert any("no route without matchers takes medium alerts" in p for p in found)
    assert any("no route without matchers takes low alerts" in p for p in found)


def test_yaml_syntax_and_duplicate_keys(tmp_path: Path) -> None:
    """Broken YAML is one located message; a duplicated key is caught, not silently merged."""
    assert problems(write(tmp_path, "routes: [\n"))[0].startswith(f"{tmp_path}/routing.yaml:2:")
    dup = MINIMAL + "people: {}\n"
    assert any("people: duplicate key" in p for p in problems(write(tmp_path, dup)))


def test_secret_references(tmp_path: Path) -> None:
    """${ENV} and *_file fill secrets; unset ones warn in check/dry-run and fail for serve."""
    secret_file = tmp_path / "url"
    secret_file.write_text("https://hooks.slack.com/services/T0/B0/file-secret\n")
    text = MINIMAL.replace(
        "alerts: {channel: C0ALERTS}",
        f"alerts: {{webhook_url: '${{ALERTS_URL}}'}}\n  ops: {{webhook_url_file: {secret_file}}}",
    ).replace("channel: alerts}", "channel: alerts}\n      - {kind: slack, channel: ops}")
    path = write(tmp_path, text)
    env = {"ALERTS_URL": "https://hooks.slack.com/services/T0/B0/env-secret"}
    config = load_config(path, env, secrets_required=True)
    assert config.slack["alerts"].webhook_url == env["ALERTS_URL"]
    assert config.slack["ops"].webhook_url == "https://hooks.slack.com/services/T0/B0/file-secret"
    assert env["ALERTS_URL"] in config.secrets
    assert "file-secret" not in repr(config.slack["ops"])

    relaxed = load_config(path, {})
    assert [w.message for w in relaxed.warnings] == ["environment variable ALERTS_URL is not set"]
    found = problems(path, {}, secrets_required=True)
    assert found == [
        f"{path}:6: slack.alerts.webhook_url: environment variable ALERTS_URL is not set"
    ]


def test_config_is_frozen() -> None:
    """Config objects cannot be changed after loading (a reload swaps them whole)."""
    config = load_config(ROUTING, {})
    with pytest.raises(AttributeError):
        config.routes = ()  # type: ignore[misc]


def test_env_reference_reads_name_file(tmp_path: Path) -> None:
    """`${NAME}` also takes `NAME_FILE`, like every secret of the service (mounted Secrets)."""
    secret = tmp_path / "alerts-url"
    secret.write_text("https://hooks.slack.com/services/T0/B0/from-a-file\n")
    text = MINIMAL.replace("alerts: {channel: C0ALERTS}", "alerts: {webhook_url: '${ALERTS_URL}'}")
    path = write(tmp_path, text)
    config = load_config(path, {"ALERTS_URL_FILE": str(secret)}, secrets_required=True)
    assert (
        config.slack["alerts"].webhook_url == "https://hooks.slack.com/services/T0/B0/from-a-file"
    )
    assert config.slack["alerts"].webhook_url in config.secrets
    missing = problems(path, {"ALERTS_URL_FILE": str(tmp_path / "nope")}, secrets_required=True)
    assert [p.split(": ", 1)[1] for p in missing] == [
        f"slack.alerts.webhook_url: ALERTS_URL_FILE: cannot read {tmp_path / 'nope'}: "
        "No such file or directory"
    ]


def test_route_change_and_resolved_options(tmp_path: Path) -> None:
    """`repage_on_new_alerts` and `resolved` are read; by default no re-page, no resolved call."""
    default = load_config(write(tmp_path, MINIMAL), {}).routes[0]
    assert not default.repage_on_new_alerts
    assert default.resolved_channels == {Channel.SLACK, Channel.SMS, Channel.EMAIL}
    chosen = MINIMAL.replace(
        "  - name: all\n", "  - name: all\n    repage_on_new_alerts: true\n    resolved: [slack]\n"
    )
    route = load_config(write(tmp_path, chosen), {}).routes[0]
    assert route.repage_on_new_alerts
    assert route.resolved_channels == {Channel.SLACK}


def test_a_resolved_call_is_refused(tmp_path: Path) -> None:
    """Nobody is phoned to be told that it resolved: `check` says so, at its line."""
    text = MINIMAL.replace("  - name: all\n", "  - name: all\n    resolved: [sms, call]\n")
    path = write(tmp_path, text)
    assert problems(path) == [
        f"{path}:9: routes[0].resolved[1]: resolved notices are never phone calls (use sms)"
    ]


def test_yaml_is_typed_strictly(tmp_path: Path) -> None:
    """Dates and yes/no/on/off stay text unless the key asks for a date or a boolean."""
    text = MINIMAL.replace("alerts: {channel: C0ALERTS}", "on: {channel: C0ALERTS}")
    text = text.replace("channel: alerts}", "channel: on}").replace(
        "  - name: all\n", "  - name: no\n    continue: yes\n    window: days\n"
    )
    text += "time_windows:\n  days: {holidays: [2026-12-25, 2026-12-28]}\n"
    text += "delivery: {attempts: 010}\n"
    config = load_config(write(tmp_path, text), {})
    assert list(config.slack) == ["on"]  # YAML 1.1 would have made the key True
    route = config.routes[0]
    assert route.name == "no"
    assert route.continue_ is True  # a boolean key still takes yes
    assert sorted(d.isoformat() for d in config.windows["days"].holidays) == [
        "2026-12-25",
        "2026-12-28",
    ]
    assert config.delivery.attempts == 10  # not octal 8


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "time_windows: {w: {holidays: [2027-02-29]}}\n",
            ":12: time_windows.w.holidays[0]: '2027-02-29' is not a date like 2026-12-25",
        ),
        ("time_windows: {w: {holidays: [{a: 1}]}}\n", "expected a date like 2026-12-25, got a"),
        (
            "rotations: {r: {members: [alice], handoff: 0001-01-01 00:00+14:00}}\n",
            "rotations.r.handoff: '0001-01-01 00:00+14:00': the year must be from 1970 to 2999",
        ),
        ("limits: {max_body_bytes: .nan}\n", "limits.max_body_bytes: expected a number >= 1024"),
        ("delivery: {attempts: .inf}\n", "delivery.attempts: expected a number >= 1"),
        ("delivery: {attempts: 1_000}\n", "delivery.attempts: expected a number >= 1"),
        ("delivery: {dedupe_ttl: 99999w}\n", "delivery.dedupe_ttl: duration '99999w' is over"),
        ("delivery: {deadline: 1.5e3s}\n", "delivery.deadline: bad duration '1.5e3s'"),
        ("limits: {max_body_bytes: !!timestamp 2026-01-01}\n", ":12: (file): the tag"),
        ("limits: {max_body_bytes: !!int twelve}\n", ":12: (file): 'twelve' is not an integer"),
        ("limits: {max_body_bytes: !!python/object:os.system x}\n", ":12: (file): the tag"),
        ("limits: &a {x: *a}\n", ":12: (file): found unconstructable recursive node"),
        ("timezone: '../../etc/passwd'\n", "timezone: unknown time zone"),
        ("timezone: Europe\n", "timezone: unknown time zone 'Europe'"),
        ("people: 3\n", ":12: people: expected a mapping, got int 3"),
        ("groups: 3\n", ":12: groups: expected a mapping, got int 3"),
        ("slack: -1\n", ":12: slack: expected a mapping, got int -1"),
        ("sentry: {levels: 1.5}\n", ":12: sentry.levels: expected a mapping, got float 1.5"),
        ("x: " + "[" * 3000 + "]" * 3000 + "\n", ":12: (file): nested too deeply"),
    ],
)
def test_wrong_values_are_located_problems(tmp_path: Path, snippet: str, expected: str) -> None:
    """A wrong type, an impossible date or a YAML tag is a problem at its line, not an exception."""
    found = problems(write(tmp_path, MINIMAL + snippet))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (("# café\n" + MINIMAL).encode("latin-1"), ":1: (file): not UTF-8 text at byte 5 (0xe9)"),
        (
            (MINIMAL + "# £5\n").encode("latin-1"),
            f":12: (file): not UTF-8 text at byte {len(MINIMAL) + 2} (0xa3)",
        ),
        (
            MINIMAL.encode("utf-16"),
            ":1: (file): not UTF-8 text at byte 0 (a UTF-16 byte order mark); save the file as",
        ),
        (
            MINIMAL.encode("utf-16-le"),
            ":1: (file): control character U+0000 at column 2 is not allowed (UTF-16 text?",
        ),
        (
            MINIMAL.replace("C0ALERTS", "C0AL\x1bERTS").encode(),
            ":6: (file): control character U+001B at column 25 is not allowed",
        ),
        (
            b"\xef\xbb\xbf" + MINIMAL.encode() + b"\xff\n",
            f":12: (file): not UTF-8 text at byte {3 + len(MINIMAL)}",
        ),
    ],
)
def test_encodings_and_control_characters(tmp_path: Path, content: bytes, expected: str) -> None:
    """Bytes that are not UTF-8 YAML text are located by line (and byte, or column)."""
    path = tmp_path / "routing.yaml"
    path.write_bytes(content)
    found = problems(path)
    assert any(p.startswith(str(path)) and expected in p for p in found), found


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Editors on Windows may start UTF-8 files with a byte order mark: it is no problem."""
    path = tmp_path / "routing.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert [r.name for r in load_config(path, {}).routes] == ["all"]


def test_problems_stay_on_one_line(tmp_path: Path) -> None:
    """A key with a newline or a colon, or a value with control characters, cannot break the
    `file:line: key.path: message` form."""
    path = write(tmp_path, MINIMAL + '"a:b\\nc": 1\nseverity: {default: "x\\u0007\\ud800"}\n')
    found = problems(path)
    assert f"{path}:12: a\\x3ab\\nc: unknown key" in found
    assert any(
        p.startswith(f"{path}:13: severity.default: unknown severity 'x\\x07") for p in found
    )
    assert all("\n" not in p and "\x07" not in p for p in found)


def test_unreadable_secret_file_is_a_problem(tmp_path: Path) -> None:
    """A secret file that is not UTF-8, or a path with a NUL, is a located problem."""
    secret = tmp_path / "hook"
    secret.write_bytes(b"\xff\xfe")
    text = MINIMAL.replace(
        "alerts: {channel: C0ALERTS}",
        f'alerts: {{webhook_url_file: "{secret}"}}\n  ops: {{webhook_url_file: "a\\0b"}}',
    )
    found = problems(write(tmp_path, text), {}, secrets_required=True)
    assert any(f":6: slack.alerts.webhook_url_file: cannot read {secret}: " in p for p in found)
    assert any(":7: slack.ops.webhook_url_file: cannot read a\\x00b: " in p for p in found)


def test_matchers_are_re2_and_one_item_may_hold_several(tmp_path: Path) -> None:
    """A look-ahead is refused at its line; `{a="1", b=~"2"}` is two matchers (as Alertmanager)."""
    bad = MINIMAL.replace(
        "  - name: all\n", "  - name: all\n    matchers: ['alertname=~\"(?!Watchdog)Kube.*\"']\n"
    )
    path = write(tmp_path, bad)
    assert problems(path)[0] == (
        f"{path}:9: routes[0].matchers[0]: bad regex in matcher "
        "'alertname=~\"(?!Watchdog)Kube.*\"': invalid perl operator: (?!"
    )
    two = MINIMAL.replace(
        "  - name: all\n",
        '  - name: db\n    matchers: [\'{team="db", env=~"prod|staging"}\']\n'
        "    targets: [{kind: slack, channel: alerts}]\n  - name: all\n",
    )
    route = load_config(write(tmp_path, two), {}).routes[0]
    assert [str(m) for m in route.matchers] == ['team="db"', 'env=~"prod|staging"']


def test_a_template_that_raises_is_a_problem(tmp_path: Path) -> None:
    """`{{ 1 / 0 }}` fails in Python, not in Jinja: still a problem at its line."""
    text = MINIMAL.replace(
        "  - name: all\n", "  - name: all\n    templates: {sms: '{{ 1 / 0 }}'}\n"
    )
    assert problems(write(tmp_path, text)) == [
        f"{tmp_path}/routing.yaml:9: routes[0].templates.sms: template does not render: "
        "ZeroDivisionError: division by zero"
    ]


def test_names_are_the_keys_as_written(tmp_path: Path) -> None:
    """A key is a name as written (`true`, `010`); a name or phone with a newline is refused."""
    text = MINIMAL.replace("alerts: {channel: C0ALERTS}", "true: {channel: C0ALERTS}\n  010: {}")
    found = problems(write(tmp_path, text.replace("channel: alerts}", "channel: 'true'}")))
    assert found == [  # the target found `true`; `010` is not 10
        f"{tmp_path}/routing.yaml:7: slack.010: give channel (Web API) or webhook_url"
        " / webhook_url_file"
    ]
    broken = MINIMAL.replace('"+447700900101"', '"+447700900101\\n"')
    found = problems(write(tmp_path, broken.replace("people:\n", 'people:\n  "bob\\n": {}\n')))
    assert any("people.alice.phone: '+447700900101\\n' is not an E.164" in p for p in found)
    assert any(":2: people.bob\\n: names use lower-case letters" in p for p in found)
