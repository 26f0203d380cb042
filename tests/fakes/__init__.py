"""Loopback fakes of the vendors oncall-router talks to (Slack, Twilio, SendGrid)."""

from __future__ import annotations

from tests.fakes.base import (
    Behaviour,
    Drop,
    FakeServer,
    Hang,
    RateLimited,
    RecordedRequest,
    Reject,
    ServerError,
    Slow,
)
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio

__all__ = [
    "Behaviour",
    "Drop",
    "FakeSendGrid",
    "FakeServer",
    "FakeSlack",
    "FakeTwilio",
    "Hang",
    "RateLimited",
    "RecordedRequest",
    "Reject",
    "ServerError",
    "Slow",
]
