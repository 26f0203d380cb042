"""Slack: incoming webhooks and chat.postMessage, one Block Kit message per group.

Slack answers in two styles: a webhook says status + plain-text error; the Web API says HTTP 200
with `{"ok": false, "error": ...}`. Both send 429 with Retry-After when rate limited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

import aiohttp

from receiver.channels.base import (
    JSON_HEADERS,
    NO_TIMEOUT,
    DeliveryError,
    json_body,
    reason_for_status,
    retry_after,
    short,
)
from receiver.config.settings import Settings
from receiver.config.types import Acknowledgement, SlackDestination
from receiver.messages import escape, links, render, templates, view
from receiver.model import Notification, Severity, SlackRef, Status

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

    async def reply(self, ref: SlackRef, text: str) -> None:
        """Say `text` in the thread of a message the router posted (receiver.web.receipts)."""
        reply = {"channel": ref.channel, "thread_ts": ref.ts, "text": escape.slack_mrkdwn(text)}
        await self._call("chat.postMessage", reply)

    async def _webhook(self, url: str, message: dict[str, Any]) -> None:
        try:
            async with self.session.post(
                url, data=json_body(message), headers=JSON_HEADERS, timeout=NO_TIMEOUT
            ) as response:
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
            async with self.session.post(url, data=json_body(payload), headers=headers) as response:
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
    """On top: the title (state, name, severity and the team's word), the summary and the facts,
    Sentry's facts, the compact label list, every link, who was paged and what comes next, and
    the buttons; the alerts one by one in an attachment coloured by severity."""
    v = view.of(n, tz, alertmanager_url)
    emoji = ":white_check_mark:" if not v.is_firing else _EMOJI[n.severity]
    title = f"{emoji} {render.title(v)}"
    summary = templates.slack_text(n, tz, v) if n.templates.get("slack") else v.summary
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
            "fields": _fields(_facts(v)),
        },
    ]
    sentry = [(label, _sentry_value(v, label, value)) for label, value in render.sentry_lines(v)]
    if sentry:
        blocks.append({"type": "section", "fields": _fields(sentry)})
    if v.labels:
        shown = " ".join(f"`{escape.slack_mrkdwn(_code(f'{k}={value}'))}`" for k, value in v.labels)
        blocks.append(_context(shown))
    links = _links(v)
    if links:
        blocks.append(_context(_LINK_SEPARATOR.join(links)))
    paging = _paging(v, tz)
    if paging:
        blocks.append(_context(paging))
    buttons = actions_block(n, silence_for)
    if buttons is not None:
        blocks.append(buttons)
    details = [_alert_block(line, v.now) for line in v.alerts[:MAX_ALERT_BLOCKS]]
    if v.hidden > 0:
        details.append(_context(f"… and {v.hidden} more"))
    return {
        # The fallback that notifications and mentions use: escaped like every block.
        "text": _cut(escape.slack_mrkdwn(render.slack_text(n, tz, v)), 3000),
        "blocks": blocks,
        "attachments": [
            {"color": _COLOUR[n.severity] if v.is_firing else _RESOLVED_COLOUR, "blocks": details}
        ],
    }


def _facts(v: view.View) -> list[tuple[str, str]]:
    """Where, when (in each reader's zone, with the date when not today, and the age), how
    many, and which route; escaped here, they are mrkdwn."""
    started = _date(v.started, "{date_short_pretty} {time}", v.started_text)
    facts = [
        ("Where", escape.slack_mrkdwn(v.place.text or "-")),
        ("Started", f"{started}, {render.age_text(v)}"),
        ("Alerts", v.counts),
        ("Route", escape.slack_mrkdwn(v.route)),
    ]
    return facts


def _sentry_value(v: view.View, label: str, value: str) -> str:
    sentry = v.sentry
    if sentry is not None and label == "First seen" and sentry.first_seen:
        return _date(sentry.first_seen, "{date_short_pretty} {time}", value)
    if sentry is not None and label == "Last seen" and sentry.last_seen:
        return _date(sentry.last_seen, "{date_short_pretty} {time}", value)
    return escape.slack_mrkdwn(value)


def _fields(facts: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"type": "mrkdwn", "text": _cut(f"*{label}:*\n{value}", 2000)} for label, value in facts
    ]


def _date(when: datetime, tokens: str, fallback: str) -> str:
    """A time Slack shows in each reader's own zone; `fallback` where it cannot."""
    return f"<!date^{int(when.timestamp())}^{tokens}|{escape.slack_mrkdwn(fallback)}>"


def _code(text: str) -> str:
    # A backquote in a label value would end the code span early.
    return text.replace("`", "'")


def _paging(v: view.View, tz: tzinfo) -> str:
    """`:busts_in_silhouette: Paged level 0: Alice Archer (SMS, call) · Next: level 1 at
    09:27 GMT: Bob Baker (SMS, call)`."""
    if v.paging is None:
        return ""
    parts = [
        f"Paged level {lv.level}: {escape.slack_mrkdwn(render.paged_text(lv))}"
        for lv in v.paging.levels
        if lv.people  # a level of Slack channels only pages nobody
    ]
    following = v.paging.next
    if following is not None and following.people and v.is_firing:
        at = _date(following.at, "{time}", view.when_text(following.at.astimezone(tz), v.now))
        people = escape.slack_mrkdwn(render.paged_text(following))
        parts.append(f"Next: level {following.level} at {at}: {people}")
    return ":busts_in_silhouette: " + " · ".join(parts) if parts else ""


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


def _alert_block(line: view.AlertLine, now: datetime) -> dict[str, Any]:
    mark = ":fire:" if line.status is Status.FIRING else ":white_check_mark:"
    who = f" ({escape.slack_mrkdwn(line.identity)})" if line.identity else ""
    lines = [f"{mark} *{escape.slack_mrkdwn(line.summary)}*{who}"]
    if line.description:
        lines.append(escape.slack_mrkdwn(line.description))
    # The date too when it did not start on the message's day: "since 12:42" would mislead.
    tokens = "{time}" if line.started.date() == now.date() else "{date_short_pretty} {time}"
    started = _date(line.started, tokens, line.started_text)
    lines.append(f"{escape.slack_mrkdwn(line.name)} since {started}")
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), 3000)}}


def _links(v: view.View) -> list[str]:
    """Every URL annotation and the alerts' links, then Alertmanager's view and silence of the
    group; each URL well-formed http(s) (messages.links), and links stop before the context's
    3000 characters (a cut link would show as raw text)."""
    found = [(link.title, link.url) for link in v.links]
    found += [(links.VIEW_TITLE, v.alertmanager), (links.SILENCE_TITLE, v.silence)]
    out: list[str] = []
    size = 0
    for title, raw in found:
        url = escape.slack_link_url(raw) if raw else None
        if url is None:
            continue
        shown = f"<{url}|{escape.slack_mrkdwn(title)}>"
        size += len(shown) + (len(_LINK_SEPARATOR) if out else 0)
        if size > 3000:
            break
        out.append(shown)
    return out


def silence_url(n: Notification, alertmanager_url: str | None) -> str | None:
    """Alertmanager's new-silence form, pre-filled with the group's labels."""
    return links.silence_url(n.group, alertmanager_url) or None


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
