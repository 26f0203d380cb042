"""Phone calls through Twilio Calls, with the TwiML inline: the call needs no callback to speak."""

from __future__ import annotations

import logging
import re
from datetime import tzinfo
from functools import cache
from xml.sax.saxutils import escape

import aiohttp
from twilio.twiml.voice_response import Gather, VoiceResponse

from receiver.channels.twilio_api import TwilioApi, status_callback
from receiver.config.settings import Settings
from receiver.config.types import Delivery
from receiver.messages import templates
from receiver.messages.escape import speech
from receiver.model import Notification, Status

log = logging.getLogger("receiver.channels.call")

MAX_TWIML = 4000  # Twilio's cap on the `Twiml` parameter, in characters
_URL = re.compile(r"https?://\S+")


DEFAULT_RING_TIMEOUT = Delivery.call_timeout


class CallSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: Settings,
        tz: tzinfo,
        *,
        ring_timeout: float = DEFAULT_RING_TIMEOUT,
    ) -> None:
        self._api = TwilioApi(session, settings)
        self._tz = tz
        self._public_url = settings.public_url
        self._ring_timeout = ring_timeout

    async def send(self, n: Notification) -> None:
        call = await self._api.create(
            "Calls",
            n.recipient.address,
            {
                "Twiml": twiml(n, n.timezone or self._tz),
                **call_options(self._public_url, n.receipt, self._ring_timeout),
            },
        )
        log.info(
            "call placed",
            extra={
                "channel": "call",
                "to": n.recipient.name,
                "route": n.route,
                "sid": call.get("sid"),
            },
        )


def call_options(public_url: str | None, receipt: str, ring_timeout: float) -> dict[str, str]:
    """How long it rings (`Timeout`: Twilio's default of 60 s lets most voicemail answer first)
    and, with delivery receipts on, the `StatusCallback` and answering-machine detection, so a
    call that rang out or reached voicemail is known as such (receiver.web.receipts)."""
    options = {"Timeout": str(int(ring_timeout))}
    callback = status_callback(public_url, receipt)
    if callback:
        options |= {**callback, "MachineDetection": "Enable"}
    return options


def twiml(n: Notification, tz: tzinfo) -> str:
    """The call's script: the message twice, then hang up; at most MAX_TWIML characters.

    When acknowledgement is configured, the message is said inside a `<Gather>` asking to press
    1; Twilio posts the key to a URL carrying the signed token (receiver.callbacks.twilio).
    """
    speech = _speakable(templates.call_speech(n, tz))
    action = n.ack.voice_action if n.ack and n.status is Status.FIRING else None
    document = _document(speech, action)
    if len(document) <= MAX_TWIML:
        return document
    # Too long (a route's `call` override can be): keep the longest prefix that fits. Escaping
    # makes the size per character uneven, so search; each character is at least one in XML.
    fits, too_long = 0, min(len(speech), MAX_TWIML // 2)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if len(_document(_cut(speech, middle), action)) <= MAX_TWIML:
            fits = middle
        else:
            too_long = middle
    return _document(_cut(speech, fits), action)


def _cut(speech: str, length: int) -> str:
    return speech[:length].rstrip() + "…"


PROMPT = "Press 1 to acknowledge."
# Seconds Twilio waits for the key after the last word.
GATHER_TIMEOUT = 8


def _document(speech: str, action: str | None) -> str:
    """What `VoiceResponse` writes (tests prove it), without its ~60 µs XML writer per call.

    The library writes the verbs once, around placeholders; each call fills in the escaped speech
    (and the escaped `<Gather action>` URL).
    """
    if not speech:  # the library writes an empty verb as <Say />; too rare to special-case
        return _library_document(speech, action)
    if action is None:
        return _skeleton(gather=False).replace(_SPEECH, escape(speech))
    # The URL first: alert text could contain the other placeholder, our URL cannot.
    document = _skeleton(gather=True).replace(_ACTION, escape(action, {'"': "&quot;"}))
    return document.replace(_SPEECH, escape(speech))


_SPEECH = "@SPEECH@"
_ACTION = "@ACTION@"


@cache
def _skeleton(*, gather: bool) -> str:
    return _library_document(_SPEECH, _ACTION if gather else None)


def _library_document(speech: str, action: str | None) -> str:
    response = VoiceResponse()
    if action is None:
        _announce(response, speech)
    else:
        gather = Gather(num_digits=1, action=action, method="POST", timeout=GATHER_TIMEOUT)
        # The message twice, then the prompt once: the key can be pressed from the first word.
        _announce(gather, speech)
        gather.say(PROMPT)
        response.append(gather)
        # No key pressed (or nobody there): say so, and it stays unacknowledged.
        response.say("Not acknowledged. Goodbye.")
    response.hangup()
    return str(response)


def _announce(verb: VoiceResponse | Gather, speech: str) -> None:
    """Say it twice with a breath between: the first time wakes the listener, the second informs."""
    verb.say(speech)
    verb.pause(length=1)
    verb.say(speech)


def _speakable(text: str) -> str:
    """No URLs (a voice reads them letter by letter), even from a route's `call` override; no
    control, invisible or XML-forbidden characters (escape.speech), which ElementTree would
    write anyway."""
    return speech(_URL.sub("", text))
