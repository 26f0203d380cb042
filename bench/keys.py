"""How a vendor request is traced back to the webhook that caused it: the message key.

Every webhook the load generator sends has its own sequence number in the group's `service`
label (`payments-api-1000001`). Every message the router or the relay renders names the service,
so the fake vendors find the number in each request body, whatever the channel: JSON for Slack and
SendGrid, a form for Twilio, and spoken text for a call (`payments api 1000001`). Numbers start at
seven digits so that no other number in the texts (an IP address, `5xx`, a percentage) can match.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

FIRST = 1_000_000
SERVICE = "payments-api"
_KEY = re.compile(r"payments\W+api\W+(\d{7,})(?!\d)")


def service(seq: int) -> str:
    """The `service` label of webhook number `seq`."""
    if seq < FIRST:
        raise ValueError(f"sequence numbers start at {FIRST}")
    return f"{SERVICE}-{seq}"


def message_key(body: bytes, *, form: bool = False) -> str | None:
    """The webhook's sequence number named in a vendor request body, or None."""
    text = body.decode("utf-8", errors="replace")
    match = _KEY.search(unquote_plus(text) if form else text)
    return match[1] if match else None
