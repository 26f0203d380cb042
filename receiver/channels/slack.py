"""Slack: incoming webhooks and chat.postMessage, one Block Kit message per group.

Slack answers in two styles: a webhook says status + plain-text error; the Web API says HTTP 200
with `{"ok": false, "error": ...}`. Both send 429 with Retry-After when rate limited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any
from urllib.parse import quote

import aiohttp

from receiver.channels.base import DeliveryError, reason_for_status, retry_after, short
from receiver.config.settings import Settings
from receiver.config.types import Acknowledgement, SlackDestination
from receiver.messages import escape, render, templates
from receiver.model import Alert, Notification, Severity, SlackRef, Status

_EMOJI = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.HIGH: ":red_circle:",
    Severity.MEDIUM: ":large_orange_circle:",
    Severity.LOW: ":large_blue_circle:",
}
_COLOUR = {
    Severity.CRITICAL: "#d00000",
    Severity.HIGH: "#e8590c",
    Severity.MEDIUM: "#f2c744",
    Severity.LOW: "#439fe0",
}
_RESOLVED_COLOUR = "#2eb67d"
MAX_ALERT_BLOCKS = 10
# The buttons' block: its id names the group, so a click can be matched to its message.
ACTIONS_BLOCK_PREFIX = "ack:"
ACK, SILENCE, RESOLVE = "ack", "silence", "resolve"
_MAX_BLOCK_ID = 255
_MAX_BUTTON_VALUE = 2000
# Alertmanager alerts carrying this label are Sentry events the router forwarded.
SENTRY_LABEL = ("source", "sentry")
DEFAULT_SILENCE_FOR = Acknowledgement().silence_for
# Web API errors worth retrying; every other `ok:false` error is permanent.
_RETRYABLE_ERRORS = {
    "ratelimited",
    "rate_limited",
    "fatal_error",
    "internal_error",
    "request_timeout",
    "service_unavailable",
}
# chat.update cannot edit this message any more: post a new one.
_GONE = {"message_not_found", "cant_update_message", "channel_not_found", "is_inactive"}
_AUTH_ERRORS = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "account_inactive",
    "token_expired",
    "missing_scope",
    "not_allowed_token_type",
}


class SlackSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: Settings,
        tz: tzinfo,
        destinations: Mapping[str, SlackDestination],
        *,
        silence_for: float = DEFAULT_SILENCE_FOR,
    ) -> None:
        self.session = session
        self.settings = settings
        self.tz = tz
        self.destinations = destinations
        self.silence_for = silence_for

    async def send(self, n: Notification) -> SlackRef | None:
        message = build_message(
            n, n.timezone or self.tz, self.settings.alertmanager_url, silence_for=self.silence_for
        )
        destination = self.destinations.get(n.recipient.address)
        if destination is not None and destination.webhook_url:
            # An incoming webhook cannot edit what it posted: each change is a new message.
            await self._webhook(destination.webhook_url, message)
            return None
        if n.follows is not None:
            followed = await self._follow(n, n.follows, message)
            if followed is not None:
                return followed
        channel = destination.channel if destination else n.recipient.address
        answer = await self._call("chat.postMessage", {"channel": channel, **message})
        return SlackRef(str(answer.get("channel", channel)), str(answer.get("ts", "")), n.stage)

    async def _follow(
        self, n: Notification, ref: SlackRef, message: dict[str, Any]
    ) -> SlackRef | None:
        """Edit the group's message; say in its thread what changed. None: post a new one."""
        try:
            await self._call("chat.update", {"channel": ref.channel, "ts": ref.ts, **message})
        except DeliveryError as e:
            if e.detail.removeprefix("slack: ") in _GONE:
                return None  # deleted, or not ours to edit: a new message instead
            raise
        if n.stage_text and n.stage != ref.stage:
            reply = {
                "channel": ref.channel,
                "thread_ts": ref.ts,
                "text": escape.slack_mrkdwn(n.stage_text),
            }
            await self._call("chat.postMessage", reply)
        return SlackRef(ref.channel, ref.ts, n.stage)

    async def _webhook(self, url: str, message: dict[str, Any]) -> None:
        try:
            async with self.session.post(url, json=message) as response:
                # Whole: `_http_error` redacts before it cuts (the URL is the secret, and an
                # error page may quote it).
                body = await response.text()
                if response.status == 200:
                    return
                raise _http_error(
                    response.status, body.strip() or "empty body", response.headers, (url,)
                )
        except aiohttp.ClientError as e:
            # str(e) may hold the webhook URL, which is a secret: name only the error type.
            raise DeliveryError(
                "connectionError", f"slack webhook: {type(e).__name__}", retryable=True
            ) from None

    async def _call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One Web API call; its answer when `ok`, else a classified DeliveryError."""
        token = self.settings.slack_bot_token
        if not token:
            raise DeliveryError("authError", "SLACK_BOT_TOKEN is not set", retryable=False)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        }
        url = f"{self.settings.slack_api_url}/{method}"
        try:
            async with self.session.post(
                url, data=json.dumps(payload), headers=headers
            ) as response:
                text = await response.text()
                if response.status != 200:
                    raise _http_error(response.status, _api_error(text), response.headers, (token,))
                error = _api_error(text)
                if error != "ok":
                    raise _ok_false(error, response.headers, (token,))
                answer: dict[str, Any] = json.loads(text)
                return answer
        except aiohttp.ClientError as e:
            raise DeliveryError(
                "connectionError", f"slack api: {type(e).__name__}", retryable=True
            ) from None


def _api_error(text: str) -> str:
    # Uncut: the detail is redacted first and cut after (`short`), never half a token left.
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip() or "non-JSON answer"
    if not isinstance(body, dict):
        return "non-object answer"
    if body.get("ok") is True:
        return "ok"
    return str(body.get("error", "unknown_error"))


def _http_error(
    status: int, error: str, headers: Mapping[str, str], scrub: tuple[str, ...]
) -> DeliveryError:
    retryable = status == 429 or status >= 500
    return DeliveryError(
        reason_for_status(status),
        short(f"slack {status}: {error}", scrub),
        retryable=retryable,
        retry_after=retry_after(headers),
    )


def _ok_false(error: str, headers: Mapping[str, str], scrub: tuple[str, ...]) -> DeliveryError:
    if error in ("ratelimited", "rate_limited"):
        reason = "rateLimited"
    elif error in _AUTH_ERRORS:
        reason = "authError"
    elif error in _RETRYABLE_ERRORS:
        reason = "serverError"
    else:
        reason = "clientError"
    return DeliveryError(
        reason,
        short(f"slack: {error}", scrub),
        retryable=error in _RETRYABLE_ERRORS,
        retry_after=retry_after(headers),
    )


def build_message(
    n: Notification,
    tz: tzinfo,
    alertmanager_url: str | None = None,
    *,
    silence_for: float = DEFAULT_SILENCE_FOR,
) -> dict[str, Any]:
    """Header, facts and buttons on top; the alerts, links and a silence link in a coloured
    attachment."""
    resolved = n.status is Status.RESOLVED
    emoji = ":white_check_mark:" if resolved else _EMOJI[n.severity]
    place = render.where(n)
    title = f"{emoji} {'Resolved: ' if resolved else ''}{render.name(n)}"
    if place:
        title += f" — {place}"
    started = render.since(n, tz)
    summary = templates.slack_text(n, tz) if n.templates.get("slack") else render.summary(n)
    fields = [
        f"*Severity:*\n{n.severity.value}",
        f"*Alerts:*\n{render.counts(n)}",
        f"*Since:*\n<!date^{int(started.timestamp())}^{{date_short_pretty}} {{time}}|"
        f"{render.stamp(started)}>",
        f"*Route:*\n{escape.slack_mrkdwn(n.route)}",
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(escape.slack_plain(title), 150),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(f"*{escape.slack_mrkdwn(summary)}*", 3000)},
            "fields": [{"type": "mrkdwn", "text": _cut(f, 2000)} for f in fields],
        },
    ]
    buttons = actions_block(n, silence_for)
    if buttons is not None:
        blocks.append(buttons)
    details = [_alert_block(a, tz) for a in render.alerts_shown(n, MAX_ALERT_BLOCKS)]
    hidden = len(n.alerts) - len(details) + n.group.truncated_alerts
    if hidden > 0:
        details.append(_context(f"… and {hidden} more"))
    links = _links(n, alertmanager_url)
    if links:
        details.append(_context(_LINK_SEPARATOR.join(links)))
    return {
        # The fallback that notifications and mentions use: escaped like every block.
        "text": _cut(escape.slack_mrkdwn(render.slack_text(n)), 3000),
        "blocks": blocks,
        "attachments": [
            {"color": _RESOLVED_COLOUR if resolved else _COLOUR[n.severity], "blocks": details}
        ],
    }


def actions_block(n: Notification, silence_for: float) -> dict[str, Any] | None:
    """Acknowledge and Silence (and Resolve for Sentry events) on a firing message whose
    recipient can acknowledge; each button carries the signed token (receiver.callbacks.slack)."""
    if n.ack is None or n.status is not Status.FIRING or len(n.ack.token) > _MAX_BUTTON_VALUE:
        return None
    token = n.ack.token
    duration = duration_text(silence_for)
    elements = [
        _button(ACK, "Acknowledge", token, style="primary"),
        _button(
            SILENCE,
            f"Silence {duration}",
            token,
            style="danger",
            confirm=(
                f"Silence for {duration}?",
                f"Alertmanager mutes this group for {duration}, its resolved notice included.",
                "Silence",
            ),
        ),
    ]
    if n.alerts and all(a.labels.get(SENTRY_LABEL[0]) == SENTRY_LABEL[1] for a in n.alerts):
        elements.append(
            _button(
                RESOLVE,
                "Resolve",
                token,
                confirm=("Resolve?", "This ends the Sentry alert in Alertmanager.", "Resolve"),
            )
        )
    block_id = (ACTIONS_BLOCK_PREFIX + n.ack.code)[:_MAX_BLOCK_ID]
    return {"type": "actions", "block_id": block_id, "elements": elements}


def _button(
    action_id: str,
    label: str,
    value: str,
    *,
    style: str | None = None,
    confirm: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": _cut(label, 75), "emoji": True},
        "value": value,
    }
    if style is not None:
        button["style"] = style
    if confirm is not None:
        # A slip of the thumb must not mute a group: Slack asks before sending the click.
        title, text, yes = confirm
        button["confirm"] = {
            "title": {"type": "plain_text", "text": _cut(title, 100)},
            "text": {"type": "plain_text", "text": _cut(text, 300)},
            "confirm": {"type": "plain_text", "text": _cut(yes, 30)},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    return button


def duration_text(seconds: float) -> str:
    """`1h`, `30m`, `1h 30m`, `45s`: short enough for a button label."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if not hours and not minutes:
        parts.append(f"{secs}s")
    return " ".join(p for p in parts if p)


def _alert_block(alert: Alert, tz: tzinfo) -> dict[str, Any]:
    mark = ":fire:" if alert.status is Status.FIRING else ":white_check_mark:"
    identity = alert.labels.get("instance") or alert.labels.get("pod") or alert.name
    lines = [f"{mark} *{escape.slack_mrkdwn(alert.summary)}* ({escape.slack_mrkdwn(identity)})"]
    description = alert.annotations.get("description")
    if description and description != alert.summary:
        lines.append(escape.slack_mrkdwn(description))
    lines.append(f"since {alert.starts_at.astimezone(tz):%H:%M %Z}")
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), 3000)}}


def _links(n: Notification, alertmanager_url: str | None) -> list[str]:
    """One link per title; a URL that is not well-formed http(s) is dropped (escape.web_url), and
    links stop before the context's 3000 characters (a cut link would show as raw text)."""
    seen: dict[str, str] = {}
    for alert in n.alerts:
        for link in alert.links:
            url = escape.slack_link_url(link.url)
            if url is not None and len(url) < 2900:
                seen.setdefault(link.title, url)
    silence = escape.slack_link_url(silence_url(n, alertmanager_url) or "")
    if silence is not None:
        seen.setdefault("Silence this group", silence)
    out: list[str] = []
    size = 0
    for title, url in seen.items():
        shown = f"<{url}|{escape.slack_mrkdwn(title)}>"
        size += len(shown) + (len(_LINK_SEPARATOR) if out else 0)
        if size > 3000:
            break
        out.append(shown)
    return out


def silence_url(n: Notification, alertmanager_url: str | None) -> str | None:
    """Alertmanager's new-silence form, pre-filled with the group's labels."""
    base = n.group.external_url or alertmanager_url
    labels = n.group.group_labels or n.group.common_labels
    if not base or not labels or n.group.source.value != "alertmanager":
        return None
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    url = f"{base.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}')}"
    return url if len(url) < 2900 else None


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, 3000)}]}


_LINK_SEPARATOR = " • "
# The start of an entity that escape.slack_* wrote (&amp; &lt; &gt;), cut before its `;`.
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters; never half an entity (which would show as "&am…")."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"
