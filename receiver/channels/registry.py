"""Which sender handles each channel kind: the one place a new channel is registered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import TextIO

import aiohttp

from receiver.channels.base import Sender
from receiver.channels.console import ConsoleSender
from receiver.channels.sendgrid import EmailSender
from receiver.channels.slack import SlackSender
from receiver.channels.twilio_sms import SmsSender
from receiver.channels.twilio_voice import CallSender
from receiver.config.settings import Settings
from receiver.config.types import Config
from receiver.model import Channel


def dry_run_senders(tz: tzinfo, out: TextIO | None = None) -> Mapping[Channel, Sender]:
    console = ConsoleSender(tz, out)
    return {channel: console for channel in Channel}


def vendor_senders(
    session: aiohttp.ClientSession, settings: Settings, config: Config
) -> Mapping[Channel, Sender]:
    tz = config.timezone
    return {
        Channel.SLACK: SlackSender(
            session,
            settings,
            tz,
            config.slack_destinations(),
            silence_for=config.acknowledgement.silence_for,
        ),
        Channel.SMS: SmsSender(session, settings, tz),
        Channel.CALL: CallSender(session, settings, tz, ring_timeout=config.delivery.call_timeout),
        Channel.EMAIL: EmailSender(session, settings, tz),
    }
