"""The acknowledgement page a person opens in a browser: the email's link (`/ack/<token>`) and the
SMS's short link (`/a/<id>`) both end here. GET only shows what the page is about and a button;
the button's POST acknowledges.

Mail scanners and link previews fetch links; a GET that acknowledged would stop escalation before
anyone read the page, so only the POST from the page's form acknowledges. The form has no
`action`: it posts back to the URL the page was opened with.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from aiohttp import web

from receiver.ack import flow, tokens
from receiver.ack.flow import Refused, acknowledge, from_token
from receiver.model import AlertGroup, Channel, Status
from receiver.web.callbacks import refused
from receiver.web.service import Service

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 2em auto; \
padding: 0 1em; overflow-wrap: anywhere">
<h1 style="font-size: 1.4em">{title}</h1>
{paragraphs}
{form}
</body></html>
"""
_FORM = """<form method="post">
<button type="submit" style="font-size: 1.2em; padding: .5em 1.5em">Acknowledge</button>
</form>"""
_SUMMARY_LIMIT = 300  # a page is not the place for a whole description


async def confirm(service: Service, text: str, channel: Channel) -> web.Response:
    """The page for a token: what it is about, and the Acknowledge button."""
    token = verify(service, text, channel)
    if isinstance(token, web.Response):
        return token
    started = datetime.fromtimestamp(token.started, service.config.timezone)
    lasts = minutes(service.config.acknowledgement.expires_after[token.severity])
    paragraphs = [
        *_about(await flow.firing_group(service, token.group)),
        f"A {token.severity.value} alert page for {token.to}, firing since "
        f"{started:%Y-%m-%d %H:%M %Z}. Acknowledging pauses its escalation for {lasts}.",
    ]
    return page("Acknowledge this page?", paragraphs, form=True)


async def ack(service: Service, text: str, channel: Channel) -> web.Response:
    """The button's POST: record the acknowledgement (receiver.ack.flow)."""
    token = verify(service, text, channel)
    if isinstance(token, web.Response):
        return token
    try:
        outcome = await acknowledge(
            service, from_token(token, tokens.signature(text), token.to, channel)
        )
    except Refused as e:
        refused(service, channel, e.reason, e.detail)
        status = 503 if e.reason == "storeUnavailable" else 410
        return page("Not acknowledged", [e.detail], status=status)
    until = outcome.ack.until.astimezone(service.config.timezone)
    if outcome.new:
        return page("Acknowledged", [f"Escalation is paused until {until:%H:%M %Z}."])
    return page(
        "Already acknowledged",
        [f"{outcome.ack.by} acknowledged it; escalation is paused until {until:%H:%M %Z}."],
    )


def not_configured(service: Service, channel: Channel) -> web.Response | None:
    """The 404 page when acknowledgement is off, else None."""
    if service.ack_enabled and service.settings.ack_secret:
        return None
    refused(service, channel, "storeUnavailable", "acknowledgement is not configured")
    return page("Not available", ["Acknowledgement is not configured here."], status=404)


def verify(service: Service, text: str, channel: Channel) -> tokens.AckToken | web.Response:
    """The token, if it is ours, unexpired and the channel's; else the refusal page."""
    off = not_configured(service, channel)
    if off is not None:
        return off
    assert service.settings.ack_secret is not None  # not_configured checked it
    try:
        return tokens.verify(
            text, service.settings.ack_secret, service.clock().timestamp(), channel
        )
    except tokens.TokenError as e:
        refused(service, channel, e.reason, str(e))
        status = 410 if e.reason == "expired" else 403
        return page("Not acknowledged", [f"{e}."], status=status)


def _about(group: AlertGroup | None) -> list[str]:
    """The alert names, where, and the summary, while the group fires in Alertmanager."""
    if group is None:
        return []
    where = ", ".join(
        f"{k}={v}" for k, v in sorted(group.group_labels.items()) if k != "alertname" and v
    )
    about = [flow.title(group) + (f" ({where})" if where else "")]
    firing = [a for a in group.alerts if a.status is Status.FIRING] or list(group.alerts)
    summary = firing[0].summary if firing else ""
    if summary and summary != firing[0].name:
        cut = summary[: _SUMMARY_LIMIT - 1] + "…" if len(summary) > _SUMMARY_LIMIT else summary
        about.append(cut)
    return about


def minutes(seconds: float) -> str:
    """`30 minutes`, `12 hours`."""
    count = round(seconds / 60)
    return f"{count} minutes" if count < 120 else f"{count // 60} hours"


def page(
    heading: str, paragraphs: Sequence[str], *, form: bool = False, status: int = 200
) -> web.Response:
    body = _PAGE.format(
        title=html.escape(heading),
        paragraphs="\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs),
        form=_FORM if form else "",
    )
    response = web.Response(text=body, content_type="text/html", status=status)
    # Nobody should cache or frame an acknowledgement page, nor learn its URL from a Referer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
