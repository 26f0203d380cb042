"""Fake Twilio REST API (2010-04-01): Messages.json and Calls.json.

Wire facts come from shared/reference/channel-apis.md §2 and §6; error codes and messages from the
twilio.com/docs/api/errors pages. The real ``twilio`` client works against it once
``client.api.base_url = fake.url`` (and with TWILIO_REGION / TWILIO_EDGE unset).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.fakes.base import (
    Behaviour,
    Failure,
    FakeServer,
    RateLimited,
    RecordedRequest,
    Reject,
    ServerError,
)

API_VERSION = "2010-04-01"
TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "test-auth-token"

MAX_BODY = 1600
MAX_TWIML = 4000

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# Calls may also dial Twilio Clients and SIP addresses, which are not phone numbers.
_CALL_NON_PSTN = ("client:", "sip:")

# Code -> (HTTP status, message template). Placeholders: {to}, {from_}, {path}.
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service Unavailable"),
    21201: (400, "No 'To' number is specified"),
    # Unverified wording: Twilio's page only names 21205 "Invalid URL"; this is the common message
    # when neither Url nor Twiml (nor ApplicationSid) is given.
    21205: (400, "Url parameter is required."),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21213: (400, "A 'From' phone number is required."),
    21217: (400, "The phone number you are attempting to call, {to}, is not valid."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio phone "
        "number for this destination.",
    ),
    21608: (
        400,
        "The number {to} is unverified. Trial accounts cannot send messages to unverified numbers.",
    ),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: "
        "{from_} via SMS.",
    ),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    # twilio.com/docs/api/errors/32018 gives the code and text; the 400 status is an assumption.
    32018: (400, "Twiml size exceeded maximum allowed value of 4000 characters"),
}

# Final call outcomes a test may script (`call_outcomes`): CallStatus values, or an AnsweredBy
# value for a call that was answered (CallStatus completed) by that.
CALL_STATUSES = ("completed", "no-answer", "busy", "failed", "canceled")
ANSWERED_BY = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)
# Final message outcomes (`sms_outcomes`), optionally "undelivered:30005" for another ErrorCode.
MESSAGE_STATUSES = ("delivered", "undelivered", "failed")
_DEFAULT_ERROR = {"undelivered": "30003", "failed": "30008"}  # unreachable handset; unknown


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One status call-back the fake posted: what it said and how the client answered."""

    sid: str
    status: str  # CallStatus or MessageStatus
    answered_by: str | None
    answer: int  # the client's HTTP status (0: not sent, the URL is not on this machine)
    text: str
    url: str
    params: Mapping[str, str]


# GSM 03.38 basic set; the extension set costs two septets per character.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 160 (153 per part when split), else UCS-2 70 (67 per part)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in body):
        units, single, multi = sum(2 if c in _GSM_EXTENDED else 1 for c in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


class FakeTwilio(FakeServer):
    """Twilio Messages and Calls. Destination key for :meth:`script_for`: the ``To`` number."""

    def __init__(
        self,
        account_sid: str = TEST_ACCOUNT_SID,
        auth_token: str = TEST_AUTH_TOKEN,
        *,
        api_keys: Mapping[str, str] | None = None,
    ) -> None:
        """``api_keys``: API key SID (``SK…``) -> secret, also accepted as Basic credentials."""
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._api_keys = dict(api_keys or {})
        # Status call-backs, as Twilio sends them to a StatusCallback given at create time.
        self.send_status_callbacks = True
        self.default_call_outcome = "completed"
        self.default_sms_outcome = "delivered"
        self._call_outcomes: dict[str, deque[str]] = {}
        self._sms_outcomes: dict[str, deque[str]] = {}
        self.reports: list[StatusReport] = []
        self._reported = asyncio.Event()

    def call_outcomes(self, to: str, *outcomes: str) -> None:
        """How the next calls to `to` end, one per call (then `default_call_outcome`)."""
        for outcome in outcomes:
            if outcome not in CALL_STATUSES + ANSWERED_BY:
                raise ValueError(f"not a call outcome: {outcome!r}")
        self._call_outcomes.setdefault(to, deque()).extend(outcomes)

    def sms_outcomes(self, to: str, *outcomes: str) -> None:
        """How the next messages to `to` end (then `default_sms_outcome`)."""
        for outcome in outcomes:
            if outcome.partition(":")[0] not in MESSAGE_STATUSES:
                raise ValueError(f"not a message outcome: {outcome!r}")
        self._sms_outcomes.setdefault(to, deque()).extend(outcomes)

    async def wait_for_reports(self, count: int = 1) -> list[StatusReport]:
        """Until `count` status call-backs have been answered; bound it with asyncio.timeout."""
        while len(self.reports) < count:
            self._reported.clear()
            await self._reported.wait()
        return list(self.reports)

    def _routes(self) -> Iterable[web.RouteDef]:
        base = f"/{API_VERSION}/Accounts/{{sid}}"
        return [
            web.post(f"{base}/Messages.json", self._create_message),
            web.post(f"{base}/Calls.json", self._create_call),
        ]

    def _check_behaviour(self, behaviour: Behaviour) -> None:
        if isinstance(behaviour, Reject) and not isinstance(behaviour.error, int):
            raise TypeError("Twilio Reject takes an error code such as 21211")

    def _authorized(self, request: web.Request) -> bool:
        credentials = _basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return False
        login, password = credentials
        secret = self.auth_token if login == self.account_sid else self._api_keys.get(login)
        # The account in the path must be the credentials' account (subaccounts are not modelled).
        return (
            secret is not None
            and secrets.compare_digest(password.encode(), secret.encode())
            and request.match_info["sid"] == self.account_sid
        )

    async def _gate(self, request: web.Request) -> tuple[dict[str, str], web.StreamResponse | None]:
        """Auth, then the scripted behaviour: the form, and an answer if one is already decided."""
        form = self._recorded(request).form()
        if not self._authorized(request):
            return form, _error(20003)
        ctx = {"to": form.get("To", ""), "from_": form.get("From", ""), "path": request.path}
        return form, await self._intercept(
            request, form.get("To"), lambda failure: _render(failure, ctx)
        )

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        form, answer = await self._gate(request)
        if answer is not None:
            return answer
        to, from_, service = (
            form.get("To", ""),
            form.get("From", ""),
            form.get("MessagingServiceSid"),
        )
        body = form.get("Body", "")
        if not to:
            return _error(21604)
        if not _E164.match(to):
            return _error(21211, ctx={"to": to})
        if not from_ and not service:
            return _error(21603)
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return _error(21602)
        if len(body) > MAX_BODY:
            return _error(21617)

        sid = "SM" + secrets.token_hex(16)
        now = _rfc2822_now()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        callback = form.get("StatusCallback")
        if callback and self.send_status_callbacks:
            outcome = _next(self._sms_outcomes, to, self.default_sms_outcome)
            self._report_later(self._message_lifecycle(callback, sid, to, from_, outcome))
        return _json(
            201,
            {
                "account_sid": self.account_sid,
                "api_version": API_VERSION,
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": from_ or None,
                "messaging_service_sid": service,
                "num_media": "1" if form.get("MediaUrl") else "0",
                "num_segments": str(num_segments(body)),
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                # Without a From, Twilio picks the sender later: the message starts "accepted".
                "status": "queued" if from_ else "accepted",
                "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
                "to": to,
                "uri": uri,
            },
        )

    async def _create_call(self, request: web.Request) -> web.StreamResponse:
        form, answer = await self._gate(request)
        if answer is not None:
            return answer
        to, from_ = form.get("To", ""), form.get("From", "")
        url, twiml = form.get("Url"), form.get("Twiml")
        if not to:
            return _error(21201)
        if not to.startswith(_CALL_NON_PSTN) and not _E164.match(to):
            return _error(21217, ctx={"to": to})
        if not from_:
            return _error(21213)
        if not url and not twiml and not form.get("ApplicationSid"):
            return _error(21205)
        if not url and twiml and len(twiml) > MAX_TWIML:  # Twiml is ignored when Url is given
            return _error(32018)

        sid = "CA" + secrets.token_hex(16)
        now = _rfc2822_now()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}.json"
        callback = form.get("StatusCallback")
        if callback and self.send_status_callbacks:
            outcome = _next(self._call_outcomes, to, self.default_call_outcome)
            detect = form.get("MachineDetection") in ("Enable", "DetectMessageEnd")
            self._report_later(
                self._call_status_report(callback, sid, to, from_, outcome, detect=detect)
            )
        sub = uri.removesuffix(".json")
        return _json(
            201,
            {
                "account_sid": self.account_sid,
                "annotation": None,
                "answered_by": None,
                "api_version": API_VERSION,
                "caller_name": None,
                "date_created": now,
                "date_updated": now,
                "direction": "outbound-api",
                "duration": None,
                "end_time": None,
                "forwarded_from": None,
                "from": from_,
                "from_formatted": from_,
                "group_sid": None,
                "parent_call_sid": None,
                "phone_number_sid": None,
                "price": None,
                "price_unit": "USD",
                "queue_time": "0",
                "sid": sid,
                "start_time": None,
                "status": "queued",
                "subresource_uris": {
                    name: f"{sub}/{name.title().replace('_', '')}.json"
                    for name in ("notifications", "recordings", "events", "payments")
                },
                "to": to,
                "to_formatted": to,
                "trunk_sid": None,
                "uri": uri,
            },
        )

    # -- Twilio calling us back ------------------------------------------------------------------

    async def _message_lifecycle(
        self, url: str, sid: str, to: str, from_: str, outcome: str
    ) -> None:
        """As Twilio reports a message: `sent` once the carrier has it, then the final status
        (a message that failed was never sent)."""
        status, _, code = outcome.partition(":")
        if status != "failed":
            await self.message_status(url, sid=sid, to=to, from_=from_, status="sent")
        await self.message_status(
            url, sid=sid, to=to, from_=from_, status=status, error_code=code or None
        )

    async def _call_status_report(
        self, url: str, sid: str, to: str, from_: str, outcome: str, *, detect: bool
    ) -> None:
        """Without StatusCallbackEvent Twilio reports only the call's end."""
        answered = outcome in ANSWERED_BY
        await self.call_status(
            url,
            sid=sid,
            to=to,
            from_=from_,
            status="completed" if answered else outcome,
            # AnsweredBy only with MachineDetection, and only for an answered call.
            answered_by=(outcome if answered else None) if detect else None,
        )

    async def message_status(
        self,
        url: str,
        *,
        sid: str,
        to: str,
        from_: str,
        status: str,
        error_code: str | None = None,
    ) -> StatusReport:
        """A Messages StatusCallback, with Twilio's fields; ErrorCode when it did not arrive."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": from_,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": to,
        }
        if status in _DEFAULT_ERROR:
            params["ErrorCode"] = error_code or _DEFAULT_ERROR[status]
        if status == "delivered":
            params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
        return await self._report(url, params, sid, status, None)

    async def call_status(
        self,
        url: str,
        *,
        sid: str,
        to: str,
        from_: str,
        status: str,
        answered_by: str | None = None,
    ) -> StatusReport:
        """A Calls StatusCallback at the end of a call, with Twilio's fields."""
        answered = status == "completed"
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": sid,
            "CallStatus": status,
            "Called": to,
            "CalledCountry": "GB",
            "Caller": from_,
            "CallerCountry": "GB",
            "CallbackSource": "call-progress-events",
            "Direction": "outbound-api",
            "From": from_,
            "FromCountry": "GB",
            "SequenceNumber": "0",
            "Timestamp": _rfc2822_now(),
            "To": to,
            "ToCountry": "GB",
            "CallDuration": "14" if answered else "0",
            "Duration": "1" if answered else "0",
        }
        if answered_by is not None:
            params["AnsweredBy"] = answered_by
            params["MachineDetectionDuration"] = "2400"
        return await self._report(url, params, sid, status, answered_by)

    async def _report(
        self, url: str, params: dict[str, str], sid: str, status: str, answered_by: str | None
    ) -> StatusReport:
        answer, text = 0, "not sent: the StatusCallback is not on this machine"
        if self.loopback(url):
            try:
                answer, text = await self.call_back(url, params)
            except aiohttp.ClientError as e:  # the router under test has stopped
                text = f"{type(e).__name__}: {e}"
        report = StatusReport(sid, status, answered_by, answer, text, url, params)
        self.reports.append(report)
        self._reported.set()
        return report

    async def replay(self, report: StatusReport) -> StatusReport:
        """Post one of the call-backs again, byte for byte, as Twilio may."""
        return await self._report(
            report.url, dict(report.params), report.sid, report.status, report.answered_by
        )

    async def reply_sms(
        self, url: str, from_: str, body: str, *, to: str = "+447700900999", sign: bool = True
    ) -> tuple[int, str]:
        """Someone texts our number: Twilio posts the incoming message to the webhook `url`."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "ToCountry": "GB",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "GB",
            "To": to,
            "ToZip": "",
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        return await self.call_back(url, params, sign=sign)

    async def press_key(
        self, call: RecordedRequest, digits: str, *, answered_by: str | None = None
    ) -> tuple[int, str]:
        """The callee presses `digits` during a call we placed: Twilio posts them to the
        `<Gather action>` of the call's TwiML, with the call's parameters."""
        form = call.form()
        # The router under test wrote this TwiML; nothing untrusted is parsed.
        gather = ET.fromstring(form["Twiml"]).find("Gather")  # noqa: S314
        if gather is None:
            raise AssertionError(f"the call's TwiML has no <Gather>: {form['Twiml']}")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": "CA" + secrets.token_hex(16),
            "CallStatus": "in-progress",
            "Called": form["To"],
            "Caller": form["From"],
            "Direction": "outbound-api",
            "Digits": digits,
            "FinishedOnKey": "",
            "From": form["From"],
            "To": form["To"],
            **({"AnsweredBy": answered_by} if answered_by else {}),
        }
        return await self.call_back(gather.attrib["action"], params)

    async def call_back(
        self, url: str, params: Mapping[str, str], *, sign: bool = True
    ) -> tuple[int, str]:
        """POST a form as Twilio does, signed with the account's auth token (status, body)."""
        headers = {"I-Twilio-Idempotency-Token": secrets.token_hex(16)}
        if sign:
            validator = RequestValidator(self.auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(url, dict(params))
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=dict(params), headers=headers) as response,
        ):
            return response.status, await response.text()


def _next(queues: dict[str, deque[str]], to: str, default: str) -> str:
    queue = queues.get(to)
    return queue.popleft() if queue else default


def _basic_credentials(header: str) -> tuple[str, str] | None:
    # Parsed by hand: aiohttp 3.14 deprecates BasicAuth, and the suite turns warnings into errors.
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def _rfc2822_now() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


def _json(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def _error(
    code: int,
    status: int | None = None,
    *,
    headers: dict[str, str] | None = None,
    ctx: Mapping[str, str] | None = None,
) -> web.Response:
    """Twilio's (legacy, still current) error body: code, message, more_info, status."""
    default_status, template = ERRORS.get(code, (400, f"Error {code}"))
    status = status or default_status
    message = template.format_map({"to": "", "from_": "", "path": "", **(ctx or {})})
    if status == 401:
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"', **(headers or {})}
    return _json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        headers,
    )


def _render(failure: Failure, ctx: dict[str, str]) -> web.StreamResponse:
    match failure:
        case RateLimited(retry_after):
            return _error(20429, headers={"Retry-After": str(retry_after)})
        case ServerError(status):
            return _error(20503 if status == 503 else 20500, status)
        case Reject(error, status):
            return _error(int(error), status, ctx=ctx)
