"""The aiohttp application: routes, request ids, JSON errors, one handler per source."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import StreamReader, web
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from receiver.ack.store import AlertmanagerStore
from receiver.delivery.fanout import Background, Outcome, Report
from receiver.delivery.forward import ForwardError, forward, postable_alerts
from receiver.model import AlertGroup, Source
from receiver.routing.plan import Plan
from receiver.sources import PayloadError, alertmanager, sentry
from receiver.web import auth
from receiver.web.admission import Shed
from receiver.web.callbacks import email as email_callbacks
from receiver.web.callbacks import sendgrid as sendgrid_callbacks
from receiver.web.callbacks import short_link as short_link_callbacks
from receiver.web.callbacks import slack as slack_callbacks
from receiver.web.callbacks import twilio as twilio_callbacks
from receiver.web.callbacks import twilio_status
from receiver.web.logs import Throttle, request_id
from receiver.web.service import SERVICE, SenderFactory, Service

log = logging.getLogger("receiver.app")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ClientError(Exception):
    """A request we refuse: becomes a JSON error with this status, never a 500."""

    def __init__(self, status: int, error: str, detail: str, outcome: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.outcome = outcome


# Sentry gives up on a webhook after 1 s; forwarding must answer well within that.
SENTRY_FORWARD_TIMEOUT = 0.7
# Reading or writing acknowledgements; a webhook escalates without them past this.
ACK_STORE_TIMEOUT = 2.0
# From a request's headers to the last byte of its body. Alertmanager, Sentry, Slack and Twilio
# send at most `limits.max_body_bytes` (1 MiB) in milliseconds; a client dripping a body byte by
# byte would otherwise hold its connection, and a handler, for ever. `serve` may change it.
BODY_TIMEOUT = 10.0
BODY_TIMEOUT_KEY = web.AppKey("body_timeout", float)
# Bodies are never decompressed: aiohttp would inflate a `Content-Encoding: gzip` body as it
# arrives, on the event loop, even one nobody reads (1 MB of gzip is 1 GiB of zeros). The
# middleware refuses such bodies with 415; with this, draining one after the answer is cheap.
HANDLER_ARGS: dict[str, Any] = {"auto_decompress": False}
_SHED_LOG = Throttle(log, 10.0)
# Bodies over this are parsed and planned off the event loop (see `_alertmanager`).
BIG_BODY = 256 * 1024
VENDOR_CONNECTIONS_PER_WEBHOOK = 4
# Content codings a request body may carry: none.
_IDENTITY = frozenset({"", "identity"})


class BodyTimeout(TimeoutError):
    """The body did not arrive within the body timeout. A TimeoutError, so aiohttp's drain of an
    unread body after the answer ends quietly (and closes the connection) instead of logging."""


def vendor_connections(max_in_flight: int) -> int:
    """Connections to the vendors at once: room for the usual fan-out (Slack, SMS, call, email)
    of every webhook admission lets in, with no cap per vendor. Twilio takes two of the four, and
    the old cap of 50 per host queued its requests in the connector under load: 200 total and 50
    per host cost 5-17% more CPU per webhook than this in `python -m bench`."""
    return VENDOR_CONNECTIONS_PER_WEBHOOK * max_in_flight


def create_app(service: Service, sender_factory: SenderFactory | None = None) -> web.Application:
    """The service; with a sender factory, vendor senders share one ClientSession."""
    app = web.Application(
        client_max_size=service.config.limits.max_body_bytes,
        middlewares=[_request_context],
        handler_args=HANDLER_ARGS,
    )
    app[SERVICE] = service
    app[BODY_TIMEOUT_KEY] = BODY_TIMEOUT
    service.sender_factory = sender_factory

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(
            limit=vendor_connections(service.config.delivery.max_in_flight), limit_per_host=0
        )
        async with aiohttp.ClientSession(connector=connector) as session:
            service.session = session
            am_url = service.settings.alertmanager_url
            if service.ack_enabled and am_url and not service.dry_run:
                service.store = AlertmanagerStore(session, am_url, ACK_STORE_TIMEOUT)
            if sender_factory is not None:
                service.senders = sender_factory(session)
                service.deliverer.senders = service.senders
            yield
            service.session = None
            service.store = None
        await service.state.close()

    app.cleanup_ctx.append(client_session)
    app.router.add_post("/webhooks/alertmanager", _alertmanager)
    app.router.add_post("/webhooks/sentry", _sentry)
    app.router.add_post("/webhooks/sentry/legacy/{token}", _sentry_legacy)
    twilio_callbacks.add_routes(app)
    slack_callbacks.add_routes(app)
    email_callbacks.add_routes(app)
    short_link_callbacks.add_routes(app)
    twilio_status.add_routes(app)
    sendgrid_callbacks.add_routes(app)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/-/healthy", _healthy)
    app.router.add_get("/-/ready", _ready)
    app.on_shutdown.append(_drain)
    return app


def _json_error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


@web.middleware
async def _request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    # 16 random hex digits, as uuid4().hex[:16] gave, for a third of the cost.
    rid = given if given and _REQUEST_ID.fullmatch(given) else os.urandom(8).hex()
    token = request_id.set(rid)
    timer = None
    response: web.StreamResponse
    try:
        encoding = _content_encoding(request)
        if encoding is not None:
            # Checked before anything reads the body: it is never inflated (see HANDLER_ARGS).
            response = _refused(
                request,
                415,
                "unsupported_content_encoding",
                f"request bodies must not be compressed (Content-Encoding: {encoding!r})",
            )
        else:
            if request.can_read_body:
                timer = asyncio.get_running_loop().call_later(
                    request.app[BODY_TIMEOUT_KEY], _cut_body, request.content
                )
            response = await handler(request)
    except web.HTTPException as e:
        # aiohttp's own 404/405/413 become JSON like every other error.
        if e.status < 400:
            raise
        response = _refused(
            request, e.status, e.reason.lower().replace(" ", "_"), e.text or e.reason
        )
        if e.status == 405:
            response.headers["Allow"] = e.headers.get("Allow", "")
    except BodyTimeout:
        timeout = request.app[BODY_TIMEOUT_KEY]
        response = _refused(request, 408, "body_timeout", f"body not received within {timeout}s")
    except RequestPayloadError as e:
        # A broken chunked encoding or a body shorter than its Content-Length.
        response = _refused(request, 400, "invalid_body", f"cannot read body: {e}"[:200])
    finally:
        if timer is not None:
            timer.cancel()
        request_id.reset(token)
    response.headers["X-Request-Id"] = rid
    return response


def _refused(request: web.Request, status: int, error: str, detail: str) -> web.Response:
    """A JSON error and its log line; the redactor removes a legacy token from the path."""
    log.warning(
        "request refused",
        extra={
            "status": status,
            "error": error,
            "method": request.method,
            "path": request.path[:200],
        },
    )
    response = _json_error(status, error, detail)
    if status in (408, 415):
        # Its body is unread: close rather than drain it for the next request on this connection.
        response.force_close()
    return response


def _content_encoding(request: web.Request) -> str | None:
    """The Content-Encoding of a request body, unless there is none (or `identity`)."""
    if not request.body_exists:
        return None
    for header in request.headers.getall("Content-Encoding", ()):
        if any(c.strip().lower() not in _IDENTITY for c in header.split(",")):
            return header[:40]
    return None


def _cut_body(content: StreamReader) -> None:
    """The body timeout: a read still waiting for the body fails (the middleware answers 408)."""
    if not content.is_eof():
        content.set_exception(BodyTimeout())


async def _read_json(request: web.Request, service: Service) -> tuple[bytes, Any]:
    """Size check before reading, content type, then JSON: each with its own 4xx."""
    raw = await _read_body(request, service)
    return raw, _decode(raw)


async def _read_body(request: web.Request, service: Service) -> bytes:
    """The raw JSON body, after the size and content-type checks."""
    limit = service.config.limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ClientError(413, "too_large", f"body over {limit} bytes", "too_large")
    if request.content_type not in ("application/json", "text/json"):
        raise ClientError(
            415,
            "unsupported_media_type",
            f"expected Content-Type application/json, got {request.content_type!r}",
            "unsupported_media_type",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ClientError(413, "too_large", f"body over {limit} bytes", "too_large") from None
    except RequestPayloadError as e:
        # e.g. a Content-Encoding: gzip body that is not gzip
        raise ClientError(400, "invalid_body", f"cannot read body: {e}"[:200], "invalid") from None
    return raw


def _parse(raw: bytes) -> AlertGroup:
    return alertmanager.decode(raw) or alertmanager.parse(_decode(raw))


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    # ValueError covers JSONDecodeError, bad UTF-8 and integers over Python's digit limit.
    except (ValueError, RecursionError) as e:
        raise ClientError(400, "invalid_json", f"body is not JSON: {e}"[:200], "invalid") from None


async def _handle(
    request: web.Request,
    source: Source,
    work: Callable[[Service, float], Awaitable[web.Response]],
) -> web.Response:
    service = request.app[SERVICE]
    started = time.perf_counter()
    deadline = service.config.delivery.deadline
    try:
        async with service.admission.slot(deadline) as waited:
            # The deadline counts from arrival: what waiting for a slot took is not left.
            response = await work(service, deadline - waited)
    except Shed as e:
        # Shedding comes in bursts: one line per interval, with how many (the counter has all).
        _SHED_LOG.warn(
            "webhooks shed: too many in flight; the senders retry them",
            source=source.value,
            detail=str(e),
        )
        service.metrics.webhooks.labels(source.value, "shed").inc()
        response = _json_error(503, "overloaded", f"try again later: {e}")
    except ClientError as e:
        log.warning(
            "webhook refused",
            extra={
                "source": source.value,
                "status": e.status,
                "error": e.error,
                "detail": e.detail,
            },
        )
        service.metrics.webhooks.labels(source.value, e.outcome).inc()
        response = _json_error(e.status, e.error, e.detail)
    except PayloadError as e:
        log.warning(
            "webhook refused",
            extra={
                "source": source.value,
                "status": 400,
                "error": "invalid_payload",
                "detail": str(e),
            },
        )
        service.metrics.webhooks.labels(source.value, "invalid").inc()
        response = _json_error(400, "invalid_payload", str(e))
    finally:
        duration = service.metrics.series(service.metrics.webhook_duration, source.value)
        duration.observe(time.perf_counter() - started)
    return response


async def _alertmanager(request: web.Request) -> web.Response:
    async def work(service: Service, deadline: float) -> web.Response:
        token = service.settings.receiver_auth_token
        if token and not auth.bearer_ok(request.headers.get("Authorization"), token):
            raise ClientError(401, "unauthorized", "missing or wrong bearer token", "unauthorized")
        raw = await _read_body(request, service)
        # A storm's body (thousands of alerts) takes a few hundred ms to parse and plan: in a
        # thread, so the loop goes on serving (it gets the GIL back every switch interval).
        big = len(raw) > BIG_BODY
        group = await asyncio.to_thread(_parse, raw) if big else _parse(raw)
        acks, recall = await asyncio.gather(service.acks_for(group), service.recall(group))
        if big:
            result = await asyncio.to_thread(service.plan, group, acks, recall)
        else:
            result = service.plan(group, acks, recall)
        report = await service.deliver(result, deadline)
        return _reply(service, Source.ALERTMANAGER, result, report)

    return await _handle(request, Source.ALERTMANAGER, work)


def _reply(service: Service, source: Source, result: Plan, report: Report) -> web.Response:
    outcome = "retry" if report.needs_retry else "accepted"
    service.metrics.series(service.metrics.webhooks, source.value, outcome).inc()
    body = {
        "status": outcome,
        "alerts": len(result.alerts),
        "notifications": [
            {
                "channel": r.notification.channel.value,
                "to": r.notification.recipient.name,
                "outcome": r.outcome.value,
                **({"reason": r.reason} if r.reason else {}),
            }
            for r in report.results
        ],
    }
    log.info(
        "webhook handled",
        extra={
            "source": source.value,
            "group_key": result.group.group_key,
            "alerts": len(result.alerts),
            "outcome": outcome,
            "notifications": len(report.results),
            # Why an escalation step paged nobody, when it did not.
            "acknowledged_by": result.acknowledged.by if result.acknowledged else None,
        },
    )
    # 503 makes Alertmanager retry; delivered targets are not paged twice (dedupe).
    return web.json_response(body, status=503 if report.needs_retry else 200)


async def _sentry(request: web.Request) -> web.Response:
    async def work(service: Service, deadline: float) -> web.Response:
        del deadline  # Sentry is answered at once; its delivery has its own deadline
        body = await _read_json_signed(request, service)
        resource = request.headers.get("Sentry-Hook-Resource")
        if resource is None and not service.dry_run:
            raise ClientError(
                400,
                "invalid_payload",
                "missing Sentry-Hook-Resource header "
                "(the legacy plugin posts to /webhooks/sentry/legacy/<token>)",
                "invalid",
            )
        group = sentry.parse(resource, body, service.config.sentry.issues)
        return await _accept_sentry(service, group)

    return await _handle(request, Source.SENTRY, work)


async def _read_json_signed(request: web.Request, service: Service) -> Any:
    secret = service.settings.sentry_client_secret
    if not secret and not service.dry_run:
        raise ClientError(
            401, "unauthorized", "SENTRY_CLIENT_SECRET is not configured", "unauthorized"
        )
    raw, body = await _read_json(request, service)
    if secret and not auth.sentry_signature_ok(
        raw, request.headers.get("Sentry-Hook-Signature"), secret
    ):
        raise ClientError(
            401, "unauthorized", "bad or missing Sentry-Hook-Signature", "unauthorized"
        )
    return body


async def _sentry_legacy(request: web.Request) -> web.Response:
    async def work(service: Service, deadline: float) -> web.Response:
        del deadline  # as for /webhooks/sentry
        expected = service.config.sentry.legacy_token
        if expected:
            if not auth.token_ok(request.match_info["token"], expected):
                raise ClientError(401, "unauthorized", "wrong token in URL", "unauthorized")
        elif not service.dry_run:
            raise ClientError(
                401, "unauthorized", "sentry.legacy_token is not configured", "unauthorized"
            )
        _, body = await _read_json(request, service)
        return await _accept_sentry(service, sentry.parse(None, body, service.config.sentry.issues))

    return await _handle(request, Source.SENTRY, work)


async def _accept_sentry(service: Service, group: AlertGroup | None) -> web.Response:
    """Sentry wants an answer within 1 s: forward to Alertmanager, or deliver in a tracked task."""
    if group is None:
        service.metrics.webhooks.labels(Source.SENTRY.value, "ignored").inc()
        return web.json_response({"status": "ignored"}, status=202)
    result = service.plan(group, recall=await service.recall(group))
    service.metrics.webhooks.labels(Source.SENTRY.value, "accepted").inc()
    am_url = service.settings.alertmanager_url
    if am_url and service.session is not None and not service.dry_run:
        alerts = postable_alerts(result, service.clock(), service.config.delivery.sentry_alert_ttl)
        try:
            await forward(service.session, am_url, alerts, SENTRY_FORWARD_TIMEOUT)
        except ForwardError as e:
            log.warning(
                "forwarding to Alertmanager failed; delivering directly",
                extra={"detail": str(e), "group_key": group.group_key},
            )
        else:
            log.info(
                "sentry event forwarded to Alertmanager",
                extra={"group_key": group.group_key, "alerts": len(alerts)},
            )
            return web.json_response({"status": "forwarded", "alerts": len(alerts)}, status=202)
    task = asyncio.create_task(_deliver_in_background(service, result))
    service.tasks.add(task)
    task.add_done_callback(service.tasks.discard)
    return web.json_response({"status": "accepted", "alerts": len(result.alerts)}, status=202)


async def _deliver_in_background(service: Service, result: Plan) -> None:
    """Nobody upstream retries a Sentry event the router delivers itself: each message is retried
    until `delivery.background_deadline` with no attempt cap (a vendor outage of a minute loses
    nothing), and the last line says whether it all went out or what was lost."""
    group_key = result.group.group_key
    try:
        report = await service.deliver(
            result, Background(service.config.delivery.background_deadline)
        )
    except asyncio.CancelledError:
        # Shutdown outlasted its drain; each message it cut short was logged and counted lost.
        # No traceback: a cancellation is not a bug.
        log.error(  # noqa: TRY400
            "sentry event delivery cut short by shutdown", extra={"group_key": group_key}
        )
        raise
    outcomes = [r.outcome.value for r in report.results]
    lost = [r.notification for r in report.results if r.outcome in (Outcome.FAILED, Outcome.RETRY)]
    if not lost:
        message = "sentry event delivered" if outcomes else "sentry event paged nobody"
        log.info(message, extra={"group_key": group_key, "outcomes": outcomes})
        return
    log.error(
        "sentry event lost" if len(lost) == len(outcomes) else "sentry event partly lost",
        extra={
            "group_key": group_key,
            "outcomes": outcomes,
            "lost": [f"{n.channel.value}:{n.recipient.name}" for n in lost],
        },
    )


async def _metrics(request: web.Request) -> web.Response:
    registry: CollectorRegistry = request.app[SERVICE].metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


async def _healthy(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "healthy"})


async def _ready(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if not service.ready:
        return web.json_response({"status": "shutting down"}, status=503)
    return web.json_response({"status": "ready", "config": service.config.path})


async def _drain(app: web.Application) -> None:
    """Shutdown waits for background deliveries (bounded by the delivery deadline)."""
    service = app[SERVICE]
    service.ready = False
    service.draining.set()
    # Background deliveries, and sends still out past their webhook's answer (never cut: the
    # vendor may have them).
    pending = {*service.tasks, *service.deliverer.outstanding}
    if pending:
        await asyncio.wait(pending, timeout=service.config.delivery.deadline + 1)
    # Still out: cut now, so each releases its claim (Alertmanager's retry sends it again).
    late = set(service.deliverer.outstanding)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=1.0)
