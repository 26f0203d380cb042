"""Twilio call-backs: `ACK <code>` SMS replies and the call's "press 1 to acknowledge"."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from receiver.ack import tokens
from receiver.ack.flow import Outcome, Refused, acknowledge, find_page, from_token
from receiver.ack.store import sms_code, typed_code
from receiver.model import Channel
from receiver.web import auth
from receiver.web.callbacks import person_by_phone, public_url, refused
from receiver.web.service import SERVICE, Service

# "ACK", "ack 7kq2a", " Ack  7KQ2A. " — a phone keyboard adds capitals and full stops.
_ACK = re.compile(r"\s*ack\s*([0-9a-z]{5})?\s*[.!]?\s*", re.IGNORECASE)
_HELP = "Reply ACK <code> to acknowledge a page, or ACK for your most recent page."
# Twilio's AnsweredBy values for a machine (only sent when machine detection is on).
_MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
# Twilio posts a few dozen fields; a body of a million empty ones is not Twilio.
_MAX_FIELDS = 1000


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/twilio/sms", sms_reply)
    app.router.add_post("/webhooks/twilio/voice", key_press)


async def sms_reply(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    form = await _signed_form(request, service, Channel.SMS)
    if isinstance(form, web.Response):
        return form
    sender, text = form.get("From", ""), form.get("Body", "")
    person = person_by_phone(service.config, sender)
    if person is None:
        refused(service, Channel.SMS, "unknownSender", "an SMS from a number that is no one's")
        return _message("This number is not on the on-call roster; nothing was acknowledged.")
    match = _ACK.fullmatch(text)
    if match is None:
        refused(service, Channel.SMS, "notAcknowledged", f"an SMS from {person} that is not ACK")
        return _message(_HELP)
    code = typed_code(match.group(1)) if match.group(1) else None
    try:
        page = await find_page(service, person, code)
        outcome = await acknowledge(service, page.request)
    except Refused as e:
        refused(service, Channel.SMS, e.reason, f"{person}: {e.detail}")
        return _message(f"Not acknowledged: {e.detail}. {_HELP if code else ''}".strip())
    what = f"{page.request.what}, code {sms_code(page.request.group)}"
    return _message(f"{_confirmation(service, outcome)} ({what})")


async def key_press(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    form = await _signed_form(request, service, Channel.CALL)
    if isinstance(form, web.Response):
        return form
    if form.get("AnsweredBy", "") in _MACHINE or form.get("Digits", "") != "1":
        refused(service, Channel.CALL, "notAcknowledged", "no 1 pressed, or a machine answered")
        return _speech("Not acknowledged. Goodbye.")
    secret = service.settings.ack_secret or ""
    text = request.query.get("token", "")
    try:
        token = tokens.verify(text, secret, service.clock().timestamp(), Channel.CALL)
        outcome = await acknowledge(
            service, from_token(token, tokens.signature(text), token.to, Channel.CALL)
        )
    except tokens.TokenError as e:
        refused(service, Channel.CALL, e.reason, str(e))
        return _speech(f"Not acknowledged: {e}. Goodbye.")
    except Refused as e:
        refused(service, Channel.CALL, e.reason, e.detail)
        return _speech(f"Not acknowledged: {e.detail}. Goodbye.")
    return _speech(f"{_confirmation(service, outcome)} Goodbye.")


async def _signed_form(
    request: web.Request, service: Service, channel: Channel
) -> MultiDict[str] | web.Response:
    """The posted form if Twilio signed it for our public URL; else a 403 to return."""
    token = service.settings.twilio_auth_token
    if not service.ack_enabled or not token:
        refused(service, channel, "storeUnavailable", "acknowledgement is not configured")
        return web.json_response(
            {"error": "not_configured", "detail": "acknowledgement is not configured"}, status=404
        )
    form = read_form(request, await request.read())
    if form is None:
        refused(service, channel, "malformed", "the body is not a UTF-8 form")
        detail = "expected a UTF-8 application/x-www-form-urlencoded body"
        return web.json_response({"error": "invalid_body", "detail": detail}, status=400)
    signature = request.headers.get("X-Twilio-Signature")
    if not auth.twilio_signature_ok(public_url(service, request), form, signature, token):
        refused(service, channel, "badSignature", "bad or missing X-Twilio-Signature")
        return web.json_response(
            {"error": "forbidden", "detail": "bad or missing X-Twilio-Signature"}, status=403
        )
    return form


def read_form(request: web.Request, raw: bytes) -> MultiDict[str] | None:
    """The posted form, or None if it cannot be read as Twilio's (UTF-8, urlencoded) form.

    Read here rather than with `request.post()`, which raises on bytes that are not in the
    declared charset, or on a charset Python does not know (`charset=bogus`).
    """
    if request.content_type not in ("application/x-www-form-urlencoded", ""):
        return None
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        return None
    try:
        text = raw.decode("utf-8")
        return MultiDict(parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS))
    except ValueError:  # UnicodeDecodeError, or too many fields
        return None


def _confirmation(service: Service, outcome: Outcome) -> str:
    until = outcome.ack.until.astimezone(service.config.timezone)
    when = f"{until:%H:%M} {until.tzname()}"
    if outcome.new:
        return f"Acknowledged until {when}: escalation is paused."
    return f"Already acknowledged by {outcome.ack.by} until {when}."


def _message(text: str) -> web.Response:
    reply = MessagingResponse()
    reply.message(text)
    return web.Response(text=str(reply), content_type="text/xml")


def _speech(text: str) -> web.Response:
    reply = VoiceResponse()
    reply.say(text)
    reply.hangup()
    return web.Response(text=str(reply), content_type="text/xml")
