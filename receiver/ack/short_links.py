"""The SMS's short acknowledgement link, `{PUBLIC_URL}/a/{id}`, whose id stands for a token.

A signed token is about 230 characters: no one-segment SMS has room for it. The id is an HMAC
of the token with `ACK_SECRET`, so every replica computes the same id for the same token and
nobody without the secret can make one; the shared store maps it back to the token for the
token's lifetime (receiver.web.ack_links). The token is verified as ever when the link is used:
the id only finds it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string

ID_LENGTH = 10
# Base 62: URL-safe, GSM-7 (one septet each) and ~59.5 bits in 10 characters.
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")
# Keeps these HMACs apart from the tokens' own signatures under the same secret.
_DOMAIN = b"oncall-router short link\n"


def link_id(token: str, secret: str) -> str:
    """The id of a signed token's short link."""
    digest = hmac.new(secret.encode(), _DOMAIN + token.encode(), hashlib.sha256).digest()
    # 128 bits for 10 base-62 digits: the modulo bias is nil.
    number = int.from_bytes(digest[:16], "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def is_link_id(text: str) -> bool:
    """Shaped like an id: anything else is not looked up."""
    return _ID.fullmatch(text) is not None


def names(link: str, token: str, secret: str) -> bool:
    """Whether `link` is the id of `token`: what the store hands back is checked, not trusted."""
    return hmac.compare_digest(link_id(token, secret), link)
