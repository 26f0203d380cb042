"""Fake Slack: incoming webhooks (``/services/T/B/X``), ``/api/chat.postMessage`` (threads
included), ``/api/chat.update``, the ``response_url`` of a button click (``/actions/T/N/X``), and
the click itself.

Wire facts come from shared/reference/channel-apis.md §1 and §6. The two endpoints fail differently:
webhooks answer with an HTTP status and a plain-text error string, the Web API answers HTTP 200
with ``{"ok": false, "error": ...}`` (except 429 and 5xx). A ``response_url`` answers like a
webhook. :meth:`FakeSlack.click` posts a signed ``block_actions`` payload the way Slack does (§1.4).

The fake keeps the current state of every message it accepted, per channel ID and ``ts``
(:meth:`FakeSlack.message`, :meth:`FakeSlack.thread`, :meth:`FakeSlack.history`). Slack facts
behind threads and chat.update, beyond channel-apis.md:

- chat.update arguments, answer ``{ok, channel, ts, text, message}`` and errors
  (``message_not_found``, ``cant_update_message``, ``channel_not_found``, ``no_text``,
  ``msg_too_long``, ``invalid_blocks``, ``is_inactive`` for an archived channel): the method
  reference, https://api.slack.com/methods/chat.update and slack-ruby/slack-api-ref
  ``methods/chat/chat.update.json``. Omitted ``blocks`` / ``attachments`` keep the previous ones;
  an empty list removes them (same sources).
- chat.update wants a channel ID; a name is ``channel_not_found`` here (slackapi/slack-github-action
  README, PR #309: "the message update step does not accept a channel name").
- Messages from incoming webhooks cannot be edited with chat.update (slackapi/slack-github-action
  issue #252); the error the fake gives is ``cant_update_message``, "Authenticated user does not
  have permission to update this message" (method reference above).
- A reply carries ``thread_ts``; its parent gains ``thread_ts``, ``reply_count``,
  ``reply_users``, ``reply_users_count`` and ``latest_reply``
  (https://docs.slack.dev/reference/events/message/thread_broadcast/).
- chat.postMessage has no ``thread_not_found`` error (slack-api-ref
  ``methods/chat/chat.postMessage.json``). A ``thread_ts`` that names no message is answered
  ``ok: true`` but the message is not threaded and not shown in the channel
  (slackapi/node-slack-sdk issue #780, slackapi/python-slack-sdk issue #840); the fake stores it
  as such an orphan. A malformed one (``"0"``) is ``invalid_thread_ts`` (seen in the field:
  jenkinsci/slack-plugin issue #584).
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
from copy import deepcopy
from dataclasses import dataclass, field
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
UPDATE_PATH = "/api/chat.update"
RESPONSE_URL_PREFIX = "/actions/"
TEST_BOT_TOKEN = "xoxb-test-token"
TEAM_ID = "T0FAKETEAM1"
APP_ID = "A0FAKEAPP01"
BOT_USER = "U0FAKEBOT01"
BOT_ID = "B0FAKEBOT01"
# Where a webhook posts unless bound elsewhere with FakeSlack.bind_webhook (as click() assumes).
DEFAULT_WEBHOOK_CHANNEL = "C0FAKECHAN1"

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
_TS = re.compile(r"^\d+\.\d+$")
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


@dataclass
class _Stored:
    """A message the fake accepted: its current version and who may edit it."""

    message: dict[str, Any]
    by_bot: bool  # posted with chat.postMessage (this bot); False for webhook messages
    replies: list[str] = field(default_factory=list)  # ts of the thread replies, in order


class FakeSlack(FakeServer):
    """Slack incoming webhooks, chat.postMessage and chat.update.

    Destination keys for :meth:`script_for`: the webhook path (``/services/T/B/X``) or the
    ``channel`` argument of chat.postMessage and chat.update (one key for both methods).
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
        # channel ID -> ts -> message; dicts keep insertion order, which is ts order.
        self._store: dict[str, dict[str, _Stored]] = {}
        self._webhook_channels: dict[str, str] = {}

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

    def bind_webhook(self, webhook: str, channel: str) -> None:
        """Make a webhook (URL or path) post into ``channel`` (default: DEFAULT_WEBHOOK_CHANNEL)."""
        self._webhook_channels[_path_of(webhook)] = _channel_id(channel)

    def _routes(self) -> Iterable[web.RouteDef]:
        return [
            web.post(WEBHOOK_PREFIX + "{team}/{bot}/{secret}", self._webhook),
            web.post(POST_MESSAGE_PATH, self._post_message),
            web.post(UPDATE_PATH, self._update),
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
        # Kept so tests can show that chat.update cannot edit it. Slack answers "ok" and no ts.
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "ts": ts,
            "bot_id": BOT_ID,
            "text": payload.get("text") or "",
        }
        for name in ("blocks", "attachments"):
            if payload.get(name):
                message[name] = payload[name]
        channel = self._webhook_channels.get(path, DEFAULT_WEBHOOK_CHANNEL)
        self._store.setdefault(channel, {})[ts] = _Stored(message, by_bot=False)
        return _text(200, "ok")

    # -- Web API arguments --------------------------------------------------------------------

    def _authed_args(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The Web API arguments (JSON or form), or the error answer when auth or the body fails.

        Auth is checked first: a bad token consumes no scripted behaviour.
        """
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
        return args

    @staticmethod
    def _content_error(args: dict[str, Any]) -> web.Response | None:
        """Decode form-encoded blocks/attachments in place and check the message content."""
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
        if len(args.get("text") or "") > MAX_TEXT:
            return _api_error("msg_too_long")
        return None

    # -- chat.postMessage ---------------------------------------------------------------------

    async def _post_message(self, request: web.Request) -> web.StreamResponse:
        args = self._authed_args(request)
        if isinstance(args, web.Response):
            return args

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
        if error := self._content_error(args):
            return error
        thread_ts = args.get("thread_ts")
        if isinstance(thread_ts, str) and thread_ts and not _TS.match(thread_ts):
            return _api_error("invalid_thread_ts")

        ts = self._next_ts()
        message: dict[str, Any] = {
            "user": BOT_USER,
            "type": "message",
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": args.get("text") or "",
            "team": TEAM_ID,
        }
        for name in ("blocks", "attachments", "thread_ts"):
            if args.get(name):
                message[name] = args[name]
        channel_id = _channel_id(channel)
        messages = self._store.setdefault(channel_id, {})
        stored = _Stored(message, by_bot=True)
        # Only a top-level message of this channel starts or continues a thread. Any other
        # thread_ts (unknown, another channel's, a reply's, not a string) is accepted and echoed
        # as Slack does, but the message is an orphan: in no thread and not shown in history().
        parent = messages.get(thread_ts) if isinstance(thread_ts, str) else None
        if parent is not None and _top_level(parent.message):
            if _flag(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
            parent.replies.append(ts)
            parent.message.update(
                thread_ts=thread_ts,
                reply_count=len(parent.replies),
                reply_users=[BOT_USER],
                reply_users_count=1,
                latest_reply=ts,
            )
        messages[ts] = stored
        return _json(200, {"ok": True, "channel": channel_id, "ts": ts, "message": message})

    # -- chat.update --------------------------------------------------------------------------

    async def _update(self, request: web.Request) -> web.StreamResponse:
        """chat.update: auth and scripting as chat.postMessage, then the message's own checks.

        Error order is the fake's choice (Slack does not document it): channel, message,
        ownership, content.
        """
        args = self._authed_args(request)
        if isinstance(args, web.Response):
            return args

        channel = args.get("channel")
        key = channel if isinstance(channel, str) else None
        if (scripted := await self._intercept(request, key, _render_api)) is not None:
            return scripted

        if not isinstance(channel, str) or not _CHANNEL_ID.match(channel):
            return _api_error("channel_not_found")
        if self._channels is not None and channel not in self._channels:
            return _api_error("channel_not_found")
        if channel in self._archived:
            return _api_error("is_inactive")
        ts = args.get("ts")
        stored = self._store.get(channel, {}).get(ts) if isinstance(ts, str) else None
        if stored is None:
            return _api_error("message_not_found")
        if not stored.by_bot:
            return _api_error("cant_update_message")
        if error := self._content_error(args):
            return error

        message = stored.message
        # Omitted text is "" (fake's choice: the docs say only how blocks and attachments carry).
        message["text"] = args.get("text") or ""
        for name in ("blocks", "attachments"):  # omitted: kept; an empty list: removed
            if name in args:
                if args[name]:
                    message[name] = args[name]
                else:
                    message.pop(name, None)
        return _json(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "text": message["text"],
                "message": deepcopy(message),
            },
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

    def updates(self) -> list[dict[str, Any]]:
        """The arguments of every chat.update request, in order, blocks decoded (failed ones
        included, unreadable bodies skipped)."""
        return [m for r in self.requests_to(UPDATE_PATH) if (m := message_of(r)) is not None]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The current version of a message (a copy); KeyError if the fake holds none."""
        return deepcopy(self._stored(channel, ts).message)

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies to the message ``ts``, oldest first (copies); KeyError if no such
        message."""
        replies = self._stored(channel, ts).replies
        messages = self._store[_channel_id(channel)]
        return [deepcopy(messages[r].message) for r in replies]

    def history(self, channel: str) -> list[dict[str, Any]]:
        """What the channel shows, oldest first (copies): top-level messages, webhook ones
        included, and broadcast replies; not other replies nor orphans."""
        return [
            deepcopy(s.message)
            for s in self._store.get(_channel_id(channel), {}).values()
            if _top_level(s.message) or s.message.get("subtype") == "thread_broadcast"
        ]

    def _stored(self, channel: str, ts: str) -> _Stored:
        try:
            return self._store[_channel_id(channel)][ts]
        except KeyError:
            raise KeyError(f"no message {ts!r} in channel {channel!r}") from None

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
    """The message a webhook, chat.postMessage or chat.update request carried, blocks decoded."""
    content_type = (request.header("Content-Type") or "").split(";")[0].strip()
    is_api = request.path in (POST_MESSAGE_PATH, UPDATE_PATH)
    if is_api and content_type == "application/x-www-form-urlencoded":
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


def _top_level(message: Mapping[str, Any]) -> bool:
    """Not a reply: no thread_ts, or its own ts as thread_ts (a thread's parent)."""
    return bool(message.get("thread_ts", message["ts"]) == message["ts"])


def _flag(value: Any) -> bool:
    """A boolean Web API argument: JSON true, or "true"/"1" in a form."""
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


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
