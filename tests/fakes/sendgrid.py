"""Fake SendGrid v3 Mail Send (``POST /v3/mail/send``).

Wire facts come from shared/reference/channel-apis.md §3 and §6 and SendGrid's Mail Send errors
page. Every error is ``{"errors": [{"message", "field", "help"}]}``; validation reports all
problems at once, as SendGrid does.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.base import Behaviour, Failure, FakeServer, RateLimited, Reject, ServerError

MAIL_SEND_PATH = "/v3/mail/send"
TEST_API_KEY = "SG.test-key"
# The ~30 MB cap is unverified (channel-apis.md §3); tests pass a small max_body_bytes.
DEFAULT_MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
RATE_LIMIT = 600  # X-RateLimit-Limit on 429s; SendGrid publishes no per-endpoint number

_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_BAD_GRANT = "The provided authorization grant is invalid, expired, or revoked"
_UNVERIFIED_SENDER = (
    "The from address does not match a verified Sender Identity. Mail cannot be sent until this "
    "error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/"
    "sender-identity/ to see the Sender Identity requirements"
)
# Canned answers for Reject(status). The 413 wording is not verified.
_REJECT_BY_STATUS: dict[int, tuple[str, str | None]] = {
    400: ("Bad Request", None),
    401: (_BAD_GRANT, None),
    403: (_UNVERIFIED_SENDER, "from"),
    413: ("The JSON payload you have included in your request is too large.", None),
}


# The Event Webhook's headers (sendgrid.helpers.eventwebhook.EventWebhookHeader).
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# What becomes of a message (`email_outcomes`): the events SendGrid posts for it, in order.
EMAIL_OUTCOMES: Mapping[str, tuple[str, ...]] = {
    "delivered": ("processed", "delivered"),
    "deferred": ("processed", "deferred"),
    "bounce": ("processed", "bounce"),
    "blocked": ("processed", "blocked"),
    "dropped": ("dropped",),  # refused before processing (a suppressed address)
}


class FakeSendGrid(FakeServer):
    """SendGrid Mail Send. Destination key for :meth:`script_for`: the first ``to`` email."""

    def __init__(
        self, api_key: str = TEST_API_KEY, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        # The signed Event Webhook: SendGrid's key pair is ECDSA P-256; the console shows the
        # public key as base64 DER (SubjectPublicKeyInfo), which is what `public_key` holds.
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        der = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()
        # Where events go once set (the account's Event Webhook URL), and how each mail ends.
        self.event_webhook_url: str | None = None
        self.default_email_outcome = "delivered"
        self._email_outcomes: dict[str, deque[str]] = {}
        self.event_answers: list[tuple[int, str]] = []
        # Let aiohttp read a little past the vendor cap, so an oversized body is still recorded.
        self._client_max_size = max_body_bytes + 1024 * 1024

    def email_outcomes(self, email: str, *outcomes: str) -> None:
        """How the next mails to `email` end (then `default_email_outcome`)."""
        for outcome in outcomes:
            if outcome not in EMAIL_OUTCOMES:
                raise ValueError(f"not an email outcome: {outcome!r}")
        self._email_outcomes.setdefault(email, deque()).extend(outcomes)

    def sign(self, timestamp: str, payload: bytes) -> str:
        """SendGrid's signature: ECDSA-SHA256 over the timestamp then the raw body, base64 DER."""
        signed = self._signing_key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signed).decode()

    async def post_events(
        self,
        url: str,
        events: Sequence[Mapping[str, Any]] | bytes,
        *,
        sign: bool = True,
        timestamp: str | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        """POST a batch of events as SendGrid does (a JSON array, signed): (status, body)."""
        if not self.loopback(url):
            raise ValueError("events go only to this machine")
        body = events if isinstance(events, bytes) else json.dumps(list(events)).encode()
        stamp = timestamp or str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
        if sign:
            headers[SIGNATURE_HEADER] = signature or self.sign(stamp, body)
            headers[TIMESTAMP_HEADER] = stamp
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.text()

    def events_for(
        self, mail: Mapping[str, Any], message_id: str, outcome: str
    ) -> list[dict[str, Any]]:
        """The events SendGrid posts for a sent mail: per recipient, with its custom_args."""
        given = mail.get("custom_args")
        custom: Mapping[str, Any] = given if isinstance(given, dict) else {}
        categories = mail.get("categories") or []
        out = []
        for email in _recipients(mail):
            for event in EMAIL_OUTCOMES[outcome]:
                out.append(_event(event, email, message_id, categories, custom))
        return out

    async def _deliver_events(self, url: str, events: list[dict[str, Any]]) -> None:
        try:
            self.event_answers.append(await self.post_events(url, events))
        except aiohttp.ClientError as e:  # the router under test has stopped
            self.event_answers.append((0, f"{type(e).__name__}: {e}"))

    def _routes(self) -> Iterable[web.RouteDef]:
        return [web.post(MAIL_SEND_PATH, self._mail_send)]

    def _check_behaviour(self, behaviour: Behaviour) -> None:
        error = behaviour.error if isinstance(behaviour, Reject) else None
        if isinstance(error, int) and error not in _REJECT_BY_STATUS:
            raise ValueError(f"SendGrid Reject status must be one of {sorted(_REJECT_BY_STATUS)}")

    def _payload_too_large(self) -> web.StreamResponse:
        return _errors(413, [_err(_REJECT_BY_STATUS[413][0])])

    async def _mail_send(self, request: web.Request) -> web.StreamResponse:
        body = self._recorded(request).body
        if len(body) > self.max_body_bytes:
            return self._payload_too_large()
        authorization = request.headers.get("Authorization")
        if not authorization:
            return _errors(401, [_err("authorization required")])
        if not secrets.compare_digest(authorization.encode(), f"Bearer {self.api_key}".encode()):
            return _errors(401, [_err(_BAD_GRANT)])

        try:
            mail = json.loads(body)
        except ValueError:
            mail = None
        if (
            scripted := await self._intercept(request, _first_recipient(mail), _render)
        ) is not None:
            return scripted
        if not isinstance(mail, dict):
            return _errors(400, [_err("Bad Request")])  # wording for malformed JSON unverified
        if problems := validate_mail(mail):
            return _errors(400, problems)
        if _sandboxed(mail):  # valid but not queued: 200, and no message id
            return web.Response(status=200)
        # A real X-Message-Id is 22 URL-safe characters.
        message_id = secrets.token_urlsafe(16)
        if self.event_webhook_url is not None and self.loopback(self.event_webhook_url):
            first = _first_recipient(mail) or ""
            queue = self._email_outcomes.get(first)
            outcome = queue.popleft() if queue else self.default_email_outcome
            events = self.events_for(mail, message_id, outcome)
            self._report_later(self._deliver_events(self.event_webhook_url, events))
        return web.Response(status=202, headers={"X-Message-Id": message_id})


def _recipients(mail: Mapping[str, Any]) -> list[str]:
    return [
        address["email"]
        for p in mail.get("personalizations", [])
        for kind in ("to", "cc", "bcc")
        for address in p.get(kind, [])
    ]


def _event(
    event: str, email: str, message_id: str, categories: Any, custom: Mapping[str, Any]
) -> dict[str, Any]:
    """One event as SendGrid's Event Webhook posts it; custom_args are top-level fields."""
    kind = "bounce" if event == "blocked" else event
    out: dict[str, Any] = {
        "email": email,
        "timestamp": int(time.time()),
        "smtp-id": f"<{message_id}@ismtpd0001p1lon1.sendgrid.net>",
        "event": kind,
        "category": categories,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{message_id}.filterdrecv-5645d9c87f-6r6mj-1-0",
        **custom,
    }
    if event == "delivered":
        out["response"] = "250 OK"
    elif event == "deferred":
        out |= {"response": "400 try again later", "attempt": "1"}
    elif event == "bounce":
        out |= {
            "reason": "550 5.1.1 The email account does not exist.",
            "status": "5.1.1",
            "type": "bounce",
        }
    elif event == "blocked":
        out |= {"reason": "421 4.7.0 Try again later", "status": "4.7.0", "type": "blocked"}
    elif event == "dropped":
        out["reason"] = "Bounced Address"
    return out


def _sandboxed(mail: dict[str, Any]) -> bool:
    settings = mail.get("mail_settings")
    sandbox = settings.get("sandbox_mode") if isinstance(settings, dict) else None
    return isinstance(sandbox, dict) and sandbox.get("enable") is True


def _err(message: str, field: str | None = None, anchor: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": f"{_HELP}#{anchor}" if anchor else None}


def _errors(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"errors": errors}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _render(failure: Failure) -> web.StreamResponse:
    match failure:
        case RateLimited(retry_after):
            # SendGrid sends no Retry-After; the reset time is epoch seconds.
            return _errors(
                429,
                [{"field": None, "message": "too many requests"}],
                {
                    "X-RateLimit-Limit": str(RATE_LIMIT),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time()) + retry_after),
                },
            )
        case ServerError(status):
            return _errors(status, [_err(HTTPStatus(status).phrase.lower())])
        case Reject(int(status_code), status):
            message, field = _REJECT_BY_STATUS[status_code]
            return _errors(status or status_code, [_err(message, field)])
        case Reject(error, status):
            return _errors(status or 400, [_err(str(error))])


def _first_recipient(mail: Any) -> str | None:
    try:
        email = mail["personalizations"][0]["to"][0]["email"]
    except (TypeError, KeyError, IndexError):
        return None
    return email if isinstance(email, str) else None


def _json_type(value: Any) -> str:
    """JSON-schema type names, as in SendGrid's "Invalid type. Expected: …, given: …" errors."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case _:
            return "object"


def _custom_args_problems(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    anchor = "message.custom_args"
    if not isinstance(value, dict):
        return [_err(f"Invalid type. Expected: object, given: {_json_type(value)}.", field, anchor)]
    return [
        _err(f"Invalid type. Expected: string, given: {_json_type(v)}.", f"{field}.{k}", anchor)
        for k, v in value.items()
        if not isinstance(v, str)
    ]


def validate_mail(mail: dict[str, Any]) -> list[dict[str, Any]]:
    """Every problem SendGrid would report for this Mail Send body (empty list: valid)."""
    problems: list[dict[str, Any]] = []
    templated = bool(mail.get("template_id"))

    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems.append(
            _err(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
                "-Personalizations-Errors",
            )
        )
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        problems.append(
            _err(
                "The personalization block is limited to 1000 personalizations per API request. "
                f"You have provided {len(personalizations)} personalizations. Please consider "
                "splitting this into multiple requests and resending your request.",
                "personalizations",
                "message.personalizations",
            )
        )

    seen: set[str] = set()
    recipients = 0
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict):
            problems.append(_err("Invalid type. Expected: object.", f"personalizations.{i}"))
            continue
        if not isinstance(p.get("to"), list) or not p["to"]:
            problems.append(
                _err(
                    "The to array is required for all personalization objects, and must have at "
                    "least one email object with a valid email address.",
                    f"personalizations.{i}.to",
                    "message.personalizations.to",
                )
            )
        in_this: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            addresses = p.get(kind)
            if not isinstance(addresses, list):
                continue
            for j, address in enumerate(addresses):
                email = address.get("email") if isinstance(address, dict) else None
                if not isinstance(email, str) or not _EMAIL.match(email):
                    problems.append(
                        _err(
                            "Does not contain a valid address.",
                            f"personalizations.{i}.{kind}.{j}.email",
                            f"message.personalizations.{kind}.email",
                        )
                    )
                    continue
                recipients += 1
                folded = email.lower()
                if folded in in_this:
                    problems.append(
                        _err(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{email}] in the personalizations.{i}.{kind} field.",
                            f"personalizations.{i}",
                            "message.recipient.duplicates",
                        )
                    )
                elif folded in seen:
                    problems.append(
                        _err(
                            "Each unique email address in the personalizations array should only "
                            f"be included once. You have included [{email}] more than once.",
                            "personalizations",
                            "message.recipient.duplicates",
                        )
                    )
                in_this.add(folded)
                seen.add(folded)
        problems += _custom_args_problems(p.get("custom_args"), f"personalizations.{i}.custom_args")
    if recipients > MAX_RECIPIENTS:
        problems.append(
            _err(
                "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                "personalizations",
                "message.personalizations",
            )
        )

    sender = mail.get("from")
    if not isinstance(sender, dict):
        problems.append(
            _err(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from",
                "message.from",
            )
        )
    elif not isinstance(sender.get("email"), str) or not _EMAIL.match(sender["email"]):
        problems.append(
            _err("The from email does not contain a valid address.", "from.email", "message.from")
        )

    def has_subject(obj: Any) -> bool:
        return (
            isinstance(obj, dict) and isinstance(obj.get("subject"), str) and bool(obj["subject"])
        )

    if (
        not templated
        and not has_subject(mail)
        and not (personalizations and all(has_subject(p) for p in personalizations))
    ):
        problems.append(
            _err(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
                "message.subject",
            )
        )

    content = mail.get("content")
    if not isinstance(content, list) or not content:
        if not templated:
            problems.append(
                _err(
                    "Unless a valid template_id is provided, the content parameter is required. "
                    "There must be at least one defined content block. We typically suggest both "
                    "text/plain and text/html blocks are included, but only one block is "
                    "required.",
                    "content",
                    "message.content",
                )
            )
    else:
        ranks: list[int] = []
        for k, item in enumerate(content):
            block: dict[str, Any] = item if isinstance(item, dict) else {}
            mime, value = block.get("type"), block.get("value")
            if not isinstance(mime, str) or not mime:
                problems.append(
                    _err(
                        "The content type must be a string at least one character in length.",
                        f"content.{k}.type",
                        "message.content.type",
                    )
                )
            if not isinstance(value, str) or not value:
                problems.append(
                    _err(
                        "The content value must be a string at least one character in length.",
                        f"content.{k}.value",
                        "message.content.value",
                    )
                )
            ranks.append(
                {"text/plain": 0, "text/html": 1}.get(mime if isinstance(mime, str) else "", 2)
            )
        if ranks != sorted(ranks):
            problems.append(
                _err(
                    "If present, text/plain content must be first, followed by text/html, "
                    "followed by any other content.",
                    "content",
                    "message.content",
                )
            )

    # Category wording is not verified; the limits are (10 per message, names < 255 chars).
    categories = mail.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
            problems.append(
                _err(
                    "The categories parameter must be an array of at most 10 categories.",
                    "categories",
                    "message.categories",
                )
            )
        else:
            problems += [
                _err(
                    "A category name must be a string shorter than 255 characters.",
                    f"categories.{k}",
                    "message.categories",
                )
                for k, name in enumerate(categories)
                if not isinstance(name, str) or len(name) >= 255
            ]

    problems += _custom_args_problems(mail.get("custom_args"), "custom_args")
    return problems
