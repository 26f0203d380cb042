"""`python -m bench` options: the full run's sizes, `--quick`'s, and each one overridable."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    rounds: int  # interleaved rounds of throughput, latency and the large group
    requests: int  # per service per round, closed loop
    concurrency: int
    latency_seconds: float  # per service per round, open loop
    big_alerts: int
    burst: int
    burst_rounds: int
    soak: int
    warmup: int
    timeout: float
    redis: bool = False


def parse_args(argv: Sequence[str] | None, description: str) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=description)
    parser.add_argument("--quick", action="store_true", help="a ~1 minute run with small counts")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (5; quick 3)")
    parser.add_argument(
        "--requests", type=int, help="requests per service per round (3000; quick 300)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="closed-loop concurrency (64)")
    parser.add_argument(
        "--latency-seconds", type=float, help="open loop per service per round (4; quick 1.5)"
    )
    parser.add_argument("--big-alerts", type=int, help="alerts in the large group (5000)")
    parser.add_argument("--burst", type=int, help="new groups posted at once (1000; quick 200)")
    parser.add_argument("--burst-rounds", type=int, help="bursts per router stack (3; quick 1)")
    parser.add_argument("--soak", type=int, help="router soak requests (100000; quick 2000)")
    parser.add_argument("--warmup", type=int, help="warm-up requests per service (1000; quick 200)")
    parser.add_argument("--timeout", type=float, default=3600, help="abort after this many s")
    parser.add_argument(
        "--redis", action="store_true", help="the routers' store in a local redis-server"
    )
    args = parser.parse_args(argv)

    def pick(value: T | None, full: T, quick: T) -> T:
        return value if value is not None else quick if args.quick else full

    options = Options(
        rounds=pick(args.rounds, 5, 3),
        requests=pick(args.requests, 3_000, 300),
        concurrency=args.concurrency,
        latency_seconds=pick(args.latency_seconds, 4.0, 1.5),
        big_alerts=pick(args.big_alerts, 5_000, 5_000),
        burst=pick(args.burst, 1_000, 200),
        burst_rounds=pick(args.burst_rounds, 3, 1),
        soak=pick(args.soak, 100_000, 2_000),
        warmup=pick(args.warmup, 1_000, 200),
        timeout=args.timeout,
        redis=args.redis,
    )
    if min(options.rounds, options.requests, options.concurrency, options.big_alerts) < 1:
        parser.error("--rounds, --requests, --concurrency and --big-alerts must be at least 1")
    if min(options.burst, options.burst_rounds) < 0 or options.warmup < 0:
        parser.error("--burst, --burst-rounds and --warmup must be at least 0")
    if options.soak < 20:
        parser.error("--soak must be at least 20 (its RSS is sampled every 5%)")
    if options.latency_seconds <= 0:
        parser.error("--latency-seconds must be more than 0")
    return options
