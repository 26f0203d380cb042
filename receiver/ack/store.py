"""Acknowledgements, kept in Alertmanager as marker silences that mute nothing.

An acknowledgement is a silence whose matchers name labels no alert carries
(`oncall_router_ack="<group id>"`, plus level, channel and token). Alertmanager persists it,
gossips it to every peer and expires it on its own, so every router replica, before and after a
restart, sees the same acknowledgements, and we keep no database. Because it matches no alert it
mutes nothing: the group's resolved notice still arrives (a plain silence would swallow it,
alertmanager#226). The router reads a group's markers before planning a re-send.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp

from receiver.model import Ack, Alert, AlertGroup, Channel, Severity
from receiver.sources import PayloadError, alertmanager, timestamp

log = logging.getLogger("receiver.acks")

ACK_LABEL = "oncall_router_ack"
LEVEL_LABEL = "oncall_router_level"
CHANNEL_LABEL = "oncall_router_channel"
# The signature of the link, button or call-back token that made the acknowledgement.
LINK_LABEL = "oncall_router_link"
NO_LINK = "-"  # the link label of an acknowledgement made without a token
# SMS codes avoid letters that read as digits (Crockford's base 32).
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# ...and a reply is read as Crockford reads one: O as 0, I and L as 1, any case.
_TYPED = str.maketrans("OIL", "011")
CODE_LENGTH = 5


class StoreError(Exception):
    """Alertmanager could not be read or written; the message is safe to log."""


def group_id(group: AlertGroup, severity: Severity) -> str:
    """Stable identity of an Alertmanager group: receiver, group labels and severity.

    The webhook and `GET /api/v2/alerts/groups` both carry the receiver and group labels, so a
    group found through the API (an SMS reply) and the same group in a webhook get the same id.
    The severity (decided by the routing file) tells apart same-named alerts that Alertmanager
    groups separately by severity, such as a DiskFull warning and a DiskFull critical.
    """
    identity: list[object] = [group.receiver, sorted(group.group_labels.items()), severity.value]
    if not group.receiver and not group.group_labels:
        identity = [group.group_key, severity.value]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def typed_code(text: str) -> str:
    """A code as typed in a reply (`7kq2o`), spelt as sms_code spells it (`7KQ20`)."""
    return text.upper().translate(_TYPED)


def sms_code(gid: str) -> str:
    """The short code a person types in `ACK <code>`; derived from the group id."""
    number = int(gid, 16)
    chars = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, len(_CODE_ALPHABET))
        chars.append(_CODE_ALPHABET[digit])
    return "".join(chars)


class AlertmanagerStore:
    """Reads and writes acknowledgements (and the Slack button's real silences) in Alertmanager."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, timeout: float) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def acks(self, gid: str) -> tuple[Ack, ...]:
        """Every acknowledgement of the group that Alertmanager still remembers, oldest first."""
        body = await self._call("GET", "silences", params={"filter": f'{ACK_LABEL}="{gid}"'})
        out = [ack for s in _list(body) if (ack := _ack(s)) is not None and ack.group == gid]
        return tuple(sorted(out, key=lambda a: a.at))

    async def acknowledge(
        self,
        gid: str,
        *,
        by: str,
        channel: Channel,
        level: int,
        at: datetime,
        until: datetime,
        token: str,
        comment: str,
    ) -> str:
        labels = {
            ACK_LABEL: gid,
            LEVEL_LABEL: str(level),
            CHANNEL_LABEL: channel.value,
            LINK_LABEL: token or NO_LINK,
        }
        note = f"{comment} (oncall-router acknowledgement: matches no alert, mutes nothing)"
        return await self.silence(labels, starts=at, until=until, by=by, comment=note)

    async def silence(
        self,
        matchers: Mapping[str, str],
        *,
        starts: datetime,
        until: datetime,
        by: str,
        comment: str,
    ) -> str:
        """Create a silence with equality matchers; returns its id."""
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in sorted(matchers.items())
            ],
            # Alertmanager moves a start in its past to its own "now".
            "startsAt": starts.isoformat(),
            "endsAt": until.isoformat(),
            "createdBy": by,
            "comment": comment,
        }
        answer = await self._call("POST", "silences", json_body=body)
        if not isinstance(answer, dict) or not isinstance(answer.get("silenceID"), str):
            raise StoreError("alertmanager answered a silence without an id")
        silence_id: str = answer["silenceID"]
        return silence_id

    async def groups(self) -> tuple[AlertGroup, ...]:
        """Our receiver's groups with alerts Alertmanager is notifying about (not silenced, not
        inhibited); other teams' receivers are none of our business."""
        params = {
            "active": "true",
            "silenced": "false",
            "inhibited": "false",
            # `alertmanager-config` names one receiver per team and severity, all ours:
            # oncall-router, oncall-router/critical, oncall-router/madplan/high.
            "receiver": f"^{re.escape(alertmanager.RECEIVER)}(/.+)?$",
        }
        body = await self._call("GET", "alerts/groups", params=params)
        out = []
        for raw in _list(body):
            try:
                out.append(alertmanager.api_group(raw))
            except PayloadError as e:
                log.warning("skipping an unreadable alert group", extra={"detail": str(e)})
        return tuple(out)

    async def end_alerts(self, alerts: Sequence[Alert], now: datetime) -> None:
        """Resolve alerts we posted ourselves (forwarded Sentry events) by ending them now."""
        body = [
            {
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": a.starts_at.isoformat(),
                "endsAt": now.isoformat(),
            }
            for a in alerts
        ]
        await self._call("POST", "alerts", json_body=body)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Any:
        url = f"{self.base_url}/api/v2/{path}"
        try:
            async with self.session.request(
                method, url, params=params, json=json_body, timeout=self.timeout
            ) as response:
                text = await response.text()
                if response.status != 200:
                    raise StoreError(
                        f"alertmanager answered {method} {path} with {response.status}: "
                        f"{text[:200]}"
                    )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise StoreError(f"alertmanager unreachable: {type(e).__name__}") from None
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise StoreError(f"alertmanager answered {method} {path} with non-JSON") from None


def _list(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise StoreError("alertmanager answered with something other than a list")
    return body


def _ack(silence: Any) -> Ack | None:
    """An acknowledgement marker, or None for anything else (an unreadable one is skipped)."""
    if not isinstance(silence, dict):
        return None
    matchers = silence.get("matchers")
    if not isinstance(matchers, list):
        return None
    labels = {
        str(m.get("name")): str(m.get("value"))
        for m in matchers
        if isinstance(m, dict) and m.get("isEqual", True) and not m.get("isRegex")
    }
    # "-" stands for no token (an SMS code); a signature is base64url and may itself start
    # with "-" (1 in 64), so the placeholder is matched whole, never stripped.
    link = labels.get(LINK_LABEL, NO_LINK)
    try:
        return Ack(
            group=labels[ACK_LABEL],
            by=str(silence.get("createdBy", "")),
            channel=Channel(labels.get(CHANNEL_LABEL, "")),
            level=int(labels.get(LEVEL_LABEL, "0")),
            at=timestamp(silence.get("startsAt"), "startsAt"),
            until=timestamp(silence.get("endsAt"), "endsAt"),
            token="" if link == NO_LINK else link,
            silence_id=str(silence.get("id", "")),
        )
    except (KeyError, ValueError, PayloadError):
        return None
