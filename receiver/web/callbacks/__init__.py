"""Acknowledgement call-backs: Slack buttons, Twilio SMS replies and key presses, email links.

Each verifies who is calling (vendor signature, signed token), then records the acknowledgement
through receiver.ack.flow. A refusal is a 4xx (or a polite reply in the vendor's format), a
log line and `oncall_router_acknowledgements_refused_total{channel,reason}`; never a 500.
"""

from __future__ import annotations

import logging

from aiohttp import web

from receiver.config.types import Config
from receiver.model import Channel
from receiver.web.service import Service

log = logging.getLogger("receiver.callbacks")


def refused(service: Service, channel: Channel, reason: str, detail: str) -> None:
    service.metrics.acknowledgements_refused.labels(channel.value, reason).inc()
    log.warning(
        "acknowledgement refused",
        extra={"channel": channel.value, "reason": reason, "detail": detail},
    )


def report_refused(status: int, error: str, detail: str) -> web.Response:
    """A vendor's delivery report we do not take (receiver.web.receipts): a log line and a
    JSON error; never a 500."""
    log.warning(
        "delivery report refused", extra={"status": status, "error": error, "detail": detail}
    )
    return web.json_response({"error": error, "detail": detail}, status=status)


def public_url(service: Service, request: web.Request) -> str:
    """The URL the vendor signed: our public base plus the path and query it called."""
    base = service.settings.public_url or ""
    return f"{base}{request.rel_url.path_qs}"


def person_by_phone(config: Config, number: str) -> str | None:
    """The person id with this phone number (as Twilio sends it, E.164)."""
    wanted = number.strip()
    return next((p.id for p in config.people.values() if p.phone and p.phone == wanted), None)


def person_by_slack(config: Config, user_id: str) -> str | None:
    return next((p.id for p in config.people.values() if p.slack and p.slack == user_id), None)
