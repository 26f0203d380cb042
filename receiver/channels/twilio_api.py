"""Twilio REST API 2010-04-01 over the shared aiohttp session: what SMS and voice share.

We POST the form ourselves rather than through twilio-python's async client: that client costs a
quarter of our throughput and passes aiohttp's deprecated `auth=`. The library stays for TwiML.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp.payload import BytesPayload

from receiver.channels.base import (
    NO_TIMEOUT,
    DeliveryError,
    reason_for_status,
    retry_after,
    short,
)
from receiver.config.settings import Settings

API_VERSION = "2010-04-01"

# Codes whose meaning beats the HTTP status (twilio.com/docs/api/errors/<code>).
TOO_MANY_REQUESTS = 20429  # "never processed and is always safe to retry"
AUTHENTICATE = 20003

# The vendor dropped or garbled the connection: the request may never have arrived.
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class TwilioApi:
    """One Twilio account: create a Message or a Call and classify the answer."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        self._session = session
        self._from = settings.twilio_from
        self._accounts_url = f"{settings.twilio_api_url.rstrip('/')}/{API_VERSION}/Accounts/{sid}"
        self._authorization = basic_auth(sid, token) if sid and token else None
        self._headers = {"Authorization": self._authorization or "", "Accept": "application/json"}
        # Anything that could let a reader act as us; scrubbed from every detail we write.
        encoded = self._authorization.removeprefix("Basic ") if self._authorization else None
        self._secrets = tuple(s for s in (token, encoded) if s)

    async def create(self, resource: str, to: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """POST `To`, `From` and `fields` to `{resource}.json`; the new record, or DeliveryError."""
        if self._authorization is None or not self._from:
            raise DeliveryError(
                "authError",
                "Twilio is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM",
                retryable=False,
            )
        form = {"To": to, "From": self._from, **fields}
        try:
            async with self._session.post(
                f"{self._accounts_url}/{resource}.json",
                data=form_body(form),
                headers=self._headers,
                timeout=NO_TIMEOUT,
                # A redirected POST would be replayed as a GET; treat any 3xx as an answer.
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except TRANSPORT_ERRORS as e:
            # `from None`: aiohttp errors may carry request_info, whose headers hold our auth.
            raise DeliveryError(
                "connectionError", self._short(f"twilio: {type(e).__name__}: {e}"), retryable=True
            ) from None
        except aiohttp.ClientError as e:  # e.g. an invalid TWILIO_API_URL: retrying cannot help
            raise DeliveryError(
                "other", self._short(f"twilio: {type(e).__name__}: {e}"), retryable=False
            ) from None
        if 200 <= status < 300:
            record = _json_object(body)
            return record if record is not None else {}
        raise classify(status, headers, body, scrub=self._secrets)

    def _short(self, text: str) -> str:
        return short(text, self._secrets)


STATUS_PATH = "/webhooks/twilio/status"


def status_callback(public_url: str | None, receipt: str) -> dict[str, str]:
    """The `StatusCallback` field that brings Twilio's delivery report back to us (with the
    signed receipt token, never a number), or nothing without a public URL or a token."""
    if not public_url or not receipt:
        return {}
    return {"StatusCallback": f"{public_url}{STATUS_PATH}?token={receipt}"}


def form_body(fields: Mapping[str, str]) -> BytesPayload:
    """What aiohttp sends for `data=fields`, without a FormData (and its uuid) per request."""
    encoded = urllib.parse.urlencode(fields)
    return BytesPayload(encoded.encode("ascii"), content_type="application/x-www-form-urlencoded")


def basic_auth(login: str, password: str) -> str:
    """The `Authorization` value for HTTP Basic auth.

    Built by hand: aiohttp 3.14 deprecates `BasicAuth` (warnings are errors in our tests), and its
    replacement `aiohttp.encode_basic_auth` is new, while pyproject still allows aiohttp 3.10.
    """
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, scrub: Iterable[str] = ()
) -> DeliveryError:
    """The DeliveryError for a non-2xx Twilio answer: 429/20429 and 5xx retryable, the rest not."""
    error = _json_object(body) or {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    # Legacy bodies say `message`; RFC 9457 bodies say `title` (and maybe `detail`).
    message = next(
        (str(error[k]) for k in ("message", "detail", "title") if error.get(k)),
        f"HTTP {status}",
    )
    detail = short(f"twilio {code}: {message}" if code else f"twilio: {message}", scrub)
    if status == 429 or code == TOO_MANY_REQUESTS:
        return DeliveryError(
            "rateLimited", detail, retryable=True, retry_after=retry_after(headers)
        )
    if status >= 500:
        return DeliveryError("serverError", detail, retryable=True)
    if status == 401 or code == AUTHENTICATE:
        return DeliveryError("authError", detail, retryable=False)
    # 400 with 21211, 21610, 21614, 21617, 21217, 21608, 21612...: this message will never go.
    return DeliveryError(reason_for_status(status), detail, retryable=False)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:  # not JSON (a proxy's HTML error page, an empty body)
        return None
    return value if isinstance(value, dict) else None
