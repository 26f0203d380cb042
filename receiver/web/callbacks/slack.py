"""Slack buttons on an alert message: Acknowledge, Silence and (Sentry events only) Resolve.

Slack posts a form with one field, `payload=<JSON>`, signed with the app's signing secret, and
gives up after 3 s. The signature is checked on the raw body before anything is parsed. The
Alertmanager work is done inline (bounded well inside those 3 s); the message update goes to the
payload's `response_url` in a tracked background task, so shutdown waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from yarl import URL

from receiver.ack import tokens
from receiver.ack.flow import Outcome, Refused, acknowledge, from_token, unavailable
from receiver.ack.store import AlertmanagerStore, StoreError
from receiver.channels.slack import (
    ACK,
    ACTIONS_BLOCK_PREFIX,
    RESOLVE,
    SENTRY_LABEL,
    SILENCE,
    duration_text,
)
from receiver.messages import escape
from receiver.model import AlertGroup, Channel
from receiver.web import auth
from receiver.web.callbacks import person_by_slack, refused
from receiver.web.service import SERVICE, Service

log = logging.getLogger("receiver.callbacks.slack")

PATH = "/webhooks/slack/actions"
# Where Slack's response_url points (https://hooks.slack.com/actions/T…/…/…).
SLACK_HOOKS_HOST = "hooks.slack.com"
# Slack shows the user an error after 3 s; leave room for the network both ways.
INLINE_BUDGET = 2.5
# Slack allows 50 blocks in a message; the update adds one.
_MAX_BLOCKS = 50
# What each button did not do, for the refusal the clicker sees.
_NOT_DONE = {ACK: "Not acknowledged", SILENCE: "Not silenced", RESOLVE: "Not resolved"}
# Attachment fields carried into the updated message (the alert details live there).
_ATTACHMENT_KEYS = ("color", "fallback", "blocks")


class _Malformed(ValueError):
    """A signed request we cannot read: 400, never 500."""


@dataclass(frozen=True)
class Click:
    """One button press, as read from a verified block_actions payload."""

    action: str  # ACK, SILENCE or RESOLVE
    value: str  # the signed token the button carries
    user_id: str
    by: str  # the person id, or `slack:<username>` for someone not in the routing file
    response_url: str
    blocks: tuple[Mapping[str, Any], ...]  # the message as the user saw it
    attachments: tuple[Mapping[str, Any], ...]


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, actions)


async def actions(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    secret = service.settings.slack_signing_secret
    if not service.ack_enabled or not secret:
        refused(service, Channel.SLACK, "storeUnavailable", "Slack buttons are not configured")
        return _error(404, "not_configured", "Slack buttons are not configured")
    raw = await request.read()
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    if not auth.slack_signature_ok(raw, timestamp, signature, secret, service.clock().timestamp()):
        refused(service, Channel.SLACK, "badSignature", "bad, stale or missing X-Slack-Signature")
        return _error(401, "unauthorized", "bad, stale or missing X-Slack-Signature")
    try:
        click = _read(raw, service)
    except _Malformed as e:
        refused(service, Channel.SLACK, "malformed", str(e))
        return _error(400, "invalid_payload", str(e))
    try:
        async with asyncio.timeout(INLINE_BUDGET):
            update = await _act(service, click)
    except tokens.TokenError as e:
        refused(service, Channel.SLACK, e.reason, f"{click.by}: {e}")
        update = _ephemeral(f"{_NOT_DONE[click.action]}: {escape.slack_mrkdwn(str(e))}.")
    except Refused as e:
        refused(service, Channel.SLACK, e.reason, f"{click.by}: {e.detail}")
        update = _ephemeral(f"{_NOT_DONE[click.action]}: {escape.slack_mrkdwn(e.detail)}.")
    except TimeoutError:
        # A write may still land; a second click is harmless (already acknowledged).
        refused(service, Channel.SLACK, "storeUnavailable", "Alertmanager too slow for Slack")
        update = _ephemeral(f"{_NOT_DONE[click.action]}: Alertmanager is slow; try again.")
    task = asyncio.create_task(_respond(service, click.response_url, update))
    service.tasks.add(task)
    task.add_done_callback(service.tasks.discard)
    # Slack wants an empty 200; anything else it shows to the user as an error.
    return web.Response(status=200)


def _read(raw: bytes, service: Service) -> Click:
    try:
        form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise _Malformed("the body is not a form") from None
    payloads = [v for k, v in form if k == "payload"]
    if len(payloads) != 1:
        raise _Malformed("the form must have one payload field")
    try:
        payload = json.loads(payloads[0])
    except (ValueError, RecursionError):
        raise _Malformed("the payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise _Malformed("the payload is not a block_actions payload")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise _Malformed("the payload has no action")
    action, value = actions[0].get("action_id"), actions[0].get("value")
    if not isinstance(action, str) or action not in _NOT_DONE or not isinstance(value, str):
        raise _Malformed("not one of our buttons")
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user, dict) or not isinstance(user_id, str) or not user_id:
        raise _Malformed("the payload names no user")
    response_url = payload.get("response_url")
    if not isinstance(response_url, str) or not _slack_origin(service, response_url):
        raise _Malformed("the payload has no Slack response_url")
    message = payload.get("message")
    message = message if isinstance(message, dict) else {}
    person = person_by_slack(service.config, user_id)
    names = (user.get("username"), user.get("name"))
    name = next((n for n in names if isinstance(n, str) and n), user_id)
    return Click(
        action=action,
        value=value,
        user_id=user_id,
        by=person or f"slack:{name}",
        response_url=response_url,
        blocks=_objects(message.get("blocks")),
        attachments=_objects(message.get("attachments")),
    )


def _slack_origin(service: Service, url: str) -> bool:
    """Only Slack's own hosts (or SLACK_API_URL's, for a proxy or a test): even with a leaked
    signing secret, the router cannot be made to post to an address of the sender's choice."""
    try:
        target = URL(url)
    except ValueError:
        return False
    allowed = {("https", SLACK_HOOKS_HOST, 443), _origin(URL(service.settings.slack_api_url))}
    return target.is_absolute() and _origin(target) in allowed


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


def _objects(value: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()


async def _act(service: Service, click: Click) -> dict[str, Any]:
    """Do what the button says; the body to post to response_url."""
    now = service.clock()
    secret = service.settings.ack_secret or ""
    token = tokens.verify(click.value, secret, now.timestamp(), Channel.SLACK)
    if click.action == ACK:
        request = from_token(token, tokens.signature(click.value), click.by, Channel.SLACK)
        outcome = await acknowledge(service, request)
        return _replace(click, _acknowledged(service, click, outcome))
    store = service.store
    if store is None:
        raise Refused("storeUnavailable", "acknowledgement is not configured")
    group = await _firing_group(service, store, token.group)
    if click.action == SILENCE:
        return _replace(click, await _silence(service, store, click, group, now))
    return _replace(click, await _resolve(service, store, click, group, now))


async def _firing_group(service: Service, store: AlertmanagerStore, gid: str) -> AlertGroup:
    try:
        groups = await store.groups()
    except StoreError as e:
        raise unavailable("cannot list alert groups", e) from None
    group = next((g for g in groups if service.group_id(g) == gid), None)
    if group is None:
        raise Refused(
            "unknownGroup", "no firing, unsilenced alert group matches; it may have resolved"
        )
    return group


async def _silence(
    service: Service, store: AlertmanagerStore, click: Click, group: AlertGroup, now: datetime
) -> str:
    """A real Alertmanager silence of the group's labels (unlike Acknowledge, it mutes)."""
    if not group.group_labels:
        raise Refused(
            "unknownGroup", "the group has no group labels to silence by; use Alertmanager"
        )
    seconds = service.config.acknowledgement.silence_for
    until = now + timedelta(seconds=seconds)
    comment = (
        f"Silenced for {duration_text(seconds)} from Slack by {click.by} "
        f"(Slack user {click.user_id}) through oncall-router"
    )
    try:
        silence_id = await store.silence(
            group.group_labels, starts=now, until=until, by=click.by, comment=comment
        )
    except StoreError as e:
        raise unavailable("cannot create a silence", e) from None
    log.info(
        "silenced from slack",
        extra={
            "ack_group": service.group_id(group),
            "by": click.by,
            "silence_id": silence_id,
            "until": until.isoformat(),
        },
    )
    return (
        f":no_bell: Silenced for {duration_text(seconds)} by <@{click.user_id}> at "
        f"{_clock(service, now)}, until {_clock(service, until)}; "
        "its resolved notice will not be posted"
    )


async def _resolve(
    service: Service, store: AlertmanagerStore, click: Click, group: AlertGroup, now: datetime
) -> str:
    """End forwarded Sentry events in Alertmanager; a Prometheus alert resolves by itself."""
    name, value = SENTRY_LABEL
    if not all(a.labels.get(name) == value for a in group.alerts):
        raise Refused(
            "notAcknowledged",
            "only Sentry events can be resolved from Slack; other alerts resolve when their "
            "condition clears",
        )
    try:
        await store.end_alerts(group.alerts, now)
    except StoreError as e:
        raise unavailable("cannot resolve alerts", e) from None
    log.info(
        "resolved from slack",
        extra={"ack_group": service.group_id(group), "by": click.by, "alerts": len(group.alerts)},
    )
    return f":white_check_mark: Resolved by <@{click.user_id}> at {_clock(service, now)}"


def _acknowledged(service: Service, click: Click, outcome: Outcome) -> str:
    ack = outcome.ack
    paused = f"escalation paused until {_clock(service, ack.until)}"
    if outcome.new:
        return (
            f":white_check_mark: Acknowledged by <@{click.user_id}> at "
            f"{_clock(service, ack.at)} — {paused}"
        )
    return (
        f":white_check_mark: Already acknowledged by {_who(service, ack.by)} at "
        f"{_clock(service, ack.at)} — {paused}"
    )


def _who(service: Service, by: str) -> str:
    """A Slack mention for someone in the routing file with a Slack id, else the name stored,
    escaped: the marker silence's author is anyone who can write to Alertmanager."""
    person = service.config.people.get(by)
    return f"<@{person.slack}>" if person is not None and person.slack else escape.slack_mrkdwn(by)


def _clock(service: Service, when: datetime) -> str:
    local = when.astimezone(service.config.timezone)
    return f"{local:%H:%M} {local.tzname()}"


def _replace(click: Click, line: str) -> dict[str, Any]:
    """The message as it was, without its buttons, with a line saying what was done."""
    blocks = [
        dict(b)
        for b in click.blocks
        if not (b.get("type") == "actions" and _ours(b.get("block_id")))
    ][: _MAX_BLOCKS - 1]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line[:3000]}]})
    body: dict[str, Any] = {"replace_original": True, "text": line[:3000], "blocks": blocks}
    attachments = [
        {k: a[k] for k in _ATTACHMENT_KEYS if k in a} for a in click.attachments if a.get("blocks")
    ]
    if attachments:
        body["attachments"] = attachments
    return body


def _ours(block_id: Any) -> bool:
    return isinstance(block_id, str) and block_id.startswith(ACTIONS_BLOCK_PREFIX)


def _ephemeral(text: str) -> dict[str, Any]:
    """Only the person who clicked sees it; the message stays as it was."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def _respond(service: Service, url: str, body: dict[str, Any]) -> None:
    """Post the update; a failure is logged (without the URL, which acts as a credential)."""
    session = service.session
    if session is None:
        log.warning("cannot update the Slack message: shutting down")
        return
    timeout = aiohttp.ClientTimeout(total=service.config.delivery.deadline)
    try:
        async with session.post(url, json=body, timeout=timeout) as response:
            if response.status != 200:
                log.warning(
                    "slack refused the message update",
                    extra={"status": response.status, "error": (await response.text())[:100]},
                )
    except (aiohttp.ClientError, TimeoutError) as e:
        log.warning("cannot update the Slack message", extra={"error": type(e).__name__})


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)
