"""Sentry events into Alertmanager, so they get grouping, silences, repeats and escalation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import aiohttp

from receiver.model import Status
from receiver.routing.plan import Plan


class ForwardError(Exception):
    """Alertmanager did not take the alerts; the caller delivers them directly instead."""


def postable_alerts(result: Plan, now: datetime, ttl: float) -> list[dict[str, Any]]:
    """Alertmanager API v2 `postableAlert`s, labelled with the severity decided here."""
    out = []
    for routed in result.alerts:
        alert = routed.alert
        labels = {**alert.labels, "severity": routed.severity.severity.value}
        # A resolve ends the alert now; a firing event lives `ttl` unless Sentry resolves it.
        ends = now if alert.status is Status.RESOLVED else now + timedelta(seconds=ttl)
        body: dict[str, Any] = {
            "labels": labels,
            "annotations": dict(alert.annotations),
            "startsAt": alert.starts_at.isoformat(),
            "endsAt": ends.isoformat(),
        }
        if alert.links:
            body["generatorURL"] = alert.links[0].url
        out.append(body)
    return out


async def forward(
    session: aiohttp.ClientSession,
    alertmanager_url: str,
    alerts: list[dict[str, Any]],
    within: float,
) -> None:
    url = f"{alertmanager_url}/api/v2/alerts"
    try:
        async with session.post(
            url, json=alerts, timeout=aiohttp.ClientTimeout(total=within)
        ) as response:
            if response.status != 200:
                detail = (await response.text())[:200]
                raise ForwardError(f"alertmanager answered {response.status}: {detail}")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ForwardError(f"alertmanager unreachable: {type(e).__name__}") from None
