"""Recording an acknowledgement, whichever way it arrives (button, SMS reply, key press, link)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from receiver.ack.store import AlertmanagerStore, StoreError, sms_code
from receiver.ack.tokens import AckToken
from receiver.config.types import Config
from receiver.metrics import Metrics
from receiver.model import Ack, AlertGroup, Channel, Severity, Status
from receiver.routing.plan import plan

log = logging.getLogger("receiver.acknowledge")


class Service(Protocol):
    """What the flow needs of the running service (receiver.web.service.Service has it)."""

    config: Config
    metrics: Metrics
    store: AlertmanagerStore | None

    def clock(self) -> datetime: ...

    def group_id(self, group: AlertGroup) -> str: ...


class Refused(Exception):
    """An acknowledgement we do not record; `reason` is one of metrics.ACK_REFUSALS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Request:
    """What is being acknowledged, by whom and through which channel."""

    group: str  # receiver.ack.store.group_id
    by: str
    channel: Channel
    level: int
    severity: Severity
    started: datetime
    token: str = ""  # signature of the token used, "" for an SMS code
    what: str = ""  # a few words for the marker's comment, e.g. the alert name


@dataclass(frozen=True)
class Outcome:
    ack: Ack
    new: bool  # False: the group was already acknowledged (a harmless repeat)


def from_token(token: AckToken, signature: str, by: str, channel: Channel) -> Request:
    return Request(
        group=token.group,
        by=by,
        channel=channel,
        level=token.level,
        severity=token.severity,
        started=datetime.fromtimestamp(token.started, UTC),
        token=signature,
    )


async def acknowledge(service: Service, request: Request) -> Outcome:
    """Record the acknowledgement in Alertmanager unless one is already holding the group."""
    store = service.store
    if store is None:
        raise Refused("storeUnavailable", "acknowledgement is not configured")
    now = service.clock()
    try:
        acks = await store.acks(request.group)
        if request.token:
            used = [a for a in acks if a.token == request.token]
            if used and not any(a.active(now) for a in used):
                raise Refused(
                    "replayed",
                    "this acknowledgement was used before and has expired; "
                    "acknowledge the latest page instead",
                )
        current = next((a for a in reversed(acks) if a.active(now)), None)
        if current is not None:
            return Outcome(current, new=False)
        until = now + timedelta(
            seconds=service.config.acknowledgement.expires_after[request.severity]
        )
        comment = f"Acknowledged by {request.by} via {request.channel.value}"
        if request.what:
            comment += f": {request.what}"
        silence_id = await store.acknowledge(
            request.group,
            by=request.by,
            channel=request.channel,
            level=request.level,
            at=now,
            until=until,
            token=request.token,
            comment=comment,
        )
    except StoreError as e:
        raise unavailable("cannot record an acknowledgement", e) from None
    ack = Ack(
        request.group,
        request.by,
        request.channel,
        request.level,
        now,
        until,
        request.token,
        silence_id,
    )
    service.metrics.acknowledgements.labels(request.channel.value).inc()
    service.metrics.time_to_acknowledge.labels(request.severity.value).observe(
        max(0.0, (now - request.started).total_seconds())
    )
    log.info(
        "acknowledged",
        extra={
            "ack_group": request.group,
            "by": request.by,
            "channel": request.channel.value,
            "level": request.level,
            "until": until.isoformat(),
        },
    )
    return Outcome(ack, new=True)


@dataclass(frozen=True)
class Page:
    """A firing group as the person who replies sees it."""

    group: AlertGroup
    request: Request
    paged_at: datetime  # when the level holding this person fell due


async def find_page(service: Service, person: str, code: str | None) -> Page:
    """The firing group an SMS reply means: by its code, or the person's most recent page."""
    store = service.store
    if store is None:
        raise Refused("storeUnavailable", "acknowledgement is not configured")
    try:
        groups = await store.groups()
    except StoreError as e:
        raise unavailable("cannot list alert groups", e) from None
    now = service.clock()
    if code is not None:
        for group in groups:
            if sms_code(service.group_id(group)) == code:
                page = _page(service, group, person, now, only_mine=False)
                if page is not None:
                    return page
        raise Refused("unknownGroup", f"no firing alert has code {code}; it may have resolved")
    pages = [p for g in groups if (p := _page(service, g, person, now, only_mine=True))]
    if not pages:
        raise Refused("unknownGroup", "you have no firing page to acknowledge")
    return max(pages, key=lambda p: p.paged_at)


def _page(
    service: Service, group: AlertGroup, person: str, now: datetime, *, only_mine: bool
) -> Page | None:
    """The group as a page (to `person` if `only_mine`), or None if it pages nobody so."""
    config = service.config
    # As if nothing were remembered: anyone the ladder could have reached by now may reply.
    result = plan(config, group, now, remembered=False)
    routes = config.all_routes()
    mine = [
        n
        for n in result.notifications
        if n.status is Status.FIRING and (not only_mine or n.recipient.name == person)
    ]
    if not mine:
        return None
    start = min(a.starts_at for n in mine for a in n.firing)
    latest = max(routes[n.route].level_after(n.level) for n in mine)
    return Page(
        group=group,
        request=Request(
            group=service.group_id(group),
            by=person,
            channel=Channel.SMS,
            level=max(n.level for n in result.notifications),
            severity=min((n.severity for n in result.notifications), key=lambda s: s.rank),
            started=start,
            what=title(group),
        ),
        paged_at=start + timedelta(seconds=latest),
    )


async def firing_group(service: Service, gid: str) -> AlertGroup | None:
    """The firing group with this id, to show what a link acknowledges; None once it resolved,
    or when Alertmanager cannot say (the page then says less, and still works)."""
    store = service.store
    if store is None:
        return None
    try:
        groups = await store.groups()
    except StoreError as e:
        log.warning("cannot list alert groups for a confirmation page", extra={"detail": str(e)})
        return None
    return next((g for g in groups if service.group_id(g) == gid), None)


def unavailable(what: str, e: StoreError) -> Refused:
    """Log why Alertmanager failed; the refusal the person sees says only to try again."""
    log.error(what, extra={"detail": str(e)})
    return Refused("storeUnavailable", "Alertmanager is unreachable; try again")


def title(group: AlertGroup) -> str:
    """`DiskFull`, `A, B, C and 2 more`: the group's alert names."""
    names = sorted({a.name for a in group.alerts})
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
