"""The email's acknowledgement link: GET only shows a page, its button POSTs the acknowledgement.

Mail scanners and link previews fetch links; a GET that acknowledged would stop escalation before
anyone read the page, so only the POST from the page's form acknowledges.
"""

from __future__ import annotations

import html
from datetime import datetime

from aiohttp import web

from receiver.ack import tokens
from receiver.ack.flow import Refused, acknowledge, from_token
from receiver.model import Channel
from receiver.web.callbacks import refused
from receiver.web.service import SERVICE, Service

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 2em auto; padding: 0 1em">
<h1 style="font-size: 1.4em">{title}</h1>
<p>{text}</p>
{form}
</body></html>
"""
_FORM = """<form method="post">
<button type="submit" style="font-size: 1.2em; padding: .5em 1.5em">Acknowledge</button>
</form>"""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ack/{token}", confirm)
    app.router.add_post("/ack/{token}", ack)


async def confirm(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    token = _token(request, service)
    if isinstance(token, web.Response):
        return token
    started = datetime.fromtimestamp(token.started, service.config.timezone)
    text = (
        f"A {token.severity.value} alert page for {token.to}, firing since "
        f"{started:%Y-%m-%d %H:%M %Z}. Acknowledging pauses its escalation for "
        f"{_minutes(service.config.acknowledgement.expires_after[token.severity])}."
    )
    return _page("Acknowledge this page?", text, form=True)


async def ack(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    token = _token(request, service)
    if isinstance(token, web.Response):
        return token
    text = request.match_info["token"]
    try:
        outcome = await acknowledge(
            service, from_token(token, tokens.signature(text), token.to, Channel.EMAIL)
        )
    except Refused as e:
        refused(service, Channel.EMAIL, e.reason, e.detail)
        status = 503 if e.reason == "storeUnavailable" else 410
        return _page("Not acknowledged", e.detail, status=status)
    until = outcome.ack.until.astimezone(service.config.timezone)
    if outcome.new:
        return _page("Acknowledged", f"Escalation is paused until {until:%H:%M %Z}.")
    return _page(
        "Already acknowledged",
        f"{outcome.ack.by} acknowledged it; escalation is paused until {until:%H:%M %Z}.",
    )


def _token(request: web.Request, service: Service) -> tokens.AckToken | web.Response:
    secret = service.settings.ack_secret
    if not service.ack_enabled or not secret:
        refused(service, Channel.EMAIL, "storeUnavailable", "acknowledgement is not configured")
        return _page("Not available", "Acknowledgement is not configured here.", status=404)
    try:
        return tokens.verify(
            request.match_info["token"], secret, service.clock().timestamp(), Channel.EMAIL
        )
    except tokens.TokenError as e:
        refused(service, Channel.EMAIL, e.reason, str(e))
        status = 410 if e.reason == "expired" else 403
        return _page("Not acknowledged", f"{e}.", status=status)


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"


def _page(title: str, text: str, *, form: bool = False, status: int = 200) -> web.Response:
    body = _PAGE.format(
        title=html.escape(title), text=html.escape(text), form=_FORM if form else ""
    )
    response = web.Response(text=body, content_type="text/html", status=status)
    # Nobody should cache or frame an acknowledgement page.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
