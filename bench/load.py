"""The load generator: unique Alertmanager groups, closed-loop and open-loop phases."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

FIXTURE = (
    Path(__file__).resolve().parent.parent / "tests/fixtures/alertmanager-firing-critical.json"
)
_SEQ = "@SEQ@"
_JSON = {"Content-Type": "application/json"}
# A webhook the router has not answered in this time counts as an error (its deadline is 10 s).
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Payloads:
    """The fixture's group of 2 critical alerts, made new for every request.

    Each body gets its own groupKey, fingerprints and `service` label, so the router's dedupe store
    never recognises a send and every webhook costs four real vendor requests. The body is
    serialised once with a placeholder and the sequence number is spliced in, so making a body
    costs the load generator next to nothing.
    """

    def __init__(self, fixture: Path = FIXTURE) -> None:
        group = json.loads(fixture.read_text(encoding="utf-8"))
        service = f"{group['commonLabels']['service']}-{_SEQ}"
        for index, alert in enumerate(group["alerts"]):
            alert["labels"]["service"] = service
            alert["fingerprint"] = f"{alert['fingerprint'][:4]}{index}{_SEQ}"
        group["groupLabels"]["service"] = service
        group["commonLabels"]["service"] = service
        group["groupKey"] = group["groupKey"].replace(
            'service="payments-api"', f'service="{service}"'
        )
        if _SEQ not in group["groupKey"]:
            raise ValueError(f"{fixture}: groupKey no longer names service=payments-api")
        self.alerts = len(group["alerts"])
        self._parts = json.dumps(group).split(_SEQ)
        self._next = 0

    def next(self) -> bytes:
        self._next += 1
        return str(self._next).join(self._parts).encode()

    def sample_size(self) -> int:
        return len(str(10**6).join(self._parts).encode())


@dataclass
class PhaseResult:
    requests: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[int, int]] = field(default_factory=list)  # (requests done, RSS kB)
    send_span: float = 0.0  # open loop: first to last send, to show the schedule was kept

    def __add__(self, other: PhaseResult) -> PhaseResult:
        """Two runs of the same phase as one (samples and send span are not combined)."""
        return PhaseResult(
            requests=self.requests + other.requests,
            elapsed=self.elapsed + other.elapsed,
            latencies=self.latencies + other.latencies,
            errors=self.errors + other.errors,
        )

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


class Client:
    """Posts webhooks over a pool of kept-alive connections, counting every non-200 answer."""

    def __init__(self, session: aiohttp.ClientSession, payloads: Payloads) -> None:
        self.session = session
        self.payloads = payloads

    async def post(self, url: str, result: PhaseResult, since: float | None = None) -> None:
        """One webhook; latency counts from `since` (the intended send time) when given."""
        started = time.perf_counter() if since is None else since
        try:
            async with self.session.post(
                url, data=self.payloads.next(), headers=_JSON, timeout=REQUEST_TIMEOUT
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as e:
            result.errors[f"{type(e).__name__}: {e}"[:160]] += 1
            return
        if status != 200:
            result.errors[f"HTTP {status}: {body[:120].decode(errors='replace')}"] += 1
            return
        result.latencies.append(time.perf_counter() - started)

    async def closed_loop(
        self,
        url: str,
        total: int,
        concurrency: int,
        sample: Callable[[], int] | None = None,
    ) -> PhaseResult:
        """`total` webhooks, `concurrency` at a time, as fast as the server answers.

        With `sample`, calls it after every tenth of the requests (and once before) and keeps
        what it returns: the RSS curve of a soak.
        """
        result = PhaseResult(requests=total)
        marks = [math.ceil(total * k / 10) for k in range(1, 11)]
        if sample is not None:
            result.samples.append((0, sample()))
        issued = done = 0

        async def worker() -> None:
            nonlocal issued, done
            while issued < total:
                issued += 1
                await self.post(url, result)
                done += 1
                while sample is not None and marks and done >= marks[0]:
                    result.samples.append((marks.pop(0), sample()))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
        result.elapsed = time.perf_counter() - started
        return result

    async def open_loop(self, url: str, rate: float, duration: float) -> PhaseResult:
        """Webhooks sent on a fixed schedule, `rate` per second, whatever the answers do.

        Latency counts from each request's scheduled time, so a server (or a load generator) that
        falls behind shows up as latency instead of quietly lowering the rate.
        """
        total = max(1, round(rate * duration))
        result = PhaseResult(requests=total)
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.01
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.post(url, result, since=due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        result.send_span = time.perf_counter() - start
        if tasks:
            await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - start
        return result
