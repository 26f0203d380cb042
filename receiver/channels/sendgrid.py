"""Email through SendGrid v3 Mail Send: a plain-text and an HTML incident notice.

The body is the one the sendgrid library's `Mail` helper builds (tests/test_channel_sendgrid.py
proves it), written out directly: the helper costs ~100 µs per email in validation and copies.
We POST it with the shared aiohttp session; the library's own client would block the event loop.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from datetime import tzinfo
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

import aiohttp
from sendgrid.helpers.mail.exceptions import ApiKeyIncludedException

from receiver.channels.base import (
    JSON_HEADERS,
    NO_TIMEOUT,
    DeliveryError,
    json_body,
    reason_for_status,
    short,
)
from receiver.config.settings import Settings
from receiver.messages import escape, links, render, templates, view
from receiver.model import Notification, Severity, Status

log = logging.getLogger("receiver.channels.email")

SENDER_NAME = "oncall-router"
KEY_HEADER = "X-Oncall-Router-Key"
CELL_LIMIT = 500  # one annotation must not turn a notice into a novel
# A route's `email_text` override has no bound of its own; keep the request far below SendGrid's
# ~30 MB and aiohttp's 1 MiB "large body" warning.
TEXT_LIMIT = 100_000

_TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class EmailSender:
    def __init__(self, session: aiohttp.ClientSession, settings: Settings, tz: tzinfo) -> None:
        self._session = session
        self._tz = tz
        self._url = f"{settings.sendgrid_api_url.rstrip('/')}/v3/mail/send"
        self._key = settings.sendgrid_api_key
        self._from = settings.sendgrid_from
        self._secrets = (self._key,) if self._key else ()
        self._headers = {
            "Authorization": f"Bearer {self._key}",
            "Accept": "application/json",
            **JSON_HEADERS,
        }

    async def send(self, n: Notification) -> None:
        if not self._key or not self._from:
            raise DeliveryError(
                "authError",
                "SendGrid is not configured: set SENDGRID_API_KEY and SENDGRID_FROM",
                retryable=False,
            )
        try:
            async with self._session.post(
                self._url,
                data=json_body(mail_body(n, n.timezone or self._tz, self._from)),
                headers=self._headers,
                timeout=NO_TIMEOUT,
                allow_redirects=False,  # a redirected POST would be replayed as a GET
            ) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except _TRANSPORT_ERRORS as e:
            # `from None`: aiohttp errors may carry request_info, whose headers hold the key.
            raise DeliveryError(
                "connectionError",
                short(f"sendgrid: {type(e).__name__}: {e}", self._secrets),
                retryable=True,
            ) from None
        except aiohttp.ClientError as e:  # e.g. an invalid SENDGRID_API_URL
            raise DeliveryError(
                "other", short(f"sendgrid: {type(e).__name__}: {e}", self._secrets), retryable=False
            ) from None
        if not 200 <= status < 300:
            raise classify(status, headers, body, scrub=self._secrets)
        # X-Message-Id ties this send to SendGrid's event webhook (delivered, bounced...).
        log.info(
            "email accepted",
            extra={
                "channel": "email",
                "to": n.recipient.name,
                "route": n.route,
                "message_id": headers.get("X-Message-Id"),
            },
        )


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    scrub: Iterable[str] = (),
) -> DeliveryError:
    """The DeliveryError for a non-2xx answer: 429 and 5xx retryable; 400/401/403/413 not."""
    detail = short(f"sendgrid {status}: {_error_text(body) or 'no error message'}", scrub)
    if status == 429:
        reset = _reset_in(headers, time.time() if now is None else now)
        return DeliveryError("rateLimited", detail, retryable=True, retry_after=reset)
    if status >= 500:
        return DeliveryError("serverError", detail, retryable=True)
    # 401/403 -> authError (bad key, unverified sender); 400/413 -> clientError.
    return DeliveryError(reason_for_status(status), detail, retryable=False)


def _reset_in(headers: Mapping[str, str], now: float) -> float | None:
    """SendGrid sends no Retry-After; X-RateLimit-Reset is the epoch second the limit lifts."""
    try:
        return max(0.0, float(headers["X-RateLimit-Reset"]) - now)
    except (KeyError, ValueError):
        return None


def _error_text(body: bytes) -> str:
    """`{"errors": [{"message", "field"}]}` as `message (field); message`."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict) and error.get("message"):
            field = f" ({error['field']})" if error.get("field") else ""
            parts.append(f"{error['message']}{field}")
    return "; ".join(parts)


def mail_body(n: Notification, tz: tzinfo, sender: str) -> dict[str, Any]:
    """The Mail Send JSON for one notification to one recipient, as `Mail(...).get()` makes it."""
    v = view.of(n, tz)
    subject = templates.email_subject(n, tz, v)
    text = _cut(templates.email_text(n, tz, v), TEXT_LIMIT)
    if _API_KEY.match(text):
        # The helper refuses content that starts like an API key; so do we.
        raise ApiKeyIncludedException()
    return {
        "from": {"name": SENDER_NAME, "email": sender},
        "subject": subject,
        "personalizations": [{"to": [_recipient(n.recipient.address)]}],
        # text/plain before text/html, as SendGrid requires.
        "content": [
            {"type": "text/plain", "value": text},
            {"type": "text/html", "value": html_notice(n, tz, v)},
        ],
        # Echoed in SendGrid's event webhook, so bounces can be tied back to a page; and the
        # group's thread, so mail clients show its escalations and resolved notice together.
        "headers": {KEY_HEADER: n.key, **thread_headers(n, sender)},
        "categories": ["oncall-router", n.severity.value],
        "custom_args": {
            "route": n.route,
            "notification_key": n.key,
            # Signed, names the person and the group: a bounce is tied back to them (receipts).
            **({"receipt": n.receipt} if n.receipt else {}),
        },
    }


def thread_headers(n: Notification, sender: str) -> dict[str, str]:
    """The spell's first page opens the thread (its Message-ID is the thread's); every later
    message of the spell (an escalation, a repeat, the resolved notice) replies to it. A reader
    first paged at a later level still gets one thread: clients group by References."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "oncall-router.invalid"
    thread = render.thread_id(n, domain)
    if n.paging is not None and n.paging.first:
        return {"Message-ID": thread}
    return {"Message-ID": render.message_id(n, domain), "In-Reply-To": thread, "References": thread}


# sendgrid.helpers.mail.validators.ValidateApiKey's default pattern (it uses match, not search).
_API_KEY = re.compile(r"SG\.[0-9a-zA-Z]+\.[0-9a-zA-Z]+")


def _recipient(address: str) -> dict[str, str]:
    """`To(address).get()`: the helper reads "Name <addr>" forms with email.utils.parseaddr."""
    name, email = _parsed_address(address)
    return {"name": name, "email": email} if name else {"email": email}


@lru_cache(maxsize=256)
def _parsed_address(address: str) -> tuple[str, str]:
    name, email = parseaddr(address)
    if "@" not in email:
        # The helper fails here too (KeyError); config validation keeps this from happening.
        raise ValueError("recipient is not an email address")
    return name, email


# Banner colours: red to blue by urgency, green once resolved; (background, text).
_BANNER: Mapping[Severity, tuple[str, str]] = {
    Severity.CRITICAL: ("#b42318", "#ffffff"),
    Severity.HIGH: ("#c4320a", "#ffffff"),
    Severity.MEDIUM: ("#f5b400", "#1f2328"),
    Severity.LOW: ("#1f6feb", "#ffffff"),
}
_RESOLVED = ("#1a7f37", "#ffffff")
_FONT = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"
_CELL = "padding:6px 8px;border-top:1px solid #d0d7de;vertical-align:top;text-align:left"


def html_notice(n: Notification, tz: tzinfo, v: view.View | None = None) -> str:
    """The HTML part: severity banner, the facts as a table, links, the alerts. Inline styles,
    as mail clients want.

    When the route overrides `email_text`, the HTML shows that text under the banner instead of
    the built-in facts, so what the operator wrote is what HTML mail clients display too.
    """
    v = v or view.of(n, tz)
    background, colour = _BANNER[n.severity] if v.is_firing else _RESOLVED
    state = "FIRING" if v.is_firing else "RESOLVED"
    if "email_text" in n.templates:
        text = _e(templates.email_text(n, tz, v), limit=TEXT_LIMIT)
        main = f'<pre style="white-space:pre-wrap;margin:0;{_FONT}">{text}</pre>'
    else:
        main = _facts(v, tz) + _alerts(v)
    word = f" · {_e(v.severity_word)}" if v.severity_word else ""
    return (
        '<!DOCTYPE html><html><body style="margin:0;padding:0;background:#f6f8fa">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0">'
        '<tr><td align="center" style="padding:24px 12px">'
        '<table role="presentation" width="640" cellpadding="0" cellspacing="0" '
        'style="max-width:640px;width:100%;background:#ffffff;border:1px solid #d0d7de;'
        f'{_FONT};font-size:14px;color:#1f2328">'
        f'<tr><td style="background:{background};color:{colour};padding:14px 20px">'
        f'<div style="font-size:12px;font-weight:bold;letter-spacing:1px">'
        f"{_e(n.severity.value.upper())}{word} · {state} · {_e(v.name)}</div>"
        f'<div style="font-size:18px;font-weight:bold;margin-top:4px">{_e(v.summary)}'
        "</div></td></tr>"
        f"{_ack_button(n)}"
        f'<tr><td style="padding:16px 20px">{main}</td></tr>'
        '<tr><td style="padding:12px 20px;font-size:12px;color:#656d76;'
        'border-top:1px solid #d0d7de">'
        f"Sent by oncall-router · route {_e(n.route)} · to {_e(n.recipient.name)}"
        "</td></tr></table></td></tr></table></body></html>"
    )


def _ack_button(n: Notification) -> str:
    """A button to the acknowledgement page (whose POST acknowledges; opening it does not)."""
    if n.ack is None or n.status is not Status.FIRING:
        return ""
    return (
        '<tr><td style="padding:16px 20px 0">'
        f'<a href="{_e(n.ack.link, limit=2000)}" style="display:inline-block;background:#1f2328;'
        "color:#ffffff;padding:10px 18px;border-radius:6px;text-decoration:none;"
        'font-weight:bold">Acknowledge</a>'
        '<span style="color:#656d76;margin-left:12px">pauses the escalation</span></td></tr>'
    )


def _facts(v: view.View, tz: tzinfo) -> str:
    """Label and value, one row each: what, where, severity, started, alerts, labels, Sentry's
    facts, who was paged and what comes next, the route, then the links."""
    facts = [(label, _e(value)) for label, value in render.email_facts(v, tz)]
    found = [_link(link.title, link.url) for link in v.links]
    found += [
        _link(title, url)
        for title, url in ((links.VIEW_TITLE, v.alertmanager), (links.SILENCE_TITLE, v.silence))
        if url
    ]
    if found:
        facts.append(("Links", " · ".join(found)))
    rows = "".join(
        f'<tr><th style="{_CELL};width:90px;color:#656d76">{_e(label)}</th>'
        f'<td style="{_CELL}">{value}</td></tr>'
        for label, value in facts
    )
    return f'<table cellpadding="0" cellspacing="0" width="100%">{rows}</table>'


def _alerts(v: view.View) -> str:
    rows = "".join(_alert_row(line) for line in v.alerts)
    if v.hidden:
        rows += (
            f'<tr><td colspan="3" style="{_CELL};color:#656d76">... and {v.hidden} more</td></tr>'
        )
    head = "".join(
        f'<th style="{_CELL};color:#656d76;border-top:0">{h}</th>'
        for h in ("Status", "Alert", "Details")
    )
    return (
        '<table cellpadding="0" cellspacing="0" width="100%" style="margin-top:16px">'
        f"<tr>{head}</tr>{rows}</table>"
    )


def _alert_row(line: view.AlertLine) -> str:
    details = [_e(line.summary)]
    if line.description:
        details.append(f'<span style="color:#656d76">{_e(line.description)}</span>')
    found = " · ".join(_link(link.title, link.url) for link in line.links)
    if found:
        details.append(found)
    name = _e(line.name) + (f"<br><small>{_e(line.identity)}</small>" if line.identity else "")
    return (
        f'<tr><td style="{_CELL};white-space:nowrap">{_e(line.status.value)}<br>'
        f"<small>{_e(line.started_text)}</small></td>"
        f'<td style="{_CELL}">{name}</td>'
        f'<td style="{_CELL}">{"<br>".join(details)}</td></tr>'
    )


def _link(title: str, url: str) -> str:
    # Only web links become anchors: a `javascript:` URL in an annotation stays inert text.
    if not url.startswith(("http://", "https://")):
        return _e(f"{title}: {url}")
    return f'<a href="{_e(url, limit=2000)}" style="color:#0969da">{_e(title)}</a>'


def _e(text: str, limit: int = CELL_LIMIT) -> str:
    """Escaped for HTML text and attributes, bounded, and without invisible format characters
    (a right-to-left override would make a line read backwards)."""
    return html.escape(_cut(escape.visible(text), limit), quote=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
