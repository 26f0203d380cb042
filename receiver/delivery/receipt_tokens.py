"""Signed, expiring tokens that a page carries to the vendor and the vendor's report brings back.

Twilio's StatusCallback URL and SendGrid's `custom_args` carry one: it names the group (its key
in the shared store and its spell), the person, channel, level and attempt, where what the page
said is kept (calls: for a second call), the group's acknowledgement id and the Slack
destinations that follow the group. Never a phone number or an address. HMAC-SHA256 signed,
apart from acknowledgement tokens (a different prefix is signed), so one cannot pass for the
other even under the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from receiver.model import Channel

_SIGNATURE_BYTES = 16
_DOMAIN = b"oncall-router receipt\n"
MAX_TOKEN = 2048


class TokenError(ValueError):
    """A token we did not issue, cannot read, or that has expired; `reason` says which."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ReceiptToken:
    group: str  # receiver.store.base.group_key of the alert group
    spell: str  # the group's firing spell (routing.plan.spell_of)
    person: str  # person id in the routing file
    channel: Channel
    level: int
    attempt: int  # calls: 1 the page, 2 the second call; 0 for other messages
    expires: int  # Unix seconds
    page: str = ""  # store key of what a page call said (receiver.web.receipts)
    ack: str = ""  # receiver.ack.store.group_id, "" when acknowledgement is off
    slack: tuple[str, ...] = ()  # Slack destinations whose message follows the group

    @property
    def where(self) -> str:
        """Where the group's Slack messages are kept in the store (delivery.fanout)."""
        return f"{self.group}:{self.spell}"


# Short keys: the token rides in a URL.
_FIELDS = {
    "group": "g",
    "spell": "s",
    "person": "p",
    "channel": "c",
    "level": "l",
    "attempt": "n",
    "expires": "e",
    "page": "k",
    "ack": "a",
    "slack": "d",
}


def sign(token: ReceiptToken, secret: str) -> str:
    """`<payload>.<signature>`, base64url without padding: safe in a URL's query."""
    fields = {short: getattr(token, name) for name, short in _FIELDS.items()}
    fields["d"] = list(token.slack)
    body = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    payload = _b64(body)
    return f"{payload}.{_b64(_mac(secret, payload))}"


def signature(text: str) -> str:
    """The part of a token that identifies it."""
    return text.rpartition(".")[2]


def verify(text: str, secret: str, now: float) -> ReceiptToken:
    """The token if we signed it and it has not expired; else TokenError."""
    payload, dot, sig = text.partition(".")
    # Not ASCII (a query may hold any bytes): not ours, and it could not even be encoded.
    if not dot or len(text) > MAX_TOKEN or not text.isascii():
        raise TokenError("malformed", "not a receipt token")
    try:
        given = _unb64(sig)
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "not a receipt token") from None
    # One text per signature, as for acknowledgement tokens: it can stand for the message.
    if _b64(given) != sig:
        raise TokenError("malformed", "not a receipt token")
    if not hmac.compare_digest(given, _mac(secret, payload)):
        raise TokenError("forged", "the receipt token's signature is wrong")
    try:
        f = json.loads(_unb64(payload))
        token = ReceiptToken(
            group=str(f["g"]),
            spell=str(f["s"]),
            person=str(f["p"]),
            channel=Channel(f["c"]),
            level=int(f["l"]),
            attempt=int(f["n"]),
            expires=int(f["e"]),
            page=str(f["k"]),
            ack=str(f["a"]),
            slack=tuple(str(d) for d in f["d"]),
        )
    except (ValueError, KeyError, TypeError):
        # Signed by us but unreadable: a token from an incompatible version.
        raise TokenError("malformed", "the receipt token cannot be read") from None
    if now >= token.expires:
        raise TokenError("expired", "the receipt token has expired")
    return token


def _mac(secret: str, payload: str) -> bytes:
    digest = hmac.new(secret.encode(), _DOMAIN + payload.encode(), hashlib.sha256).digest()
    return digest[:_SIGNATURE_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
