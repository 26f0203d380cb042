"""Process settings from the environment; every secret may also come from `NAME_FILE`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """An environment variable is malformed or its file unreadable."""


@dataclass(frozen=True)
class Settings:
    receiver_auth_token: str | None = field(default=None, repr=False)
    sentry_client_secret: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from: str | None = None
    sendgrid_api_key: str | None = field(default=None, repr=False)
    sendgrid_from: str | None = None
    # Verifies SendGrid's signed Event Webhook (ECDSA P-256); public, so not a secret.
    sendgrid_webhook_public_key: str | None = None
    alertmanager_url: str | None = None
    public_url: str | None = None
    ack_secret: str | None = field(default=None, repr=False)
    # The shared store; None keeps it in the process (one replica). May carry a password.
    redis_url: str | None = field(default=None, repr=False)
    log_level: str = "info"
    slack_api_url: str = "https://slack.com/api"
    twilio_api_url: str = "https://api.twilio.com"
    sendgrid_api_url: str = "https://api.sendgrid.com"

    @property
    def secrets(self) -> frozenset[str]:
        """Values that must never reach a log line, a metric or an error message."""
        values = {
            value
            for f in fields(self)
            if f.name in SECRET_NAMES and (value := getattr(self, f.name))
        }
        if self.redis_url:
            # The URL names a host (not secret), but its password is.
            password = urlsplit(self.redis_url).password
            if password:
                values |= {password, self.redis_url}
        return frozenset(values)


SECRET_NAMES = frozenset(
    {
        "receiver_auth_token",
        "sentry_client_secret",
        "slack_bot_token",
        "slack_signing_secret",
        "twilio_auth_token",
        "sendgrid_api_key",
        "ack_secret",
    }
)


def load_settings(environ: Mapping[str, str]) -> Settings:
    values: dict[str, str] = {}
    for f in fields(Settings):
        value = _read(environ, f.name.upper())
        if value is not None:
            values[f.name] = value
    level = values.get("log_level", "info").lower()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    values["log_level"] = level
    for name in (
        "slack_api_url",
        "twilio_api_url",
        "sendgrid_api_url",
        "alertmanager_url",
        "public_url",
    ):
        if name in values:
            if not values[name].startswith(("http://", "https://")):
                raise SettingsError(f"{name.upper()} must be an http(s) URL")
            values[name] = values[name].rstrip("/")
    key = values.get("sendgrid_webhook_public_key")
    if key is not None:
        values["sendgrid_webhook_public_key"] = sendgrid_public_key(key)
    redis_url = values.get("redis_url")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        # Never echo the value: it may hold a password.
        raise SettingsError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    return Settings(**values)


def sendgrid_public_key(text: str) -> str:
    """SendGrid's verification key as its console shows it (base64 DER; PEM armour and line
    breaks are taken off), checked to be an elliptic-curve public key."""
    lines = [line.strip() for line in text.strip().splitlines()]
    key = "".join(line for line in lines if line and not line.startswith("-----"))
    try:
        loaded = EventWebhook().convert_public_key_to_ecdsa(key)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # not base64, or not a key
        loaded = None
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise SettingsError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA public key "
            "(the base64 verification key SendGrid shows for its signed Event Webhook)"
        )
    return key


def _read(environ: Mapping[str, str], name: str) -> str | None:
    """`NAME`, or the contents of the file named by `NAME_FILE` (a mounted Kubernetes Secret)."""
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip() or None
        except OSError as e:
            raise SettingsError(f"{name}_FILE: cannot read {file_name}: {e.strerror}") from None
    value = environ.get(name, "").strip()
    return value or None
