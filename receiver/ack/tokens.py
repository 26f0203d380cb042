"""Signed, expiring acknowledgement tokens carried by buttons, links and call-backs.

A token names the group and level it acknowledges, the severity and start of the group (for the
time-to-acknowledge metric), who it was sent to and on which channel, and when it stops working.
It is HMAC-SHA256 signed with `ACK_SECRET`, which every replica shares; nothing is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from receiver.model import Channel, Severity

# 128 bits of HMAC-SHA256 is plenty against forgery and keeps URLs short.
_SIGNATURE_BYTES = 16


class TokenError(ValueError):
    """A token that must not acknowledge anything; `reason` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class AckToken:
    group: str  # receiver.ack.store.group_id of the alert group
    level: int
    severity: Severity
    started: int  # Unix seconds: earliest start of the group's firing alerts
    expires: int  # Unix seconds
    to: str  # person id, or the Slack destination
    channel: Channel


def sign(token: AckToken, secret: str) -> str:
    """`<payload>.<signature>`, both base64url without padding: safe in URLs and Slack values."""
    fields = asdict(token)
    payload = _b64(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_b64(_mac(secret, payload))}"


def signature(text: str) -> str:
    """The part of a token that identifies it (recorded with the acknowledgement it made)."""
    return text.rpartition(".")[2]


def verify(text: str, secret: str, now: float, channel: Channel | None = None) -> AckToken:
    """The token if it is ours, unexpired and (given `channel`) issued for that channel.

    Every call-back passes its own channel: a Slack button's token pasted into an email link,
    or a call's token posted to the Slack endpoint, would otherwise acknowledge on a channel
    the page never reached, in the name of someone else.
    """
    payload, dot, sig = text.partition(".")
    if not dot or len(text) > 1024:
        raise TokenError("malformed", "not an acknowledgement token")
    try:
        given = _unb64(sig)
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "not an acknowledgement token") from None
    # One text per signature: the replay guard (receiver.ack.flow) knows a used link by its
    # signature's text, and base64 decoding reads `...Q`, `...R` and `...Q=` as the same bytes.
    if _b64(given) != sig:
        raise TokenError("malformed", "not an acknowledgement token")
    if not hmac.compare_digest(given, _mac(secret, payload)):
        raise TokenError("forged", "the token's signature is wrong")
    try:
        fields = json.loads(_unb64(payload))
        token = AckToken(
            group=str(fields["group"]),
            level=int(fields["level"]),
            severity=Severity(fields["severity"]),
            started=int(fields["started"]),
            expires=int(fields["expires"]),
            to=str(fields["to"]),
            channel=Channel(fields["channel"]),
        )
    except (ValueError, KeyError, TypeError):
        # Signed by us but unreadable: a token from an incompatible version.
        raise TokenError("malformed", "the token cannot be read") from None
    # Before expiry: a token used on the wrong channel is refused as such (403), never as 410.
    if channel is not None and token.channel is not channel:
        raise TokenError(
            "forged", f"this token was issued for {token.channel.value}, not {channel.value}"
        )
    if now >= token.expires:
        raise TokenError("expired", "this acknowledgement link has expired")
    return token


def _mac(secret: str, payload: str) -> bytes:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return digest[:_SIGNATURE_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
