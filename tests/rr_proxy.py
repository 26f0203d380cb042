"""A round-robin HTTP reverse proxy on loopback, spreading requests as a Kubernetes Service does.

Every request goes to the next upstream in turn over a fresh connection (`force_close`), so
consecutive requests from one keep-alive client (Alertmanager) land on different replicas, as
kube-proxy spreads new connections. An upstream that refuses the connection (stopped, restarting)
is skipped for the next one, as a Service skips a pod that is not ready; if every upstream
refuses, the answer is 502. A failure after the request reached an upstream is not retried
elsewhere (it may have been acted on): 502 too. Every exchange is recorded for the test.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1 hop-by-hop headers, plus the framing ones aiohttp recomputes for each leg.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
UPSTREAM_TIMEOUT = 30.0  # seconds for one upstream exchange, well over any delivery deadline


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request through the proxy: where it went and what came back (status 502: nowhere)."""

    method: str
    path_qs: str
    body: bytes
    upstream: str | None  # the upstream base URL that answered, None if none did
    status: int
    started_at: float  # time.monotonic() when the request arrived
    refused_by: tuple[str, ...] = ()  # upstreams skipped because they refused the connection


def forwardable(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The headers minus hop-by-hop ones (and those the `Connection` header names)."""
    named = {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",")}
    dropped = HOP_BY_HOP | named
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)


class RoundRobinProxy:
    """Reverse proxy on 127.0.0.1 forwarding each request to the next live upstream in turn."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        """`upstreams`: base URLs such as ``http://127.0.0.1:9095`` (no trailing slash)."""
        if not upstreams:
            raise ValueError("at least one upstream")
        self.upstreams: tuple[str, ...] = tuple(u.rstrip("/") for u in upstreams)
        self.exchanges: list[Exchange] = []
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL of the proxy, e.g. ``http://127.0.0.1:40123``."""
        if self._url is None:
            raise RuntimeError("proxy not started")
        return self._url

    async def start(self) -> None:
        """Listen on a free loopback port."""
        if self._runner is not None:
            raise RuntimeError("proxy already started")
        # A fresh upstream connection per request; bodies passed through untouched.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=UPSTREAM_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            await self._session.close()
            raise
        host, port = runner.addresses[0][:2]
        self._runner, self._url = runner, f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop listening (in-flight requests finish first) and close the upstream session."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        """Start on enter."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on exit."""
        await self.close()

    def _order(self) -> list[str]:
        """Upstreams starting with this request's turn, then the others as fallbacks."""
        first = next(self._turn) % len(self.upstreams)
        return [
            self.upstreams[(first + i) % len(self.upstreams)] for i in range(len(self.upstreams))
        ]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        started = time.monotonic()
        body = await request.read()
        headers = forwardable(request.headers)
        refused: list[str] = []

        def record(upstream: str | None, status: int) -> None:
            self.exchanges.append(
                Exchange(
                    request.method,
                    request.path_qs,
                    body,
                    upstream,
                    status,
                    started,
                    tuple(refused),
                )
            )

        for upstream in self._order():
            try:
                async with self._session.request(
                    request.method,
                    upstream + request.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    payload = await answer.read()
                    response = web.Response(
                        status=answer.status,
                        reason=answer.reason,
                        body=payload,
                        headers=forwardable(answer.headers),
                    )
            except aiohttp.ClientConnectorError:
                refused.append(upstream)  # not listening: a Service skips it
                continue
            except (aiohttp.ClientError, TimeoutError) as e:
                record(upstream, 502)
                return web.json_response(
                    {"error": "bad_gateway", "detail": f"{upstream}: {type(e).__name__}"},
                    status=502,
                )
            record(upstream, response.status)
            return response
        record(None, 502)
        return web.json_response(
            {"error": "bad_gateway", "detail": "no upstream accepted the connection"}, status=502
        )
