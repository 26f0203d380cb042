"""Phone calls through Twilio Calls, with the TwiML inline: the call needs no callback to speak."""

from __future__ import annotations

import logging
import re
from datetime import tzinfo
from functools import cache
from xml.sax.saxutils import escape

import aiohttp
from twilio.twiml.voice_response import VoiceResponse

from receiver import templates
from receiver.channels.twilio_api import TwilioApi
from receiver.model import Notification
from receiver.settings import Settings

log = logging.getLogger("receiver.channels.call")

MAX_TWIML = 4000  # Twilio's cap on the `Twiml` parameter, in characters
_URL = re.compile(r"https?://\S+")
# Characters XML 1.0 forbids (lone surrogates included); ElementTree would write them anyway.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class CallSender:
    def __init__(self, session: aiohttp.ClientSession, settings: Settings, tz: tzinfo) -> None:
        self._api = TwilioApi(session, settings)
        self._tz = tz

    async def send(self, n: Notification) -> None:
        call = await self._api.create("Calls", n.recipient.address, {"Twiml": twiml(n, self._tz)})
        log.info(
            "call placed",
            extra={
                "channel": "call",
                "to": n.recipient.name,
                "route": n.route,
                "sid": call.get("sid"),
            },
        )


def twiml(n: Notification, tz: tzinfo) -> str:
    """The call's script: the message twice, then hang up; at most MAX_TWIML characters."""
    speech = _speakable(templates.call_speech(n, tz))
    document = _document(speech)
    if len(document) <= MAX_TWIML:
        return document
    # Too long (a route's `call` override can be): keep the longest prefix that fits. Escaping
    # makes the size per character uneven, so search; each character is at least one in XML.
    fits, too_long = 0, min(len(speech), MAX_TWIML // 2)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if len(_document(_cut(speech, middle))) <= MAX_TWIML:
            fits = middle
        else:
            too_long = middle
    return _document(_cut(speech, fits))


def _cut(speech: str, length: int) -> str:
    return speech[:length].rstrip() + "…"


def _document(speech: str) -> str:
    """What `VoiceResponse` writes (tests prove it), without its ~60 µs XML writer per call.

    The library writes the verbs once, around a placeholder; each call fills in the escaped speech.
    """
    if not speech:  # the library writes an empty verb as <Say />; too rare to special-case
        return _library_document(speech)
    return _skeleton().replace(_SPEECH, escape(speech))


_SPEECH = "@SPEECH@"


@cache
def _skeleton() -> str:
    return _library_document(_SPEECH)


def _library_document(speech: str) -> str:
    response = VoiceResponse()
    _announce(response, speech)
    response.hangup()
    return str(response)


def _announce(response: VoiceResponse, speech: str) -> None:
    """Say it twice with a breath between: the first time wakes the listener, the second informs.

    Extension point for key-press acknowledgement: wrap these verbs in
    `<Gather numDigits="1" action="<signed callback URL>">` and say the prompt inside it.
    """
    response.say(speech)
    response.pause(length=1)
    response.say(speech)


def _speakable(text: str) -> str:
    """No URLs (a voice reads them letter by letter), even from a route's `call` override."""
    text = _NOT_XML.sub(" ", _URL.sub("", text))
    return re.sub(r"\s+", " ", text).strip()
