"""The email's acknowledgement link, `/ack/<token>`: the page of receiver.web.callbacks.ack_page
for an email token (a token of another channel is refused as forged)."""

from __future__ import annotations

from aiohttp import web

from receiver.model import Channel
from receiver.web.callbacks import ack_page
from receiver.web.service import SERVICE


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ack/{token}", confirm)
    app.router.add_post("/ack/{token}", ack)


async def confirm(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return await ack_page.confirm(service, request.match_info["token"], Channel.EMAIL)


async def ack(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return await ack_page.ack(service, request.match_info["token"], Channel.EMAIL)
