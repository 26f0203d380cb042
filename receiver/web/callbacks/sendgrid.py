"""SendGrid's Event Webhook: `POST /webhooks/sendgrid/events`.

SendGrid posts a JSON array of events, signed with its ECDSA key: `X-Twilio-Email-Event-Webhook-
Signature` over the `...-Timestamp` header followed by the raw body, checked with the sendgrid
library's `EventWebhook` and SENDGRID_WEBHOOK_PUBLIC_KEY. Only the router's own mail counts (its
`custom_args` carry `notification_key`; the account may send other mail); each event is counted
once by its `sg_event_id` (receiver.web.receipts). SendGrid documents no freshness window for
the timestamp, so none is enforced: a replayed batch is harmless, its events already counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from typing import Any

from aiohttp import web
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from receiver.delivery import receipt_status as status
from receiver.delivery import receipt_tokens as tokens
from receiver.web import receipts
from receiver.web.callbacks import report_refused
from receiver.web.service import SERVICE, Service

log = logging.getLogger("receiver.callbacks")

EVENTS_PATH = "/webhooks/sendgrid/events"
# Set on every email the router sends (receiver.channels.sendgrid.mail_body).
OURS = "notification_key"


def add_routes(app: web.Application) -> None:
    app.router.add_post(EVENTS_PATH, events)


async def events(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    key = service.settings.sendgrid_webhook_public_key
    if not key:
        detail = "SENDGRID_WEBHOOK_PUBLIC_KEY is not configured"
        return report_refused(404, "not_configured", detail)
    signature = request.headers.get(EventWebhookHeader.SIGNATURE)
    timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
    if not signature or not timestamp:
        detail = f"missing {EventWebhookHeader.SIGNATURE} or {EventWebhookHeader.TIMESTAMP}"
        return report_refused(401, "unauthorized", detail)
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return report_refused(400, "invalid_body", "the body is not UTF-8")
    if not signed(key, text, signature, timestamp):
        return report_refused(403, "forbidden", "bad Event Webhook signature")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as e:
        return report_refused(400, "invalid_json", f"body is not JSON: {e}"[:200])
    if not isinstance(body, list) or not all(isinstance(e, dict) for e in body):
        return report_refused(400, "invalid_payload", "expected a JSON array of event objects")
    counted = 0
    for event in body:
        if OURS in event:
            counted += await _event(service, event) == "counted"
    return web.json_response({"status": "ok", "events": len(body), "counted": counted})


def signed(key: str, payload: str, signature: str, timestamp: str) -> bool:
    """The library's check; header values that cannot be a signature are simply "no"."""
    if not (signature.isascii() and timestamp.isascii()):
        return False
    try:
        return bool(_verifier(key).verify_signature(payload, signature, timestamp))
    except ValueError:  # not base64, or not a DER signature
        return False


@lru_cache(maxsize=4)
def _verifier(key: str) -> EventWebhook:
    # Parsed once: the key was checked when the settings were read.
    return EventWebhook(key)


async def _event(service: Service, event: dict[str, Any]) -> str:
    receipt = status.sendgrid(_text(event.get("event")), _text(event.get("type")))
    token = None
    secret = receipts.receipt_secret(service.settings)
    given = event.get("receipt")
    if isinstance(given, str) and secret:
        try:
            token = tokens.verify(given, secret, service.clock().timestamp())
        except tokens.TokenError as e:
            # Still counted, just not tied to a person: SendGrid vouches for the event.
            log.warning("email receipt token refused", extra={"reason": e.reason})
    report = _text(event.get("sg_event_id")) or _digest(event)
    return await receipts.handle(service, token, receipt, report)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _digest(event: dict[str, Any]) -> str:
    """An id for an event without `sg_event_id` (SendGrid always sends one): its content."""
    canonical = json.dumps(event, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]
