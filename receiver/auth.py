"""Inbound authentication: bearer token, Sentry's body signature, the legacy URL token."""

from __future__ import annotations

import hashlib
import hmac


def bearer_ok(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def sentry_signature_ok(body: bytes, signature: str | None, secret: str) -> bool:
    """Hex HMAC-SHA256 of the raw body with the integration's client secret."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def token_ok(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
