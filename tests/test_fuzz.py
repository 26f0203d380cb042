"""Property tests: no body, however odd, makes a webhook answer 5xx or log an exception."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import io
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from receiver.config.types import Config
from receiver.sources import sentry
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.helpers import dry_run_router, fixture, metric, shipped_config

ALLOWED = frozenset({200, 202, 400, 401, 413, 415})
ALERTMANAGER = "/webhooks/alertmanager"
SENTRY = "/webhooks/sentry"
LEGACY = "/webhooks/sentry/legacy/x"
JSON_HEADERS = {"Content-Type": "application/json"}
WEBHOOKS = "oncall_router_webhooks_received_total"
KNOWN_RESOURCES = (*sentry.RESOURCES, *sentry.IGNORED_RESOURCES)
# Each Sentry fixture with the Sentry-Hook-Resource it comes with (None: the legacy plugin).
SENTRY_FIXTURES: tuple[tuple[str | None, str], ...] = (
    ("event_alert", "sentry-event-alert-triggered.json"),
    ("issue", "sentry-issue-created.json"),
    ("metric_alert", "sentry-metric-alert-critical.json"),
    ("metric_alert", "sentry-metric-alert-resolved.json"),
    (None, "sentry-legacy-plugin.json"),
)

# Keys the parsers look for: random documents use them often, so they get past the first check.
KNOWN_KEYS = (
    "version",
    "alerts",
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "fingerprint",
    "generatorURL",
    "groupKey",
    "truncatedAlerts",
    "receiver",
    "action",
    "data",
    "event",
    "issue",
    "metric_alert",
    "alert_rule",
    "triggers",
    "project",
    "project_slug",
    "id",
    "level",
    "url",
)

Client = TestClient[web.Request, web.Application]


# --- One app, one client, one event loop per test function ------------------------------------


class ErrorRecords(logging.Handler):
    """Collects every ERROR record that carries an exception (e.g. aiohttp's 'Error handling')."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)

    def describe(self) -> str:
        formatter = logging.Formatter("%(name)s: %(message)s")
        return "\n".join(formatter.format(r) for r in self.records)


class Harness:
    """A started app and client on a private loop, reused by every hypothesis example."""

    def __init__(self, service: Service, out: io.StringIO) -> None:
        self.service = service
        self.out = out
        self.runner = asyncio.Runner()
        self.client: Client = self.runner.run(self._start())
        self.errors = ErrorRecords()
        logging.getLogger().addHandler(self.errors)

    async def _start(self) -> Client:
        client = TestClient(TestServer(create_app(self.service)))
        await client.start_server()
        return client

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        allowed: frozenset[int] = ALLOWED,
    ) -> int:
        """Send, wait for background work, and fail on any exception raised or logged."""
        self.errors.records.clear()
        self.out.seek(0)
        self.out.truncate()
        status, failures = self.runner.run(self._post(method, path, body, headers))
        assert failures == [], f"background delivery raised: {failures!r}"
        assert self.errors.records == [], self.errors.describe()
        assert status in allowed, f"{path} answered {status}"
        return status

    async def _post(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, list[BaseException]]:
        async with self.client.request(method, path, data=body, headers=dict(headers)) as response:
            await response.read()
            status = response.status
        failures: list[BaseException] = []
        while self.service.tasks:
            results = await asyncio.gather(*list(self.service.tasks), return_exceptions=True)
            failures.extend(r for r in results if isinstance(r, BaseException))
        return status, failures

    def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        self.runner.run(self.client.close())
        self.runner.close()


def fuzz_config() -> Config:
    """The shipped routing without per-destination pacing: fuzzing pages thousands of times."""
    config = shipped_config()
    return dataclasses.replace(
        config, delivery=dataclasses.replace(config.delivery, rate_limits={})
    )


@pytest.fixture
def harness() -> Iterator[Harness]:
    service, out = dry_run_router(fuzz_config())
    h = Harness(service, out)
    try:
        yield h
    finally:
        h.close()


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        # The explain phase re-runs a failing example many times over HTTP; the traceback and
        # the shrunk example say enough.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


# --- Strategies ---------------------------------------------------------------------------------

json_scalars: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_keys: st.SearchStrategy[str] = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(json_keys, children, max_size=6)
    ),
    max_leaves=30,
)

header_junk = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
sentry_resource: st.SearchStrategy[str | None] = (
    st.none() | st.sampled_from(KNOWN_RESOURCES) | header_junk
)


@st.composite
def endpoints(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """One of the webhook endpoints, with the headers its sender would add (or junk)."""
    path = draw(st.sampled_from([ALERTMANAGER, SENTRY, LEGACY]))
    headers = dict(JSON_HEADERS)
    if path == SENTRY:
        resource = draw(sentry_resource)
        if resource is not None:
            headers["Sentry-Hook-Resource"] = resource
    return path, headers


# Times on the edges: Go's zero time, year 1 and 9999 (with offsets), nanoseconds, epochs.
TIME_EDGES: tuple[Any, ...] = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:01:00Z",
    "0001-01-02T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "2026-03-14T09:12:30.123456789Z",
    "2026-03-14T09:12:30.123456789+05:30",
    "2026-03-14T09:12:30",
    "2026-03-14",
    "20260314T091230Z",
    "2026-13-45T99:99:99Z",
    "1773479642",
    " 2026-03-14T09:12:30Z ",
    1773479642,
    1773479642.318,
    -62135596800,
    253402300799,
    0,
    -1,
    1e20,
)
# Other values on the parsers' edges: odd types, huge numbers, bad URLs, unpaired surrogates.
OTHER_EDGES: tuple[Any, ...] = (
    None,
    True,
    False,
    2**63,
    1e308,
    -1e308,
    float("inf"),
    "",
    " ",
    "firing",
    "resolved",
    "critical",
    "warning",
    "open",
    "4",
    "https://[::1",
    "http://[sentry.io/api/0/projects/a/b/",
    "https://sentry.io/api/0/projects/acme/",
    "javascript:alert(1)",
    "\u0000",
    "\ud800",
    "x" * 5000,
    [],
    [None],
    [[]],
    [{}],
    {},
    {"label": []},
    {"label": {}},
    {"a": {"b": {}}},
)
# A fresh copy each time: `mutated` edits documents in place, and an edited shared `[]` or `{}`
# would change later draws (hypothesis then reports a flaky strategy).
edge_values: st.SearchStrategy[Any] = st.sampled_from(TIME_EDGES + OTHER_EDGES).map(copy.deepcopy)
mutation_values: st.SearchStrategy[Any] = edge_values | json_values


def often(valid: st.SearchStrategy[Any], edges: tuple[Any, ...] = ()) -> st.SearchStrategy[Any]:
    """Mostly a valid value; sometimes one of `edges`, sometimes anything at all."""
    special = st.sampled_from(edges) if edges else edge_values
    return st.integers(0, 9).flatmap(
        lambda i: special if i == 0 else mutation_values if i == 1 else valid
    )


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) inside a JSON tree, breadth first."""
    found: list[tuple[Any, Any]] = []
    pending = [node]
    while pending:
        current = pending.pop(0)
        if isinstance(current, dict):
            items: list[tuple[Any, Any]] = list(current.items())
        elif isinstance(current, list):
            items = list(enumerate(current))
        else:
            continue
        for key, value in items:
            found.append((current, key))
            pending.append(value)
    return found


@st.composite
def mutated(draw: st.DrawFn, base: Any, hot: frozenset[str] = frozenset()) -> Any:
    """`base` with up to 3 values replaced, deleted or added; mostly at `hot` keys if any."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(doc)
        hot_slots = [(c, k) for c, k in slots if k in hot]
        prefer_hot = draw(st.integers(0, 3)) > 0
        if hot_slots and prefer_hot:
            slots = hot_slots
        if not slots:
            break
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            container[key] = draw(mutation_values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(json_keys)] = draw(mutation_values)
        else:
            container.append(draw(mutation_values))
    return doc


label_names = st.sampled_from(
    ["alertname", "severity", "priority", "instance", "job", "service", "cluster", "team"]
) | st.text(min_size=1, max_size=8)
label_values = st.sampled_from(
    ["critical", "high", "warning", "info", "P0", "P1", "SEV-2", "banana", "", "Watchdog"]
) | st.text(max_size=20)
label_sets = st.dictionaries(label_names, label_values, min_size=1, max_size=6)
annotation_sets = st.dictionaries(
    st.sampled_from(["summary", "description", "runbook_url", "message"]) | st.text(max_size=8),
    st.text(max_size=40) | st.sampled_from(["https://runbooks.example.com/x", "http://g/x"]),
    max_size=4,
)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
rfc3339 = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
).map(lambda d: d.isoformat().replace("+00:00", "Z"))
alert_fields: dict[str, st.SearchStrategy[Any]] = {
    "status": often(st.sampled_from(["firing", "resolved"])),
    "labels": often(label_sets),
    "annotations": often(annotation_sets),
    "startsAt": often(rfc3339, TIME_EDGES),
    "endsAt": often(rfc3339 | st.just("0001-01-01T00:00:00Z"), TIME_EDGES),
    "generatorURL": often(st.sampled_from(["http://prometheus:9090/graph?g0.expr=up", ""])),
    "fingerprint": often(st.text(alphabet="0123456789abcdef", max_size=16)),
}
valid_alert_fields: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from(["firing", "resolved"]),
    "labels": label_sets,
    "annotations": annotation_sets,
    "startsAt": rfc3339,
    "endsAt": rfc3339 | st.just("0001-01-01T00:00:00Z"),
    "generatorURL": st.sampled_from(["http://prometheus:9090/graph?g0.expr=up", ""]),
    "fingerprint": st.text(alphabet="0123456789abcdef", max_size=16),
}


def alertmanager_payloads(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "version": st.just("4"),
            "groupKey": st.text(max_size=40),
            "status": st.sampled_from(["firing", "resolved"]),
            "receiver": st.text(max_size=20),
            "alerts": st.lists(st.fixed_dictionaries(fields), min_size=1, max_size=4),
            "groupLabels": label_sets,
            "commonLabels": label_sets,
            "commonAnnotations": annotation_sets,
            "externalURL": st.just("http://alertmanager:9093"),
            "truncatedAlerts": st.integers(0, 50),
        },
        optional={"notification_reason": st.text(max_size=20), "routeLabels": label_sets},
    )


valid_alertmanager = alertmanager_payloads(valid_alert_fields)


@st.composite
def almost_valid_alertmanager(draw: st.DrawFn) -> Any:
    """Valid structure; some fields drawn from the edges, then a few random mutations."""
    payload = draw(alertmanager_payloads(alert_fields))
    top = ("version", "truncatedAlerts", "groupKey", "receiver", "alerts", "groupLabels")
    for key in top:
        if draw(st.integers(0, 19)) == 0:
            payload[key] = draw(mutation_values)
    return draw(mutated(payload, frozenset({"startsAt", "endsAt", "labels", "status"})))


# Sentry keys the parser reads: mutations land on them half of the time.
SENTRY_HOT_KEYS = frozenset(
    {
        "action",
        "data",
        "event",
        "issue",
        "metric_alert",
        "alert_rule",
        "triggers",
        "label",
        "projects",
        "project",
        "project_slug",
        "url",
        "web_url",
        "permalink",
        "datetime",
        "timestamp",
        "date_started",
        "date_detected",
        "date_closed",
        "firstSeen",
        "level",
        "title",
        "name",
        "id",
        "identifier",
        "issue_id",
        "event_id",
        "shortId",
        "status",
        "environment",
        "triggering_rules",
        "message",
    }
)


@st.composite
def almost_valid_sentry(draw: st.DrawFn) -> tuple[str, dict[str, str], Any]:
    """A shipped Sentry payload, lightly mutated, posted where and how Sentry would post it."""
    resource, name = draw(st.sampled_from(SENTRY_FIXTURES))
    body = draw(mutated(fixture(name), SENTRY_HOT_KEYS))
    if resource is None:
        return LEGACY, dict(JSON_HEADERS), body
    return SENTRY, JSON_HEADERS | {"Sentry-Hook-Resource": resource}, body


# --- Properties -------------------------------------------------------------------------------


@fuzz_settings(1500)
@given(document=json_values, endpoint=endpoints())
def test_arbitrary_json_never_5xx(
    harness: Harness, document: Any, endpoint: tuple[str, dict[str, str]]
) -> None:
    """Any JSON document at any webhook endpoint gets a 2xx/4xx and logs no exception."""
    path, headers = endpoint
    harness.post(path, json.dumps(document).encode(), headers)


@fuzz_settings(500)
@given(body=st.binary(max_size=4096), endpoint=endpoints())
def test_arbitrary_bytes_never_5xx(
    harness: Harness, body: bytes, endpoint: tuple[str, dict[str, str]]
) -> None:
    """Any byte string at any webhook endpoint gets a 2xx/4xx and logs no exception."""
    path, headers = endpoint
    harness.post(path, body, headers)


@fuzz_settings(1000)
@given(payload=almost_valid_alertmanager())
def test_almost_valid_alertmanager_never_5xx(harness: Harness, payload: Any) -> None:
    """Alertmanager payloads with mutated fields are accepted (200) or refused (400), never 5xx."""
    status = harness.post(ALERTMANAGER, json.dumps(payload).encode(), JSON_HEADERS)
    assert status in (200, 400)


@fuzz_settings(1000)
@given(request=almost_valid_sentry())
def test_almost_valid_sentry_never_5xx(
    harness: Harness, request: tuple[str, dict[str, str], Any]
) -> None:
    """Sentry payloads with mutated fields are acknowledged (202) or refused (400), never 5xx."""
    path, headers, body = request
    status = harness.post(path, json.dumps(body).encode(), headers)
    assert status in (202, 400)


@fuzz_settings(100)
@given(payload=valid_alertmanager)
def test_valid_alertmanager_is_accepted(harness: Harness, payload: Any) -> None:
    """Every well-formed generated Alertmanager payload is accepted with 200 and counted."""
    before = metric(harness.service, WEBHOOKS, {"source": "alertmanager", "outcome": "accepted"})
    status = harness.post(ALERTMANAGER, json.dumps(payload).encode(), JSON_HEADERS)
    assert status == 200
    after = metric(harness.service, WEBHOOKS, {"source": "alertmanager", "outcome": "accepted"})
    assert after == before + 1
