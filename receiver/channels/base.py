"""The one protocol every channel implements, and the error it raises.

Errors:
    DeliveryError(retryable=True)   429, 5xx, timeouts, dropped connections: try again.
    DeliveryError(retryable=False)  any other 4xx, bad address, bad credentials: give up.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import msgspec

from receiver.model import Notification, SlackRef

DETAIL_LIMIT = 200


class DeliveryError(Exception):
    """A send failed. `reason` is a metric label; `detail` must never hold a secret."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class Sender(Protocol):
    """Renders and sends one notification; raises DeliveryError on failure.

    Returns the Slack message it posted or updated through the Web API (which a later change of
    the group edits), else None.
    """

    async def send(self, notification: Notification) -> SlackRef | None: ...


# The Deliverer bounds every attempt with asyncio.timeout; aiohttp's own 5-minute default (or a
# session-wide one) must not cut in first with a different error, nor cost a second timer.
NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
# A vendor body as JSON bytes, with its Content-Type.
JSON_HEADERS = {"Content-Type": "application/json"}


def json_body(value: Any) -> bytes:
    """`value` as UTF-8 JSON: msgspec, ~8 times faster than the json module for a Slack message
    (1.5 µs against 12.9); json's \\u escapes when a lone surrogate got this far, which UTF-8
    cannot carry."""
    try:
        return msgspec.json.encode(value)
    except UnicodeEncodeError:
        return json.dumps(value).encode()


def reason_for_status(status: int) -> str:
    """Alertmanager's failure-reason vocabulary for an HTTP status."""
    if status in (401, 403):
        return "authError"
    if status == 429:
        return "rateLimited"
    if 400 <= status < 500:
        return "clientError"
    if status >= 500:
        return "serverError"
    return "other"


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), never negative."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def short(text: str, scrub: Iterable[str] = ()) -> str:
    """One line of at most DETAIL_LIMIT characters, with every secret taken out and contacts
    masked (`redact`) before it is cut, so a cut never leaves half a secret behind."""
    text = re.sub(r"\s+", " ", redact(text, scrub)).strip()
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


REDACTED = "[REDACTED]"
# Shorter values would redact ordinary words; no secret of ours is that short.
MIN_SECRET = 6
# Slack URLs whose path is a credential: incoming webhooks (/services/T…/B…/<secret>), a
# click's response_url (/actions/T…/<n>/<secret>), workflow triggers. Matched by shape, since
# a response_url is new with every click and in no list of secrets; the separators may come
# back JSON-escaped (`\/`) or percent-encoded from a vendor or proxy that echoes the request.
_SEP = r"(?:/|\\/|%2[Ff])"
_SLACK_PATH = re.compile(
    rf"{_SEP}(services|actions|triggers|workflows){_SEP}T[A-Z0-9]+{_SEP}[A-Za-z0-9]+"
    rf"{_SEP}[A-Za-z0-9_-]+"
)
_SLACK_KINDS = frozenset({"services", "actions", "triggers", "workflows"})
# E.164-looking numbers (`+` and 7-15 digits, or `%2B` in an echoed form body) and addresses.
_PHONE = re.compile(r"(?<!\w)(\+|%2[Bb])(\d{7,15})(?!\d)")
_EMAIL = re.compile(
    r"(?<![\w.%+-])([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every Slack URL secret, every secret and its secret parts (`secret_parts`;
    longest first, so one that contains another goes whole) replaced, and phone numbers and
    email addresses masked."""
    text = redact_slack_paths(text)
    parts = {part for secret in secrets if secret for part in secret_parts(secret)}
    for secret in sorted(parts, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return mask_contacts(text)


def redact_slack_paths(text: str) -> str:
    """The secret part of every Slack webhook, response_url or trigger path, by its shape.
    Before known secrets are replaced: a replaced piece would break the shape."""
    if "/" in text or "%2" in text:
        text = _SLACK_PATH.sub(lambda m: f"/{m[1]}/{REDACTED}", text)
    return text


def mask_contacts(text: str) -> str:
    """Phone numbers and email addresses, masked. After secrets are replaced: a masked secret
    (a password before an @) would no longer match."""
    if "@" in text:
        text = _EMAIL.sub(_mask_email, text)
    if "+" in text or "%2" in text:
        text = _PHONE.sub(_mask_phone, text)
    return text


def _mask_email(match: re.Match[str]) -> str:
    return f"{match[1][0]}…@{match[2]}"


def _mask_phone(match: re.Match[str]) -> str:
    # Enough to tell two numbers apart in a log (+44…0101), not enough to call one.
    digits = match[2]
    shown = (2, 4) if len(digits) >= 10 else (1, 2)
    return f"{match[1]}{digits[: shown[0]]}…{digits[-shown[1] :]}"


def secret_parts(secret: str) -> set[str]:
    """A secret and the pieces of it that are secrets on their own, for when only a piece is
    echoed (a proxy's error page that quotes the request path): a URL's password, the bot id
    and token of a Slack webhook path, and any long path segment or query value of a URL."""
    parts = {secret}
    try:
        url = urlsplit(secret)
        password = url.password
    except ValueError:  # not a URL after all
        return parts
    if not (url.scheme and url.netloc):
        return parts
    if password:
        parts.add(password)
    segments = [s for s in url.path.split("/") if s]
    if len(segments) >= 4 and segments[0] in _SLACK_KINDS:
        parts.update(segments[2:])
    values = [*segments, *(v for _, v in parse_qsl(url.query))]
    # Long enough to be a token rather than a word such as "services" or "hooks".
    parts.update(v for v in values if len(v) >= 16)
    return {p for p in parts if len(p) >= MIN_SECRET} | {secret}
