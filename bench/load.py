"""The load generator: unique Alertmanager groups, sent closed loop, open loop or all at once."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import keys
from bench.stats import percentile

FIXTURE = (
    Path(__file__).resolve().parent.parent / "tests/fixtures/alertmanager-firing-critical.json"
)
_SEQ = "@SEQ@"
_JSON = {"Content-Type": "application/json"}
# A webhook the router has not answered in this time counts as an error (its deadline is 10 s).
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Payloads:
    """The fixture's critical group (or `alerts` copies of its alerts), new for every request.

    Each body gets its own groupKey, fingerprints and `service` label (bench/keys.py), so the
    router's dedupe store never recognises a send and every webhook costs four real vendor
    requests. The body is serialised once with a placeholder and the sequence number is spliced
    in, so making a body costs the load generator next to nothing, even a 4 MB one.
    """

    def __init__(self, numbers: Iterator[int], alerts: int = 0, fixture: Path = FIXTURE) -> None:
        group = json.loads(fixture.read_text(encoding="utf-8"))
        if alerts:
            group["alerts"] = _copies(group["alerts"], alerts)
        service = keys.service(keys.FIRST).replace(str(keys.FIRST), _SEQ)
        for index, alert in enumerate(group["alerts"]):
            alert["labels"]["service"] = service
            alert["fingerprint"] = f"{index:08x}{_SEQ}"
        group["groupLabels"]["service"] = service
        group["commonLabels"]["service"] = service
        group["groupKey"] = group["groupKey"].replace(
            f'service="{keys.SERVICE}"', f'service="{service}"'
        )
        if _SEQ not in group["groupKey"]:
            raise ValueError(f"{fixture}: groupKey no longer names service={keys.SERVICE}")
        self.alerts = len(group["alerts"])
        self._parts = json.dumps(group).split(_SEQ)
        self._numbers = numbers

    def next(self) -> tuple[str, bytes]:
        """A new webhook: its message key and body."""
        key = self.new_key()
        return key, self.body(key)

    def new_key(self) -> str:
        return str(next(self._numbers))

    def body(self, key: str) -> bytes:
        """The body of webhook `key` again (a retry, as Alertmanager would send it)."""
        return key.join(self._parts).encode()

    def sample_size(self) -> int:
        return len(self.body(str(keys.FIRST)))


def _copies(templates: list[dict[str, object]], count: int) -> list[dict[str, object]]:
    """`count` alerts made from the fixture's, each its own `instance` (so its own alert)."""
    alerts = []
    for i in range(count):
        alert = copy.deepcopy(templates[i % len(templates)])
        labels = alert["labels"]
        assert isinstance(labels, dict)
        labels["instance"] = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:8080"
        alerts.append(alert)
    return alerts


@dataclass
class PhaseResult:
    requests: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, 200 answers only
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[int, int]] = field(default_factory=list)  # (requests done, RSS kB)
    # Message key -> time.monotonic() just before the request was made (the fakes' clock).
    sent: dict[str, float] = field(default_factory=dict)
    lag: list[float] = field(default_factory=list)  # open loop: actual minus scheduled send

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


@dataclass(frozen=True)
class Answer:
    """One request of a burst: its HTTP status (None: no answer) and when it ended."""

    key: str
    status: int | None
    seconds: float
    error: str = ""


class Client:
    """Posts webhooks over a pool of kept-alive connections, counting every non-200 answer."""

    def __init__(self, session: aiohttp.ClientSession, payloads: Payloads) -> None:
        self.session = session
        self.payloads = payloads

    async def post(
        self,
        url: str,
        result: PhaseResult,
        key: str | None = None,
        payloads: Payloads | None = None,
    ) -> None:
        """One webhook (a new one, or `key` again); 200 answers add their latency."""
        payloads = payloads or self.payloads
        key, body = payloads.next() if key is None else (key, payloads.body(key))
        started = time.monotonic()
        result.sent[key] = started
        answer = await self._send(self.session, url, key, body, started)
        if answer.status == 200:
            result.latencies.append(answer.seconds)
        elif answer.status is None:
            result.errors[answer.error] += 1
        else:
            result.errors[f"HTTP {answer.status}: {answer.error}"] += 1

    @staticmethod
    async def _send(
        session: aiohttp.ClientSession, url: str, key: str, body: bytes, started: float
    ) -> Answer:
        try:
            async with session.post(
                url, data=body, headers=_JSON, timeout=REQUEST_TIMEOUT
            ) as response:
                text = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as e:
            return Answer(key, None, time.monotonic() - started, f"{type(e).__name__}: {e}"[:160])
        error = "" if status == 200 else text[:120].decode(errors="replace")
        return Answer(key, status, time.monotonic() - started, error)

    async def closed_loop(
        self,
        url: str,
        total: int,
        concurrency: int,
        sample: Callable[[], int] | None = None,
        samples: int = 10,
    ) -> PhaseResult:
        """`total` new webhooks, `concurrency` at a time, as fast as the server answers.

        With `sample`, calls it once before and after every 1/`samples` of the requests and keeps
        what it returns: the RSS curve of a soak.
        """
        result = PhaseResult(requests=total)
        marks = [math.ceil(total * k / samples) for k in range(1, samples + 1)]
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
        """New webhooks sent on a fixed schedule, `rate` per second, whatever the answers do.

        Latency counts from the actual send; how late each send was against the schedule is kept
        apart (`lag`), so a load generator that falls behind shows, and is not blamed on the server.
        """
        total = max(1, round(rate * duration))
        result = PhaseResult(requests=total)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic() + 0.01
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            result.lag.append(max(0.0, time.monotonic() - due))
            task = asyncio.create_task(self.post(url, result))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        result.elapsed = time.monotonic() - start
        return result

    async def burst(self, url: str, keys_: Iterable[str]) -> list[Answer]:
        """Every webhook of `keys_` at once, each on its own new connection, as Alertmanager
        sends new groups; each answer's time counts from the common start."""
        # Its own pool, unlimited, so no request waits for a connection on our side.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            bodies = [(key, self.payloads.body(key)) for key in keys_]
            now = time.monotonic()
            return await asyncio.gather(
                *(self._send(session, url, key, body, now) for key, body in bodies)
            )

    async def resend(self, url: str, keys_: Iterable[str], concurrency: int) -> PhaseResult:
        """Webhooks already sent, again (Alertmanager's retry of a 503), `concurrency` at a time."""
        pending = list(keys_)
        result = PhaseResult(requests=len(pending))

        async def worker() -> None:
            while pending:
                await self.post(url, result, key=pending.pop())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(pending)))))
        result.elapsed = time.perf_counter() - started
        return result
