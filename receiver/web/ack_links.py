"""The SMS's short acknowledgement link (`/a/<id>`, receiver.ack.short_links) in the shared
store: kept just before the SMS is sent, so any replica can answer it, and looked up again.

The link lives as long as the token it stands for (`acknowledgement.links_valid_for`). If the
shared store fails at the send, the link is kept in this replica only (receiver.store.failopen):
the SMS still goes out, and its `Reply ACK <code>` works whichever replica answers.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from receiver.ack.short_links import is_link_id, names
from receiver.model import Channel, Notification, Status

if TYPE_CHECKING:
    from receiver.web.service import Service


async def keep_link(service: Service, n: Notification) -> None:
    """Before a firing SMS with a short link is sent, or a page call whose unanswered second
    call is followed by that SMS (receiver.web.receipts): map the link's id to its token."""
    if n.status is not Status.FIRING or n.ack is None or not n.ack.short:
        return
    # As receiver.web.receipts.keep_page: only such a call can be followed by the SMS.
    follows_up = (
        n.channel is Channel.CALL
        and bool(n.receipt)
        and service.config.delivery.call_retry_after > 0
    )
    if n.channel is Channel.SMS or follows_up:
        ttl = service.config.acknowledgement.links_valid_for
        await service.state.remember_link(n.ack.short, n.ack.short_token, ttl)


class Missing(enum.Enum):
    UNKNOWN = "unknown"  # not kept (expired, or not an id we made)
    UNAVAILABLE = "unavailable"  # the store cannot say right now


async def find(service: Service, link: str) -> str | Missing:
    """The token behind a short link, or why there is none."""
    secret = service.settings.ack_secret
    if not secret or not is_link_id(link):
        return Missing.UNKNOWN  # not even shaped like an id: the store is not asked
    lookup = await service.state.link(link)
    if not lookup.known:
        return Missing.UNAVAILABLE
    if lookup.token is None or not names(link, lookup.token, secret):
        return Missing.UNKNOWN
    return lookup.token
