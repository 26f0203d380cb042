"""Alertmanager webhook, version 4 (0.25 shape and newer; unknown keys are ignored)."""

from __future__ import annotations

import hashlib
from typing import Any

from receiver.model import Alert, AlertGroup, Link, Source, Status
from receiver.sources import PayloadError, obj, str_map, text, timestamp

_ZERO_TIME_PREFIX = "0001-01-01"
# The Alertmanager receiver `oncall-router alertmanager-config` sends our alerts through.
RECEIVER = "oncall-router"


def parse(body: Any) -> AlertGroup:
    payload = obj(body, "payload")
    version = payload.get("version")
    if version is not None and str(version) != "4":
        raise PayloadError(f'unsupported webhook version {version!r} (expected "4")')
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts must be a list")
    if not raw_alerts:
        raise PayloadError("alerts is empty")
    alerts = tuple(_alert(a, f"alerts[{i}]") for i, a in enumerate(raw_alerts))
    firing = any(a.status is Status.FIRING for a in alerts)
    truncated = payload.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts must be a non-negative integer")
    group_key = text(payload.get("groupKey"), "groupKey", default="")
    if not group_key:
        # Without a groupKey, the set of fingerprints is the next best identity.
        group_key = "fp:" + ",".join(sorted(a.fingerprint for a in alerts))
    return AlertGroup(
        source=Source.ALERTMANAGER,
        group_key=group_key,
        # Group state comes from the alerts' own status, never from endsAt.
        status=Status.FIRING if firing else Status.RESOLVED,
        alerts=alerts,
        group_labels=str_map(payload.get("groupLabels"), "groupLabels"),
        common_labels=str_map(payload.get("commonLabels"), "commonLabels"),
        common_annotations=str_map(payload.get("commonAnnotations"), "commonAnnotations"),
        external_url=text(payload.get("externalURL"), "externalURL", default=""),
        # Alertmanager passes the receiver name through regexp.QuoteMeta.
        receiver=text(payload.get("receiver"), "receiver", default="").replace("\\", ""),
        truncated_alerts=truncated,
    )


def api_group(body: Any) -> AlertGroup:
    """One group of Alertmanager's `GET /api/v2/alerts/groups`, shaped like a webhook's group."""
    raw = obj(body, "group")
    receiver = obj(raw.get("receiver"), "group.receiver")
    raw_alerts = raw.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError("group.alerts must be a non-empty list")
    # The API lists alerts that have not ended: firing, whatever their silence state.
    alerts = tuple(
        _alert({**obj(a, f"group.alerts[{i}]"), "status": "firing"}, f"group.alerts[{i}]")
        for i, a in enumerate(raw_alerts)
    )
    return AlertGroup(
        source=Source.ALERTMANAGER,
        group_key="",
        status=Status.FIRING,
        alerts=alerts,
        group_labels=str_map(raw.get("labels"), "group.labels"),
        receiver=text(receiver.get("name"), "group.receiver.name", default=""),
    )


def _alert(value: Any, where: str) -> Alert:
    raw = obj(value, where)
    status_text = text(raw.get("status"), f"{where}.status")
    try:
        status = Status(status_text)
    except ValueError:
        raise PayloadError(f"{where}.status must be firing or resolved") from None
    labels = str_map(raw.get("labels"), f"{where}.labels")
    if not labels:
        raise PayloadError(f"{where}.labels is empty")
    annotations = str_map(raw.get("annotations"), f"{where}.annotations")
    starts_at = timestamp(raw.get("startsAt"), f"{where}.startsAt")
    ends_raw = text(raw.get("endsAt"), f"{where}.endsAt", default="")
    ends_at = None
    if ends_raw and not ends_raw.startswith(_ZERO_TIME_PREFIX):
        ends_at = timestamp(ends_raw, f"{where}.endsAt")
    fingerprint = text(raw.get("fingerprint"), f"{where}.fingerprint", default="")
    if not fingerprint:
        fingerprint = _fingerprint(labels)
    links = []
    generator = text(raw.get("generatorURL"), f"{where}.generatorURL", default="")
    if generator.startswith(("http://", "https://")):
        links.append(Link("Source", generator))
    runbook = annotations.get("runbook_url", "")
    if runbook.startswith(("http://", "https://")):
        links.append(Link("Runbook", runbook))
    return Alert(
        source=Source.ALERTMANAGER,
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=fingerprint,
        links=tuple(links),
    )


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = "\xff".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
