"""The measurements, interleaved: each round visits every service in turn, so a change in the
machine's load (other engineers' test runs) falls on all of them alike, not on whichever ran last.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from bench.load import Answer, Client, Payloads, PhaseResult
from bench.meter import FAKE, FAN_OUT, Meter
from bench.options import Options
from bench.services import STACKS, Service, Stack
from bench.stats import Figures, complete, duplicate_sends, percentile


@dataclass
class Bench:
    meter: Meter
    client: Client
    services: list[Service]  # router, relay, router, relay: one pair per stack
    options: Options
    # The router with one-line texts on each stack: in the throughput rounds only.
    one_line: list[Service]

    def pair(self, stack: Stack) -> tuple[Service, Service]:
        router, relay = (s for s in self.services if s.stack == stack)
        return router, relay

    @property
    def routers(self) -> list[Service]:
        return [s for s in self.services if s.kind == "router"]


def order(services: Sequence[Service], round_: int) -> list[Service]:
    """A B C D, then D C B A: each router stays next to its relay, and no service always goes
    first (after a pause) or last."""
    return list(services) if round_ % 2 == 0 else list(reversed(services))


def answered_200(result: PhaseResult) -> int:
    return len(result.latencies)


# Subjects of figures that compare services rather than describe one.
RATIO = "ratio"
UVLOOP_GAIN = "router on uvloop / router on asyncio"
# The first comparison read the other way: the router on its fastest stack against the
# fixed reference, the relay on plain asyncio.
FAST_ROUTER_PLAIN_RELAY = "router on uvloop / relay on asyncio"
# The ceiling rendering leaves: the router with the relay's texts against the relay, per stack.
CEILING = "ceiling"


async def throughput(bench: Bench) -> Figures:
    """Closed loop at the set concurrency: req/s, router CPU per webhook, ratios per round."""
    figures = Figures()
    o = bench.options
    for r in range(o.rounds):
        rates: dict[str, tuple[float, float]] = {}
        for service in order([*bench.services, *bench.one_line], r):
            result, used, record = await bench.meter.phase(
                f"round {r + 1}/{o.rounds}: peak {service.name}",
                service,
                bench.client.closed_loop(service.url, o.requests, o.concurrency),
                answered=answered_200,
            )
            bench.meter.check_answers(f"peak {service.name}", result)
            name, load = service.name, used.load1
            figures.add(name, "req/s", result.rate, load)
            figures.add(name, "cpu", used.ms_per_webhook(service.child.name, result.requests), load)
            figures.add(name, "p99", result.percentile_ms(0.99), load)
            figures.add(name, "duplicates", duplicate_sends(record.sends), load)
            rates[name] = (result.rate, load)
        for stack, one_line in zip(STACKS, bench.one_line, strict=True):
            router, relay = (rates[s.name] for s in bench.pair(stack))
            figures.add(RATIO, stack.name, router[0] / relay[0], max(router[1], relay[1]))
            ceiling = rates[one_line.name]
            figures.add(CEILING, stack.name, ceiling[0] / relay[0], max(ceiling[1], relay[1]))
        plain, fast = (rates[r.name] for r in bench.routers)
        figures.add(UVLOOP_GAIN, "req/s", fast[0] / plain[0], max(plain[1], fast[1]))
        reference = rates[bench.pair(STACKS[0])[1].name]
        figures.add(
            FAST_ROUTER_PLAIN_RELAY, "req/s", fast[0] / reference[0], max(fast[1], reference[1])
        )
    return figures


async def latency(bench: Bench, rate: float) -> Figures:
    """Open loop at `rate`: from each send to the first vendor request it caused, and to the
    answer. The fakes stamp arrivals with time.monotonic(), the same clock as the sends."""
    figures = Figures()
    o = bench.options
    for r in range(o.rounds):
        for service in order(bench.services, r):
            result, used, record = await bench.meter.phase(
                f"round {r + 1}/{o.rounds}: latency {service.name}",
                service,
                bench.client.open_loop(service.url, rate, o.latency_seconds),
                answered=answered_200,
            )
            bench.meter.check_answers(f"latency {service.name}", result)
            first = [record.first[k] - t for k, t in result.sent.items() if k in record.first]
            name, load = service.name, used.load1
            figures.add(name, "first p50", percentile(first, 0.5) * 1000, load)
            figures.add(name, "first p99", percentile(first, 0.99) * 1000, load)
            figures.add(name, "answer p50", result.percentile_ms(0.5), load)
            figures.add(name, "answer p99", result.percentile_ms(0.99), load)
            figures.add(name, "send lag p99", percentile(result.lag, 0.99) * 1000, load)
            figures.add(name, "untraced", len(result.sent) - len(first), load)
    return figures


# How often the large group's run probes the service's /-/healthy: its slowest answer is how long
# the event loop was blocked (nothing else is served meanwhile).
PROBE_INTERVAL = 0.01


async def _probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    worst = 0.0
    while not stop.is_set():
        started = time.monotonic()
        async with session.get(url) as response:
            await response.read()
        worst = max(worst, time.monotonic() - started)
        await asyncio.sleep(PROBE_INTERVAL)
    return worst


async def _one_big(bench: Bench, service: Service, payloads: Payloads) -> tuple[PhaseResult, float]:
    result = PhaseResult(requests=1)
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(bench.client.session, service.health, stop))
    try:
        await bench.client.post(service.url, result, payloads=payloads)
    finally:
        stop.set()
        stalled = await probe
    # A service may answer before its last vendor request; wait until the vendors are quiet.
    await bench.meter.quiet(settle=0.2, limit=15)
    return result, stalled


async def big_group(bench: Bench, payloads: Payloads) -> Figures:
    """One webhook of `payloads.alerts` alerts per service per round: from the send to the
    answer, to the first and to the last vendor request; and the longest /-/healthy answer."""
    figures = Figures()
    o = bench.options
    for r in range(o.rounds):
        for service in order(bench.services, r):
            (result, stalled), used, record = await bench.meter.phase(
                f"round {r + 1}/{o.rounds}: {payloads.alerts}-alert group {service.name}",
                service,
                _one_big(bench, service, payloads),
                answered=lambda outcome: answered_200(outcome[0]),
            )
            bench.meter.check_answers(f"large group {service.name}", result)
            [(key, sent)] = result.sent.items()
            answer = result.latencies[0] * 1000 if result.latencies else float("nan")
            first = (record.first.get(key, float("nan")) - sent) * 1000
            last = (record.last.get(key, float("nan")) - sent) * 1000
            name, load = service.name, used.load1
            figures.add(name, "answer", answer, load)
            figures.add(name, "first vendor", first, load)
            figures.add(name, "last vendor", last, load)
            figures.add(name, "end to end", max(answer, last), load)
            figures.add(name, "loop blocked", stalled * 1000, load)
    return figures


@dataclass
class BurstOutcome:
    answers: list[Answer]
    retried: PhaseResult
    # CPU share (1.0 = one CPU) of the router and of the fake vendors from the burst's start to
    # its last answer: a router busy at 100% while the vendors idle is stuck in its own work.
    router_cpu: float
    vendor_cpu: float


@dataclass
class BurstReport:
    figures: Figures = field(default_factory=Figures)
    notes: list[str] = field(default_factory=list)


async def _burst_once(bench: Bench, service: Service, deadline: float) -> BurstOutcome:
    payloads = bench.client.payloads
    keys = [payloads.new_key() for _ in range(bench.options.burst)]
    fake = bench.meter.child(FAKE)
    cpu = service.child.cpu_seconds(), fake.cpu_seconds()
    started = time.monotonic()
    answers = await bench.client.burst(service.url, keys)
    wall = time.monotonic() - started
    router_cpu = (service.child.cpu_seconds() - cpu[0]) / wall
    vendor_cpu = (fake.cpu_seconds() - cpu[1]) / wall
    # Whatever the router still sends for groups it answered, before the retry goes out.
    await bench.meter.quiet(settle=1.0, limit=deadline + 10)
    shed = [a.key for a in answers if a.status != 200]
    retried = await bench.client.resend(service.url, shed, bench.options.concurrency)
    await bench.meter.quiet(settle=1.0, limit=deadline + 10)
    return BurstOutcome(answers, retried, router_cpu, vendor_cpu)


async def burst(bench: Bench, deadline: float) -> BurstReport:
    """`--burst` new critical groups at once to each router, `--burst-rounds` times; then every
    one not answered 200 is sent once more, as Alertmanager would retry it."""
    report = BurstReport()
    o = bench.options
    for r in range(o.burst_rounds):
        for service in order(bench.routers, r):
            logged = service.child.stderr_lines()
            outcome, used, record = await bench.meter.phase(
                f"burst {r + 1}/{o.burst_rounds}: {o.burst} groups at once to {service.name}",
                service,
                _burst_once(bench, service, deadline),
            )
            answers = outcome.answers
            http = [a.seconds * 1000 for a in answers if a.status is not None]
            statuses = Counter(a.status for a in answers)
            name, load = service.name, used.load1
            add = report.figures.add
            add(name, "in deadline", sum(ms <= deadline * 1000 for ms in http), load)
            add(name, "200", statuses[200], load)
            add(name, "503", statuses[503], load)
            add(name, "other HTTP", len(http) - statuses[200] - statuses[503], load)
            add(name, "no answer", statuses[None], load)
            add(name, "max", max(http, default=float("nan")), load)
            add(name, "p99", percentile(http, 0.99), load)
            add(name, "duplicates", duplicate_sends(record.sends), load)
            add(name, "retried", outcome.retried.requests, load)
            add(name, "retry 200", len(outcome.retried.latencies), load)
            add(name, "complete", len(complete(record.sends, FAN_OUT)), load)
            add(name, "log lines", service.child.stderr_lines() - logged, load)
            add(name, "cpu share", outcome.router_cpu, load)
            add(name, "vendor share", outcome.vendor_cpu, load)
            add(name, "untraced", sum(record.unkeyed.values()), load)
            errors = Counter(a.error[:100] for a in answers if a.status != 200)
            for error, count in errors.most_common(2):
                report.notes.append(f"{name} round {r + 1}: {count} x {error or 'empty body'}")
    return report


@dataclass(frozen=True)
class Soak:
    samples: list[tuple[int, int]]  # (webhooks done, RSS kB)
    rate: float
    cpu_ms: float
    load1: float
    peak_kb: int


async def soak(bench: Bench, router: Service) -> Soak:
    """The router alone for `--soak` webhooks, its RSS sampled every 5%."""
    o = bench.options
    result, used, _ = await bench.meter.phase(
        f"soak {router.name}: {o.soak} webhooks",
        router,
        bench.client.closed_loop(
            router.url,
            o.soak,
            o.concurrency,
            sample=lambda: router.child.status_kb("VmRSS"),
            samples=20,
        ),
        keyed=False,
        answered=answered_200,
    )
    bench.meter.check_answers(f"soak {router.name}", result)
    return Soak(
        result.samples,
        result.rate,
        used.ms_per_webhook(router.child.name, result.requests),
        used.load1,
        router.child.status_kb("VmHWM"),
    )
