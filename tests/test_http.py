"""The aiohttp app end to end: every fixture routed as routing.yaml promises, and every refusal."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, make_mocked_request
from pytest_aiohttp import AiohttpClient

from receiver.config.settings import Settings
from receiver.config.types import Config, Limits
from receiver.web.app import _request_context, create_app
from receiver.web.logs import JsonFormatter, Redactor
from receiver.web.service import Service
from tests.helpers import dry_run_router, fixture, fixture_bytes, metric, printed, shipped_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[Service], Awaitable[Client]]

ALERTMANAGER = "/webhooks/alertmanager"
SENTRY = "/webhooks/sentry"
LEGACY = "/webhooks/sentry/legacy"
JSON = {"Content-Type": "application/json"}
WEBHOOKS = "oncall_router_webhooks_received_total"
ALERTS = "oncall_router_alerts_received_total"
DEFAULTED = "oncall_router_alerts_severity_defaulted_total"

AUTH_TOKEN = "s3cret-token-value"
SENTRY_SECRET = "sentry-client-secret-0f9e8d7c"
LEGACY_TOKEN = "legacy-tok-123"

# What the shipped routing.yaml promises, as (channel, address) pairs.
CRITICAL_TARGETS = sorted(
    [
        ("slack", "incidents"),
        ("sms", "+447700900101"),
        ("call", "+447700900101"),
        ("email", "carol@example.com"),
        ("email", "erin@example.com"),
    ]
)
# A resolved group this service does not remember paging for (say it restarted) reaches the
# first level: whoever would have had the first page hears of it, by SMS and email, not a call.
CRITICAL_RESOLVED_UNPAGED = sorted(t for t in CRITICAL_TARGETS if t[0] != "call")
HIGH_TARGETS = sorted([("slack", "alerts"), ("email", "alice@example.com")])
LOW_URGENCY_TARGETS = [("slack", "alerts")]


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient) -> MakeClient:
    async def make(service: Service) -> Client:
        return await aiohttp_client(create_app(service))

    return make


async def drain(service: Service) -> None:
    """Wait for the background Sentry deliveries (re-raising anything they raised)."""
    for _ in range(100):
        if not service.tasks:
            return
        await asyncio.gather(*list(service.tasks))
    raise AssertionError("background deliveries never finished")


def targets(out: io.StringIO) -> list[tuple[str, str]]:
    return sorted((line["channel"], line["to"]) for line in printed(out))


def webhooks(service: Service, source: str, outcome: str) -> float:
    return metric(service, WEBHOOKS, {"source": source, "outcome": outcome})


def sign(body: bytes, secret: str = SENTRY_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def with_limit(max_body_bytes: int) -> Config:
    return dataclasses.replace(shipped_config(), limits=Limits(max_body_bytes=max_body_bytes))


def with_legacy_token(token: str) -> Config:
    config = shipped_config()
    return dataclasses.replace(
        config, sentry=dataclasses.replace(config.sentry, legacy_token=token)
    )


def small_alertmanager(severity: str = "critical", **labels: str) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Small",severity="{severity}"}}',
        "status": "firing",
        "receiver": "oncall",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Small", "severity": severity, **labels},
                "annotations": {"summary": "small alert"},
                "startsAt": "2026-03-16T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"small-{severity}",
            }
        ],
    }


async def assert_refused(
    response: ClientResponse,
    service: Service,
    out: io.StringIO,
    *,
    status: int,
    error: str,
    source: str,
    outcome: str,
    before: float = 0.0,
) -> dict[str, str]:
    """A JSON error with this status, counted under this outcome, and nothing sent."""
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert webhooks(service, source, outcome) == before + 1
    await drain(service)
    assert printed(out) == []
    return dict(body)


# --- Every fixture, routed as the shipped routing.yaml promises -------------------------------

FIXTURE_CASES = [
    # name, path, Sentry-Hook-Resource, status, severity, targets, alert status
    (
        "alertmanager-firing-critical.json",
        ALERTMANAGER,
        None,
        200,
        "critical",
        CRITICAL_TARGETS,
        "firing",
    ),
    (
        "alertmanager-resolved.json",
        ALERTMANAGER,
        None,
        200,
        "critical",
        CRITICAL_RESOLVED_UNPAGED,
        "resolved",
    ),
    (
        "alertmanager-mixed-truncated.json",
        ALERTMANAGER,
        None,
        200,
        "medium",
        LOW_URGENCY_TARGETS,
        "firing",
    ),
    (
        "sentry-metric-alert-critical.json",
        SENTRY,
        "metric_alert",
        202,
        "critical",
        CRITICAL_TARGETS,
        "firing",
    ),
    (
        "sentry-metric-alert-resolved.json",
        SENTRY,
        "metric_alert",
        202,
        "critical",
        CRITICAL_RESOLVED_UNPAGED,
        "resolved",
    ),
    (
        "sentry-event-alert-triggered.json",
        SENTRY,
        "event_alert",
        202,
        "high",
        HIGH_TARGETS,
        "firing",
    ),
    ("sentry-issue-created.json", SENTRY, "issue", 202, "high", HIGH_TARGETS, "firing"),
    ("sentry-legacy-plugin.json", f"{LEGACY}/any", None, 202, "high", HIGH_TARGETS, "firing"),
]


@pytest.mark.parametrize(
    ("name", "path", "resource", "status", "severity", "expected", "state"),
    FIXTURE_CASES,
    ids=[c[0] for c in FIXTURE_CASES],
)
async def test_fixture_is_accepted_and_routed(
    make_client: MakeClient,
    name: str,
    path: str,
    resource: str | None,
    status: int,
    severity: str,
    expected: list[tuple[str, str]],
    state: str,
) -> None:
    """Each fixture is accepted at its endpoint and pages exactly the promised targets."""
    service, out = dry_run_router()
    client = await make_client(service)
    headers = JSON | ({"Sentry-Hook-Resource": resource} if resource else {})

    response = await client.post(path, data=fixture_bytes(name), headers=headers)

    assert response.status == status
    body = await response.json()
    assert body["status"] == "accepted"
    source = "alertmanager" if path == ALERTMANAGER else "sentry"
    assert body["alerts"] == (len(fixture(name)["alerts"]) if source == "alertmanager" else 1)
    await drain(service)
    lines = printed(out)
    assert targets(out) == expected
    assert {line["severity"] for line in lines} == {severity}
    assert {line["status"] for line in lines} == {state}
    assert all(line["text"] for line in lines)
    assert webhooks(service, source, "accepted") == 1
    if source == "alertmanager":
        assert sorted((n["channel"], n["outcome"]) for n in body["notifications"]) == sorted(
            (channel, "delivered") for channel, _ in expected
        )


async def test_critical_group_texts_name_the_alert(make_client: MakeClient) -> None:
    """The critical page's texts carry the alert name, place and runbook, not an empty template."""
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER, data=fixture_bytes("alertmanager-firing-critical.json"), headers=JSON
    )
    assert response.status == 200
    by_channel = {line["channel"]: line["text"] for line in printed(out)}
    assert by_channel["slack"].startswith("[FIRING:2] HighErrorRate payments-api")
    assert "https://runbooks.example.com/payments/high-error-rate" in by_channel["sms"]
    assert "High error rate" in by_channel["call"]


@pytest.mark.parametrize(("action", "printed_lines"), [("assigned", 0), ("resolved", 2)])
async def test_sentry_issue_actions_over_http(
    make_client: MakeClient, action: str, printed_lines: int
) -> None:
    """An assigned issue is acknowledged as ignored; a resolved one sends resolved notices to
    the Slack channel and to the people its creation paged."""
    service, out = dry_run_router()
    client = await make_client(service)
    body = fixture("sentry-issue-created.json")
    created = await client.post(
        SENTRY, data=json.dumps(body), headers=JSON | {"Sentry-Hook-Resource": "issue"}
    )
    assert created.status == 202
    await drain(service)
    paged = len(printed(out))
    out.seek(0)
    out.truncate()
    body["action"] = action
    response = await client.post(
        SENTRY, data=json.dumps(body), headers=JSON | {"Sentry-Hook-Resource": "issue"}
    )
    assert response.status == 202
    outcome = "ignored" if printed_lines == 0 else "accepted"
    assert (await response.json())["status"] == outcome
    assert webhooks(service, "sentry", outcome) == (1 if outcome == "ignored" else 2)
    await drain(service)
    assert paged == 2
    assert len(printed(out)) == printed_lines
    assert all(line["status"] == "resolved" for line in printed(out))


@pytest.mark.parametrize("resource", ["installation", "comment"])
async def test_sentry_ignored_resources_over_http(make_client: MakeClient, resource: str) -> None:
    """installation and comment webhooks get 202 ignored and page nobody."""
    service, out = dry_run_router()
    client = await make_client(service)
    body = {"action": "created", "data": {"installation": {"uuid": "u"}}}
    response = await client.post(
        SENTRY, data=json.dumps(body), headers=JSON | {"Sentry-Hook-Resource": resource}
    )
    assert response.status == 202
    assert await response.json() == {"status": "ignored"}
    assert webhooks(service, "sentry", "ignored") == 1
    await drain(service)
    assert printed(out) == []


# --- Refusals: status, JSON body, counter, nothing sent ---------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "source"),
    [
        (ALERTMANAGER, {}, "alertmanager"),
        (SENTRY, {"Sentry-Hook-Resource": "issue"}, "sentry"),
        (f"{LEGACY}/any", {}, "sentry"),
    ],
)
@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"alerts": [}', b"\xff\xfe\x00garbage", b"[" * 100_000],
    ids=["broken", "empty", "truncated", "not-utf8", "deeply-nested"],
)
async def test_invalid_json_is_400(
    make_client: MakeClient, path: str, headers: dict[str, str], source: str, raw: bytes
) -> None:
    """A body that is not JSON gets 400 invalid_json, counted as invalid, and pages nobody."""
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(path, data=raw, headers=JSON | headers)
    await assert_refused(
        response, service, out, status=400, error="invalid_json", source=source, outcome="invalid"
    )


@pytest.mark.parametrize(
    ("path", "headers", "body", "source"),
    [
        (ALERTMANAGER, {}, {"alerts": "firing"}, "alertmanager"),
        (ALERTMANAGER, {}, [1, 2, 3], "alertmanager"),
        (ALERTMANAGER, {}, {"version": "3", "alerts": []}, "alertmanager"),
        (SENTRY, {"Sentry-Hook-Resource": "issue"}, ["issue"], "sentry"),
        (SENTRY, {"Sentry-Hook-Resource": "metric_alert"}, {"action": "critical"}, "sentry"),
        (SENTRY, {"Sentry-Hook-Resource": "bogus"}, {"action": "x", "data": {}}, "sentry"),
        (f"{LEGACY}/any", {}, {"message": "no project"}, "sentry"),
    ],
)
async def test_wrong_shape_is_400(
    make_client: MakeClient, path: str, headers: dict[str, str], body: Any, source: str
) -> None:
    """Valid JSON that is not this source's payload gets 400 invalid_payload."""
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(path, data=json.dumps(body), headers=JSON | headers)
    await assert_refused(
        response,
        service,
        out,
        status=400,
        error="invalid_payload",
        source=source,
        outcome="invalid",
    )


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
@pytest.mark.parametrize(("path", "source"), [(ALERTMANAGER, "alertmanager"), (SENTRY, "sentry")])
async def test_wrong_content_type_is_415(
    make_client: MakeClient, path: str, source: str, content_type: str | None
) -> None:
    """A valid JSON body sent with another Content-Type (or none) gets 415."""
    service, out = dry_run_router()
    client = await make_client(service)
    headers = {"Sentry-Hook-Resource": "metric_alert"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post(
        path,
        data=fixture_bytes("sentry-metric-alert-critical.json")
        if path == SENTRY
        else fixture_bytes("alertmanager-firing-critical.json"),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    detail = await assert_refused(
        response,
        service,
        out,
        status=415,
        error="unsupported_media_type",
        source=source,
        outcome="unsupported_media_type",
    )
    assert "application/json" in detail["detail"]


async def test_text_json_content_type_is_accepted(make_client: MakeClient) -> None:
    """`text/json` (and a charset parameter) is accepted like application/json."""
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER,
        data=fixture_bytes("alertmanager-mixed-truncated.json"),
        headers={"Content-Type": "text/json; charset=utf-8"},
    )
    assert response.status == 200
    assert targets(out) == LOW_URGENCY_TARGETS


@pytest.mark.parametrize(
    ("path", "headers", "source"),
    [
        (ALERTMANAGER, {}, "alertmanager"),
        (SENTRY, {"Sentry-Hook-Resource": "issue"}, "sentry"),
        (f"{LEGACY}/any", {}, "sentry"),
    ],
)
async def test_body_over_limit_with_content_length_is_413(
    make_client: MakeClient, path: str, headers: dict[str, str], source: str
) -> None:
    """A body whose Content-Length is over limits.max_body_bytes gets 413 before it is read."""
    service, out = dry_run_router(with_limit(2048))
    client = await make_client(service)
    body = json.dumps({"padding": "x" * 4096}).encode()
    response = await client.post(path, data=body, headers=JSON | headers)
    assert response.request_info.headers["Content-Length"] == str(len(body))
    await assert_refused(
        response, service, out, status=413, error="too_large", source=source, outcome="too_large"
    )


@pytest.mark.parametrize(
    ("path", "headers", "source"),
    [
        (ALERTMANAGER, {}, "alertmanager"),
        (SENTRY, {"Sentry-Hook-Resource": "issue"}, "sentry"),
        (f"{LEGACY}/any", {}, "sentry"),
    ],
)
async def test_chunked_body_over_limit_is_413(
    make_client: MakeClient, path: str, headers: dict[str, str], source: str
) -> None:
    """A chunked body (no Content-Length) that grows over the limit also gets 413."""
    service, out = dry_run_router(with_limit(2048))
    client = await make_client(service)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        for _ in range(16):
            yield b"x" * 512
        yield b'"}'

    response = await client.post(path, data=chunks(), headers=JSON | headers)
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request_info.headers
    await assert_refused(
        response, service, out, status=413, error="too_large", source=source, outcome="too_large"
    )


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413)])
async def test_body_limit_boundary(make_client: MakeClient, extra: int, status: int) -> None:
    """A body of exactly max_body_bytes is accepted; one byte more is refused."""
    service, out = dry_run_router(with_limit(2048))
    client = await make_client(service)
    compact = json.dumps(small_alertmanager()).encode()
    body = compact + b" " * (2048 - len(compact) + extra)
    assert len(body) == 2048 + extra
    response = await client.post(ALERTMANAGER, data=body, headers=JSON)
    assert response.status == status
    assert (len(printed(out)) > 0) is (status == 200)


async def test_get_on_webhook_is_405_json(make_client: MakeClient) -> None:
    """GET on a webhook is 405 with a JSON error body and Allow: POST."""
    service, out = dry_run_router()
    client = await make_client(service)
    for path in (ALERTMANAGER, SENTRY, f"{LEGACY}/any"):
        response = await client.get(path)
        assert response.status == 405
        assert await response.json() == {
            "error": "method_not_allowed",
            "detail": "405: Method Not Allowed",
        }
        assert "POST" in response.headers["Allow"]
    assert printed(out) == []


@pytest.mark.parametrize("path", ["/nope", "/webhooks", "/webhooks/alertmanager/extra", "/"])
async def test_unknown_path_is_404_json(
    make_client: MakeClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown path is 404 with a JSON error body (and the request id header), and logged."""
    service, _ = dry_run_router()
    client = await make_client(service)
    with caplog.at_level(logging.WARNING, logger="receiver.app"):
        response = await client.post(path, data=b"{}", headers=JSON)
    assert response.status == 404
    assert await response.json() == {"error": "not_found", "detail": "404: Not Found"}
    assert response.headers["X-Request-Id"]
    [record] = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert (record.__dict__["status"], record.__dict__["path"]) == (404, path)


# --- Authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {AUTH_TOKEN}x",
        f"Bearer {AUTH_TOKEN[:-1]}",
        f"Basic {AUTH_TOKEN}",
        "Basic czNjcmV0LXRva2VuLXZhbHVlOg==",
        AUTH_TOKEN,
        "Bearer",
    ],
    ids=["missing", "wrong", "longer", "shorter", "basic", "basic-b64", "no-scheme", "empty"],
)
async def test_bearer_token_refusals(make_client: MakeClient, authorization: str | None) -> None:
    """With RECEIVER_AUTH_TOKEN set, anything but the right Bearer token gets 401."""
    service, out = dry_run_router(settings=Settings(receiver_auth_token=AUTH_TOKEN))
    client = await make_client(service)
    headers = JSON | ({"Authorization": authorization} if authorization else {})
    response = await client.post(
        ALERTMANAGER, data=fixture_bytes("alertmanager-firing-critical.json"), headers=headers
    )
    await assert_refused(
        response,
        service,
        out,
        status=401,
        error="unauthorized",
        source="alertmanager",
        outcome="unauthorized",
    )


async def test_auth_is_checked_before_the_body(make_client: MakeClient) -> None:
    """A wrong token with a broken body is 401, not 400: nothing is parsed for strangers."""
    service, out = dry_run_router(settings=Settings(receiver_auth_token=AUTH_TOKEN))
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER, data=b"{broken", headers=JSON | {"Authorization": "Bearer nope"}
    )
    await assert_refused(
        response,
        service,
        out,
        status=401,
        error="unauthorized",
        source="alertmanager",
        outcome="unauthorized",
    )
    assert webhooks(service, "alertmanager", "invalid") == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_right_bearer_token_is_accepted(make_client: MakeClient, scheme: str) -> None:
    """The right token with the Bearer scheme (any case) is accepted and pages."""
    service, out = dry_run_router(settings=Settings(receiver_auth_token=AUTH_TOKEN))
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER,
        data=fixture_bytes("alertmanager-firing-critical.json"),
        headers=JSON | {"Authorization": f"{scheme} {AUTH_TOKEN}"},
    )
    assert response.status == 200
    assert (await response.json())["status"] == "accepted"
    assert targets(out) == CRITICAL_TARGETS
    assert webhooks(service, "alertmanager", "unauthorized") == 0


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("upper", [False, True])
async def test_sentry_right_signature_is_accepted(
    make_client: MakeClient, dry_run: bool, upper: bool
) -> None:
    """A hex HMAC-SHA256 of the raw body with the client secret is accepted (202) and pages."""
    service, out = dry_run_router(
        settings=Settings(sentry_client_secret=SENTRY_SECRET), dry_run=dry_run
    )
    client = await make_client(service)
    body = fixture_bytes("sentry-event-alert-triggered.json")
    signature = sign(body).upper() if upper else sign(body)
    response = await client.post(
        SENTRY,
        data=body,
        headers=JSON | {"Sentry-Hook-Resource": "event_alert", "Sentry-Hook-Signature": signature},
    )
    assert response.status == 202
    await drain(service)
    assert targets(out) == HIGH_TARGETS


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "0" * 64,
        "not-hex",
        sign(fixture_bytes("sentry-event-alert-triggered.json"), "another-secret"),
        sign(fixture_bytes("sentry-issue-created.json")),
        sign(fixture_bytes("sentry-event-alert-triggered.json"))[:-1],
    ],
    ids=["missing", "empty", "zeros", "not-hex", "other-secret", "other-body", "truncated"],
)
async def test_sentry_wrong_signature_is_401(
    make_client: MakeClient, signature: str | None
) -> None:
    """A missing or wrong Sentry-Hook-Signature gets 401 and pages nobody."""
    service, out = dry_run_router(settings=Settings(sentry_client_secret=SENTRY_SECRET))
    client = await make_client(service)
    headers = JSON | {"Sentry-Hook-Resource": "event_alert"}
    if signature is not None:
        headers["Sentry-Hook-Signature"] = signature
    response = await client.post(
        SENTRY, data=fixture_bytes("sentry-event-alert-triggered.json"), headers=headers
    )
    await assert_refused(
        response,
        service,
        out,
        status=401,
        error="unauthorized",
        source="sentry",
        outcome="unauthorized",
    )


async def test_sentry_without_secret_outside_dry_run_is_401(make_client: MakeClient) -> None:
    """Serving for real with no SENTRY_CLIENT_SECRET refuses every Sentry webhook."""
    service, out = dry_run_router(dry_run=False)
    client = await make_client(service)
    body = fixture_bytes("sentry-event-alert-triggered.json")
    response = await client.post(
        SENTRY,
        data=body,
        headers=JSON | {"Sentry-Hook-Resource": "event_alert", "Sentry-Hook-Signature": sign(body)},
    )
    await assert_refused(
        response,
        service,
        out,
        status=401,
        error="unauthorized",
        source="sentry",
        outcome="unauthorized",
    )


async def test_sentry_missing_resource_outside_dry_run_is_400(make_client: MakeClient) -> None:
    """Outside dry-run a signed body without Sentry-Hook-Resource is 400, not a legacy parse."""
    service, out = dry_run_router(
        settings=Settings(sentry_client_secret=SENTRY_SECRET), dry_run=False
    )
    client = await make_client(service)
    body = fixture_bytes("sentry-legacy-plugin.json")
    response = await client.post(
        SENTRY, data=body, headers=JSON | {"Sentry-Hook-Signature": sign(body)}
    )
    detail = await assert_refused(
        response,
        service,
        out,
        status=400,
        error="invalid_payload",
        source="sentry",
        outcome="invalid",
    )
    assert "Sentry-Hook-Resource" in detail["detail"]


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize(
    "token", ["wrong", f"{LEGACY_TOKEN}x", LEGACY_TOKEN[:-1], LEGACY_TOKEN.upper()]
)
async def test_legacy_wrong_token_is_401(
    make_client: MakeClient, token: str, dry_run: bool
) -> None:
    """A configured legacy token must match the URL exactly, in dry-run too."""
    service, out = dry_run_router(with_legacy_token(LEGACY_TOKEN), dry_run=dry_run)
    client = await make_client(service)
    response = await client.post(
        f"{LEGACY}/{token}", data=fixture_bytes("sentry-legacy-plugin.json"), headers=JSON
    )
    await assert_refused(
        response,
        service,
        out,
        status=401,
        error="unauthorized",
        source="sentry",
        outcome="unauthorized",
    )


@pytest.mark.parametrize("dry_run", [True, False])
async def test_legacy_right_token_is_accepted(make_client: MakeClient, dry_run: bool) -> None:
    """The right legacy token in the URL is accepted (202) and pages the high targets."""
    service, out = dry_run_router(with_legacy_token(LEGACY_TOKEN), dry_run=dry_run)
    client = await make_client(service)
    response = await client.post(
        f"{LEGACY}/{LEGACY_TOKEN}", data=fixture_bytes("sentry-legacy-plugin.json"), headers=JSON
    )
    assert response.status == 202
    assert await response.json() == {"status": "accepted", "alerts": 1}
    await drain(service)
    assert targets(out) == HIGH_TARGETS


async def test_legacy_without_token_outside_dry_run_is_401(make_client: MakeClient) -> None:
    """Serving for real with no sentry.legacy_token refuses the legacy endpoint."""
    service, out = dry_run_router(dry_run=False)
    client = await make_client(service)
    response = await client.post(
        f"{LEGACY}/anything", data=fixture_bytes("sentry-legacy-plugin.json"), headers=JSON
    )
    await assert_refused(
        response,
        service,
        out,
        status=401,
        error="unauthorized",
        source="sentry",
        outcome="unauthorized",
    )


# --- Health, readiness, metrics, request ids --------------------------------------------------


async def test_healthy_and_ready(make_client: MakeClient) -> None:
    """/-/healthy and /-/ready answer 200; ready turns 503 once the router is shutting down."""
    service, _ = dry_run_router()
    client = await make_client(service)
    healthy = await client.get("/-/healthy")
    assert healthy.status == 200
    assert await healthy.json() == {"status": "healthy"}
    ready = await client.get("/-/ready")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "config": service.config.path}

    service.ready = False
    not_ready = await client.get("/-/ready")
    assert not_ready.status == 503
    assert (await not_ready.json())["status"] == "shutting down"
    assert (await client.get("/-/healthy")).status == 200


async def test_metrics_precreated_label_sets(make_client: MakeClient) -> None:
    """/metrics exposes every source/outcome and source/severity/status series at 0 up front."""
    service, _ = dry_run_router()
    client = await make_client(service)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    lines = set((await response.text()).splitlines())

    assert 'oncall_router_webhooks_received_total{outcome="too_large",source="sentry"} 0.0' in lines
    for source in ("alertmanager", "sentry"):
        for outcome in (
            "accepted",
            "ignored",
            "retry",
            "invalid",
            "unauthorized",
            "too_large",
            "unsupported_media_type",
        ):
            assert f'{WEBHOOKS}{{outcome="{outcome}",source="{source}"}} 0.0' in lines
        for severity in ("critical", "high", "medium", "low"):
            for status in ("firing", "resolved"):
                series = f'{ALERTS}{{severity="{severity}",source="{source}",status="{status}"}}'
                assert f"{series} 0.0" in lines
        assert f'{DEFAULTED}{{source="{source}"}} 0.0' in lines
    assert [line for line in lines if line and not line.startswith(("#", "oncall_router_"))] == []


async def test_metrics_move_after_a_webhook(make_client: MakeClient) -> None:
    """After one accepted Alertmanager webhook, /metrics shows the counters at their new values."""
    service, _ = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER, data=fixture_bytes("alertmanager-mixed-truncated.json"), headers=JSON
    )
    assert response.status == 200
    lines = set((await (await client.get("/metrics")).text()).splitlines())
    assert f'{WEBHOOKS}{{outcome="accepted",source="alertmanager"}} 1.0' in lines
    assert f'{ALERTS}{{severity="medium",source="alertmanager",status="firing"}} 2.0' in lines
    assert f'{ALERTS}{{severity="medium",source="alertmanager",status="resolved"}} 1.0' in lines


@pytest.mark.parametrize("request_id", ["abc123", "req-2026.03.14_0001", "x" * 64, "A", "0.1-_"])
async def test_sane_request_id_is_echoed(make_client: MakeClient, request_id: str) -> None:
    """A sane X-Request-Id comes back unchanged, on success and on error responses."""
    service, _ = dry_run_router()
    client = await make_client(service)
    for response in (
        await client.get("/-/healthy", headers={"X-Request-Id": request_id}),
        await client.post(ALERTMANAGER, data=b"{", headers=JSON | {"X-Request-Id": request_id}),
        await client.get("/nope", headers={"X-Request-Id": request_id}),
    ):
        assert response.headers["X-Request-Id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["x" * 65, "y" * 500, "has space", "semi;colon", 'quote"d', "slash/ed", "<script>", ""],
)
async def test_insane_request_id_is_replaced(make_client: MakeClient, request_id: str) -> None:
    """A long or odd X-Request-Id is replaced by a fresh 16-hex-digit id."""
    service, _ = dry_run_router()
    client = await make_client(service)
    response = await client.get("/-/healthy", headers={"X-Request-Id": request_id})
    echoed = response.headers["X-Request-Id"]
    assert echoed != request_id
    assert len(echoed) == 16
    int(echoed, 16)


async def test_missing_request_id_is_generated_fresh(make_client: MakeClient) -> None:
    """Without X-Request-Id each response gets its own generated id."""
    service, _ = dry_run_router()
    client = await make_client(service)
    ids = {(await client.get("/-/healthy")).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("request_id", ["abc\n", "abc\r\n", "a\nb", "abc\x00"])
async def test_request_id_with_control_characters_is_replaced(request_id: str) -> None:
    """An id with a newline or NUL never reaches the response headers (header injection)."""
    # aiohttp's HTTP parser refuses these on the wire, so the middleware is called directly.
    service, _ = dry_run_router()
    app = create_app(service)
    request = make_mocked_request(
        "GET", "/-/healthy", headers={"X-Request-Id": request_id}, app=app
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        del request
        return web.json_response({"status": "healthy"})

    response = await _request_context(request, handler)
    echoed = response.headers["X-Request-Id"]
    assert echoed != request_id
    assert echoed.isalnum()


async def test_alerts_counter_by_severity_and_status(make_client: MakeClient) -> None:
    """alerts_received_total counts each alert under its decided severity and its status."""
    service, _ = dry_run_router()
    client = await make_client(service)
    labels = {"source": "alertmanager", "severity": "critical", "status": "firing"}
    assert metric(service, ALERTS, labels) == 0
    response = await client.post(
        ALERTMANAGER, data=fixture_bytes("alertmanager-firing-critical.json"), headers=JSON
    )
    assert response.status == 200
    assert metric(service, ALERTS, labels) == 2
    assert metric(service, ALERTS, labels | {"status": "resolved"}) == 0
    assert metric(service, ALERTS, labels | {"severity": "high"}) == 0
    assert metric(service, DEFAULTED, {"source": "alertmanager"}) == 0


async def test_sentry_alerts_counter(make_client: MakeClient) -> None:
    """A Sentry metric alert resolve is counted as sentry/critical/resolved."""
    service, _ = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        SENTRY,
        data=fixture_bytes("sentry-metric-alert-resolved.json"),
        headers=JSON | {"Sentry-Hook-Resource": "metric_alert"},
    )
    assert response.status == 202
    await drain(service)
    assert (
        metric(service, ALERTS, {"source": "sentry", "severity": "critical", "status": "resolved"})
        == 1
    )


@pytest.mark.parametrize("severity", ["banana", "P9", "SEV-0"])
async def test_unknown_severity_defaults_to_high(
    make_client: MakeClient, severity: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown severity label is routed as the default (high) and counted as defaulted."""
    caplog.set_level(logging.WARNING, logger="receiver")
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER, data=json.dumps(small_alertmanager(severity)), headers=JSON
    )
    assert response.status == 200
    assert targets(out) == HIGH_TARGETS
    assert {line["severity"] for line in printed(out)} == {"high"}
    assert metric(service, DEFAULTED, {"source": "alertmanager"}) == 1
    assert metric(service, DEFAULTED, {"source": "sentry"}) == 0
    assert (
        metric(service, ALERTS, {"source": "alertmanager", "severity": "high", "status": "firing"})
        == 1
    )
    assert any(r.getMessage() == "severity defaulted" for r in caplog.records)


@pytest.mark.parametrize(("severity", "expected"), [("P0", "critical"), ("minor", "medium")])
async def test_severity_aliases_are_not_defaulted(
    make_client: MakeClient, severity: str, expected: str
) -> None:
    """Aliases from routing.yaml map to their severity and are not counted as defaulted."""
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER, data=json.dumps(small_alertmanager(severity)), headers=JSON
    )
    assert response.status == 200
    assert {line["severity"] for line in printed(out)} == {expected}
    assert metric(service, DEFAULTED, {"source": "alertmanager"}) == 0


# --- Secrets never leak -----------------------------------------------------------------------


async def test_no_secret_in_logs_or_responses(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Right and wrong credentials: neither secret shows in logs, response bodies or headers."""
    caplog.set_level(logging.DEBUG)
    settings = Settings(receiver_auth_token=AUTH_TOKEN, sentry_client_secret=SENTRY_SECRET)
    service, out = dry_run_router(settings=settings)
    client = await make_client(service)
    am_body = fixture_bytes("alertmanager-firing-critical.json")
    sentry_body = fixture_bytes("sentry-event-alert-triggered.json")
    sentry_headers = JSON | {"Sentry-Hook-Resource": "event_alert"}

    requests: list[tuple[str, bytes, Mapping[str, str], int]] = [
        (ALERTMANAGER, am_body, JSON | {"Authorization": f"Bearer {AUTH_TOKEN}"}, 200),
        (ALERTMANAGER, am_body, JSON | {"Authorization": "Bearer wrong-token"}, 401),
        (ALERTMANAGER, am_body, JSON | {"Authorization": f"Bearer {AUTH_TOKEN}-nope"}, 401),
        (ALERTMANAGER, am_body, JSON | {"Authorization": f"Basic {AUTH_TOKEN}"}, 401),
        (ALERTMANAGER, b"{", JSON | {"Authorization": f"Bearer {AUTH_TOKEN}"}, 400),
        (SENTRY, sentry_body, sentry_headers | {"Sentry-Hook-Signature": sign(sentry_body)}, 202),
        (SENTRY, sentry_body, sentry_headers | {"Sentry-Hook-Signature": SENTRY_SECRET}, 401),
        (SENTRY, sentry_body, sentry_headers, 401),
        (SENTRY, b"[", sentry_headers | {"Sentry-Hook-Signature": sign(b"[")}, 400),
    ]
    seen: list[str] = []
    for path, body, headers, status in requests:
        response = await client.post(path, data=body, headers=headers)
        assert response.status == status
        seen.append(await response.text())
        seen.extend(f"{k}: {v}" for k, v in response.headers.items())
    await drain(service)
    assert targets(out) == sorted(CRITICAL_TARGETS + HIGH_TARGETS)

    formatter = JsonFormatter(Redactor())  # no redaction: the records themselves must be clean
    rendered = [formatter.format(record) for record in caplog.records]
    assert any("webhook refused" in line for line in rendered)
    for secret in (AUTH_TOKEN, SENTRY_SECRET):
        assert secret not in caplog.text
        assert not [line for line in rendered if secret in line]
        assert not [text for text in seen if secret in text]
        assert secret not in out.getvalue()


# --- Receiver bugs: inputs that must be refused (4xx) or accepted, never a 500 ----------------


async def test_json_with_huge_integer_is_400(make_client: MakeClient) -> None:
    """A JSON number over Python's 4300-digit limit is a client error, not a 500."""
    service, out = dry_run_router()
    client = await make_client(service)
    body = b'{"version": "4", "truncatedAlerts": ' + b"9" * 5000 + b', "alerts": []}'
    response = await client.post(ALERTMANAGER, data=body, headers=JSON)
    await assert_refused(
        response,
        service,
        out,
        status=400,
        error="invalid_json",
        source="alertmanager",
        outcome="invalid",
    )


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity, gzip", "GZIP"])
async def test_compressed_body_is_415_unread(make_client: MakeClient, encoding: str) -> None:
    """A compressed body (even a corrupt one) is refused with 415 before it is read."""
    # The router never inflates bodies; tests/test_hostile_clients.py sends a gzip bomb.
    service, out = dry_run_router()
    client = await make_client(service)
    response = await client.post(
        ALERTMANAGER,
        data=b"\x1f\x8b this is not gzip",
        headers=JSON | {"Content-Encoding": encoding},
    )
    assert response.status == 415
    assert (await response.json())["error"] == "unsupported_content_encoding"
    assert printed(out) == []


async def test_alert_starting_in_year_one_is_not_a_500(make_client: MakeClient) -> None:
    """startsAt at Go's zero time is refused (400) or paged (200), never a 500."""
    service, out = dry_run_router()
    client = await make_client(service)
    payload = small_alertmanager()
    payload["alerts"][0]["startsAt"] = "0001-01-01T00:00:00Z"
    response = await client.post(ALERTMANAGER, data=json.dumps(payload), headers=JSON)
    assert response.status in (200, 400)
    body = await response.json()
    if response.status == 200:
        assert body["status"] == "accepted"
        assert targets(out) == CRITICAL_TARGETS
    else:
        assert body["error"] == "invalid_payload"


async def test_sentry_event_from_year_one_is_delivered_or_refused(make_client: MakeClient) -> None:
    """A 202 for a Sentry event means its page is delivered; a year-1 time must not lose it."""
    service, out = dry_run_router()
    client = await make_client(service)
    body = fixture("sentry-event-alert-triggered.json")
    body["data"]["event"]["datetime"] = "0001-01-01T00:00:00Z"
    response = await client.post(
        SENTRY, data=json.dumps(body), headers=JSON | {"Sentry-Hook-Resource": "event_alert"}
    )
    assert response.status in (202, 400)
    if response.status == 202:
        results = await asyncio.gather(*list(service.tasks), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert targets(out) == HIGH_TARGETS


def _surrogate_case(path: str, name: str, *keys: str | int) -> tuple[str, dict[str, str], bytes]:
    body = fixture(name)
    node = body
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = "id-\ud800"
    resource = {
        "sentry-issue-created.json": "issue",
        "sentry-event-alert-triggered.json": "event_alert",
    }.get(name)
    headers = JSON | ({"Sentry-Hook-Resource": resource} if resource else {})
    # json.dumps writes the lone surrogate as the JSON escape "\ud800": valid JSON.
    return path, headers, json.dumps(body).encode()


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        _surrogate_case(ALERTMANAGER, "alertmanager-mixed-truncated.json", "groupKey"),
        _surrogate_case(
            ALERTMANAGER, "alertmanager-mixed-truncated.json", "alerts", 0, "fingerprint"
        ),
        _surrogate_case(SENTRY, "sentry-issue-created.json", "data", "issue", "id"),
        _surrogate_case(SENTRY, "sentry-event-alert-triggered.json", "data", "event", "issue_id"),
        _surrogate_case(f"{LEGACY}/any", "sentry-legacy-plugin.json", "id"),
    ],
    ids=["am-group-key", "am-fingerprint", "sentry-issue-id", "sentry-event-issue-id", "legacy"],
)
async def test_unpaired_surrogate_is_not_a_500(
    make_client: MakeClient, path: str, headers: dict[str, str], body: bytes
) -> None:
    """A `\\ud800` escape in an id is refused (400) or paged (200/202), never a 500."""
    service, _ = dry_run_router()
    client = await make_client(service)
    response = await client.post(path, data=body, headers=headers)
    assert response.status in (200, 202, 400)
    answer = await response.json()
    if response.status == 400:
        assert set(answer) == {"error", "detail"}
    else:
        assert answer["status"] == "accepted"
    await drain(service)
