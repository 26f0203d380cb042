"""Dry-run: print each would-be message as one JSON line on stdout and send nothing."""

from __future__ import annotations

import json
import sys
from datetime import tzinfo
from typing import TextIO

from receiver.messages import templates
from receiver.model import Notification


class ConsoleSender:
    def __init__(self, tz: tzinfo, out: TextIO | None = None) -> None:
        self.tz = tz
        self.out = out

    async def send(self, notification: Notification) -> None:
        out = self.out or sys.stdout
        out.write(
            json.dumps(
                dry_run_line(notification, notification.timezone or self.tz), ensure_ascii=False
            )
            + "\n"
        )
        out.flush()


def dry_run_line(n: Notification, tz: tzinfo) -> dict[str, str]:
    return {
        "channel": n.channel.value,
        "to": n.recipient.address,
        "recipient": n.recipient.name,
        "severity": n.severity.value,
        "route": n.route,
        "status": n.status.value,
        "text": templates.text_for(n.channel, n, tz),
    }
