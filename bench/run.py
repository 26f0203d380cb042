"""Benchmark: oncall-router against a minimal aiohttp relay, both fanning out to fake vendors.

    python -m bench [--quick] [--rounds N] [--requests N] [--burst N] [--soak N] ...

Processes: the fake vendors; the router (`python -m receiver serve`, real senders, not dry-run) and
the relay (bench/relay.py) on plain asyncio, and both again on uvloop (the relay with orjson too);
the router with the relay's one-line texts (bench/one_line_router.py) on both stacks, in the
throughput rounds only, to show what rendering costs; and this one, which generates the load.
Every figure comes from one interleaved run: each round visits the services in turn, and each
figure is given as min/median/max over the rounds with the 1-minute load average it was measured
under. Phases: peak throughput (closed loop); first vendor request and answer latency at half the
plain router's peak (open loop); a soak of the plain router; a 5,000-alert group; 1,000 new groups
at once to each router. The bars of issue 15 are printed next to their figures, met or not: the
benchmark reports, it does not fail on a bar.
Human-readable lines go to stdout, progress to stderr; the last line is `ratio=<median of the
rounds' router/relay throughput on plain asyncio>`. Exit status 1 if a request outside the burst
failed, a vendor saw the wrong number of requests, or a process died.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import itertools
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench import keys, phases, report
from bench.load import Client, Payloads
from bench.meter import FAKE, FAN_OUT, OTHERS, Meter, progress
from bench.options import Options, parse_args
from bench.procs import REPO, Child, ChildError, load_average
from bench.services import (
    ROUTING,
    start_one_line_routers,
    start_redis,
    start_services,
    vendor_env,
)
from bench.stats import Spread
from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.config.yaml_file import ConfigError

TWILIO_SHARED_SESSION = "twilio: shared aiohttp session (twilio library used only for TwiML)"
# The same-stack comparison needs both; the service itself needs neither.
STACK_MODULES = ("uvloop", "orjson")


def say(line: str = "") -> None:
    print(line, flush=True)


def pacing_line(config: Config) -> str:
    """Whether pacing is off in the routing file the routers run."""
    limits = config.delivery.rate_limits
    shown = " ".join(f"{channel.value}={limits.get(channel, 0.0):g}s" for channel in limits)
    state = "off" if not any(limits.values()) else "ON (results not comparable)"
    return f"pacing: {state} (delivery.rate_limits {shown})"


def missing_modules() -> list[str]:
    missing = []
    for name in STACK_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


async def measure(options: Options, log_dir: Path) -> int:
    children: list[Child] = []
    ratio: float | None = None
    failures: list[str] = []
    died: list[Child] = []
    try:
        async with asyncio.timeout(options.timeout):
            ratio = await _measure(options, log_dir, children, failures)
    except TimeoutError:
        failures.append(f"run took longer than --timeout {options.timeout:g} s; aborted")
    except ConfigError as e:
        failures.extend(f"{ROUTING.name}: {problem}" for problem in e.problems)
    except (ChildError, aiohttp.ClientError, OSError, ValueError) as e:
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        # Read every tail before stopping: a stopped child's log is closed.
        died = [c for c in children if not c.alive and c.proc.returncode not in (0, -15)]
        tails = "".join(c.tail() for c in died)
        await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)
    if died:
        failures.append(f"died: {', '.join(c.name for c in died)}{tails}")
    if failures:
        say("FAILED:")
        for failure in failures:
            say(f"  {failure}")
    else:
        say(
            "checks: every response outside the burst 200, every process alive, "
            "1 request per vendor per webhook"
        )
    if ratio is not None:
        say(f"ratio={ratio:.3f}")
    return 1 if failures or ratio is None else 0


def _versions() -> str:
    names = ("aiohttp", *STACK_MODULES)
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


async def _measure(
    options: Options, log_dir: Path, children: list[Child], failures: list[str]
) -> float | None:
    missing = missing_modules()
    if missing:
        raise ValueError(
            f"python -m bench needs {' and '.join(missing)} for the same-stack comparison: "
            "pip install -e '.[fast]' orjson"
        )
    say(
        f"oncall-router benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{_versions()}; all processes on 127.0.0.1; load average {load_average():.2f} at start"
    )
    progress("starting fake vendors, routers and relays")
    fake = await Child.start(FAKE, ["-m", "bench.fake_vendors"], os.environ, log_dir)
    children.append(fake)
    ports: dict[str, int] = (await fake.ready_line(seconds=20))["ports"]
    env = vendor_env(ports)
    if options.redis:
        env["REDIS_URL"] = await start_redis(log_dir, children)
    say(f"store: {'Redis (one local redis-server)' if options.redis else 'in the process'}")
    say(f"routing: {ROUTING.relative_to(REPO)}, critical route -> {', '.join(FAN_OUT)}")
    # Loaded as the router will load it: a file the router would refuse fails here, named.
    config = load_config(ROUTING, env)
    say(pacing_line(config))
    if any(config.delivery.rate_limits.values()):
        failures.append(f"pacing is on in {ROUTING}: the router would queue, not work")
    services = await start_services(env, log_dir, children)
    one_line = await start_one_line_routers(env, log_dir, children)
    numbers = itertools.count(keys.FIRST)
    payloads = Payloads(numbers)
    big = Payloads(numbers, alerts=options.big_alerts)
    say(
        f"payload: Alertmanager webhook, {payloads.alerts} alerts, ~{payloads.sample_size()} "
        "bytes; every request a new groupKey, fingerprints and labels (nothing deduplicated)"
    )
    say(
        f"services: {', '.join(s.name for s in services)} (and "
        f"{', '.join(s.name for s in one_line)}, the router with the relay's texts, for peak "
        f"throughput only); {options.rounds} interleaved rounds "
        "(A B C D ..., then ... D C B A); each figure min/median/max over the rounds, with the "
        "1-minute load average it was measured under"
    )
    # Many connections, so the client never queues; the pool keeps them alive between phases.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, payloads)
        meter = Meter(session, f"http://127.0.0.1:{ports['slack_api']}", children, failures)
        bench = phases.Bench(meter, client, services, options, one_line)
        c = options.concurrency

        # Warm-up: connections opened, code paths and templates compiled, before timing anything.
        if options.warmup:
            for service in [*services, *one_line]:
                result, _, _ = await meter.phase(
                    f"warm-up {service.name}",
                    service,
                    client.closed_loop(service.url, options.warmup, c),
                    answered=phases.answered_200,
                )
                meter.check_answers(f"warm-up {service.name}", result)

        say()
        say(
            f"peak throughput: {options.requests} requests per service per round, closed loop, "
            f"concurrency {c}"
        )
        throughput = await phases.throughput(bench)
        for line in report.throughput(throughput, [*services, *one_line]):
            say(line)

        plain_router = services[0]
        rate = throughput.spread(plain_router.name, "req/s").median / 2
        say()
        say(
            f"latency at {rate:.1f} req/s (half of {plain_router.name}'s median peak), open loop, "
            f"{options.latency_seconds:g} s per service per round; from the send (time.monotonic, "
            "the clock the fakes stamp arrivals with):"
        )
        for line in report.latency(await phases.latency(bench, rate), services):
            say(line)

        # Before the large group and the burst, whose peaks would set the RSS the soak reads.
        say()
        say(f"soak: {plain_router.name} alone, {options.soak} webhooks, concurrency {c}")
        # The dedupe store grows until full, then stays flat: say where that point is, so early
        # growth (all of a short soak's) is not mistaken for a leak.
        before = options.warmup + options.rounds * (
            options.requests + round(rate * options.latency_seconds)
        )
        capacity, fan_out = config.delivery.dedupe_max_entries, len(FAN_OUT)
        say(
            f"  dedupe store: at most {capacity} keys, {fan_out} per webhook, so full after "
            f"{capacity // fan_out} webhooks; this router had {before} before the soak"
        )
        soak = await phases.soak(bench, plain_router)
        for line in report.soak(soak, plain_router, options.soak):
            say(line)

        say()
        say(
            f"large group: one webhook of {big.alerts} alerts (~{big.sample_size() / 1e6:.1f} MB) "
            "per service per round, from the send:"
        )
        for line in report.big_group(await phases.big_group(bench, big), services):
            say(line)

        deadline = config.delivery.deadline
        say()
        routers = bench.routers
        logged_before = {r.name: r.child.stderr_lines() for r in routers}
        if options.burst and options.burst_rounds:
            say(
                f"burst: {options.burst} new critical groups at once, each on its own connection, "
                f"{options.burst_rounds} time(s) per router; then each not answered 200 sent once "
                "more (Alertmanager's retry); delivery deadline "
                f"{deadline:g} s"
            )
            outcome = await phases.burst(bench, deadline)
            for line in report.burst(outcome, routers, options.burst, deadline):
                say(line)
        logged_burst = {r.name: r.child.stderr_lines() - logged_before[r.name] for r in routers}

        say()
        say("memory of each service at the end (after the large group and the burst):")
        for service in services:
            rss, peak = (service.child.status_kb(f) / report.MIB for f in ("VmRSS", "VmHWM"))
            say(f"  {service.name:<22} RSS {rss:.1f} MiB, peak (VmHWM) {peak:.1f} MiB")
        families = {k.split(":", 1)[1] for k in meter.clients if k.startswith("twilio:")}
        if families == {"aiohttp"}:
            say(TWILIO_SHARED_SESSION)
        else:
            say(f"twilio: routers' Twilio requests came from {sorted(families) or 'nothing'}")
            failures.append("the routers' Twilio requests did not all come from aiohttp")
        others = Spread.of(meter.others)
        say(
            f"CPU taken by {OTHERS} per phase: {others.low:.0%}/{others.median:.0%}/"
            f"{others.high:.0%} of one CPU; load average at the end {load_average():.2f}"
        )
        if others.high > 0.15:
            say(
                f"WARNING: {OTHERS} took up to {others.high:.0%} of a CPU during a phase; "
                "the machine was not idle: compare figures within a round, not across runs"
            )
        for router in routers:
            outside = router.child.stderr_lines() - logged_burst[router.name]
            if outside:
                failures.append(
                    f"{router.name} logged {outside} warning/error lines outside the burst:"
                    f"{router.child.tail(5)}"
                )
        ratio = throughput.spread(phases.RATIO, plain_router.stack.name).median
        return ratio


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv, (__doc__ or "").split("\n")[0])

    async def guarded() -> int:
        # SIGTERM cancels the run like Ctrl-C does, so the finally clause stops every child.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with tempfile.TemporaryDirectory(prefix="oncall-bench-") as log_dir:
            return await measure(options, Path(log_dir))

    try:
        # The load generator on uvloop: the less CPU it takes, the more the services get of the
        # two cores they share with it. It is the same for every service, so ratios are fair.
        uvloop = importlib.import_module("uvloop") if "uvloop" not in missing_modules() else None
        return asyncio.run(guarded()) if uvloop is None else int(uvloop.run(guarded()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # measure()'s finally clause has already stopped every child.
        print("interrupted", file=sys.stderr)
        return 130
