"""Text written for the ear: what Twilio's voice reads aloud must sound like a person talking.

Alert names are identifiers (`HighErrorRate`, `Payments APIDown`), summaries carry symbols and
units (`5%`, `10.0s`, `looping..`), and a voice reads all of it literally: URLs letter by letter,
`..` as "dot dot". So names are split into words only where that reads better (an acronym stays
whole: `APIDown` is "API down"; `IPv6` and `iOS` stay as they are), units and symbols become words,
and ellipses, brackets and the like go.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# An identifier's pieces: an acronym before a capitalised word, a word, an acronym, digits.
_PIECES = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"\b(\d+(?:\.\d+)?)(ms|s|m|h|d)\b")
_WHOLE = re.compile(r"\b(\d+)\.0+\b")
_ELLIPSIS = re.compile(r"(?:\.\s*){2,}|…")
_REPEATED = re.compile(r"([!?,;])[!?,;.]+")
_DOT_IN_WORD = re.compile(r"(?<=[A-Za-z0-9])\.(?=[A-Za-z])")
# A colon stays only in a time of day (09:12); elsewhere it is a pause.
_COLON = re.compile(r"(?<!\d):|:(?!\d\d\b)")
_LETTER_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z]{2})")
_SAID = str.maketrans(
    {
        "%": " percent ",
        "&": " and ",
        "+": " plus ",
        "=": " equals ",
        ">": " above ",
        "<": " below ",
        "@": " at ",
        "\u2014": ", ",  # em dash
        "\u2013": ", ",  # en dash
        **dict.fromkeys('#*_~^`|\\/[]{}()"\u201c\u201d\u00ab\u00bb-', " "),
    }
)
# An id a voice would spell out character by character: 5 or more letters and digits, at
# least two of each (a pod's `7d9f8c6b5`, `x2k4p`); `IPv6Down`, `5xx`, `P0` are words.
_ID = re.compile(r"\b(?=(?:[a-z]*\d){2})(?=(?:\d*[a-z]){2})[a-z0-9]{5,}\b", re.I)
_REPEATED_WORD = re.compile(r"\b(\w+)(?:\s+\1\b)+", re.I)
_SPACE_BEFORE_MARK = re.compile(r"\s+([.,!?;])")
_MARKS = re.compile(r"([.,;])(?:\s*[.,;])+")
_SPACES = re.compile(r"\s+")


def camel_words(word: str) -> str:
    """`HighErrorRate` -> "High error rate", `APIDown` -> "API down"; a word whose pieces would
    include a lone letter (`IPv6`, `iOS`) or that has no inner capital stays as it is."""
    if not any(c.isupper() for c in word[1:]):
        return word
    pieces = _PIECES.findall(word)
    if len(pieces) < 2 or "".join(pieces) != word:
        return word
    if any(len(p) < 2 for p in pieces if not p.isdigit()):
        return word
    tail = [p.lower() if p[:1].isupper() and p[1:].islower() else p for p in pieces[1:]]
    return " ".join([pieces[0], *tail])


# Texts longer than this are said without being remembered: alert text is a stranger's, and
# 1,024 remembered texts of a megabyte each would be a gigabyte.
CACHED_LENGTH = 1000


def words(text: str) -> str:
    """Alert text as one line a voice reads naturally."""
    return _said(text) if len(text) > CACHED_LENGTH else _remembered(text)


# The same few names and summaries come back in every call of an alert's group and every
# group of the alert: 17 substitutions each time cost 5% of the router's CPU per webhook in
# `python -m bench` (py-spy) before this.
@lru_cache(maxsize=1024)
def _remembered(text: str) -> str:
    return _said(text)


def _said(text: str) -> str:
    text = _URL.sub(" ", text)
    text = _ELLIPSIS.sub(". ", text)
    text = _DURATION.sub(lambda m: f"{_number(m[1])} {_UNITS[m[2]]}", text)
    text = _WHOLE.sub(r"\1", text)
    text = _DOT_IN_WORD.sub(" ", text)
    text = _COLON.sub(", ", text)
    text = _WORD.sub(lambda m: camel_words(m[0]), text.translate(_SAID))
    text = _REPEATED_WORD.sub(r"\1", _ID.sub(" ", text))
    text = _REPEATED.sub(r"\1", text)
    text = _SPACE_BEFORE_MARK.sub(r"\1", _SPACES.sub(" ", text))
    text = _MARKS.sub(r"\1", text)
    return text.strip(" ,;:.")


def code(text: str) -> str:
    """A short code such as a severity word (`P0`, `SEV1`): letters and digits apart."""
    return words(_LETTER_DIGIT.sub(" ", text))


def _number(text: str) -> str:
    return text[: -len(text.split(".")[1]) - 1] if text.endswith(".0") else text


def whole_minutes(seconds: float) -> tuple[int, int, int]:
    """(days, hours, minutes) of a duration, seconds dropped; never negative."""
    days, minutes = divmod(max(0, int(seconds // 60)), 24 * 60)
    return (days, *divmod(minutes, 60))


def duration(seconds: float) -> str:
    """`7 minutes`, `2 hours and 13 minutes`, `9 days and 3 hours`, `less than a minute`."""
    days, hours, minutes = whole_minutes(seconds)
    if not (days or hours or minutes):
        return "less than a minute"
    if days:
        parts = [_count(days, "day"), _count(hours, "hour") if hours else ""]
    else:
        parts = [_count(hours, "hour") if hours else ""]
        parts.append(_count(minutes, "minute") if minutes or not hours else "")
    return " and ".join(p for p in parts if p)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def when(moment: datetime, now: datetime) -> str:
    """`9:12 GMT` on `now`'s day, `Saturday 7 March at 12:42 GMT` on another (with the year when
    it is not this one); no leading zero, which a voice would read as "oh"."""
    clock = f"{moment.hour}:{moment:%M} {moment.tzname()}"
    if moment.date() == now.date():
        return clock
    year = f" {moment.year}" if moment.year != now.year else ""
    return f"{moment:%A} {moment.day} {moment:%B}{year} at {clock}"


def names(items: tuple[str, ...]) -> str:
    """`High error rate`, `High error rate and API down`, `A, B and 3 others`."""
    said = [words(n) for n in items[:2]]
    if len(items) <= 2:
        return " and ".join(said)
    return f"{', '.join(said)} and {len(items) - 2} other{'s' if len(items) > 3 else ''}"
