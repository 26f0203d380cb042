"""The SMS's short acknowledgement link, `/a/<id>`: the id is looked up in the shared store
(receiver.web.ack_links) and the token it stands for gets the same page as the email's link
(receiver.web.callbacks.ack_page), for an SMS token.

An id the store does not know is a 404 page that says so and points to the SMS reply; a store
that cannot answer is a 503 page that says to try again (never a 500, never "unknown").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from receiver.model import Channel
from receiver.web import ack_links
from receiver.web.callbacks import ack_page, refused
from receiver.web.service import SERVICE, Service


def add_routes(app: web.Application) -> None:
    app.router.add_get("/a/{id}", confirm)
    app.router.add_post("/a/{id}", ack)


async def confirm(request: web.Request) -> web.Response:
    return await _with_token(request, ack_page.confirm)


async def ack(request: web.Request) -> web.Response:
    return await _with_token(request, ack_page.ack)


async def _with_token(
    request: web.Request, page: Callable[[Service, str, Channel], Awaitable[web.Response]]
) -> web.Response:
    """`page` for the SMS token the link stands for, or the page that says why there is none."""
    service = request.app[SERVICE]
    token = await _token(service, request.match_info["id"])
    if isinstance(token, web.Response):
        return token
    return await page(service, token, Channel.SMS)


async def _token(service: Service, link: str) -> str | web.Response:
    """The token the link stands for, or the page that says why there is none."""
    off = ack_page.not_configured(service, Channel.SMS)
    if off is not None:
        return off
    found = await ack_links.find(service, link)
    if found is ack_links.Missing.UNAVAILABLE:
        refused(service, Channel.SMS, "storeUnavailable", "the shared store cannot look up a link")
        response = ack_page.page(
            "Try again",
            [
                "This link cannot be looked up right now. Try again in a minute, or reply "
                "ACK with the code at the end of the SMS."
            ],
            status=503,
        )
        response.headers["Retry-After"] = "30"
        return response
    if found is ack_links.Missing.UNKNOWN:
        refused(service, Channel.SMS, "unknownLink", "no such short link, or it has expired")
        lasts = ack_page.minutes(service.config.acknowledgement.links_valid_for)
        return ack_page.page(
            "Link not found",
            [
                f"This acknowledgement link is unknown or has expired (links work for {lasts}). "
                "Reply ACK with the code at the end of the SMS instead, or acknowledge the "
                "latest page."
            ],
            status=404,
        )
    return found
