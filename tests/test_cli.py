"""The `oncall-router` command, run as a user runs it."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.cli.main import _log_acknowledgement, main
from receiver.config.settings import Settings
from receiver.routing.oncall import on_call
from tests.helpers import FIXTURES, ROOT, ROUTING, free_port, shipped_config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or _clean_env(),
        timeout=60,
        check=False,
    )


def _clean_env() -> dict[str, str]:
    vendors = ("SLACK", "TWILIO", "SENDGRID", "SENTRY", "RECEIVER")
    return {k: v for k, v in os.environ.items() if not k.startswith(vendors)}


def test_check_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped routing file passes check with exit 0."""
    assert main(["check", "--config", str(ROUTING)]) == 0
    assert "OK (3 routes" in capsys.readouterr().out


def test_check_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1, each problem on its own line with file and line, and a count."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "routes:\n  - name: x\n    contiue: true\n    targets: [{kind: sms, person: nobody}]\n"
    )
    assert main(["check", "--config", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{bad}:3: routes[0].contiue: unknown key (did you mean 'continue'?)" in err
    assert f"{bad}:4: routes[0].targets[0].person: unknown person 'nobody' (not in persons)" in err
    assert err[-1].endswith("problem(s) found")


def test_route_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    """`route` shows severity, why, routes and each rendered target, as JSON."""
    payload = FIXTURES / "alertmanager-firing-critical.json"
    assert main(["route", "--config", str(ROUTING), str(payload), "--at", "2026-03-16T09:19"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "alertmanager"
    assert {a["severity"] for a in out["alerts"]} == {"critical"}
    assert out["alerts"][0]["severity_reason"] == "label severity='critical' is critical"
    assert [(n["channel"], n["to"]) for n in out["notifications"]] == [
        ("slack", "incidents"),
        ("sms", "+447700900101"),
        ("call", "+447700900101"),
        ("email", "carol@example.com"),
        ("email", "erin@example.com"),
    ]
    sms = out["notifications"][1]["text"]
    assert sms.startswith("CRIT HighErrorRate @ payments-api prod-eu-1")
    assert len(sms) <= 160


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("sentry-metric-alert-critical.json", "critical"),
        ("sentry-event-alert-triggered.json", "high"),
        ("sentry-issue-created.json", "high"),
        ("sentry-legacy-plugin.json", "high"),
    ],
)
def test_route_guesses_sentry_resources(
    name: str, severity: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sentry bodies are recognised without the header the CLI cannot see."""
    assert main(["route", "--config", str(ROUTING), str(FIXTURES / name)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "sentry"
    assert out["alerts"][0]["severity"] == severity


def test_route_rejects_bad_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A payload that is not a webhook body exits 2 with the parser's reason."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"alerts": "nope"}')
    assert main(["route", "--config", str(ROUTING), str(bad)]) == 2
    assert "alerts must be a list" in capsys.readouterr().err


def test_who(capsys: pytest.CaptureFixture[str]) -> None:
    """`who --json` names each rotation's holder, until when, who is next, and the groups."""
    assert main(["who", "--config", str(ROUTING), "--json", "--at", "2026-03-16T10:00"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["at"] == "2026-03-16T10:00:00+00:00"
    assert out["rotations"]["primary"] == {
        "on_call": ["alice"],
        "until": "2026-03-23T09:00:00+00:00",
        "next": ["bob"],
    }
    assert out["rotations"]["secondary"]["on_call"] == ["bob"]
    assert out["groups"]["team-leads"] == ["carol", "erin"]


# What serving the shipped file for real needs: its own `${VAR}` secrets and vendor credentials.
ROUTING_SECRETS = ("SENTRY_LEGACY_TOKEN", "SLACK_ALERTS_WEBHOOK_URL")
VENDOR_SECRETS = (
    "SLACK_BOT_TOKEN",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "SENDGRID_API_KEY",
    "SENDGRID_FROM",
)


def test_serve_refuses_without_secrets() -> None:
    """Serving for real names every secret it lacks, the routing file's and the vendors', in
    one message, instead of starting half-blind or making the operator go round twice."""
    result = run("serve", "--config", "routing.yaml", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr[result.stderr.index("error: ") :].splitlines()
    assert message[0] == "error: 8 secret(s) missing for serve (set them, or use --dry-run):"
    assert message[1:] == [
        "  routing.yaml:41: sentry.legacy_token: environment variable "
        "SENTRY_LEGACY_TOKEN is not set",
        "  routing.yaml:107: slack.alerts.webhook_url: environment variable "
        "SLACK_ALERTS_WEBHOOK_URL is not set",
        *(f"  environment variable {name} is not set" for name in VENDOR_SECRETS),
    ]


def test_serve_names_only_the_secrets_still_missing() -> None:
    """With the routing file's secrets set, only the vendor credentials are named."""
    env = _clean_env() | {
        "SENTRY_LEGACY_TOKEN": "legacy-token",
        "SLACK_ALERTS_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
        "TWILIO_FROM": "+447700900999",
    }
    listen = f"127.0.0.1:{free_port()}"
    result = run("serve", "--config", "routing.yaml", "--listen", listen, env=env)
    assert result.returncode == 2
    assert "error: 5 secret(s) missing for serve" in result.stderr
    missing = [name for name in (*ROUTING_SECRETS, *VENDOR_SECRETS) if name in result.stderr]
    assert missing == [name for name in VENDOR_SECRETS if name != "TWILIO_FROM"]


def test_serve_with_an_invalid_file_lists_its_problems(tmp_path: Path) -> None:
    """A file with real problems is reported as `check` reports it, missing secrets included."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "slack:\n  a: {webhook_url: '${UNSET_HOOK}'}\n"
        "routes:\n  - name: x\n    targets: [{kind: sms, person: nobody}]\n"
    )
    result = run("serve", "--config", str(bad), "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert f"{bad}:2: slack.a.webhook_url: environment variable UNSET_HOOK is not set" in (
        result.stderr
    )
    assert "unknown person 'nobody'" in result.stderr
    assert result.stderr.splitlines()[-1] == "3 problem(s) found"


def test_serve_on_a_busy_port_is_one_line_not_a_traceback() -> None:
    """A port already in use ends `serve` with exit 1 and one error line naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run("serve", "--config", "routing.yaml", "--dry-run", "--listen", address)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot listen on {address}: address already in use"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["who", "--config", "routing.yaml"],
        ["route", "--config", "routing.yaml", "tests/fixtures/alertmanager-firing-critical.json"],
        ["simulate", "--config", "routing.yaml", "--labels", "severity=critical"],
    ],
    ids=lambda argv: argv[0],
)
def test_closed_pipe_exits_quietly(argv: list[str]) -> None:
    """`oncall-router who | head -1` and the like: the reader is gone before anything is
    written, so every write fails; the command exits 1 with nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # deterministic: what `head` does after its lines, at the worst moment
    try:
        result = subprocess.run(
            [sys.executable, "-m", "receiver", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_clean_env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (1, "")


@pytest.fixture
def dry_run_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The README's first command, on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "receiver",
            "serve",
            "--config",
            "routing.yaml",
            "--dry-run",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"dry-run server did not become ready: {proc.communicate()[1]}")
    yield url, proc
    proc.terminate()
    proc.wait(timeout=20)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        status: int = r.status
        return status


def test_serve_dry_run_prints_each_message(
    dry_run_server: tuple[str, subprocess.Popen[str]],
) -> None:
    """Posting a fixture to the running dry-run service prints one JSON line per message."""
    url, proc = dry_run_server
    body = (FIXTURES / "alertmanager-firing-critical.json").read_bytes()
    assert post(f"{url}/webhooks/alertmanager", body, {"Content-Type": "application/json"}) == 200
    body = (FIXTURES / "sentry-metric-alert-critical.json").read_bytes()
    headers = {"Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert"}
    assert post(f"{url}/webhooks/sentry", body, headers) == 202
    time.sleep(0.3)
    proc.terminate()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert {tuple(sorted(line)) for line in lines} == {
        ("channel", "recipient", "route", "severity", "status", "text", "to")
    }
    assert all(line["severity"] == "critical" for line in lines)
    # Slack, then the primary's SMS and call, then the team leads' email.
    primary = on_call(shipped_config(), "primary", datetime.now(UTC))
    first = [(line["channel"], line["recipient"]) for line in lines[:5]]
    assert first == [
        ("slack", "incidents"),
        ("sms", primary),
        ("call", primary),
        ("email", "carol"),
        ("email", "erin"),
    ]
    # The alerts started long ago, but escalation counts from the first page: level 0 only,
    # nobody up the ladder (the secondary, the CTO) is woken in the same second.
    alertmanager_pages = [line for line in lines if line["route"] == "critical"]
    assert {(line["channel"], line["recipient"]) for line in alertmanager_pages} <= set(first) | {
        ("slack", "incidents")
    }
    assert all(json.loads(line)["level"] for line in err.splitlines())  # logs are JSON lines


def test_check_reports_backup_gaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An override that makes the secondary the primary is a gap in cover, and check says so."""
    from datetime import UTC, datetime, timedelta

    from receiver.config.load import load_config
    from receiver.routing.oncall import on_call

    soon = datetime.now(UTC).replace(hour=12, minute=0, second=0) + timedelta(days=3)
    # A Wednesday, so the day-long override does not span the Monday handoff whatever today is.
    soon += timedelta(days=(2 - soon.weekday()) % 7)
    routing = """\
people:
  a: {{phone: "+447700900101"}}
  b: {{phone: "+447700900102"}}
rotations:
  primary:
    members: [a, b]
    overrides: [{override}]
  secondary: {{backs_up: primary}}
routes:
  - name: all
    targets: [{{kind: sms, rotation: primary}}, {{kind: sms, rotation: secondary}}]
"""
    path = tmp_path / "r.yaml"
    path.write_text(routing.format(override=""))
    backup = on_call(load_config(path, {}), "secondary", soon)
    window = f"{soon:%Y-%m-%d %H:%M}", f"{soon + timedelta(days=1):%Y-%m-%d %H:%M}"
    override = f'{{person: {backup}, from: "{window[0]}", until: "{window[1]}"}}'
    path.write_text(routing.format(override=override))
    assert main(["check", "--config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{window[0]} to {window[1]} UTC: {backup} holds both secondary and primary" in err


def test_serve_says_whether_pages_can_be_acknowledged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="receiver.cli"):
        _log_acknowledgement(Settings(public_url="https://oncall.example.com"))
        _log_acknowledgement(
            Settings(
                ack_secret="x",
                alertmanager_url="http://alertmanager:9093",
                public_url="https://oncall.example.com",
            )
        )
    off, on = caplog.records
    assert off.getMessage().startswith("acknowledgement is off")
    assert off.missing == ["ACK_SECRET", "ALERTMANAGER_URL"]  # type: ignore[attr-defined]
    assert on.getMessage() == "acknowledgement is on"
    assert on.slack_buttons == "off (set SLACK_SIGNING_SECRET)"  # type: ignore[attr-defined]
