"""Every metric the router exports, built on an injected registry, all label sets pre-created.

May import: model, config, routing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from receiver import __version__
from receiver.config.types import Config
from receiver.model import Channel, Severity, Source, Status
from receiver.routing.oncall import on_call

PREFIX = "oncall_router"
M = TypeVar("M", bound=MetricWrapperBase)

WEBHOOK_OUTCOMES = (
    "accepted",  # parsed and delivered (or dry-run printed)
    "ignored",  # valid, but nothing to page (e.g. a Sentry comment)
    "retry",  # a retryable delivery failure remained: answered 503
    "invalid",  # 400
    "unauthorized",  # 401
    "too_large",  # 413
    "unsupported_media_type",  # 415
    "shed",  # 503 at once: too many webhooks in flight to start it within its deadline
)
FAILURE_REASONS = (
    "clientError",
    "serverError",
    "authError",
    "rateLimited",
    "timeout",
    "connectionError",
    "deadlineExceeded",
    "pending",  # another replica held the message's claim until the deadline
    "stillSending",  # its request went out and is not answered yet: never sent twice
    "other",
)
# What the shared store (receiver.store) is asked to do; each can fail on its own.
STORE_OPS = (
    "claim",
    "settle",
    "read_group",
    "write_group",
    "pace",
    "slack_message",
    "page_record",  # what a page call said, kept for its second call (receiver.web.receipts)
    "ack_link",  # the SMS's short acknowledgement link (receiver.web.ack_links)
)
# Final statuses the vendors report for a message (delivery receipts), per channel; anything
# else a vendor says is counted as "other", so the label values stay bounded.
VENDOR_STATUSES: dict[Channel, tuple[str, ...]] = {
    Channel.SMS: ("delivered", "undelivered", "failed", "canceled", "other"),
    # "machine": completed, but answered by voicemail or a fax (Twilio's AnsweredBy).
    Channel.CALL: ("completed", "machine", "no-answer", "busy", "failed", "canceled", "other"),
    Channel.EMAIL: ("delivered", "deferred", "bounce", "blocked", "dropped", "spamreport", "other"),
}
# What became of a page call that no person answered (see receiver.web.receipts).
CALL_RETRY_OUTCOMES = (
    "called",  # called once more
    "texted",  # the second call went unanswered too: an SMS says so
    "acknowledged",  # not called again: the group was acknowledged meanwhile
    "resolved",  # not called again: the group resolved meanwhile
    "forgotten",  # the store no longer holds what the call said (expired, or restarted)
    "failed",  # Twilio refused the call or the SMS
)
# Why an acknowledgement (button, reply, key press, link) was refused.

ACK_REFUSALS = (
    "badSignature",  # the vendor's request signature is wrong or missing
    "forged",  # our token's HMAC is wrong
    "expired",  # the token is past its expiry
    "replayed",  # the token already made an acknowledgement that has since expired
    "malformed",  # not a token, or a payload we cannot read
    "unknownSender",  # an SMS or call from a number that is no one's
    "unknownGroup",  # no firing group has that code (resolved, or a typo)
    "unknownLink",  # a short link the store does not know (expired, mistyped or made up)
    "notAcknowledged",  # a key other than 1, a machine answered, or an unreadable reply
    "storeUnavailable",  # Alertmanager could not be read or written
)
# Sub-second buckets: handling is fast, vendor calls take tens to hundreds of ms.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20)
# Alert start to first page: seconds (critical) up to days (low waits for the next business day).
_AGE_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)


@dataclass(frozen=True)
class ChannelCounters:
    """One channel's series, looked up once: `labels()` per send is measurable at load."""

    requests: Counter
    requests_failed: Counter
    latency: Histogram
    retries: Counter
    deduplicated: Counter
    rate_limited: Counter


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = PREFIX
        self.build_info = Info(f"{p}_build", "Version of oncall-router.", registry=registry)
        self.build_info.info({"version": __version__})
        self.webhooks = Counter(
            f"{p}_webhooks_received_total",
            "Webhook requests received, by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.webhook_duration = Histogram(
            f"{p}_webhook_duration_seconds",
            "Time to handle one webhook request, delivery included.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.alerts = Counter(
            f"{p}_alerts_received_total",
            "Alerts received, by source, decided severity and status.",
            ["source", "severity", "status"],
            registry=registry,
        )
        self.severity_defaulted = Counter(
            f"{p}_alerts_severity_defaulted_total",
            "Alerts whose severity was missing or unknown and fell to the default.",
            ["source"],
            registry=registry,
        )
        self.unrouted = Counter(
            f"{p}_alerts_unrouted_total",
            "Alerts that matched no route (fix the routing file).",
            ["source", "severity"],
            registry=registry,
        )
        self.notifications = Counter(
            f"{p}_notifications_total",
            "Notifications attempted (one per target send, retries not counted).",
            ["channel", "severity"],
            registry=registry,
        )
        self.notifications_failed = Counter(
            f"{p}_notifications_failed_total",
            "Notifications that finally failed, by reason.",
            ["channel", "severity", "reason"],
            registry=registry,
        )
        self.notifications_lost = Counter(
            f"{p}_notifications_lost_total",
            "Notifications nobody will retry that were never delivered: a Sentry event the router "
            "delivered itself, failed for good or still failing at delivery.background_deadline.",
            ["channel", "severity"],
            registry=registry,
        )
        self.requests = Counter(
            f"{p}_notification_requests_total",
            "Requests made to vendors (every attempt).",
            ["channel"],
            registry=registry,
        )
        self.requests_failed = Counter(
            f"{p}_notification_requests_failed_total",
            "Vendor requests that failed.",
            ["channel"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{p}_notification_latency_seconds",
            "Latency of one vendor request.",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            f"{p}_notification_retries_total",
            "Vendor requests retried after a retryable failure.",
            ["channel"],
            registry=registry,
        )
        self.deduplicated = Counter(
            f"{p}_notifications_deduplicated_total",
            "Sends skipped because the same message was already delivered.",
            ["channel"],
            registry=registry,
        )
        self.rate_limited = Counter(
            f"{p}_notifications_rate_limited_total",
            "Sends delayed by a per-destination rate limit or a vendor 429.",
            ["channel"],
            registry=registry,
        )
        self.alert_to_page = Histogram(
            f"{p}_alert_to_page_seconds",
            "Time from an alert's start to its first delivered page (level 0), by severity.",
            ["severity"],
            buckets=_AGE_BUCKETS,
            registry=registry,
        )
        self.escalations = Counter(
            f"{p}_escalations_total",
            "Escalation levels reached (level 1 = first step after the first page), by severity.",
            ["severity", "level"],
            registry=registry,
        )
        self.pages = Counter(
            f"{p}_pages_total",
            "Messages delivered to a person, by channel.",
            ["channel", "person"],
            registry=registry,
        )
        self.acknowledgements = Counter(
            f"{p}_acknowledgements_total",
            "Acknowledgements recorded, by the channel they came from.",
            ["channel"],
            registry=registry,
        )
        self.acknowledgements_refused = Counter(
            f"{p}_acknowledgements_refused_total",
            "Acknowledgement attempts refused, by channel and reason.",
            ["channel", "reason"],
            registry=registry,
        )
        self.time_to_acknowledge = Histogram(
            f"{p}_time_to_acknowledge_seconds",
            "Time from a group's first alert start to its acknowledgement, by severity.",
            ["severity"],
            buckets=_AGE_BUCKETS,
            registry=registry,
        )
        self.ack_lookups_failed = Counter(
            f"{p}_acknowledgement_lookups_failed_total",
            "Webhooks planned without acknowledgements because Alertmanager could not be read.",
            registry=registry,
        )
        self.store_errors = Counter(
            f"{p}_store_errors_total",
            "Shared-store operations that failed or timed out; the router paged anyway.",
            ["op"],
            registry=registry,
        )
        self.claims_waited = Counter(
            f"{p}_notifications_claim_waits_total",
            "Sends that waited for another replica's claim on the same message, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.vendor_status = Counter(
            f"{p}_vendor_status_total",
            "Final delivery statuses the vendors reported (Twilio status call-backs, SendGrid "
            "events), by channel and status.",
            ["channel", "status"],
            registry=registry,
        )
        self.carrier_failures = Counter(
            f"{p}_carrier_failures_total",
            "Messages to a person the carrier or mail server refused after the vendor took them "
            "(SMS undelivered or failed, call failed, email bounced or dropped): a wrong number "
            "or address in the routing file shows here.",
            ["channel", "person"],
            registry=registry,
        )
        self.call_retries = Counter(
            f"{p}_call_retries_total",
            "Page calls no person answered, by what followed.",
            ["outcome"],
            registry=registry,
        )
        self.webhooks_in_flight = Gauge(
            f"{p}_webhooks_in_flight",
            "Webhooks being worked on now (parsed, planned, delivered).",
            registry=registry,
        )
        self.webhooks_queued = Gauge(
            f"{p}_webhooks_queued",
            "Webhooks waiting for a free slot to start (see delivery.max_in_flight).",
            registry=registry,
        )
        self.config_reload_success = Gauge(
            f"{p}_config_last_reload_successful",
            "Whether the last routing file (re)load succeeded.",
            registry=registry,
        )
        self.config_reload_time = Gauge(
            f"{p}_config_last_reload_success_timestamp_seconds",
            "Time of the last successful routing file load.",
            registry=registry,
        )
        self._series: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        self._precreate()

    def series(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, remembered: labels() validates and locks, ~2 µs a call.

        Label values here come from closed sets (sources, severities, channels, people), so the
        memo holds no more series than the registry itself does.
        """
        found = self._series.get((metric, labels))
        if found is None:
            found = self._series[metric, labels] = metric.labels(*labels)
        return found  # type: ignore[return-value]

    def _precreate(self) -> None:
        """Create every label set up front so rate() works from zero."""
        for op in STORE_OPS:
            self.store_errors.labels(op)
        for outcome in ("delivered", "released", "timeout"):
            self.claims_waited.labels(outcome)
        for channel, statuses in VENDOR_STATUSES.items():
            for status in statuses:
                self.vendor_status.labels(channel.value, status)
        for outcome in CALL_RETRY_OUTCOMES:
            self.call_retries.labels(outcome)
        for source in Source:
            self.webhook_duration.labels(source.value)
            self.severity_defaulted.labels(source.value)
            for outcome in WEBHOOK_OUTCOMES:
                self.webhooks.labels(source.value, outcome)
            for severity in Severity:
                self.unrouted.labels(source.value, severity.value)
                for status in Status:
                    self.alerts.labels(source.value, severity.value, status.value)
        # Keyed by the enum members themselves: `.value` is a property call, ~0.3 µs a time.
        self.by_channel: dict[Channel, ChannelCounters] = {}
        self.sent: dict[tuple[Channel, Severity], Counter] = {}
        for channel in Channel:
            c = channel.value
            self.by_channel[channel] = ChannelCounters(
                self.requests.labels(c),
                self.requests_failed.labels(c),
                self.latency.labels(c),
                self.retries.labels(c),
                self.deduplicated.labels(c),
                self.rate_limited.labels(c),
            )
            for severity in Severity:
                self.sent[channel, severity] = self.notifications.labels(c, severity.value)
                self.notifications_lost.labels(c, severity.value)
                for reason in FAILURE_REASONS:
                    self.notifications_failed.labels(c, severity.value, reason)
        for channel in Channel:
            self.acknowledgements.labels(channel.value)
            for refusal in ACK_REFUSALS:
                self.acknowledgements_refused.labels(channel.value, refusal)
        for severity in Severity:
            self.time_to_acknowledge.labels(severity.value)
            self.alert_to_page.labels(severity.value)
            for level in range(1, 6):
                self.escalations.labels(severity.value, str(level))

    def precreate_people(self, people: Iterable[str]) -> None:
        """Per-person series exist from the start too (people come from the routing file)."""
        for person in people:
            for channel in Channel:
                self.pages.labels(channel.value, person)
            for channel in VENDOR_STATUSES:
                self.carrier_failures.labels(channel.value, person)


class OnCallCollector(Collector):
    """`oncall_router_on_call{rotation,person}`: 1 for whoever holds each rotation right now."""

    def __init__(self, config: Callable[[], Config], clock: Callable[[], datetime]) -> None:
        self._config = config
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        config = self._config()
        family = GaugeMetricFamily(
            f"{PREFIX}_on_call",
            "1 for the person holding each rotation now, 0 for its other members.",
            labels=["rotation", "person"],
        )
        now = self._clock()
        seen = set()
        for team in config.all_teams():
            for name, rotation in team.rotations.items():
                # A team's own rotation is "<team>/<name>"; one at the file's top, every team's.
                label = rotation.name
                if label in seen:
                    continue
                seen.add(label)
                holder = on_call(team, name, now)
                for person in sorted({*rotation.members, *(o.person for o in rotation.overrides)}):
                    family.add_metric([label, person], 1.0 if person == holder else 0.0)
        yield family
