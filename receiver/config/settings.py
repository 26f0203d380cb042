"""Process settings from the environment; every secret may also come from `NAME_FILE`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

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
    redis_url = values.get("redis_url")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        # Never echo the value: it may hold a password.
        raise SettingsError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    return Settings(**values)


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
