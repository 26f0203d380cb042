"""The figures as lines of text: min/median/max over the rounds, the load average, the bars."""

from __future__ import annotations

from collections.abc import Sequence

from bench import bars
from bench.phases import (
    CEILING,
    FAST_ROUTER_PLAIN_RELAY,
    RATIO,
    UVLOOP_GAIN,
    BurstReport,
    Soak,
)
from bench.services import ONE_LINE, STACKS, Service
from bench.stats import Figures, second_half_growth

MIB = 1024  # /proc reports kB (KiB)
_WIDTH = 23


def _row(label: str, *parts: str) -> str:
    return f"  {label:<{_WIDTH}} " + "  ".join(p for p in parts if p)


def throughput(figures: Figures, services: Sequence[Service]) -> list[str]:
    lines = []
    for s in services:
        f = s.name
        lines.append(
            _row(
                f,
                f"req/s {figures.spread(f, 'req/s').text('.1f')}",
                f"CPU {figures.spread(f, 'cpu').text('.2f', ' ms/webhook')}",
                f"p99 {figures.spread(f, 'p99').text('.1f', ' ms')}",
                figures.load(f, "req/s"),
            )
        )
    for stack, bar in zip(STACKS, (bars.PLAIN_RATIO, bars.SAME_STACK_RATIO), strict=True):
        ratio = figures.spread(RATIO, stack.name)
        router, relay, one_line = (
            next(s.name for s in services if s.stack == stack and s.kind == kind)
            for kind in ("router", "relay", ONE_LINE)
        )
        lines.append(
            f"  {router} / {relay}: {ratio.text('.3f')}  {figures.load(RATIO, stack.name)}  "
            f"{bar.check(ratio.median)}"
        )
        ceiling = figures.spread(CEILING, stack.name)
        lines.append(
            f"    ceiling, {one_line} / {relay}: {ceiling.text('.3f')}  "
            f"{figures.load(CEILING, stack.name)}  (the router with the relay's texts)"
        )
    for name in (UVLOOP_GAIN, FAST_ROUTER_PLAIN_RELAY):
        ratio = figures.spread(name, "req/s")
        lines.append(f"  {name}: {ratio.text('.3f')}  {figures.load(name, 'req/s')}")
    return lines


def latency(figures: Figures, services: Sequence[Service]) -> list[str]:
    lines = []
    for s in services:
        f = s.name
        p99 = figures.spread(f, "first p99")
        untraced = sum(figures.values(f, "untraced"))
        lines.append(
            _row(
                f,
                f"first vendor request p50 {figures.spread(f, 'first p50').text('.2f')}",
                f"p99 {p99.text('.2f', ' ms')}",
                figures.load(f, "first p99"),
                bars.FIRST_VENDOR_P99_MS.check(p99.median) if s.kind == "router" else "",
            )
        )
        lines.append(
            _row(
                "",
                f"answer p50 {figures.spread(f, 'answer p50').text('.2f')}",
                f"p99 {figures.spread(f, 'answer p99').text('.2f', ' ms')}",
                f"send lag p99 {figures.spread(f, 'send lag p99').text('.2f', ' ms')}",
                f"{untraced:.0f} webhooks with no vendor request traced" if untraced else "",
            )
        )
    return lines


def big_group(figures: Figures, services: Sequence[Service]) -> list[str]:
    lines = []
    for s in services:
        f = s.name
        e2e = figures.spread(f, "end to end")
        lines.append(
            _row(
                f,
                f"end to end {e2e.text('.1f', ' ms')}",
                figures.load(f, "end to end"),
                bars.BIG_GROUP_MS.check(e2e.median) if s.kind == "router" else "",
            )
        )
        lines.append(
            _row(
                "",
                f"answer {figures.spread(f, 'answer').text('.1f')}",
                f"first vendor {figures.spread(f, 'first vendor').text('.1f')}",
                f"last vendor {figures.spread(f, 'last vendor').text('.1f', ' ms')}",
            )
        )
        blocked = figures.spread(f, "loop blocked").text(".1f", " ms")
        lines.append(_row("", f"loop blocked (slowest /-/healthy meanwhile) {blocked}"))
    return lines


def burst(report: BurstReport, routers: Sequence[Service], size: int, deadline: float) -> list[str]:
    figures = report.figures
    lines = []

    def count(f: str, figure: str) -> str:
        return figures.spread(f, figure).text(".0f")

    for s in routers:
        f = s.name
        in_time = figures.values(f, "in deadline")
        duplicates = figures.values(f, "duplicates")
        met = None if not in_time else all(n == size for n in in_time) and not any(duplicates)
        lines.append(
            _row(
                f,
                f"answered within {deadline:g} s {count(f, 'in deadline')} of {size}",
                figures.load(f, "in deadline"),
                bars.verdict(bars.BURST, met),
            )
        )
        lines.append(
            _row(
                "",
                f"200 {count(f, '200')}",
                f"503 {count(f, '503')}",
                f"other HTTP {count(f, 'other HTTP')}",
                f"no answer {count(f, 'no answer')}",
            )
        )
        lines.append(
            _row(
                "",
                f"answer max {figures.spread(f, 'max').text('.0f')}",
                f"p99 {figures.spread(f, 'p99').text('.0f', ' ms')}",
                f"duplicate sends {count(f, 'duplicates')}",
            )
        )
        lines.append(
            _row(
                "",
                f"retried (not 200) {count(f, 'retried')}, of which 200 {count(f, 'retry 200')}",
                f"groups at every vendor after the retry {count(f, 'complete')} of {size}",
            )
        )
        lines.append(
            _row(
                "",
                f"CPU until the last answer: router {figures.spread(f, 'cpu share').text('.0%')}",
                f"fake vendors {figures.spread(f, 'vendor share').text('.0%')}",
                f"router log lines (warning+) {count(f, 'log lines')}",
            )
        )
    lines += [f"  note: {note}" for note in report.notes]
    return lines


def soak(result: Soak, router: Service, webhooks: int) -> list[str]:
    mib = [(done, kb / MIB) for done, kb in result.samples]
    growth, flat = second_half_growth(mib)
    end = mib[-1][1]
    per_10k = growth / (webhooks / 2) * 10_000
    met = end * 2**20 < bars.RSS_MB * 1e6 and flat
    curve = " ".join(f"{v:.1f}" for _, v in mib[::2])
    return [
        _row(router.name, f"RSS every 10% (0..100%, MiB): {curve}"),
        _row(
            "",
            f"RSS after {webhooks} webhooks {end:.1f} MiB",
            f"peak (VmHWM) {result.peak_kb / MIB:.1f} MiB",
            bars.verdict(bars.RSS, met),
        ),
        _row(
            "",
            f"second half: fitted growth {growth:+.2f} MiB ({per_10k:+.3f} MiB per 10k webhooks), "
            f"{'flat' if flat else 'GROWING'}",
        ),
        _row(
            "",
            f"{result.rate:.1f} req/s",
            f"CPU {result.cpu_ms:.2f} ms/webhook",
            f"load {result.load1:.2f}",
        ),
    ]
