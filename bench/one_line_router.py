"""The router with the relay's one-line texts instead of its messages: what rendering costs.

`python -m bench.one_line_router serve ...` runs the real router (`python -m receiver`: parse,
routing, dedupe claims, deadlines, retries, metrics, the same vendor requests) with the four
message bodies replaced by the relay's (bench/relay.py): one line naming the alert and the group's
`service`, as a Slack `text`, an SMS body, a `<Say>` and a plain-text email. Its throughput against
the relay's is the ceiling rendering leaves: no change to the rest of the router can take the
measured ratio past it. A diagnostic for the benchmark only; the service never runs this way.
"""

from __future__ import annotations

import sys
from datetime import tzinfo
from typing import Any
from xml.sax.saxutils import escape

from receiver.channels import sendgrid, slack, twilio_voice
from receiver.cli.main import main
from receiver.messages import templates
from receiver.model import Notification


def one_line(n: Notification) -> str:
    """The relay's text: `[FIRING] HighErrorRate payments-api-1000001 (2 alerts)`."""
    name = n.alerts[0].labels.get("alertname", "alert") if n.alerts else "alert"
    service = n.group.common_labels.get("service", "")
    return f"[{n.group.status.value.upper()}] {name} {service} ({len(n.alerts)} alerts)"


def slack_message(n: Notification, tz: tzinfo, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"text": one_line(n)}


def sms_text(n: Notification, tz: tzinfo) -> str:
    return one_line(n)


def twiml(n: Notification, tz: tzinfo) -> str:
    return f"<Response><Say>{escape(one_line(n))}</Say><Hangup/></Response>"


def mail_body(n: Notification, tz: tzinfo, sender: str) -> dict[str, Any]:
    text = one_line(n)
    return {
        "personalizations": [{"to": [{"email": n.recipient.address}]}],
        "from": {"email": sender},
        "subject": text,
        "content": [{"type": "text/plain", "value": text}],
    }


def install() -> None:
    """Swap the renderers the senders call (each looks its renderer up at send time)."""
    slack.build_message = slack_message
    templates.sms_text = sms_text
    twilio_voice.twiml = twiml
    sendgrid.mail_body = mail_body


if __name__ == "__main__":
    install()
    sys.exit(main())
