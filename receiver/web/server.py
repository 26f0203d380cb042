"""Run the app until SIGTERM: reload on SIGHUP, then shut down gracefully.

On SIGTERM (or SIGINT) `/-/ready` answers 503 at once while the service keeps serving for
`shutdown_delay` seconds, so Kubernetes takes the pod out of its Service before it stops
listening; then in-flight requests finish (up to the delivery deadline), background deliveries
are drained, and the process exits 0.

What a client can hold of the service is bounded (`ConnectionLimits`): how long a connection may
sit without a complete request, how long a body may take, how many connections are open, and how
large headers are. Trouble of that kind is answered in JSON and logged once per `LOG_INTERVAL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import json
import logging
import os
import resource
import signal
import time
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from receiver.web.app import BODY_TIMEOUT, BODY_TIMEOUT_KEY, HANDLER_ARGS, vendor_connections
from receiver.web.logs import Throttle
from receiver.web.memory import pin_mmap_threshold
from receiver.web.reload import Reloader
from receiver.web.service import SERVICE, Service

log = logging.getLogger("receiver.server")

# One log line per kind of connection trouble per interval, however many sockets cause it.
LOG_INTERVAL = 60.0
# Connections the kernel may queue before they are accepted (aiohttp's default).
BACKLOG = 128
# Descriptors kept for everything but inbound connections and the vendor connection pool:
# Redis, Alertmanager, files. The `BACKLOG` accepted in one go before any is looked at are kept
# apart.
OTHER_FDS = 44
# A new connection that has not sent a whole request yet is not closed to make room for another
# until it has had this long: in a burst, hundreds are accepted before the loop reads any of
# them, and each is a webhook on its way (a slow-headers client is cut by the idle timeout).
FRESH_GRACE = 2.0
# Young generation, middle, oldest (Python's defaults: 700, 10, 10).
GC_THRESHOLDS = (50_000, 50, 1_000)
# Errors of accept() when the process or system is out of descriptors or memory.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """What one client can hold of the service; README "HTTP endpoints" explains each."""

    # A connection with no request in progress is closed after this: from the connection (or the
    # previous answer) until a request's headers are complete, so dripped headers are cut too.
    # Alertmanager, Sentry, Slack and Twilio send their headers in one packet.
    idle_timeout: float = 15.0
    # From a request's headers to the last byte of its body (answered 408 after).
    body_timeout: float = BODY_TIMEOUT
    # Open connections; one more closes the longest-open idle one, or is refused if none is idle.
    # Lowered at start to fit the descriptor limit (`ulimit -n` minus the backlog and fd_reserve).
    max_connections: int = 512
    max_line_size: int = 8190  # bytes of the request line (aiohttp's default)
    max_field_size: int = 8190  # bytes of one header, name and value (aiohttp's default)
    max_headers: int = 100  # header lines per request
    # After answering without reading a body, how long its rest is read and thrown away so the
    # answer is not lost to a reset; then the connection closes. Bodies are never decompressed.
    lingering_time: float = 2.0

    def protocol_args(self) -> dict[str, Any]:
        """Keyword arguments of aiohttp's per-connection RequestHandler."""
        return {
            **HANDLER_ARGS,
            "keepalive_timeout": self.idle_timeout,
            "max_line_size": self.max_line_size,
            "max_field_size": self.max_field_size,
            "max_headers": self.max_headers,
            "lingering_time": self.lingering_time,
            # Access logs are off (they would print the legacy Sentry token in paths).
            "access_log": None,
        }


class _Guard:
    """The connection cap. At the cap a new connection closes the longest-open idle connection
    (as nginx reuses keep-alive connections when it runs short; one that never sent a request only
    after FRESH_GRACE); with none, every slot holds a request in progress or on its way (each
    bounded by the body timeout and the delivery deadline), and the newcomer is answered 503 and
    closed: an answer the sender retries, never a silent close. So idle or half-sent connections
    can never crowd out a webhook, and the process never runs out of descriptors (accept()
    failing in a loop)."""

    def __init__(self, cap: int, throttle: Throttle) -> None:
        self.cap = cap
        self.throttle = throttle
        self.open: dict[_Connection, None] = {}  # insertion order: longest-open first

    def admit(self, connection: _Connection) -> bool:
        if len(self.open) >= self.cap:
            now = time.monotonic()
            idle = next((c for c in self.open if c.evictable(now)), None)
            if idle is None:
                self.throttle.warn("connection refused: every connection is busy", cap=self.cap)
                return False
            self.throttle.warn("idle connection closed to make room", cap=self.cap)
            del self.open[idle]
            idle.force_close()
        self.open[connection] = None
        return True

    def release(self, connection: _Connection) -> None:
        self.open.pop(connection, None)


_BUSY = json.dumps(
    {"error": "too_many_connections", "detail": "every connection is busy; try again"}
).encode()
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s"
) % (len(_BUSY), _BUSY)


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, counted against the cap, and answering what it cannot parse
    in JSON with one log line per interval instead of a plain-text page and a traceback each."""

    __slots__ = ("_admitted", "_guard", "_opened")

    def __init__(self, manager: web.Server, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._admitted = False
        self._opened = time.monotonic()

    @property
    def idle(self) -> bool:
        """Waiting for a (complete) request: aiohttp's own test before a keep-alive close."""
        return self._waiter is not None and not self._waiter.done()

    def evictable(self, now: float) -> bool:
        """Idle between requests, or idle since it opened for longer than FRESH_GRACE."""
        served = self._request_count > 0
        return self.idle and (served or now - self._opened >= FRESH_GRACE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(self):
            # A stream transport (uvloop's do not derive from asyncio.Transport).
            cast(asyncio.WriteTransport, transport).write(_BUSY_RESPONSE)
            transport.close()  # after the write; aiohttp never sees this connection
            return
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.release(self)
        if self._admitted:
            super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp does: half an answer is out, the connection is broken.
            raise ConnectionError("response already started; cannot send an error")
        if isinstance(exc, ConnectionError):
            # The client went away mid-request (say, during its body): nothing to answer.
            self.log_debug("client disconnected", exc_info=exc)
            error, detail = "disconnected", "the client closed the connection"
        elif status == 500:
            self.log_exception("Error handling request", exc_info=exc)  # a bug: keep it all
            error, detail = "internal_error", "the router failed on this request; it is logged"
        elif status >= 500:  # 504: a TimeoutError escaped a handler
            error, detail = "timeout", "the router timed out on this request"
        else:
            status, error, detail = _unparseable(exc, self.max_field_size, self.max_headers)
            self._guard.throttle.warn(
                "unparseable requests refused",
                status=status,
                error=error,
                reason=type(exc).__name__,
            )
        response = web.json_response({"error": error, "detail": detail}, status=status)
        response.headers["X-Request-Id"] = os.urandom(8).hex()
        response.force_close()
        return response


def _unparseable(
    exc: BaseException | None, max_field_size: int, max_headers: int
) -> tuple[int, str, str]:
    """Status, error and detail for a request aiohttp's parser refused."""
    if isinstance(exc, LineTooLong):
        detail = f"the request line or a header is over {max_field_size} bytes"
        return 431, "header_too_large", detail
    if isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message:
        return 431, "too_many_headers", f"more than {max_headers} header lines"
    return 400, "bad_request", "not a valid HTTP/1.1 request"


class _Server(web.Server):
    """aiohttp's server, making `_Connection`s."""

    def __init__(self, *args: Any, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, self._guard, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """AppRunner whose server is a `_Server` with the limits' protocol settings."""

    def __init__(
        self, app: web.Application, guard: _Guard, limits: ConnectionLimits, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._guard = guard
        self._limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts and freezes the app
        return _Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            guard=self._guard,
            **self._limits.protocol_args(),
        )


def fd_reserve(max_in_flight: int) -> int:
    """Descriptors kept for everything but inbound connections: the vendor pool, which grows
    with `delivery.max_in_flight` (web.app.vendor_connections), and OTHER_FDS."""
    return vendor_connections(max_in_flight) + OTHER_FDS


def connection_cap(wanted: int, reserve: int, backlog: int = BACKLOG) -> int:
    """`wanted`, lowered if the descriptor limit cannot hold that many connections beside the
    `reserve` (fd_reserve) and the backlog."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - backlog - reserve:
        return wanted
    cap = max(1, soft - backlog - reserve)
    log.warning(
        "connection cap lowered to fit the descriptor limit (raise `ulimit -n`)",
        extra={"wanted": wanted, "cap": cap, "nofile": soft},
    )
    return cap


async def start(
    app: web.Application,
    host: str,
    port: int,
    limits: ConnectionLimits = ConnectionLimits(),
    *,
    shutdown_timeout: float = 60.0,
) -> web.AppRunner:
    """Listen on host:port with `limits`; `runner.cleanup()` stops. Port 0 picks a free port
    (`runner.addresses[0][1]`)."""
    app[BODY_TIMEOUT_KEY] = limits.body_timeout
    reserve = fd_reserve(app[SERVICE].config.delivery.max_in_flight)
    guard = _Guard(connection_cap(limits.max_connections, reserve), Throttle(log, LOG_INTERVAL))
    runner = _Runner(app, guard, limits, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=BACKLOG)
    await site.start()
    return runner


def _quiet_accept_errors(throttle: Throttle) -> Any:
    """A loop exception handler: accept() out of descriptors, logged once per interval (asyncio
    logs each failure with a traceback, and retries every second)."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES:
            throttle.warn("cannot accept connections", error=str(exc))
            return
        loop.default_exception_handler(context)

    return handle


async def serve(
    app: web.Application,
    service: Service,
    host: str,
    port: int,
    *,
    reloader: Reloader | None,
    reload_interval: float,
    shutdown_delay: float,
    limits: ConnectionLimits = ConnectionLimits(),
) -> None:
    grace = service.config.delivery.deadline + 1
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_accept_errors(Throttle(log, LOG_INTERVAL)))
    runner = await start(app, host, port, limits, shutdown_timeout=grace)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
        if reload_interval > 0:
            watcher = asyncio.create_task(reloader.watch(reload_interval))
    # Everything allocated at start-up lives for the process: keep it out of the collector's
    # full passes, which otherwise pause the loop for tens of milliseconds under load.
    gc.freeze()
    # A young-generation pass every 50,000 allocations, not 700: a webhook allocates thousands
    # of short-lived objects, and the default passes cost ~10% of the router's CPU per webhook
    # in `python -m bench` (1.91 ms with these, 2.12 ms with the defaults; median of 8).
    gc.set_threshold(*GC_THRESHOLDS)
    pinned = pin_mmap_threshold()
    log.info(
        "listening",
        extra={
            "address": f"{host}:{port}",
            "dry_run": service.dry_run,
            "mmap_threshold_pinned": pinned,
            "limits": dataclasses.asdict(limits),
        },
    )
    try:
        await stop.wait()
        service.ready = False
        log.info("shutting down", extra={"delay": shutdown_delay, "grace": grace})
        await asyncio.sleep(shutdown_delay)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await watcher
                except Exception:
                    # The watcher catches everything itself; should it still have died, the
                    # drain below must happen all the same, and the exit stay 0.
                    log.exception("the routing file watcher had failed")
        # Stops listening, lets in-flight requests finish, drains background deliveries.
        await runner.cleanup()
    log.info("stopped")
