"""What each message carries so it can be acknowledged: SMS code, call key prompt, email link."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from twilio.twiml.voice_response import Gather, VoiceResponse

from receiver.ack import short_links
from receiver.ack.store import CODE_LENGTH, group_id, sms_code
from receiver.channels.sendgrid import html_notice, mail_body
from receiver.channels.twilio_voice import GATHER_TIMEOUT, MAX_TWIML, PROMPT, twiml
from receiver.config.settings import Settings
from receiver.messages import render, sms_length, templates
from receiver.model import (
    AckRef,
    Alert,
    AlertGroup,
    Channel,
    Notification,
    Severity,
    Source,
    Status,
)
from receiver.routing.plan import plan
from receiver.sources import alertmanager, sentry
from receiver.store.failopen import Lookup
from receiver.store.memory import MemoryStore
from tests.fakes.twilio import num_segments
from tests.helpers import NOW, dry_run_router, fixture, shipped_config

CONFIG = shipped_config()
TZ = CONFIG.timezone
REF = AckRef("BEYC2", "eyJncm91cCI6IjEifQ.c2lnbmF0dXJl", "https://oncall.example.com")


def with_ack(channel: Channel, name: str = "alertmanager-firing-critical.json") -> Notification:
    group = alertmanager.parse(fixture(name))
    n = next(
        n for n in plan(CONFIG, group, NOW, remembered=False).notifications if n.channel is channel
    )
    return dataclasses.replace(n, ack=REF)


def resolved(n: Notification) -> Notification:
    alerts = tuple(dataclasses.replace(a, status=Status.RESOLVED, ends_at=NOW) for a in n.alerts)
    return dataclasses.replace(n, alerts=alerts)


def test_sms_ends_with_the_code_and_stays_one_segment() -> None:
    n = with_ack(Channel.SMS)
    text = templates.sms_text(n, TZ)
    assert text.endswith(" Reply ACK BEYC2"), text
    assert num_segments(text) == 1, text
    # The summary gave way, not the facts: the plain message is as long, without the code.
    plain = templates.sms_text(dataclasses.replace(n, ack=None), TZ)
    assert "ACK" not in plain
    assert len(text) <= 160


@pytest.mark.parametrize("summary", ["x" * 3000, "short"])
def test_sms_code_survives_long_texts_and_overrides(summary: str) -> None:
    n = with_ack(Channel.SMS)
    alerts = tuple(
        dataclasses.replace(a, annotations={**a.annotations, "summary": summary}) for a in n.alerts
    )
    n = dataclasses.replace(n, alerts=alerts)
    assert templates.sms_text(n, TZ).endswith(" Reply ACK BEYC2")
    novel = dataclasses.replace(n, templates={"sms": "{% for i in range(900) %}ab{% endfor %}"})
    text = templates.sms_text(novel, TZ)
    assert len(text) == render.SMS_LIMIT
    assert text.endswith(" Reply ACK BEYC2")


def test_resolved_messages_ask_for_nothing() -> None:
    assert "ACK" not in templates.sms_text(resolved(with_ack(Channel.SMS)), TZ)
    assert "<Gather" not in twiml(resolved(with_ack(Channel.CALL)), TZ)
    email = resolved(with_ack(Channel.EMAIL))
    assert REF.link not in templates.email_text(email, TZ)
    assert REF.link not in html_notice(email, TZ)


def test_call_asks_to_press_1_inside_a_gather() -> None:
    n = with_ack(Channel.CALL)
    document = twiml(n, TZ)
    speech = templates.call_speech(n, TZ)
    # Exactly what the twilio library writes for the same verbs.
    expected = VoiceResponse()
    gather = Gather(num_digits=1, action=REF.voice_action, method="POST", timeout=GATHER_TIMEOUT)
    gather.say(speech)
    gather.pause(length=1)
    gather.say(speech)
    gather.say(PROMPT)
    expected.append(gather)
    expected.say("Not acknowledged. Goodbye.")
    expected.hangup()
    assert document == str(expected)
    root = ET.fromstring(document)  # noqa: S314 (our own output)
    assert [c.tag for c in root] == ["Gather", "Say", "Hangup"]
    assert root[0].attrib["action"] == f"{REF.public_url}/webhooks/twilio/voice?token={REF.token}"


def test_call_with_a_gather_still_fits_4000() -> None:
    n = with_ack(Channel.CALL)
    override = "{% for i in range(3000) %}<&> {% endfor %}"
    document = twiml(dataclasses.replace(n, templates={"call": override}), TZ)
    assert len(document) <= MAX_TWIML
    assert "<Gather" in document
    assert f"{PROMPT}</Say>" in document  # the prompt is never the part cut off


def test_email_has_the_link_in_both_parts() -> None:
    n = with_ack(Channel.EMAIL)
    body = mail_body(n, TZ, "alerts@example.com")
    text, html = (c["value"] for c in body["content"])
    assert f"Acknowledge (pauses escalation): {REF.link}" in text
    assert f'href="{REF.link}"' in html
    assert REF.link == f"https://oncall.example.com/ack/{REF.token}"


def test_group_id_is_the_same_from_webhook_and_api() -> None:
    """An SMS reply finds its group through `GET /api/v2/alerts/groups`: same id as the webhook."""
    webhook = alertmanager.parse(fixture("alertmanager-firing-critical.json"))
    api = alertmanager.api_group(
        {
            "labels": dict(webhook.group_labels),
            "receiver": {"name": webhook.receiver},
            "alerts": [
                {
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "startsAt": a.starts_at.isoformat(),
                    "endsAt": (NOW + timedelta(minutes=5)).isoformat(),
                    "fingerprint": a.fingerprint,
                    "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
                    "receivers": [{"name": webhook.receiver}],
                    "updatedAt": NOW.isoformat(),
                }
                for a in webhook.alerts
            ],
        }
    )
    critical = Severity.CRITICAL
    assert group_id(api, critical) == group_id(webhook, critical)
    assert [a.status for a in api.alerts] == [Status.FIRING] * len(webhook.alerts)
    other = dataclasses.replace(api, group_labels={**api.group_labels, "service": "other"})
    assert group_id(other, critical) != group_id(api, critical)
    # The same alert name at another severity is a group of its own (its own route).
    assert group_id(api, Severity.MEDIUM) != group_id(api, critical)


def test_codes_are_short_and_unambiguous() -> None:
    ids = [f"{i * 7919:016x}" for i in range(2000)]
    codes = [sms_code(i) for i in ids]
    assert all(len(c) == CODE_LENGTH for c in codes)
    assert not set("ILOU").intersection("".join(codes))
    assert len(set(codes)) == len(codes)


def test_group_without_labels_falls_back_to_its_key() -> None:
    alert = Alert(Source.SENTRY, Status.FIRING, {"a": "b"}, {}, NOW, "f")
    first = AlertGroup(Source.SENTRY, "sentry:1", Status.FIRING, (alert,))
    second = dataclasses.replace(first, group_key="sentry:2")
    assert group_id(first, Severity.HIGH) != group_id(second, Severity.HIGH)


def test_only_alertmanager_groups_carry_acknowledgement() -> None:
    """A Sentry event delivered directly never comes back through Alertmanager: nothing to stop."""
    settings = Settings(
        ack_secret="s3cret-for-tokens",
        alertmanager_url="http://alertmanager:9093",
        public_url="https://oncall.example.com",
    )
    service, _ = dry_run_router(settings=settings)
    paged = service.plan(alertmanager.parse(fixture("alertmanager-firing-critical.json")))
    assert paged.notifications
    assert all(n.ack is not None for n in paged.notifications)
    event = sentry.parse(
        "metric_alert", fixture("sentry-metric-alert-critical.json"), CONFIG.sentry.issues
    )
    assert event is not None
    direct = service.plan(event).notifications
    assert direct
    assert all(n.ack is None for n in direct)
    # Without every setting, nothing carries acknowledgement parts.
    service.settings = dataclasses.replace(settings, public_url=None)
    plain = service.plan(alertmanager.parse(fixture("alertmanager-firing-critical.json")))
    assert all(n.ack is None for n in plain.notifications)


ACK_SETTINGS = Settings(
    ack_secret="s3cret-for-tokens",
    alertmanager_url="http://alertmanager:9093",
    public_url="https://oncall.example.com",
)


def test_short_link_ids() -> None:
    """Every replica makes the same id for the same token; another token or secret, another id;
    ten base-62 characters (URL-safe, GSM-7)."""
    token = "eyJncm91cCI6IjEifQ.c2lnbmF0dXJl"
    made = short_links.link_id(token, "secret-a")
    assert made == short_links.link_id(token, "secret-a")
    assert len(made) == short_links.ID_LENGTH == 10
    assert short_links.is_link_id(made)
    assert sms_length.is_gsm7(made)
    assert made != short_links.link_id(token, "secret-b")
    assert made != short_links.link_id(token + "x", "secret-a")
    assert short_links.names(made, token, "secret-a")
    assert not short_links.names(made, token, "secret-b")
    ids = {short_links.link_id(f"token-{i}", "secret-a") for i in range(5000)}
    assert len(ids) == 5000
    for bad in ("", "abc", made + "x", made[:-1] + "-", "../../etc/x"):
        assert not short_links.is_link_id(bad)


def test_the_sms_links_to_the_acknowledgement_page_by_its_short_link() -> None:
    """The SMS gets a short link, named after its own token (the call the same one, for the SMS
    after two unanswered calls; no other channel); it comes before the runbook and the text
    stays one segment with the whole summary."""
    service, _ = dry_run_router(settings=ACK_SETTINGS)
    paged = service.plan(alertmanager.parse(fixture("alertmanager-firing-critical.json")))
    by_channel = {n.channel: n for n in paged.notifications if n.recipient.name == "alice"}
    sms = by_channel[Channel.SMS]
    assert sms.ack is not None
    assert sms.ack.short == short_links.link_id(sms.ack.token, "s3cret-for-tokens")
    assert sms.ack.short_link == f"https://oncall.example.com/a/{sms.ack.short}"
    assert sms.ack.short_token == sms.ack.token
    call = by_channel[Channel.CALL].ack
    assert call is not None
    assert (call.short, call.short_token) == (sms.ack.short, sms.ack.token)
    assert call.token != sms.ack.token  # the call's own token acknowledges only a key press
    twilio = (Channel.SMS, Channel.CALL)
    others = [n.ack for n in paged.notifications if n.channel not in twilio]
    assert others
    assert all(ack is not None and not ack.short for ack in others)
    text = templates.sms_text(sms, TZ)
    assert text == (
        "CRIT HighErrorRate @ payments-api prod-eu-1, 2 firing for 6m: payments-api 5xx error "
        f"rate above 5% {sms.ack.short_link} Reply ACK {sms.ack.code}"
    )
    assert sms_length.measure(text).segments == 1
    assert "ACK" not in templates.sms_text(resolved(sms), TZ)
    assert sms.ack.short_link not in templates.sms_text(resolved(sms), TZ)


async def test_the_short_link_is_kept_before_the_sms_is_sent() -> None:
    """The id -> token mapping is in the store once the SMS is out, for the link's lifetime;
    nothing is kept for the other channels."""
    service, out = dry_run_router(settings=ACK_SETTINGS)
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    service.state.store = store
    paged = service.plan(alertmanager.parse(fixture("alertmanager-firing-critical.json")))
    await service.deliver(paged)
    [sms] = [n for n in paged.notifications if n.channel is Channel.SMS and n.ack]
    assert sms.ack is not None
    assert sms.ack.short_link in out.getvalue()
    assert await store.link(sms.ack.short) == sms.ack.token
    lifetime = CONFIG.acknowledgement.links_valid_for
    now[0] += lifetime - 1
    assert (await service.state.link(sms.ack.short)).token == sms.ack.token
    now[0] += 2
    assert await service.state.link(sms.ack.short) == Lookup(None)
