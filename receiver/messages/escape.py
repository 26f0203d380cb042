"""Alert text made safe for each output format: one function per format.

Label values, annotations and Sentry titles echo whatever a user or a scraped target put there,
so every channel passes them through the function of its format, at the one place it renders:

- `slack_mrkdwn`: Slack text (mrkdwn blocks, the fallback `text`, thread replies);
- `slack_plain`: a Slack `plain_text` object (the header): one line;
- `slack_link_url` (and `web_url` under it): the URL inside `<url|title>`, or None to drop it;
- `email_header`: a header value such as the subject: one line, no control characters;
- `sms`: one line, typographic punctuation transliterated to GSM-7;
- `speech`: what Twilio says: one line, no control or XML-forbidden characters.

Every one of them removes invisible format characters (Unicode category Cf: bidi overrides and
isolates such as U+202E, zero-width characters, U+FEFF), which can make a Slack line, a subject
or an SMS read differently from what it says, and control characters; ordinary text, emoji and
non-Latin scripts are kept.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from functools import lru_cache
from urllib.parse import quote, urlsplit

_LINE_BREAKS = {"\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}


def visible(text: str, *, one_line: bool = False) -> str:
    """Without format (Cf), surrogate and control characters; line breaks become "\\n" (and tabs
    stay), or with `one_line` both become spaces."""
    if text.isprintable():  # the common case: nothing to remove, nothing to look up
        return text
    text = text.replace("\r\n", "\n")
    if not one_line:
        # A multi-line body (an email) whose lines are all plain needs no per-character pass,
        # which py-spy put at ~8% of the router's CPU in `python -m bench`.
        lines = text.split("\n")
        if all(line.isprintable() for line in lines):
            return text
    out = []
    for c in text:
        if c == "\t":
            out.append(" " if one_line else c)
        elif c in _LINE_BREAKS:
            out.append(" " if one_line else "\n")
        elif (category := unicodedata.category(c)) not in ("Cf", "Cs"):
            out.append(" " if category == "Cc" else c)  # a bell, a NUL: a space, not glued words
    return "".join(out)


def _one_line(text: str) -> str:
    return " ".join(visible(text, one_line=True).split())


# -- Slack -----------------------------------------------------------------------------------

# Slack's message formatting reference ("Escaping text", api.slack.com/reference/surfaces/
# formatting#escaping, formerly /docs/formatting): "&, < and > ... must convert to HTML entities
# and only three"; "All text in Slack uses the same system of escaping". Every control sequence
# (<!channel>, <!here>, <@U…>, <#C…>, <url|title>) starts with `<`, so none survives this.


def _slack_entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_mrkdwn(text: str) -> str:
    """For any Slack mrkdwn text: no mention, channel, date or link sequence can form."""
    return _slack_entities(visible(text))


def slack_plain(text: str) -> str:
    """For a Slack plain_text object (a header): one line, escaped like all Slack text."""
    return _slack_entities(_one_line(text))


# Characters a URL may carry raw (RFC 3986 reserved and unreserved, and % of existing escapes);
# everything else, `<`, `>`, `|`, `"`, `{`, `}`, `\`, `^`, backtick, non-ASCII, is %-encoded.
_URL_SAFE = "!#$%&'()*+,-./:;=?@_~"


# No link carries a longer URL (messages.links drops those over 2,900 characters, Slack's
# context holds 3,000): refused before urlsplit, whose own cache would keep it.
MAX_URL = 3000
# Longer ones are checked each time, not remembered: 1,024 of them stay a few megabytes.
CACHED_LENGTH = 1000


def web_url(url: str) -> str | None:
    """A well-formed absolute http(s) URL, %-encoded so nothing after the host can end a link
    or a word; None for anything else (dropped, never patched).

    Refused: another scheme; no host or a host that is not a name or an IP address; user info
    (`https://good.example@evil.example/` reads as the wrong host); raw whitespace or control
    characters (text glued to a URL, as in `…/a>*<!channel>* <https://evil.example|Reset…`);
    anything over MAX_URL characters.
    """
    if len(url) > MAX_URL:
        return None
    return _web_url(url) if len(url) > CACHED_LENGTH else _remembered_url(url)


# The alerts of a group (a storm: thousands) mostly share their runbook and graph URLs.
@lru_cache(maxsize=1024)
def _remembered_url(url: str) -> str | None:
    return _web_url(url)


def _web_url(url: str) -> str | None:
    # Every whitespace character but the space is unprintable too: two scans in C, not one in
    # Python (1% of the router's CPU per webhook in `python -m bench`, py-spy).
    if not url or not url.isprintable() or " " in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port, an unbalanced IPv6 bracket
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    host = _host(parts.hostname or "")
    if host is None or url[: len(scheme) + 3].lower() != f"{scheme}://":
        return None
    netloc = host if port is None else f"{host}:{port}"
    rest = url[len(scheme) + 3 + len(parts.netloc) :]
    return f"{scheme}://{netloc}{quote(rest, safe=_URL_SAFE)}"


def _host(host: str) -> str | None:
    """A DNS name (IDNA-encoded: a look-alike shows as xn--…) or an IP address; else None."""
    if ":" in host:  # urlsplit took off the brackets of an IPv6 literal
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = host.rstrip(".").split(".")
    if not host or not all(
        label and len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum()
        for label in labels
    ):
        return None
    return host


def slack_link_url(url: str) -> str | None:
    """The URL part of a Slack `<url|title>` link, or None: drop the link."""
    safe = web_url(url)
    # After web_url the only character Slack treats specially is `&` (entities are decoded in
    # links as everywhere else); `<`, `>` and `|` are %-encoded.
    return None if safe is None else safe.replace("&", "&amp;")


# -- email -----------------------------------------------------------------------------------


def email_header(text: str) -> str:
    """A header value: RFC 5322 forbids CR and LF in one (a second header would begin), and no
    other control or invisible format character belongs in a subject line."""
    return _one_line(text)


# -- SMS and voice ---------------------------------------------------------------------------

# Typographic punctuation that costs a UCS-2 message (70 per segment instead of 160) though
# GSM-7 has a plain equivalent; what Twilio's "smart encoding" does, for the characters alert
# text actually carries (editors and chat tools put them there).
_GSM_PLAIN = str.maketrans(
    {
        # curly and low single quotes, prime, single guillemets
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a", "'"),
        # curly and low double quotes, double prime, guillemets
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        # hyphen, non-breaking hyphen, figure dash, en and em dash, horizontal bar, minus
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        "\u2026": "...",
        "\u00b7": "-",  # middle dot, as in a template's `{{ title }}` (critical · P0)
        # No-break and other odd spaces need no entry: `_one_line` splits on every space.
    }
)


def sms(text: str) -> str:
    """One line for an SMS, with quotes, dashes, ellipses and odd spaces in their GSM-7 form."""
    return _one_line(text.translate(_GSM_PLAIN))


def sms_lines(text: str) -> str:
    """`sms` for each line: a route's `sms` template may break its text into lines."""
    return "\n".join(sms(line) for line in visible(text).split("\n"))


# XML 1.0 forbids these two noncharacters (surrogates and controls go in `visible`).
_NOT_XML = str.maketrans(dict.fromkeys("\ufffe\uffff", " "))


def speech(text: str) -> str:
    """What Twilio's `<Say>` reads: one line of characters XML may carry."""
    return _one_line(text.translate(_NOT_XML))
