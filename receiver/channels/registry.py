"""Which sender handles each channel kind: the one place a new channel is registered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import TextIO

from receiver.channels.base import Sender
from receiver.channels.console import ConsoleSender
from receiver.model import Channel


def dry_run_senders(tz: tzinfo, out: TextIO | None = None) -> Mapping[Channel, Sender]:
    console = ConsoleSender(tz, out)
    return {channel: console for channel in Channel}
