"""`oncall-router test-page`: dry runs on the shipped file, and real sends to the loopback vendors.

`main()` is synchronous and runs its own event loop (`asyncio.run`), while the fake vendors live
on the test's loop; so the command runs in a worker thread (`asyncio.to_thread`) and the fakes
keep answering meanwhile. capsys and monkeypatch act process-wide, so they see that thread.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from receiver.cli.main import main
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, Reject
from tests.fakes.sendgrid import TEST_API_KEY
from tests.fakes.slack import TEST_BOT_TOKEN
from tests.fakes.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.helpers import ROUTING

VENDOR_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_API_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "TWILIO_API_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_FROM",
    "SENDGRID_API_URL",
)
SECRETS = (TEST_AUTH_TOKEN, TEST_API_KEY, TEST_BOT_TOKEN)
MESSAGES = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"
ALICE = "+447700900101"

# Every channel, for one person: the shipped file never pages a person on Slack.
ALL_CHANNELS = """\
timezone: Europe/London
people:
  alice: {name: Alice Archer, phone: "+447700900101", email: alice@example.com, slack: U0A11CE001}
  bob: {name: Bob Baker, phone: "+447700900102", email: bob@example.com, slack: U0B0B00002}
rotations:
  primary: {members: [alice, bob]}
routes:
  - name: everything
    targets:
      - {kind: slack, rotation: primary}
      - {kind: sms, rotation: primary}
    escalation:
      - after: 5m
        targets:
          - {kind: call, rotation: primary}
          - {kind: email, person: alice}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials from the developer's shell leak into a test."""
    for name in VENDOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def vendor_env(
    monkeypatch: pytest.MonkeyPatch,
    slack: FakeSlack,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    *,
    twilio_credentials: bool = True,
) -> None:
    monkeypatch.setenv("SLACK_API_URL", f"{slack.url}/api")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TEST_BOT_TOKEN)
    monkeypatch.setenv("TWILIO_API_URL", twilio.url)
    if twilio_credentials:
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", TEST_ACCOUNT_SID)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TEST_AUTH_TOKEN)
        monkeypatch.setenv("TWILIO_FROM", "+447700900999")
    monkeypatch.setenv("SENDGRID_API_URL", sendgrid.url)
    monkeypatch.setenv("SENDGRID_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("SENDGRID_FROM", "alerts@example.com")


def page_lines(out: str) -> dict[str, list[str]]:
    """Channel header -> the recipient lines under it (message text excluded)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line and not line.startswith(" ") and " (paged by " in line:
            current = found.setdefault(line, [])
        elif current is not None and line.startswith("  ") and not line.startswith("    |"):
            current.append(" ".join(line.split()))
        elif not line:
            current = None
    return found


def test_dry_run_primary_uses_every_channel_it_is_paged_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped file pages the primary by SMS and call (critical) and email (high)."""
    argv = ["test-page", "--config", str(ROUTING), "--to", "rotation:primary"]
    assert main([*argv, "--at", "2026-03-16T10:00", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "Test page to rotation primary: alice (Alice Archer), on call at Mon 2026-03-16 10:00 GMT\n"
        "Dry run: nothing is sent.\n"
    )
    assert page_lines(out) == {
        "sms (paged by critical +0m, high +1h)": [f"alice (Alice Archer) {ALICE} would send"],
        "call (paged by critical +0m)": [f"alice (Alice Archer) {ALICE} would send"],
        "email (paged by high +0m)": ["alice (Alice Archer) alice@example.com would send"],
    }
    texts = [line for line in out.splitlines() if line.startswith("    | ")]
    assert texts[0].startswith("    | TEST PAGE - no action needed. oncall-router SMS test")
    assert texts[1].startswith("    | This is a test page from oncall router, no action needed.")
    assert texts[2] == (
        "    | TEST PAGE — no action needed (oncall-router email test for rotation primary)"
    )
    assert out.rstrip().endswith("3 test page(s) would be sent, 0 could not.")


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (
            "group:team-leads",
            {
                "email (paged by critical +0m)": [
                    "carol (Carol Chen (tech lead)) carol@example.com would send",
                    "erin (Erin Evans (engineering manager)) erin@example.com would send",
                ]
            },
        ),
        (
            "rotation:secondary",  # a week later the secondary is dave
            {
                "sms (paged by critical +15m)": ["dave (Dave Dunn) +447700900104 would send"],
                "call (paged by critical +15m)": ["dave (Dave Dunn) +447700900104 would send"],
                "email (paged by high +1h)": ["dave (Dave Dunn) dave@example.com would send"],
            },
        ),
        (
            "frank",  # a bare person name
            {
                "sms (paged by critical +2h)": ["frank (Frank Fox (CTO)) +447700900106 would send"],
                "call (paged by critical +2h)": [
                    "frank (Frank Fox (CTO)) +447700900106 would send"
                ],
            },
        ),
        (
            "person:bob",  # a member of the rotations: paged on what they page
            {
                "sms (paged by critical +0m, critical +15m, high +1h)": [
                    "bob (Bob Baker) +447700900102 would send"
                ],
                "call (paged by critical +0m, critical +15m)": [
                    "bob (Bob Baker) +447700900102 would send"
                ],
                "email (paged by high +0m, high +1h)": [
                    "bob (Bob Baker) bob@example.com would send"
                ],
            },
        ),
    ],
)
def test_dry_run_targets(
    capsys: pytest.CaptureFixture[str], to: str, expected: dict[str, list[str]]
) -> None:
    argv = ["test-page", "--config", str(ROUTING), "--to", to, "--at", "2026-03-24T10:00"]
    assert main([*argv, "--dry-run"]) == 0
    assert page_lines(capsys.readouterr().out) == expected


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("cto", "--to 'cto' is ambiguous: it names a person and a group; write person:cto or"),
        ("zed", "--to 'zed': no person, rotation or group of that name"),
        ("rotation:primry", "--to 'rotation:primry': unknown rotation (did you mean 'primary'?)"),
        ("team:x", "--to 'team:x': write person:NAME, rotation:NAME, group:NAME"),
    ],
)
def test_target_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], to: str, message: str
) -> None:
    """A name shared by a person and a group must be spelled out; unknown names say so."""
    config = tmp_path / "routing.yaml"
    config.write_text(
        ROUTING.read_text().replace(
            "people:\n", 'people:\n  cto:\n    name: The CTO\n    phone: "+447700900199"\n', 1
        )
    )
    assert main(["test-page", "--config", str(config), "--to", to, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_nothing_pages_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(ALL_CHANNELS)
    argv = ["test-page", "--config", str(config), "--to", "person:bob", "--dry-run"]
    # bob is in the rotation, so he is paged; a person outside every target is not.
    assert main(argv) == 0
    capsys.readouterr()
    config.write_text(
        ALL_CHANNELS.replace("  primary: {members: [alice, bob]}", "  primary: {members: [alice]}")
    )
    assert main(argv) == 1
    assert "pages person bob: no channel to test" in capsys.readouterr().out


async def test_real_test_page_through_every_channel(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """Slack DM, SMS, call and email, each delivered to the vendor and reported."""
    config = tmp_path / "routing.yaml"
    config.write_text(ALL_CHANNELS)
    vendor_env(monkeypatch, fake_slack, fake_twilio, fake_sendgrid)
    argv = ["test-page", "--config", str(config), "--to", "alice", "--at", "2026-03-16T10:00"]
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert page_lines(captured.out) == {
        "slack (paged by everything +0m)": ["alice (Alice Archer) U0A11CE001 delivered"],
        "sms (paged by everything +0m)": [f"alice (Alice Archer) {ALICE} delivered"],
        "call (paged by everything +5m)": [f"alice (Alice Archer) {ALICE} delivered"],
        "email (paged by everything +5m)": ["alice (Alice Archer) alice@example.com delivered"],
    }
    assert captured.out.rstrip().endswith("All 4 test page(s) delivered.")

    (slack,) = fake_slack.requests
    message = slack.json()
    assert message["channel"] == "U0A11CE001"
    assert "TEST PAGE — no action needed" in json.dumps(message["blocks"], ensure_ascii=False)
    (sms,) = fake_twilio.requests_to(MESSAGES)
    form = sms.form()
    assert (form["To"], form["From"]) == (ALICE, "+447700900999")
    assert form["Body"].startswith("TEST PAGE - no action needed. oncall-router SMS test")
    assert len(form["Body"]) <= 160
    (call,) = fake_twilio.requests_to(CALLS)
    assert "This is a test page from oncall router, no action needed." in call.form()["Twiml"]
    (email,) = fake_sendgrid.requests
    mail = email.json()
    assert mail["personalizations"][0]["to"] == [{"email": "alice@example.com"}]
    assert mail["subject"].startswith("TEST PAGE — no action needed")
    for secret in SECRETS:
        assert secret not in captured.out + captured.err


async def test_vendor_rejection_is_reported_and_fails(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """Twilio refuses one of the two phone pages (21610: the number opted out): that one is
    reported with Twilio's code, the others are delivered, and the exit status is 1."""
    vendor_env(monkeypatch, fake_slack, fake_twilio, fake_sendgrid)
    fake_twilio.script(Reject(21610))
    argv = ["test-page", "--config", str(ROUTING), "--to", "rotation:primary"]
    code = await asyncio.to_thread(main, [*argv, "--at", "2026-03-16T10:00"])
    out = capsys.readouterr().out
    assert code == 1
    lines = [line for lines in page_lines(out).values() for line in lines]
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1
    assert "FAILED clientError: " in failed[0]
    assert "21610" in failed[0]
    assert sum(line.endswith(" delivered") for line in lines) == 2
    assert out.rstrip().endswith("1 of 3 test page(s) FAILED.")
    # Permanent: one attempt each, no retries.
    assert len(fake_twilio.requests) == 2
    assert len(fake_sendgrid.requests) == 1


async def test_missing_credentials_are_named_not_printed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    vendor_env(monkeypatch, fake_slack, fake_twilio, fake_sendgrid, twilio_credentials=False)
    argv = ["test-page", "--config", str(ROUTING), "--to", "rotation:primary"]
    code = await asyncio.to_thread(main, [*argv, "--at", "2026-03-16T10:00"])
    captured = capsys.readouterr()
    assert code == 1
    missing = (
        "FAILED authError: Twilio is not configured: "
        "set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM"
    )
    pages = page_lines(captured.out)
    assert pages["sms (paged by critical +0m, high +1h)"] == [
        f"alice (Alice Archer) {ALICE} {missing}"
    ]
    assert pages["call (paged by critical +0m)"] == [f"alice (Alice Archer) {ALICE} {missing}"]
    assert pages["email (paged by high +0m)"] == [
        "alice (Alice Archer) alice@example.com delivered"
    ]
    assert fake_twilio.requests == []
    for secret in SECRETS:
        assert secret not in captured.out + captured.err
