"""JSON-lines logging with a request id; every line is redacted whole, after it is built."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from receiver.ack.short_links import ID_LENGTH
from receiver.channels.base import (
    MIN_SECRET,
    REDACTED,
    mask_contacts,
    redact_slack_paths,
    secret_parts,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
# The acknowledgement pages' paths carry what acknowledges: the email's signed token
# (`/ack/<token>`) and the SMS's short link id (`/a/<id>`, exactly its length, so that other
# paths with an `a` directory stay readable). A refused request logs its path; a vendor echoing
# a message may send the separators back JSON-escaped (`\/`, again escaped in a JSON line) or
# percent-encoded.
_SEP = r"(?:\\*/|%2[Ff])"
_ACK_PATH = re.compile(
    rf"({_SEP}ack{_SEP})[A-Za-z0-9_.=-]+"
    rf"|({_SEP}a{_SEP})[0-9A-Za-z]{{{ID_LENGTH}}}(?![A-Za-z0-9_.=-])"
    # The key press's and the delivery receipts' call-back URLs carry theirs as `?token=`.
    r"|((?:[?&]|%3[Ff]|%26)token(?:=|%3[Dd]))[A-Za-z0-9_.-]+(?:%3[Dd])*"
)


def redact_ack_paths(text: str) -> str:
    """The token or link id of every acknowledgement page path and call-back URL, by its shape."""
    if "/" in text or "%2" in text or "token=" in text:
        text = _ACK_PATH.sub(lambda m: f"{m[1] or m[2] or m[3]}{REDACTED}", text)
    return text


class Redactor:
    """Takes secrets out of text wherever they appear, as substrings: every known secret and its
    secret parts (a Slack webhook URL's token, should a proxy echo only the path), the secret part
    of any Slack webhook or response_url path and of any acknowledgement page path by its shape,
    and masks phone numbers and email addresses (`receiver.channels.base.redact`).
    `patterns=False` keeps only the list."""

    def __init__(self, secrets: Iterable[str] = (), *, patterns: bool = True) -> None:
        self._secrets: tuple[str, ...] = ()
        self._patterns = patterns
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole; short
        # values would redact ordinary words, so they are not treated as secrets.
        fresh = {p for s in secrets if s for p in secret_parts(s) if len(p) >= MIN_SECRET}
        # The JSON-escaped form too, since log lines are JSON.
        fresh |= {json.dumps(s, ensure_ascii=False)[1:-1] for s in fresh}
        merged = set(self._secrets) | fresh
        self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        if self._patterns:
            text = redact_ack_paths(redact_slack_paths(text))
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return mask_contacts(text) if self._patterns else text


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.redactor(json.dumps(entry, default=str, ensure_ascii=False))


def setup_logging(level: str, redactor: Redactor) -> None:
    """Logs go to stderr; stdout is kept for dry-run output."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print raw paths (the legacy Sentry token lives in one).
    logging.getLogger("aiohttp.access").disabled = True


class Throttle:
    """Logs a kind of trouble at most once per interval, with how often it happened since: a
    flood of bad sockets or shed webhooks must not become a flood of log lines (or fill the
    disk). The counters have every occurrence."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self.logger = logger
        self.interval = interval
        self._next: dict[str, float] = {}
        self._counts: Counter[str] = Counter()

    def warn(self, what: str, **extra: Any) -> None:
        self._counts[what] += 1
        now = time.monotonic()
        if now < self._next.get(what, 0.0):
            return
        self._next[what] = now + self.interval
        self.logger.warning(what, extra={**extra, "occurrences": self._counts.pop(what)})
