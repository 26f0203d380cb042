"""Inbound authentication: bearer token, Sentry, Slack and Twilio signatures, URL tokens."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator


def bearer_ok(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def sentry_signature_ok(body: bytes, signature: str | None, secret: str) -> bool:
    """Hex HMAC-SHA256 of the raw body with the integration's client secret."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def token_ok(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# Slack refuses requests older than this; so do we, against replays.
SLACK_REPLAY_WINDOW = 300


def slack_signature_ok(
    body: bytes, timestamp: str | None, signature: str | None, secret: str, now: float
) -> bool:
    """`X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:<timestamp>:<raw body>"))`."""
    if not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > SLACK_REPLAY_WINDOW:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def twilio_signature_ok(
    url: str, params: Mapping[str, str], signature: str | None, token: str
) -> bool:
    """Twilio's `X-Twilio-Signature`, checked by the twilio library's own validator."""
    if not signature:
        return False
    return bool(RequestValidator(token).validate(url, params, signature))
