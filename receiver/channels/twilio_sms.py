"""SMS through Twilio Messages: one text per notification (never one per alert), ≤ 1600 chars."""

from __future__ import annotations

import logging
from datetime import tzinfo

import aiohttp

from receiver.channels.twilio_api import TwilioApi, status_callback
from receiver.config.settings import Settings
from receiver.messages import templates
from receiver.model import Notification

log = logging.getLogger("receiver.channels.sms")


class SmsSender:
    def __init__(self, session: aiohttp.ClientSession, settings: Settings, tz: tzinfo) -> None:
        self._api = TwilioApi(session, settings)
        self._tz = tz
        self._public_url = settings.public_url

    async def send(self, n: Notification) -> None:
        # templates.sms_text is one billed segment when it can be (messages.sms_length), alert
        # text cleaned (messages.escape.sms), and never over Twilio's 1600.
        message = await self._api.create(
            "Messages",
            n.recipient.address,
            {
                "Body": templates.sms_text(n, n.timezone or self._tz),
                **status_callback(self._public_url, n.receipt),
            },
        )
        log.info(
            "sms accepted",
            extra={
                "channel": "sms",
                "to": n.recipient.name,
                "route": n.route,
                "sid": message.get("sid"),
                "segments": message.get("num_segments"),
            },
        )
