"""Inbound authentication: bearer token, Sentry, Slack and Twilio signatures, URL tokens.

Header values arrive as text decoded with `surrogateescape` (aiohttp keeps bytes that are not
UTF-8 as lone surrogates), so any of them may fail a plain `.encode()`: every check encodes with
`_raw`, which cannot fail, and a value that is not well formed is simply "no", never a 500.
"""

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
    return hmac.compare_digest(_raw(value.strip()), token.encode())


def sentry_signature_ok(body: bytes, signature: str | None, secret: str) -> bool:
    """Hex HMAC-SHA256 of the raw body with the integration's client secret."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), _raw(signature.strip().lower()))


def token_ok(given: str, expected: str) -> bool:
    return hmac.compare_digest(_raw(given), expected.encode())


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
    base = b"v0:" + _raw(timestamp) + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), _raw(signature.strip()))


def twilio_signature_ok(
    url: str, params: Mapping[str, str], signature: str | None, token: str
) -> bool:
    """Twilio's `X-Twilio-Signature`, checked by the twilio library's own validator."""
    # Twilio's signature is base64; the validator would encode anything else as UTF-8 and fail.
    if not signature or not signature.isascii():
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


def _raw(text: str) -> bytes:
    """A header (or path) value as bytes, whatever it holds. `surrogatepass` never fails, and
    turns a lone surrogate into bytes that are not UTF-8, so such a value matches no secret."""
    return text.encode("utf-8", "surrogatepass")
