"""Machinery shared by the loopback fake vendors: recording, scripted behaviours, lifecycle.

A fake is an aiohttp app on ``127.0.0.1:<random port>``. Every request is recorded before anything
else happens (tests count attempts, including the failed ones). A vendor handler then:

1. checks auth exactly as the vendor does (a failure consumes no scripted behaviour);
2. calls :meth:`FakeServer._intercept` with the request's destination key, which takes at most one
   scripted behaviour and either renders it (in the vendor's format), drops the connection, or
   delays and lets the request continue;
3. validates the payload and answers as the vendor would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

# -- recorded requests ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it. ``received_at`` is ``time.monotonic()``."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded``; a repeated key keeps its last."""
        return dict(parse_qsl(self.body.decode(errors="replace"), keep_blank_values=True))

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (``headers`` keeps the client's spelling)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


# -- behaviours -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimited:
    """HTTP 429 with the vendor's own headers and body."""

    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")


@dataclass(frozen=True, slots=True)
class ServerError:
    """A 5xx answer with the vendor's own body."""

    status: int = 500

    def __post_init__(self) -> None:
        if not 500 <= self.status <= 599:
            raise ValueError(f"ServerError status must be 5xx, got {self.status}")


@dataclass(frozen=True, slots=True)
class Reject:
    """A permanent vendor error: a Slack error string, a Twilio error code, a SendGrid status.

    ``status`` overrides the HTTP status the vendor module would pick for ``error``.
    """

    error: str | int
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """Wait ``seconds`` before answering normally: meant to outlast the client's deadline."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")


@dataclass(frozen=True, slots=True)
class Slow:
    """Wait ``seconds`` before answering normally: slow, but inside the client's deadline."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the TCP connection without answering."""


Failure: TypeAlias = RateLimited | ServerError | Reject
Behaviour: TypeAlias = Failure | Hang | Slow | Drop

# -- the server -------------------------------------------------------------------------------

_RECORDED = web.RequestKey("recorded", RecordedRequest)
_Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _record(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Record every request, unknown paths and oversized bodies included, before handling it."""
    fake = request.app[_FAKE]
    too_large = False
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's own cap (client_max_size) was hit: the body is not kept.
        body, too_large = b"", True
    recorded = RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=dict(request.headers),
        body=body,
        received_at=time.monotonic(),
    )
    fake._requests.append(recorded)
    fake._arrived.set()
    request[_RECORDED] = recorded
    if too_large:
        return fake._payload_too_large()
    return await handler(request)


class FakeServer:
    """Base of every fake: lifecycle, the request log and the behaviour queues.

    Subclasses provide :meth:`_routes` and, where a vendor enforces a size cap,
    :attr:`_client_max_size` and :meth:`_payload_too_large`.
    """

    # aiohttp rejects bodies above this before any handler runs (its default is 1 MiB).
    _client_max_size: int = 16 * 1024 * 1024

    def __init__(self) -> None:
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._queue_for: dict[str, deque[Behaviour]] = {}
        self._always: Behaviour | None = None
        self._always_for: dict[str, Behaviour] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closing = asyncio.Event()  # set by close(): wakes requests delayed by Hang/Slow
        self._arrived = asyncio.Event()  # set on every recorded request
        self._reporting: set[asyncio.Task[None]] = set()  # call-backs on their way to the client
        self._reports_open = asyncio.Event()  # cleared by hold_reports()
        self._reports_open.set()

    # -- to override --------------------------------------------------------------------------

    def _routes(self) -> Iterable[web.RouteDef]:
        raise NotImplementedError

    def _payload_too_large(self) -> web.StreamResponse:
        raise web.HTTPRequestEntityTooLarge(
            max_size=self._client_max_size, actual_size=self._client_max_size + 1
        )

    def _check_behaviour(self, behaviour: Behaviour) -> None:
        """Fail at scripting time for a behaviour this vendor cannot render."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._closing.clear()  # a closed fake may be started again
        app = web.Application(middlewares=[_record], client_max_size=self._client_max_size)
        app[_FAKE] = self
        app.add_routes(self._routes())
        # access_log=None: the suite logs nothing per request. shutdown_timeout is a backstop;
        # delayed handlers are woken by close() and do not need it.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner, self._url = runner, f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop the server; requests still delayed by Hang/Slow are dropped, not waited for, and
        so are call-backs not yet sent."""
        self._closing.set()
        for task in list(self._reporting):
            task.cancel()
        if self._reporting:
            await asyncio.gather(*self._reporting, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43123`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url

    # -- calling the client back (delivery reports) ---------------------------------------------

    def _report_later(self, report: Awaitable[None]) -> None:
        """Send a call-back after this answer, as the vendor does, without holding the answer."""
        task = asyncio.ensure_future(self._when_released(report))
        self._reporting.add(task)
        task.add_done_callback(self._reporting.discard)

    async def _when_released(self, report: Awaitable[None]) -> None:
        await self._reports_open.wait()
        await report

    def hold_reports(self) -> None:
        """Keep delivery reports back until `release_reports`: a vendor reports a call's end
        after it rang out, long after the client moved on; a test makes that order certain."""
        self._reports_open.clear()

    def release_reports(self) -> None:
        self._reports_open.set()

    @staticmethod
    def loopback(url: str) -> bool:
        """Call-backs go only to this machine: a test never sends traffic anywhere else."""
        return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")

    # -- the request log ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        return list(self._requests)

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        """The requests whose path starts with ``path_prefix``."""
        return [r for r in self._requests if r.path.startswith(path_prefix)]

    def clear_requests(self) -> None:
        self._requests.clear()

    async def wait_for_requests(self, count: int = 1) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests have arrived; bound it with asyncio.timeout."""
        while len(self._requests) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.requests

    # -- scripting ----------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per incoming request (FIFO) whatever its destination."""
        for b in behaviours:
            self._check_behaviour(b)
        self._queue.extend(behaviours)

    def script_for(self, key: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for one destination only; they take precedence over :meth:`script`."""
        for b in behaviours:
            self._check_behaviour(b)
        self._queue_for.setdefault(key, deque()).extend(behaviours)

    def always(self, behaviour: Behaviour | None, *, key: str | None = None) -> None:
        """Apply ``behaviour`` to every request (for one destination if ``key`` is given) once
        the queues are empty; ``None`` removes it."""
        if behaviour is not None:
            self._check_behaviour(behaviour)
        if key is None:
            self._always = behaviour
        elif behaviour is None:
            self._always_for.pop(key, None)
        else:
            self._always_for[key] = behaviour

    def reset(self) -> None:
        """Forget every scripted and standing behaviour (the request log is kept)."""
        self._queue.clear()
        self._queue_for.clear()
        self._always = None
        self._always_for.clear()

    @property
    def pending(self) -> int:
        """How many queued behaviours have not been consumed yet."""
        return len(self._queue) + sum(len(q) for q in self._queue_for.values())

    def _take(self, key: str | None) -> Behaviour | None:
        # Most specific first: this destination's queue, the shared queue, then standing ones.
        if key is not None and (queue := self._queue_for.get(key)):
            return queue.popleft()
        if self._queue:
            return self._queue.popleft()
        if key is not None and key in self._always_for:
            return self._always_for[key]
        return self._always

    async def _intercept(
        self,
        request: web.Request,
        key: str | None,
        render: Callable[[Failure], web.StreamResponse],
    ) -> web.StreamResponse | None:
        """Apply the next behaviour for ``key``. ``None`` means: carry on and answer normally."""
        behaviour = self._take(key)
        match behaviour:
            case None:
                return None
            case Hang(seconds) | Slow(seconds):
                if await self._wait(seconds):
                    return None
                return self._drop(request)  # the fake is closing
            case Drop():
                return self._drop(request)
            case RateLimited() | ServerError() | Reject():
                return render(behaviour)

    async def _wait(self, seconds: float) -> bool:
        """Sleep, unless close() is called first. True if the full time elapsed."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return True
        return False

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        """Close the connection; aiohttp then fails to write the returned response and treats it
        as a client that went away (no log, no retry), so the client sees a disconnect."""
        if request.transport is not None:
            request.transport.close()
        return web.Response()

    @staticmethod
    def _recorded(request: web.Request) -> RecordedRequest:
        return request[_RECORDED]


# Typed app state holding the fake, for the module-level middleware (defined after the class).
_FAKE = web.AppKey("fake", FakeServer)
