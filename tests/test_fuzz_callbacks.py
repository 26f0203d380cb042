"""Hostile call-backs, correctly signed: whatever arrives, a clear 4xx or a polite reply, never 5xx.

The router runs with acknowledgement configured but no Alertmanager behind it (dry run), so every
request goes through signature checks, parsing and token checks and then is refused politely.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from receiver.ack import short_links, tokens
from receiver.config.settings import Settings
from receiver.delivery import receipt_tokens
from receiver.model import Channel, Severity
from tests.fakes.slack import slack_signature
from tests.helpers import dry_run_router, metric
from tests.test_fuzz import Harness, fuzz_config, fuzz_settings, json_values, mutated

ACK_SECRET = "fuzz-ack-secret"
SIGNING_SECRET = "fuzz-slack-signing-secret"
TWILIO_TOKEN = "fuzz-twilio-auth-token"
PUBLIC_URL = "https://oncall.example.com"
# Nothing listens there: a message update the router attempts fails at once, on loopback.
SLACK_LOOPBACK = "http://127.0.0.1:9"
ALICE = "+447700900101"  # a phone in the shipped routing file
# A 5xx only where it means "try again" (Alertmanager unreachable for an email link's POST).
ALLOWED = frozenset({200, 400, 401, 403, 404, 405, 410, 503})

SETTINGS = Settings(
    ack_secret=ACK_SECRET,
    alertmanager_url="http://127.0.0.1:9",
    public_url=PUBLIC_URL,
    slack_signing_secret=SIGNING_SECRET,
    slack_api_url=f"{SLACK_LOOPBACK}/api",
    twilio_auth_token=TWILIO_TOKEN,
)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    service, out = dry_run_router(fuzz_config(), SETTINGS)
    h = Harness(service, out)
    try:
        yield h
    finally:
        h.close()


def token(channel: Channel, secret: str = ACK_SECRET, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "group": "0123456789abcdef",
        "level": 0,
        "severity": Severity.CRITICAL,
        "started": int(time.time()) - 60,
        "expires": int(time.time()) + 3600,
        "to": "alice",
        "channel": channel,
        **changes,
    }
    return tokens.sign(tokens.AckToken(**fields), secret)


# Tokens are bound to the channel they were issued for: each endpoint gets its own.
VALID = token(Channel.SLACK)
VALID_CALL = token(Channel.CALL)
VALID_EMAIL = token(Channel.EMAIL)
VALID_SMS = token(Channel.SMS)
FORGED = token(Channel.SLACK, "not-our-secret")
EXPIRED = token(Channel.EMAIL, expires=0)


def slack_form(value: str) -> bytes:
    return urlencode({"payload": json.dumps(block_actions(value))}).encode()


token_texts = (
    st.sampled_from(["", "x", "a.b", "a.b.c"])
    | st.text(max_size=80)
    | st.builds(
        lambda c, level, exp: token(c, level=level, expires=exp),
        st.sampled_from(list(Channel)),
        st.integers(-(2**31), 2**31),
        st.sampled_from([0, 2**31, int(time.time()) + 3600]),
    )
)


def block_actions(value: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": "U0A11CE001", "username": "alice", "name": "alice"},
        "response_url": f"{SLACK_LOOPBACK}/actions/T1/1/x",
        "message": {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]},
        "actions": [{"action_id": "ack", "block_id": "ack:x", "value": value, "type": "button"}],
    }


SLACK_HOT = frozenset(
    {"type", "user", "id", "actions", "action_id", "value", "response_url", "message", "blocks"}
)


@fuzz_settings(400)
# Each gate at least once, whatever the draws: refused as forged, refused by the store, malformed.
@example(body=slack_form(FORGED))
@example(body=slack_form(VALID))
@example(body=b"payload=%7B%7D")
@given(
    body=st.one_of(
        st.builds(
            lambda doc: urlencode({"payload": json.dumps(doc)}).encode(),
            st.builds(block_actions, token_texts).flatmap(lambda d: mutated(d, SLACK_HOT)),
        ),
        st.builds(lambda doc: urlencode({"payload": json.dumps(doc)}).encode(), json_values),
        st.binary(max_size=2048),
    )
)
def test_signed_slack_clicks_never_5xx(harness: Harness, body: bytes) -> None:
    ts = str(int(harness.service.clock().timestamp()))  # within the router's replay window
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, ts, body),
    }
    harness.post("/webhooks/slack/actions", body, headers, allowed=ALLOWED)


def twilio_post(harness: Harness, path: str, params: dict[str, str]) -> int:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return harness.post(path, urlencode(params).encode(), headers, allowed=ALLOWED)


texts = st.text(max_size=40)


@fuzz_settings(400)
@example(sender=ALICE, body="ACK", extra={})
@example(sender=ALICE, body="hello", extra={})
@given(
    sender=st.sampled_from([ALICE, "+15005550006", ""]) | texts,
    body=st.sampled_from(["ACK", "ack 5t5nq", "ACK ZZZZZ", " Ack. ", ""]) | texts,
    extra=st.dictionaries(texts, texts, max_size=4),
)
def test_signed_sms_replies_never_5xx(
    harness: Harness, sender: str, body: str, extra: dict[str, str]
) -> None:
    twilio_post(harness, "/webhooks/twilio/sms", {**extra, "From": sender, "Body": body})


@fuzz_settings(400)
@example(text=FORGED, digits="1", answered_by=None, extra={})
@example(text=VALID_CALL, digits="1", answered_by=None, extra={})
@example(text=VALID_CALL, digits="2", answered_by=None, extra={})
@given(
    text=token_texts,
    digits=st.sampled_from(["1", "2", "", "11"]) | texts,
    answered_by=st.sampled_from([None, "human", "machine_start", "unknown"]),
    extra=st.dictionaries(texts, texts, max_size=3),
)
def test_signed_key_presses_never_5xx(
    harness: Harness, text: str, digits: str, answered_by: str | None, extra: dict[str, str]
) -> None:
    params = {**extra, "Digits": digits, "From": "+15005550006", "To": ALICE}
    if answered_by is not None:
        params["AnsweredBy"] = answered_by
    twilio_post(harness, f"/webhooks/twilio/voice?token={quote(text, safe='')}", params)


@fuzz_settings(300)
@example(text=FORGED, method="GET")
@example(text=EXPIRED, method="POST")
@example(text=VALID_EMAIL, method="POST")
@given(text=token_texts, method=st.sampled_from(["GET", "POST", "PUT"]))
def test_email_links_never_5xx(harness: Harness, text: str, method: str) -> None:
    path = f"/ack/{quote(text, safe='') or 'x'}"
    harness.post(path, b"", {}, method=method, allowed=ALLOWED)


def kept_link(harness: Harness, text: str) -> str:
    """The short link id of `text`, kept in the harness's store as the SMS's send would."""
    link = short_links.link_id(text, ACK_SECRET)
    harness.runner.run(harness.service.state.remember_link(link, text, 3600))
    return link


@fuzz_settings(200)
@example(text=VALID_SMS, method="POST", kept=True)  # past the store, to Alertmanager: 503
@example(text=VALID_SMS, method="GET", kept=True)  # the page, without what it is about
@example(text=VALID_EMAIL, method="GET", kept=True)  # another channel's token: 403
@example(text="Ab3dEf9hIj", method="GET", kept=False)  # shaped like an id, unknown: 404
@given(text=token_texts, method=st.sampled_from(["GET", "POST", "PUT"]), kept=st.booleans())
def test_short_links_never_5xx(harness: Harness, text: str, method: str, kept: bool) -> None:
    link = kept_link(harness, text) if kept else text
    path = f"/a/{quote(link, safe='') or 'x'}"
    harness.post(path, b"", {}, method=method, allowed=ALLOWED)


def receipt(channel: Channel, secret: str = ACK_SECRET, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "group": "0123456789abcdef",
        "spell": "2026-03-16T09:00:00+00:00",
        "person": "alice",
        "channel": channel,
        "level": 0,
        "attempt": 1 if channel is Channel.CALL else 0,
        "expires": int(time.time()) + 3600,
        **changes,
    }
    return receipt_tokens.sign(receipt_tokens.ReceiptToken(**fields), secret)


STATUSES = ["completed", "no-answer", "busy", "failed", "canceled", "ringing", "delivered"]
STATUSES += ["undelivered", "sent", "queued", "in-progress"]


@fuzz_settings(300)
@example(text=receipt(Channel.CALL), status="no-answer", answered_by="", extra={})
@example(text=receipt(Channel.SMS), status="undelivered", answered_by="", extra={})
@example(text=VALID_CALL, status="completed", answered_by="human", extra={})  # an ack token
@given(
    text=token_texts
    | st.builds(receipt, st.sampled_from(list(Channel)), st.sampled_from([ACK_SECRET, "x"])),
    status=st.sampled_from(STATUSES) | texts,
    answered_by=st.sampled_from(["", "human", "machine_start", "fax"]) | texts,
    extra=st.dictionaries(texts, texts, max_size=3),
)
def test_signed_status_call_backs_never_5xx(
    harness: Harness, text: str, status: str, answered_by: str, extra: dict[str, str]
) -> None:
    """Twilio's status call-backs, correctly signed, with any token, status and fields."""
    params = {**extra, "CallSid": "CA" + "0" * 32, "MessageSid": "SM" + "0" * 32}
    params |= {"CallStatus": status, "MessageStatus": status, "To": ALICE}
    if answered_by:
        params["AnsweredBy"] = answered_by
    twilio_post(harness, f"/webhooks/twilio/status?token={quote(text, safe='')}", params)


# SendGrid's Event Webhook key pair (ECDSA P-256); the router holds the public half.
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


@pytest.fixture(scope="module")
def email_harness() -> Iterator[Harness]:
    settings = dataclasses.replace(SETTINGS, sendgrid_webhook_public_key=SENDGRID_PUBLIC)
    service, out = dry_run_router(fuzz_config(), settings)
    h = Harness(service, out)
    try:
        yield h
    finally:
        h.close()


def sendgrid_event(kind: str, token: str) -> dict[str, Any]:
    return {
        "email": "alice@example.com",
        "event": kind,
        "sg_event_id": f"ev-{kind}-{token[:8]}",
        "sg_message_id": "msg.1",
        "timestamp": int(time.time()),
        "notification_key": "k1",
        "receipt": token,
    }


EVENT_HOT = frozenset({"event", "type", "receipt", "notification_key", "sg_event_id", "reason"})


@fuzz_settings(200)
@example(body=json.dumps([sendgrid_event("bounce", receipt(Channel.EMAIL))]).encode())
@example(body=json.dumps([sendgrid_event("delivered", VALID_EMAIL)]).encode())
@given(
    body=st.one_of(
        st.builds(
            lambda events: json.dumps(events).encode(),
            st.lists(
                st.builds(
                    sendgrid_event,
                    st.sampled_from(["bounce", "dropped", "delivered", "deferred", "open"]),
                    token_texts | st.builds(receipt, st.sampled_from(list(Channel))),
                ).flatmap(lambda e: mutated(e, EVENT_HOT)),
                max_size=4,
            ),
        ),
        st.builds(lambda doc: json.dumps(doc).encode(), json_values),
        st.binary(max_size=1024),
    )
)
def test_signed_sendgrid_events_never_5xx(email_harness: Harness, body: bytes) -> None:
    """SendGrid's Event Webhook, correctly signed, whatever the batch holds."""
    ts = str(int(time.time()))
    signed = SENDGRID_KEY.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signed).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }
    email_harness.post("/webhooks/sendgrid/events", body, headers, allowed=ALLOWED)


def test_sendgrid_fuzzing_reached_the_counting(email_harness: Harness) -> None:
    labels = {"channel": "email", "status": "bounce"}
    assert metric(email_harness.service, "oncall_router_vendor_status_total", labels) >= 1


def test_the_fuzzing_reached_past_the_signatures(harness: Harness) -> None:
    """Runs last (file order): requests got through the vendor signatures into parsing, token
    checks and the store (the explicit examples above make sure of it), not only the first gate."""
    seen = {
        (channel.value, reason)
        for channel in Channel
        for reason in (
            "malformed",
            "forged",
            "expired",
            "storeUnavailable",
            "notAcknowledged",
            "unknownLink",
        )
        if metric(
            harness.service,
            "oncall_router_acknowledgements_refused_total",
            {"channel": channel.value, "reason": reason},
        )
    }
    assert {("slack", "malformed"), ("slack", "forged"), ("slack", "storeUnavailable")} <= seen
    assert {("sms", "storeUnavailable"), ("sms", "notAcknowledged")} <= seen
    assert {("sms", "forged"), ("sms", "unknownLink")} <= seen
    assert {("call", "forged"), ("call", "storeUnavailable"), ("call", "notAcknowledged")} <= seen
    assert {("email", "forged"), ("email", "expired"), ("email", "storeUnavailable")} <= seen
    # Status call-backs got past the signature and the token, into counting.
    for channel, status in (("call", "no-answer"), ("sms", "undelivered")):
        labels = {"channel": channel, "status": status}
        assert metric(harness.service, "oncall_router_vendor_status_total", labels) >= 1, labels
