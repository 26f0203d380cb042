"""Golden messages: what every channel says for real payloads, compared byte for byte with files
under tests/golden/ that a person has read (is this what a responder woken at 3 a.m. needs?).

Cases: the fixtures in tests/fixtures/, plus tests/golden/payloads/ (a 3-alert group with two
escalation levels reached, a 9-day-old alert, a Sentry issue with counts), one with
acknowledgement on and a Sentry event back through Alertmanager; all planned by the shipped
routing file at the fixed `NOW` (helpers.NOW, a Monday 09:19 GMT).

After changing a text on purpose, regenerate and read the diff:

    UPDATE_GOLDEN=1 python3 -m pytest tests/test_golden_messages.py
    git diff tests/golden/
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from receiver.ack.short_links import link_id
from receiver.channels.sendgrid import mail_body
from receiver.channels.slack import build_message
from receiver.channels.twilio_voice import twiml
from receiver.delivery.forward import postable_alerts
from receiver.messages import sms_length, templates
from receiver.model import AckRef, AlertGroup, Channel, GroupMemory, Notification, Status
from receiver.routing.plan import plan
from receiver.sources import alertmanager, sentry
from tests.helpers import NOW, ROOT, fixture, shipped_config

GOLDEN = ROOT / "tests" / "golden"
PAYLOADS = GOLDEN / "payloads"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CONFIG = shipped_config()
TZ = CONFIG.timezone
SENDER = "alerts@example.com"
ALERTMANAGER_URL = "http://alertmanager.monitoring.svc:9093"
# A token as long as receiver.ack.tokens signs them: the link must be judged at its real length.
ACK = AckRef(
    "RJXAJ",
    "eyJjaGFubmVsIjoic21zIiwiZXhwaXJlcyI6MTc3MzY5NTE0MCwiZ3JvdXAiOiJiM2RjY2RmYzM0MjY3OWNiIiwi"
    "bGV2ZWwiOjAsInNldmVyaXR5IjoiY3JpdGljYWwiLCJzdGFydGVkIjoxNzczNjUyMzUwLCJ0byI6ImFsaWNlIn0"
    ".Qm9ndXNTaWduYXR1cmUxMjM0",
    "https://oncall.example.com",
)
# The SMS links to the same page by a short id (receiver.ack.short_links), as the service gives it.
SMS_ACK = dataclasses.replace(ACK, short=link_id(ACK.token, "golden-ack-secret"))


def _payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def _am(body: Any) -> AlertGroup:
    return alertmanager.parse(body)


def _sentry(resource: str | None, body: Any) -> AlertGroup:
    group = sentry.parse(resource, body, CONFIG.sentry.issues)
    assert group is not None
    return group


def _through_alertmanager(group: AlertGroup) -> AlertGroup:
    """A Sentry event forwarded to Alertmanager (delivery.forward) and sent back in its webhook."""
    posted = postable_alerts(plan(CONFIG, group, NOW), NOW, CONFIG.delivery.sentry_alert_ttl)
    body = {
        "receiver": "oncall-router",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": a["startsAt"],
                "endsAt": a["endsAt"],
                "generatorURL": a.get("generatorURL", ""),
            }
            for a in posted
        ],
        "groupLabels": {"alertname": posted[0]["labels"]["alertname"], "project": "payments-api"},
        "commonLabels": posted[0]["labels"],
        "commonAnnotations": posted[0]["annotations"],
        "externalURL": ALERTMANAGER_URL,
        "version": "4",
        "groupKey": '{}/{source="sentry"}:{project="payments-api"}',
        "truncatedAlerts": 0,
    }
    return alertmanager.parse(body)


@dataclasses.dataclass(frozen=True)
class Case:
    group: Callable[[], AlertGroup]
    ack: bool = False
    # First paged this long before NOW (None: this webhook is the group's first page).
    paged_before: timedelta | None = None


CASES: dict[str, Case] = {
    "alertmanager-firing-critical": Case(lambda: _am(fixture("alertmanager-firing-critical.json"))),
    "alertmanager-firing-critical-ack": Case(
        lambda: _am(fixture("alertmanager-firing-critical.json")), ack=True
    ),
    "alertmanager-resolved": Case(
        lambda: _am(fixture("alertmanager-resolved.json")), paged_before=timedelta(minutes=5)
    ),
    "alertmanager-mixed-truncated": Case(lambda: _am(fixture("alertmanager-mixed-truncated.json"))),
    "alertmanager-three-alerts": Case(
        lambda: _am(_payload("alertmanager-three-alerts.json")),
        paged_before=timedelta(minutes=20),
    ),
    # Acknowledgement on where the SMS has less room: the short link still fits, or no link does.
    "alertmanager-three-alerts-ack": Case(
        lambda: _am(_payload("alertmanager-three-alerts.json")),
        ack=True,
        paged_before=timedelta(minutes=20),
    ),
    "alertmanager-nine-days-old": Case(lambda: _am(_payload("alertmanager-nine-days-old.json"))),
    "alertmanager-nine-days-old-ack": Case(
        lambda: _am(_payload("alertmanager-nine-days-old.json")), ack=True
    ),
    "sentry-event-alert-triggered": Case(
        lambda: _sentry("event_alert", fixture("sentry-event-alert-triggered.json"))
    ),
    "sentry-event-via-alertmanager": Case(
        lambda: _through_alertmanager(
            _sentry("event_alert", fixture("sentry-event-alert-triggered.json"))
        )
    ),
    "sentry-issue-created": Case(lambda: _sentry("issue", fixture("sentry-issue-created.json"))),
    "sentry-issue-with-counts": Case(
        lambda: _sentry("issue", _payload("sentry-issue-with-counts.json"))
    ),
    "sentry-legacy-plugin": Case(lambda: _sentry(None, fixture("sentry-legacy-plugin.json"))),
    "sentry-metric-alert-critical": Case(
        lambda: _sentry("metric_alert", fixture("sentry-metric-alert-critical.json"))
    ),
    "sentry-metric-alert-resolved": Case(
        lambda: _sentry("metric_alert", fixture("sentry-metric-alert-resolved.json")),
        paged_before=timedelta(minutes=10),
    ),
}


def planned(case: Case) -> dict[Channel, Notification]:
    """Per channel, the message of the highest level the plan makes (the most says who was paged
    before it), as the service sends it."""
    group = case.group()
    memory = None
    if case.paged_before is not None:
        firing = [a for a in group.alerts if a.status is Status.FIRING] or list(group.alerts)
        spell = min(a.starts_at for a in firing).isoformat()
        paged = frozenset({"0:alice", "0:carol", "0:erin", "0:dave", "1:bob"})
        memory = GroupMemory(spell, NOW - case.paged_before, paged)
    out: dict[Channel, Notification] = {}
    for n in plan(CONFIG, group, NOW, memory=memory).notifications:
        if n.channel not in out or n.level >= out[n.channel].level:
            ack = case.ack and n.status is Status.FIRING  # as the service gives it
            ref = SMS_ACK if n.channel is Channel.SMS else ACK
            out[n.channel] = dataclasses.replace(n, ack=ref) if ack else n
    return out


def rendered(case: Case) -> dict[str, str]:
    """File name -> content, for each channel the plan uses."""
    files = {}
    for channel, n in planned(case).items():
        tz = n.timezone or TZ
        if channel is Channel.SLACK:
            message = build_message(n, tz, ALERTMANAGER_URL)
            files["slack.json"] = json.dumps(message, indent=2, ensure_ascii=False) + "\n"
        elif channel is Channel.SMS:
            text = templates.sms_text(n, tz)
            length = sms_length.measure(text)
            files["sms.txt"] = (
                f"{text}\n-- {length.segments} segment(s), {length.encoding}, "
                f"{length.units} units, to {n.recipient.name} at level {n.level}\n"
            )
        elif channel is Channel.CALL:
            files["call.txt"] = (
                f"{templates.call_speech(n, tz)}\n\n-- TwiML, to {n.recipient.name} at level "
                f"{n.level}:\n{twiml(n, tz)}\n"
            )
        else:
            mail = mail_body(n, tz, SENDER)
            text, html = (part["value"] for part in mail["content"])
            headers = "".join(f"{k}: {v}\n" for k, v in mail["headers"].items())
            files["email.txt"] = (
                f"To: {n.recipient.address}\nSubject: {mail['subject']}\n{headers}\n{text}\n"
            )
            files["email.html"] = html + "\n"
    return files


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    """Each channel's body is the golden file's, byte for byte (UPDATE_GOLDEN=1 rewrites)."""
    folder = GOLDEN / name
    files = rendered(CASES[name])
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in set(p.name for p in folder.iterdir()) - set(files):
            (folder / stale).unlink()
        for file, content in files.items():
            (folder / file).write_text(content, encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == sorted(files), "UPDATE_GOLDEN=1 ..."
    for file, content in files.items():
        assert content == (folder / file).read_text(encoding="utf-8"), f"{name}/{file}"


def test_no_golden_without_a_case() -> None:
    """A renamed case leaves no stale folder behind."""
    folders = {p.name for p in GOLDEN.iterdir() if p.is_dir() and p != PAYLOADS}
    assert folders == set(CASES)


def test_every_fixture_has_a_case() -> None:
    fixtures = {p.stem for p in (ROOT / "tests" / "fixtures").glob("*.json")}
    assert fixtures <= set(CASES)


def _segments(name: str) -> int:
    text = (GOLDEN / name / "sms.txt").read_text(encoding="utf-8").split("\n-- ")[0]
    return sms_length.segments(text)


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if (GOLDEN / n / "sms.txt").exists()])
def test_every_golden_sms_is_one_segment(name: str) -> None:
    """The golden payloads' texts all allow one segment, so each SMS is one."""
    assert _segments(name) == 1


def test_a_nine_day_old_alert_says_its_date() -> None:
    """Not "since 12:42": the SMS and the call say the day it started."""
    sms = (GOLDEN / "alertmanager-nine-days-old" / "sms.txt").read_text(encoding="utf-8")
    call = (GOLDEN / "alertmanager-nine-days-old" / "call.txt").read_text(encoding="utf-8")
    assert "since Sat 7 Mar 12:42 GMT" in sms
    assert "since Saturday 7 March at 12:42 GMT" in call
    assert "firing for 8d 20h" in sms
