"""How many SMS segments a text costs, counted the way Twilio bills it.

GSM 03.38 (3GPP TS 23.038): a text made only of the basic table and its extension table is sent
as GSM-7, where an extension character costs two septets (ESC + the character); one character
outside both tables sends the whole message as UCS-2, counted in UTF-16 code units (an emoji
outside the BMP costs two). One segment holds 160 septets or 70 units; a longer message is cut
into parts of 153 septets or 67 units (the rest of each part is the concatenation header), and a
character is never split across two parts (an ESC pair or a surrogate pair stays together).

Written here rather than taken from PyPI: the segment counters there are unmaintained (smsutil,
py-smsify), brand new (sms-counter 0.0.1) or a bare codec (gsm0338), and this is two tables.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class Encoding(enum.StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class Length:
    """A text as the network carries it: its encoding, its size in that encoding, its parts."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)


def measure(text: str) -> Length:
    if is_gsm7(text):
        costs = [2 if c in GSM_EXTENSION else 1 for c in text]
        return Length(Encoding.GSM7, sum(costs), _segments(costs, GSM_SINGLE, GSM_PART))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return Length(Encoding.UCS2, sum(costs), _segments(costs, UCS2_SINGLE, UCS2_PART))


def segments(text: str) -> int:
    return measure(text).segments


def fits_one_segment(text: str) -> bool:
    """`segments(text) == 1`, without building the per-character costs (called in a search)."""
    if len(text) > GSM_SINGLE:  # every character costs at least one unit in either encoding
        return False
    septets = 0
    for c in text:
        if c in GSM_BASIC:
            septets += 1
        elif c in GSM_EXTENSION:
            septets += 2
        else:
            return utf16_units(text) <= UCS2_SINGLE
    return septets <= GSM_SINGLE


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units, as Twilio counts its 1600-character limit."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _segments(costs: list[int], single: int, part: int) -> int:
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:  # the character starts the next part, whole
            count, used = count + 1, 0
        used += cost
    return count
