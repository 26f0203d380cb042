"""The running service's state: config, settings, metrics, senders, acknowledgement store."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from receiver.ack import tokens
from receiver.ack.short_links import link_id
from receiver.ack.store import AlertmanagerStore, StoreError, group_id, sms_code
from receiver.channels.base import Sender
from receiver.config.settings import Settings
from receiver.config.types import Config
from receiver.delivery.fanout import Deliverer, Outcome, Report
from receiver.metrics import Metrics, OnCallCollector
from receiver.model import (
    Ack,
    AckRef,
    AlertGroup,
    Channel,
    GroupMemory,
    Notification,
    Source,
    Status,
)
from receiver.routing.plan import Plan, plan
from receiver.routing.severity import group_severity
from receiver.store.base import Store, group_key
from receiver.store.failopen import FailOpen, Recall
from receiver.store.memory import MemoryStore
from receiver.web import ack_links, receipts
from receiver.web.admission import Admission

log = logging.getLogger("receiver.router")
STORE_LOG_INTERVAL = 30.0
NOTHING_REMEMBERED = Recall(None)

Clock = Callable[[], datetime]
# Builds the senders for the router's current config (called again after a reload).
SenderFactory = Callable[[aiohttp.ClientSession], Mapping[Channel, Sender]]


@dataclass
class Service:
    """Everything a request needs; the config can be swapped whole on reload."""

    config: Config
    settings: Settings
    metrics: Metrics
    senders: Mapping[Channel, Sender]
    dry_run: bool
    clock: Clock = field(default=lambda: datetime.now(UTC))
    ready: bool = True
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Set when shutdown starts: timers (a second page call) act at once instead of being lost.
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    session: aiohttp.ClientSession | None = None
    sender_factory: SenderFactory | None = None
    # Where acknowledgements live; set while serving when acknowledgement is configured.
    store: AlertmanagerStore | None = None
    # What the router remembers between webhooks (receiver.store); None: in this process.
    state_store: Store | None = None
    state: FailOpen = field(init=False)
    deliverer: Deliverer = field(init=False)
    admission: Admission = field(init=False)
    _last_store_log: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state_store is None:
            self.state_store = MemoryStore(self.config.delivery.dedupe_max_entries)
        self.state = FailOpen(self.state_store, self._store_failed)
        self.deliverer = Deliverer(
            self.senders,
            self.metrics,
            self.config.delivery,
            self.state,
            wall_clock=self.clock,
            before_send=self._before_send,
        )
        self.admission = Admission(self.config.delivery.max_in_flight, self.metrics)
        self.metrics.precreate_people(self.config.people)
        self.metrics.registry.register(OnCallCollector(lambda: self.config, self.clock))

    async def _before_send(self, n: Notification) -> None:
        """What other replicas may need of a message once it is out: what a page call said (for
        its second call), the SMS's short acknowledgement link."""
        await receipts.keep_page(self, n)
        await ack_links.keep_link(self, n)

    def swap(self, config: Config) -> None:
        """Use a new routing file from the next request on; requests in flight keep theirs."""
        self.config = config
        self.deliverer.policy = config.delivery
        if config.delivery.max_in_flight != self.admission.limit:
            # Webhooks in flight finish under the old bound; new ones wait under the new.
            self.admission = Admission(config.delivery.max_in_flight, self.metrics)
        self.metrics.precreate_people(config.people)
        if self.sender_factory is not None and self.session is not None:
            self.senders = self.sender_factory(self.session)
            self.deliverer.senders = self.senders

    @property
    def ack_enabled(self) -> bool:
        """Messages carry acknowledgement codes, buttons and links only when all three are set."""
        s = self.settings
        return bool(s.ack_secret and s.alertmanager_url and s.public_url)

    def group_id(self, group: AlertGroup) -> str:
        """The id acknowledgements of this group are kept under (receiver.ack.store.group_id)."""
        return group_id(group, group_severity(self.config, group))

    async def acks_for(self, group: AlertGroup) -> tuple[Ack, ...]:
        """The group's acknowledgements; none (so escalation goes on) if Alertmanager fails."""
        if self.store is None:
            return ()
        try:
            return await self.store.acks(self.group_id(group))
        except StoreError as e:
            failure = str(e)
        # Paging too much beats paging nobody: escalate as if nobody had acknowledged.
        self.metrics.ack_lookups_failed.inc()
        log.error(
            "cannot read acknowledgements; escalating as if there were none",
            extra={"detail": failure, "group_key": group.group_key},
        )
        return ()

    def _store_failed(self, op: str, detail: str) -> None:
        self.metrics.store_errors.labels(op).inc()
        # Once per operation per interval, not once per message: an outage under load must not
        # flood the log (the counter has every failure).
        now = time.monotonic()
        if now - self._last_store_log.get(op, -STORE_LOG_INTERVAL) >= STORE_LOG_INTERVAL:
            self._last_store_log[op] = now
            log.error(
                "shared store failed; paging anyway (duplicates possible)",
                extra={"op": op, "detail": detail},
            )

    async def recall(self, group: AlertGroup) -> Recall:
        """What the store remembers of the group's firing spell."""
        return await self.state.recall(group_key(group))

    def plan(
        self, group: AlertGroup, acks: tuple[Ack, ...] = (), recall: Recall = NOTHING_REMEMBERED
    ) -> Plan:
        now = self.clock()
        planned = plan(self.config, group, now, acks, recall.memory, remembered=recall.known)
        result = receipts.with_receipts(self, self._with_ack_refs(planned, now), now)
        defaulted: dict[str, str] = {}
        unrouted: list[str] = []
        for routed in result.alerts:
            source = routed.alert.source.value
            severity = routed.severity.severity.value
            self.metrics.series(
                self.metrics.alerts, source, severity, routed.alert.status.value
            ).inc()
            if routed.severity.defaulted:
                self.metrics.severity_defaulted.labels(source).inc()
                defaulted.setdefault(routed.alert.name, routed.severity.reason)
            if not routed.routes:
                self.metrics.unrouted.labels(source, severity).inc()
                unrouted.append(routed.alert.name)
        # One line per webhook, not one per alert: a storm must not flood the logs.
        if defaulted:
            log.warning("severity defaulted", extra={"alerts": defaulted})
        if unrouted:
            log.error("alerts matched no route", extra={"alertnames": sorted(set(unrouted))})
        return result

    def _with_ack_refs(self, result: Plan, now: datetime) -> Plan:
        """Give each firing message its code and signed token."""
        secret, public_url = self.settings.ack_secret, self.settings.public_url
        if not self.ack_enabled or secret is None or public_url is None:
            return result
        if result.group.source is not Source.ALERTMANAGER:
            # Delivered directly (a Sentry event Alertmanager did not take): it never comes back
            # through Alertmanager, so there is no later page for an acknowledgement to stop.
            return result
        gid = self.group_id(result.group)
        code = sms_code(gid)
        expires = int(now.timestamp() + self.config.acknowledgement.links_valid_for)
        notifications = []
        for n in result.notifications:
            if n.status is Status.FIRING:
                token = tokens.AckToken(
                    group=gid,
                    level=n.level,
                    severity=n.severity,
                    started=int(min(a.starts_at for a in n.firing).timestamp()),
                    expires=expires,
                    to=n.recipient.name,
                    channel=n.channel,
                )
                signed = tokens.sign(token, secret)
                ref = AckRef(code, signed, public_url)
                if n.channel in (Channel.SMS, Channel.CALL):
                    # An SMS has no room for a signed token: it links to the SMS's token by a short
                    # id, which the store maps back (ack_links.keep_link, before the send). A call
                    # carries the same, for the SMS that follows two unanswered calls.
                    sms = dataclasses.replace(token, channel=Channel.SMS)
                    short_token = signed if n.channel is Channel.SMS else tokens.sign(sms, secret)
                    ref = AckRef(
                        code, signed, public_url, link_id(short_token, secret), short_token
                    )
                n = dataclasses.replace(n, ack=ref)
            notifications.append(n)
        return dataclasses.replace(result, notifications=tuple(notifications))

    async def deliver(self, result: Plan, deadline: float | None = None) -> Report:
        report = await self.deliverer.deliver(result.notifications, deadline)
        self._count_pages(report)
        await self._remember(result, report)
        return report

    async def _remember(self, result: Plan, report: Report) -> None:
        """The spell starts with the group's first delivered message; who got a page is noted
        for the resolved notice; once that went out, the next firing is a new spell."""
        gid, ttl = group_key(result.group), self.config.delivery.dedupe_ttl
        sent = [
            r.notification
            for r in report.results
            if r.outcome in (Outcome.DELIVERED, Outcome.DEDUPLICATED)
        ]
        if any(a.status is Status.FIRING for a in result.group.alerts):
            if sent and result.started is not None:
                memory = GroupMemory(result.spell, result.started)
                await self.state.open_group(gid, memory, ttl)
            paged = result.held | {
                f"{n.level}:{n.recipient.name}"
                for n in sent
                if n.status is Status.FIRING and n.recipient.name in self.config.people
            }
            # Also with nothing new: each re-send keeps a long incident's spell from expiring.
            await self.state.note_paged(gid, paged, ttl)
        elif not report.needs_retry:
            await self.state.close_group(gid, ttl)

    def _count_pages(self, report: Report) -> None:
        reached: set[tuple[str, str, int]] = set()
        for r in report.results:
            if r.outcome is not Outcome.DELIVERED:
                continue
            n = r.notification
            if n.recipient.name in self.config.people:
                self.metrics.series(self.metrics.pages, n.channel.value, n.recipient.name).inc()
            if n.level > 0 and n.status is Status.FIRING:
                reached.add((n.route, n.severity.value, n.level))
        for _, severity, level in reached:
            self.metrics.escalations.labels(severity, str(level)).inc()


SERVICE = web.AppKey("router", Service)
