"""What a vendor's delivery report means: Twilio's CallStatus / AnsweredBy and MessageStatus /
ErrorCode, SendGrid's event types. One `Receipt` per report, whatever the vendor.

Statuses on the way (queued, ringing, sent, processed...) and engagement events (open, click)
are not final: nothing is counted for them. A final status we do not know is "other", so the
metric's label values stay a closed set (receiver.metrics.VENDOR_STATUSES).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from receiver.metrics import VENDOR_STATUSES
from receiver.model import Channel

# Twilio's AnsweredBy for a machine (sent only when MachineDetection is on); "unknown" is
# taken as a person, so a person who answered is never called twice.
MACHINE = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
_CALL_ON_THE_WAY = frozenset({"queued", "initiated", "ringing", "in-progress"})
_SMS_ON_THE_WAY = frozenset({"queued", "accepted", "scheduled", "sending", "sent", "receiving"})
# Deliverability events that are not final, and engagement events: counted by nobody here.
_EMAIL_NOT_COUNTED = frozenset(
    {"processed", "open", "click", "unsubscribe", "group_unsubscribe", "group_resubscribe"}
)
# A page call that rang out, was refused or reached a machine is worth a second call.
UNANSWERED = frozenset({"no-answer", "busy", "failed", "machine"})
_WORDS = {
    "no-answer": "no answer",
    "busy": "busy",
    "failed": "the call failed",
    "machine": "a machine answered (voicemail)",
    "canceled": "canceled",
    "completed": "answered",
}
_ERROR_CODE = re.compile(r"\d{1,6}")


@dataclass(frozen=True)
class Receipt:
    channel: Channel
    status: str  # one of VENDOR_STATUSES[channel]; "" while not final
    words: str = ""  # for the Slack thread: "no answer", "undelivered (Twilio error 30003)"
    refused: bool = False  # the carrier or mail server refused it: a wrong number or address?

    @property
    def final(self) -> bool:
        return bool(self.status)

    @property
    def unanswered(self) -> bool:
        """A call that no person picked up."""
        return self.channel is Channel.CALL and self.status in UNANSWERED

    @property
    def notable(self) -> bool:
        """Worth a line in the group's Slack thread: something did not reach the person."""
        return self.unanswered or self.refused


NOT_FINAL_CALL = Receipt(Channel.CALL, "")
NOT_FINAL_SMS = Receipt(Channel.SMS, "")
NOT_FINAL_EMAIL = Receipt(Channel.EMAIL, "")


def twilio_call(call_status: str, answered_by: str = "") -> Receipt:
    """A Calls StatusCallback: CallStatus, and AnsweredBy when machine detection is on."""
    status = call_status.strip().lower()
    if status in _CALL_ON_THE_WAY:
        return NOT_FINAL_CALL
    if status == "completed" and answered_by.strip().lower() in MACHINE:
        status = "machine"
    status = _known(Channel.CALL, status)
    words = _WORDS.get(status, "an unknown call status")
    return Receipt(Channel.CALL, status, words, refused=status == "failed")


def twilio_sms(message_status: str, error_code: str = "") -> Receipt:
    """A Messages StatusCallback: MessageStatus, and ErrorCode when it failed."""
    status = message_status.strip().lower()
    if status in _SMS_ON_THE_WAY:
        return NOT_FINAL_SMS
    if status == "read":  # a read receipt (WhatsApp) is past delivered
        status = "delivered"
    status = _known(Channel.SMS, status)
    refused = status in ("undelivered", "failed")
    words = status if status != "other" else "an unknown message status"
    code = error_code.strip()
    if refused and _ERROR_CODE.fullmatch(code):
        words += f" (Twilio error {code})"
    return Receipt(Channel.SMS, status, words, refused=refused)


def sendgrid(event: str, bounce_type: str = "") -> Receipt:
    """One SendGrid event: `event`, and `type` (bounce or blocked) for a bounce."""
    status = event.strip().lower()
    if status in _EMAIL_NOT_COUNTED:
        return NOT_FINAL_EMAIL
    if status == "bounce" and bounce_type.strip().lower() == "blocked":
        status = "blocked"  # refused for now (a block list, a full mailbox): not a wrong address
    status = _known(Channel.EMAIL, status)
    words = {"bounce": "bounced", "blocked": "blocked by the mail server", "dropped": "dropped"}
    return Receipt(
        Channel.EMAIL,
        status,
        words.get(status, status),
        refused=status in ("bounce", "dropped"),
    )


def _known(channel: Channel, status: str) -> str:
    return status if status in VENDOR_STATUSES[channel] else "other"
