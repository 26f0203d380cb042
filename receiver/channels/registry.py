"""Which sender handles each channel kind: the one place a new channel is registered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo

from receiver.channels.base import Sender
from receiver.channels.console import ConsoleSender
from receiver.model import Channel


def dry_run_senders(tz: tzinfo) -> Mapping[Channel, Sender]:
    console = ConsoleSender(tz)
    return {channel: console for channel in Channel}
