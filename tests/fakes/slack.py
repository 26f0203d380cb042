"""Fake Slack: incoming webhooks (``/services/T/B/X``), ``/api/chat.postMessage``, the
``response_url`` of a button click (``/actions/T/N/X``), and the click itself.

Wire facts come from shared/reference/channel-apis.md §1 and §6. The two endpoints fail differently:
webhooks answer with an HTTP status and a plain-text error string, the Web API answers HTTP 200
with ``{"ok": false, "error": ...}`` (except 429 and 5xx). A ``response_url`` answers like a
webhook. :meth:`FakeSlack.click` posts a signed ``block_actions`` payload the way Slack does (§1.4).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from yarl import URL

from tests.fakes.base import (
    Behaviour,
    Failure,
    FakeServer,
    RateLimited,
    RecordedRequest,
    Reject,
    ServerError,
)

WEBHOOK_PREFIX = "/services/"
POST_MESSAGE_PATH = "/api/chat.postMessage"
RESPONSE_URL_PREFIX = "/actions/"
TEST_BOT_TOKEN = "xoxb-test-token"
TEAM_ID = "T0FAKETEAM1"
APP_ID = "A0FAKEAPP01"
BOT_USER = "U0FAKEBOT01"

# Status of each webhook error string (Slack changelog 2016-05-17 plus errors seen in the field).
WEBHOOK_ERROR_STATUS: dict[str, int] = {
    "invalid_payload": 400,
    "user_not_found": 400,
    "no_text": 400,
    "missing_text_or_fallback_or_attachments": 400,
    "invalid_blocks": 400,
    "invalid_blocks_format": 400,
    "action_prohibited": 403,
    "invalid_token": 403,
    "posting_to_general_channel_denied": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "no_team": 404,
    "channel_is_archived": 410,
    "rollup_error": 500,
}

MAX_TEXT = 40_000  # chat.postMessage: longer text is msg_too_long
MAX_ATTACHMENTS = 100
MAX_BLOCKS = 50

_JSON_UTF8 = "application/json; charset=utf-8"
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)


class FakeSlack(FakeServer):
    """Slack incoming webhooks and chat.postMessage.

    Destination keys for :meth:`script_for`: the webhook path (``/services/T/B/X``) or the
    ``channel`` argument of chat.postMessage.
    """

    def __init__(
        self,
        bot_token: str = TEST_BOT_TOKEN,
        *,
        channels: Iterable[str] | None = None,
    ) -> None:
        """``channels``: if given, chat.postMessage to any other channel is channel_not_found."""
        super().__init__()
        self.bot_token = bot_token
        self._channels = None if channels is None else frozenset(channels)
        self._revoked: set[str] = set()
        self._archived: set[str] = set()
        self._last_ts_us = 0
        self._clicks = itertools.count(1)

    def webhook_url(
        self, path: str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    ) -> str:
        return self.url + path

    @property
    def api_url(self) -> str:
        """Base for the Web API, with the trailing slash slack_sdk expects."""
        return self.url + "/api/"

    def revoke(self, webhook: str) -> None:
        """Make a webhook (URL or path) answer 404 ``no_service`` from now on."""
        self._revoked.add(_path_of(webhook))

    def archive(self, target: str) -> None:
        """Archive a channel (``is_archived``) or a webhook's channel (410 channel_is_archived)."""
        self._archived.add(_path_of(target) if target.startswith(("/", "http")) else target)

    def _routes(self) -> Iterable[web.RouteDef]:
        return [
            web.post(WEBHOOK_PREFIX + "{team}/{bot}/{secret}", self._webhook),
            web.post(POST_MESSAGE_PATH, self._post_message),
            web.post(RESPONSE_URL_PREFIX + "{team}/{click}/{secret}", self._response_url),
        ]

    def _check_behaviour(self, behaviour: Behaviour) -> None:
        if isinstance(behaviour, Reject) and not isinstance(behaviour.error, str):
            raise TypeError("Slack Reject takes an error string such as 'channel_not_found'")

    # -- incoming webhooks --------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in self._revoked:  # revoked URL: nothing behind it, no scripting either
            return _text(404, "no_service")
        if (scripted := await self._intercept(request, path, _render_webhook)) is not None:
            return scripted
        payload = _webhook_payload(request.content_type, self._recorded(request).body)
        if not isinstance(payload, dict):
            return _text(400, "invalid_payload")
        if path in self._archived:
            return _text(410, "channel_is_archived")
        if error := _message_error(payload):
            error = "invalid_payload" if error == "invalid_arguments" else error
            return _text(WEBHOOK_ERROR_STATUS.get(error, 400), error)
        return _text(200, "ok")

    # -- chat.postMessage ---------------------------------------------------------------------

    async def _post_message(self, request: web.Request) -> web.StreamResponse:
        body = self._recorded(request).body
        is_form = request.content_type == "application/x-www-form-urlencoded"
        args: Any
        if is_form:
            args = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        else:
            try:
                args = json.loads(body) if body else {}
            except ValueError:
                args = None
        # A JSON body cannot carry the token: only form posts may use the `token` argument.
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or (
            args.get("token", "") if is_form else ""
        )
        if not token:
            return _api_error("not_authed")
        if token != self.bot_token:
            return _api_error("invalid_auth")
        if args is None:
            return _api_error("invalid_json")
        if not isinstance(args, dict):
            return _api_error("json_not_object")

        channel = args.get("channel")
        key = channel if isinstance(channel, str) else None
        if (scripted := await self._intercept(request, key, _render_api)) is not None:
            return scripted

        if not isinstance(channel, str) or not channel:
            return _api_error("channel_not_found")
        if self._channels is not None and channel not in self._channels:
            return _api_error("channel_not_found")
        if channel in self._archived:
            return _api_error("is_archived")
        for name in ("blocks", "attachments"):  # form posts send these as JSON strings
            if isinstance(args.get(name), str):
                try:
                    args[name] = json.loads(args[name])
                except ValueError:
                    return _api_error(
                        "invalid_blocks_format" if name == "blocks" else "invalid_attachments"
                    )
        attachments = args.get("attachments")
        if isinstance(attachments, list) and len(attachments) > MAX_ATTACHMENTS:
            return _api_error("too_many_attachments")
        if error := _message_error(args):
            return _api_error(error)
        text = args.get("text") or ""
        if len(text) > MAX_TEXT:
            return _api_error("msg_too_long")

        ts = self._next_ts()
        message: dict[str, Any] = {
            "user": "U0FAKEBOT01",
            "type": "message",
            "ts": ts,
            "bot_id": "B0FAKEBOT01",
            "app_id": "A0FAKEAPP01",
            "text": text,
            "team": "T0FAKETEAM1",
        }
        for name in ("blocks", "attachments", "thread_ts"):
            if args.get(name):
                message[name] = args[name]
        return _json(
            200, {"ok": True, "channel": _channel_id(channel), "ts": ts, "message": message}
        )

    # -- interactivity ------------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        """A click's ``response_url``: JSON in, ``ok`` out, errors as an incoming webhook's."""
        path = request.path
        if (scripted := await self._intercept(request, path, _render_webhook)) is not None:
            return scripted
        payload = _webhook_payload(request.content_type, self._recorded(request).body)
        if not isinstance(payload, dict):
            return _text(400, "invalid_payload")
        flags_ok = all(
            isinstance(payload.get(flag), bool)
            for flag in ("replace_original", "delete_original")
            if flag in payload
        )
        if not flags_ok or payload.get("response_type") not in (None, "ephemeral", "in_channel"):
            return _text(400, "invalid_payload")
        if error := _message_error(payload):
            error = "invalid_payload" if error == "invalid_arguments" else error
            return _text(WEBHOOK_ERROR_STATUS.get(error, 400), error)
        return _text(200, "ok")

    def responses(self) -> list[dict[str, Any]]:
        """What was posted to the response URLs of clicks, in order (unreadable bodies skipped)."""
        out = []
        for r in self.requests_to(RESPONSE_URL_PREFIX):
            payload = _webhook_payload(r.header("Content-Type") or "", r.body)
            if isinstance(payload, dict):
                out.append(payload)
        return out

    def messages(self) -> list[dict[str, Any]]:
        """Every message posted through a webhook or chat.postMessage, as Slack read it."""
        return [
            m
            for r in self._requests
            if r.path.startswith(WEBHOOK_PREFIX) or r.path == POST_MESSAGE_PATH
            if (m := message_of(r)) is not None
        ]

    async def click(
        self,
        request_url: str,
        message: RecordedRequest | Mapping[str, Any],
        action_id: str,
        *,
        user_id: str,
        signing_secret: str,
        user_name: str = "someone",
        timestamp: int | None = None,
        value: str | None = None,
    ) -> Clicked:
        """Press a button of ``message`` as ``user_id``: post the signed ``block_actions``
        payload to the app's Request URL and return its answer.

        ``message`` is a recorded webhook or chat.postMessage request, or the message itself.
        ``timestamp`` is ``X-Slack-Request-Timestamp`` (now if None); ``value`` replaces the
        button's value, as a forger would.
        """
        if isinstance(message, RecordedRequest):
            read = message_of(message)
            if read is None:
                raise ValueError("that request carried no readable message")
            message = read
        block_id, button = find_button(message, action_id)
        ts = self._next_ts()
        channel = str(message.get("channel") or "C0FAKECHAN1")
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "fakeverificationtoken0001",  # deprecated verification token
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": _channel_id(channel),
                "is_ephemeral": False,
            },
            "trigger_id": f"{next(self._clicks)}.{int(time.time())}.{secrets.token_hex(16)}",
            "team": {"id": TEAM_ID, "domain": "fake-team"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": _channel_id(channel), "name": channel.lstrip("#")},
            "message": {
                "user": BOT_USER,
                "type": "message",
                "ts": ts,
                "bot_id": "B0FAKEBOT01",
                "app_id": APP_ID,
                "text": message.get("text", ""),
                "team": TEAM_ID,
                "blocks": message.get("blocks", []),
                **({"attachments": message["attachments"]} if message.get("attachments") else {}),
            },
            "state": {"values": {}},
            "response_url": self.response_url(),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": button.get("text"),
                    "value": button.get("value") if value is None else value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                    **({"style": button["style"]} if "style" in button else {}),
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        sent = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": sent,
            "X-Slack-Signature": slack_signature(signing_secret, sent, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(request_url, data=body, headers=headers) as response,
        ):
            return Clicked(response.status, await response.text(), payload)

    def response_url(self) -> str:
        """A fresh ``response_url`` on this fake (its last part is a secret, as Slack's is)."""
        number, tail = next(self._clicks), secrets.token_urlsafe(18)
        return f"{self.url}{RESPONSE_URL_PREFIX}{TEAM_ID}/{number}/{tail}"

    def _next_ts(self) -> str:
        # Integer microseconds so consecutive ts values are unique and strictly increasing.
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"


@dataclass(frozen=True)
class Clicked:
    """The app's answer to a click, and the payload Slack sent it."""

    status: int
    body: str
    payload: dict[str, Any]


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Slack-Signature`` as Slack computes it (python-slack-sdk ``SignatureVerifier``)."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def message_of(request: RecordedRequest) -> dict[str, Any] | None:
    """The message a webhook or chat.postMessage request carried, blocks decoded."""
    content_type = (request.header("Content-Type") or "").split(";")[0].strip()
    if request.path == POST_MESSAGE_PATH and content_type == "application/x-www-form-urlencoded":
        args: Any = request.form()
        for name in ("blocks", "attachments"):
            if isinstance(args.get(name), str):
                try:
                    args[name] = json.loads(args[name])
                except ValueError:
                    return None
    else:
        args = _webhook_payload(content_type, request.body)
    return args if isinstance(args, dict) else None


def find_button(message: Mapping[str, Any], action_id: str) -> tuple[str, dict[str, Any]]:
    """The block id and the button with this action id, in the blocks or the attachments."""
    blocks = list(message.get("blocks") or [])
    for attachment in message.get("attachments") or []:
        blocks.extend(attachment.get("blocks") or [])
    for block in blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    raise LookupError(f"the message has no {action_id!r} button")


# -- rendering --------------------------------------------------------------------------------


def _text(status: int, text: str) -> web.Response:
    # Exact header spelling of hooks.slack.com (no space before charset).
    return web.Response(
        status=status, body=text.encode(), headers={"Content-Type": "text/plain;charset=utf-8"}
    )


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), headers={"Content-Type": _JSON_UTF8}
    )


def _api_error(error: str, status: int = 200) -> web.Response:
    return _json(status, {"ok": False, "error": error})


def _html_error(status: int) -> web.Response:
    # What a load balancer in front of Slack sends for 502/503/504: not JSON, not Slack's format.
    title = f"{status} {HTTPStatus(status).phrase}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html")


def _render_webhook(failure: Failure) -> web.StreamResponse:
    match failure:
        case RateLimited(retry_after):
            return web.Response(status=429, headers={"Retry-After": str(retry_after)})
        case ServerError(500):
            return _text(500, "rollup_error")
        case ServerError(status):
            return _html_error(status)
        case Reject(error, status):
            return _text(status or WEBHOOK_ERROR_STATUS.get(str(error), 400), str(error))


def _render_api(failure: Failure) -> web.StreamResponse:
    match failure:
        case RateLimited(retry_after):
            # Header spelling of the slack_sdk mock server for 429s.
            return web.Response(
                status=429,
                body=b'{"ok":false,"error":"ratelimited"}',
                headers={
                    "Content-Type": "application/json;charset=utf-8",
                    "Retry-After": str(retry_after),
                },
            )
        case ServerError(500):
            return _api_error("fatal_error", 500)
        case ServerError(status):
            return _html_error(status)
        case Reject(error, status):
            return _api_error(str(error), status or 200)


# -- payload checks ---------------------------------------------------------------------------


def _path_of(webhook: str) -> str:
    return URL(webhook).path if webhook.startswith("http") else webhook


def _webhook_payload(content_type: str, body: bytes) -> Any:
    """The webhook body as Slack reads it: JSON, or a form with a ``payload`` JSON field."""
    try:
        if content_type == "application/x-www-form-urlencoded":
            return json.loads(dict(parse_qsl(body.decode()))["payload"])
        return json.loads(body)
    except (ValueError, KeyError):
        return None


def _channel_id(channel: str) -> str:
    """Slack answers with the channel ID even when a name was posted to."""
    if _CHANNEL_ID.match(channel):
        return channel
    return "C" + hashlib.sha256(channel.lstrip("#").encode()).hexdigest()[:10].upper()


def _message_error(args: dict[str, Any]) -> str | None:
    """The error Slack gives a message body (both endpoints), or None."""
    blocks = args.get("blocks")
    if blocks is not None and (error := block_kit_error(blocks)):
        return error
    text, attachments = args.get("text"), args.get("attachments")
    if text is not None and not isinstance(text, str):
        return "invalid_arguments"
    if not text and not blocks and not attachments:
        return "no_text"
    return None


def block_kit_error(blocks: Any) -> str | None:
    """``invalid_blocks_format`` if ``blocks`` is not a list of objects, ``invalid_blocks`` if any
    block breaks a Block Kit limit (channel-apis.md §1.3), else None."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return "invalid_blocks_format"
    if len(blocks) > MAX_BLOCKS or not all(_block_ok(b) for b in blocks):
        return "invalid_blocks"
    return None


def _text_ok(obj: Any, max_len: int, *, plain_only: bool = False) -> bool:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    return (
        isinstance(obj, dict)
        and obj.get("type") in kinds
        and isinstance(text := obj.get("text"), str)
        and 1 <= len(text) <= max_len
    )


def _str_ok(value: Any, max_len: int) -> bool:
    """An optional string field: absent, or a string within the limit."""
    return value is None or (isinstance(value, str) and len(value) <= max_len)


def _element_ok(element: Any) -> bool:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return False
    if element["type"] != "button":
        return True  # other element types are not checked by the fake
    return (
        _text_ok(element.get("text"), 75, plain_only=True)
        and _str_ok(element.get("action_id"), 255)
        and _str_ok(element.get("value"), 2000)
        and _str_ok(element.get("url"), 3000)
        and element.get("style") in (None, "primary", "danger")
        and ("confirm" not in element or _confirm_ok(element["confirm"]))
    )


def _confirm_ok(confirm: Any) -> bool:
    """A confirmation dialog object (Block Kit composition objects)."""
    return (
        isinstance(confirm, dict)
        and _text_ok(confirm.get("title"), 100, plain_only=True)
        and _text_ok(confirm.get("text"), 300)
        and _text_ok(confirm.get("confirm"), 30, plain_only=True)
        and _text_ok(confirm.get("deny"), 30, plain_only=True)
        and confirm.get("style") in (None, "primary", "danger")
    )


def _block_ok(block: dict[str, Any]) -> bool:
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in _BLOCK_TYPES:
        return False
    if not _str_ok(block.get("block_id"), 255):
        return False
    match kind:
        case "header":
            return _text_ok(block.get("text"), 150, plain_only=True)
        case "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and fields is None:
                return False
            if text is not None and not _text_ok(text, 3000):
                return False
            if fields is not None and not (
                isinstance(fields, list)
                and 1 <= len(fields) <= 10
                and all(_text_ok(f, 2000) for f in fields)
            ):
                return False
            accessory = block.get("accessory")
            return accessory is None or _element_ok(accessory)
        case "context":
            elements = block.get("elements")
            return isinstance(elements, list) and 1 <= len(elements) <= 10
        case "actions":
            elements = block.get("elements")
            return (
                isinstance(elements, list)
                and 1 <= len(elements) <= 25
                and all(_element_ok(e) for e in elements)
            )
        case "markdown":
            return isinstance(text := block.get("text"), str) and 1 <= len(text) <= 12_000
        case _:
            return True
