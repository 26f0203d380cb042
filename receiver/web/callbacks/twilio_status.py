"""Twilio's status call-backs for the SMS and calls we send: `POST /webhooks/twilio/status`.

Twilio posts the message's or call's final status (and the steps before it) to the
`StatusCallback` URL the router gave it, which carries a signed receipt token naming the person
and the group. Checked like the other Twilio call-backs (`X-Twilio-Signature` over PUBLIC_URL
and the form), then counted and acted on once (receiver.web.receipts).
"""

from __future__ import annotations

from aiohttp import web

from receiver.channels.twilio_api import STATUS_PATH
from receiver.delivery import receipt_status as status
from receiver.delivery import receipt_tokens as tokens
from receiver.model import Channel
from receiver.web import auth, receipts
from receiver.web.callbacks import public_url, report_refused
from receiver.web.callbacks.twilio import read_form
from receiver.web.service import SERVICE


def add_routes(app: web.Application) -> None:
    app.router.add_post(STATUS_PATH, status_report)


async def status_report(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    settings = service.settings
    auth_token, secret = settings.twilio_auth_token, receipts.receipt_secret(settings)
    if not settings.public_url or not auth_token or not secret:
        detail = "delivery receipts need PUBLIC_URL and TWILIO_AUTH_TOKEN"
        return report_refused(404, "not_configured", detail)
    form = read_form(request, await request.read())
    if form is None:
        detail = "expected a UTF-8 application/x-www-form-urlencoded body"
        return report_refused(400, "invalid_body", detail)
    signature = request.headers.get("X-Twilio-Signature")
    if not auth.twilio_signature_ok(public_url(service, request), form, signature, auth_token):
        return report_refused(403, "forbidden", "bad or missing X-Twilio-Signature")
    text = request.query.get("token", "")
    try:
        token = tokens.verify(text, secret, service.clock().timestamp())
    except tokens.TokenError as e:
        return report_refused(410 if e.reason == "expired" else 403, e.reason, str(e))
    if token.channel is Channel.CALL:
        reported, report = form.get("CallStatus", ""), form.get("CallSid", "")
        receipt = status.twilio_call(reported, form.get("AnsweredBy", ""))
    elif token.channel is Channel.SMS:
        reported = form.get("MessageStatus", "") or form.get("SmsStatus", "")
        report = form.get("MessageSid", "") or form.get("SmsSid", "")
        receipt = status.twilio_sms(reported, form.get("ErrorCode", ""))
    else:
        return report_refused(403, "forged", "this receipt token is not an SMS's or a call's")
    if not reported.strip():
        detail = "no CallStatus or MessageStatus in the form"
        return report_refused(400, "invalid_body", detail)
    # Without a SID (Twilio always sends one) the token stands for the message.
    outcome = await receipts.handle(service, token, receipt, report or tokens.signature(text))
    return web.json_response({"status": outcome})
