"""X-Twilio-Signature: Twilio's published test vectors, and what must not pass."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from receiver.web.auth import twilio_signature_ok

# twilio-python tests/unit/test_request_validator.py
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_published_vector() -> None:
    assert twilio_signature_ok(URL, PARAMS, SIGNATURE, TOKEN)


def test_published_vector_with_repeated_keys() -> None:
    params: MultiDict[str] = MultiDict(
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),  # keys sorted,
            ("Digits", "1234"),  # values sorted,
            ("Digits", "1234"),  # duplicates removed
        ]
    )
    assert twilio_signature_ok(URL, params, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", TOKEN)


def test_port_is_optional_either_way() -> None:
    """Twilio may sign with or without the default port; both are the same URL."""
    with_port = URL.replace("mycompany.com", "mycompany.com:443")
    assert twilio_signature_ok(with_port, PARAMS, SIGNATURE, TOKEN)


@pytest.mark.parametrize(
    ("url", "params", "signature", "token"),
    [
        (URL, PARAMS, SIGNATURE, "54321"),  # another account's token
        (URL, {**PARAMS, "Digits": "1"}, SIGNATURE, TOKEN),  # a changed parameter
        (URL, {**PARAMS, "Extra": "x"}, SIGNATURE, TOKEN),  # an added one
        (URL.replace("foo=1", "foo=2"), PARAMS, SIGNATURE, TOKEN),  # another query
        ("https://evil.example.com/myapp.php?foo=1&bar=2", PARAMS, SIGNATURE, TOKEN),
        (URL, PARAMS, "", TOKEN),
        (URL, PARAMS, None, TOKEN),
        (URL, PARAMS, "not base64 at all", TOKEN),
    ],
)
def test_refused(url: str, params: dict[str, str], signature: str | None, token: str) -> None:
    assert not twilio_signature_ok(url, params, signature, token)
