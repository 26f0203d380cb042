"""Benchmark: oncall-router against a minimal aiohttp relay, both fanning out to fake vendors.

    python -m bench [--quick] [--requests N] [--concurrency C] [--soak N] [--latency-seconds S]

Processes: the fake vendors, the router (`python -m receiver serve`, real senders, not dry-run),
the baseline relay (bench/relay.py), and this one, which generates the load. Phases, measured in
the same run for both services: peak throughput (closed loop), latency at half the router's peak
rate (open loop, same absolute rate for both), peak RSS, then a soak of the router alone whose RSS
is sampled every 10 %. Human-readable lines go to stdout, progress to stderr; the last line is
`ratio=<router throughput / baseline throughput>`. Exit status 1 if any request failed, a vendor
saw the wrong number of requests, or a process died.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import aiohttp

from bench.load import Client, Payloads, PhaseResult
from bench.procs import REPO, Child, ChildError, free_port, machine_busy_seconds
from receiver.config.load import load_config
from receiver.config.settings import Settings
from receiver.config.types import Config
from receiver.config.yaml_file import ConfigError

T = TypeVar("T")
ROUTING = REPO / "bench" / "routing.yaml"
# Vendor endpoints one critical webhook must reach, once each (the fake's counter names).
FAN_OUT = ("slack_webhook", "twilio_messages", "twilio_calls", "sendgrid")
TWILIO_SHARED_SESSION = "twilio: shared aiohttp session (twilio library used only for TwiML)"
MIB = 1024  # /proc reports kB (KiB)

# Settings the router reads; inherited values (a real token, a real Alertmanager) must not leak in.
_ROUTER_SETTINGS = frozenset(f.name.upper() for f in fields(Settings))


# Only the fake vendors ever see these; they check that auth is present, not what it says.
DUMMY_CREDENTIALS = {
    "SLACK_BOT_TOKEN": "xoxb-bench-dummy",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "bench-dummy",
    "TWILIO_FROM": "+447700900999",
    "SENDGRID_API_KEY": "SG.bench-dummy",
    "SENDGRID_FROM": "alerts@example.com",
}


@dataclass(frozen=True)
class Options:
    requests: int
    concurrency: int
    latency_seconds: float
    soak: int
    warmup: int
    timeout: float
    redis: bool = False


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~20 s run with small counts")
    parser.add_argument("--requests", type=int, help="peak-throughput requests (20000; quick 1500)")
    parser.add_argument("--concurrency", type=int, default=64, help="closed-loop concurrency (64)")
    parser.add_argument(
        "--latency-seconds", type=float, help="open-loop latency run length (10; quick 3)"
    )
    parser.add_argument("--soak", type=int, help="router soak requests (100000; quick 2000)")
    parser.add_argument("--warmup", type=int, help="warm-up requests per service (1000; quick 200)")
    parser.add_argument("--timeout", type=float, default=1800, help="abort after this many s")
    parser.add_argument(
        "--redis", action="store_true", help="the router's store in a local redis-server"
    )
    args = parser.parse_args(argv)

    def pick(value: T | None, full: T, quick: T) -> T:
        return value if value is not None else quick if args.quick else full

    options = Options(
        requests=pick(args.requests, 20_000, 1_500),
        concurrency=args.concurrency,
        latency_seconds=pick(args.latency_seconds, 10.0, 3.0),
        soak=pick(args.soak, 100_000, 2_000),
        warmup=pick(args.warmup, 1_000, 200),
        timeout=args.timeout,
        redis=args.redis,
    )
    if options.requests < 2 or min(options.concurrency, options.soak) < 1 or options.warmup < 0:
        parser.error("--requests must be at least 2, --concurrency and --soak 1, --warmup 0")
    if options.latency_seconds <= 0:
        parser.error("--latency-seconds must be more than 0")
    return options


def say(line: str = "") -> None:
    print(line, flush=True)


def progress(line: str) -> None:
    print(f"# {line}", file=sys.stderr, flush=True)


def vendor_env(ports: Mapping[str, int]) -> dict[str, str]:
    """The router's and the relay's environment: every vendor is the fake, secrets are dummies."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _ROUTER_SETTINGS and k.removesuffix("_FILE") not in _ROUTER_SETTINGS
    }
    env.update(
        SLACK_API_URL=f"http://127.0.0.1:{ports['slack_api']}",
        TWILIO_API_URL=f"http://127.0.0.1:{ports['twilio']}",
        SENDGRID_API_URL=f"http://127.0.0.1:{ports['sendgrid']}",
        BENCH_SLACK_WEBHOOK_URL=(
            f"http://127.0.0.1:{ports['slack_webhook']}/services/T0BENCH/B0BENCH/bench"
        ),
        LOG_LEVEL="warning",
    )
    env.update(DUMMY_CREDENTIALS)
    return env


def pacing_line(config: Config) -> str:
    """Whether pacing is off in the routing file the router runs."""
    limits = config.delivery.rate_limits
    shown = " ".join(f"{channel.value}={limits.get(channel, 0.0):g}s" for channel in limits)
    state = "off" if not any(limits.values()) else "ON (results not comparable)"
    return f"pacing: {state} (delivery.rate_limits {shown})"


LOADER = "load generator"
OTHERS = "other processes"


@dataclass
class Usage:
    """CPU seconds each process used during a phase of `wall` seconds."""

    wall: float
    cpu: dict[str, float]

    def __add__(self, other: Usage) -> Usage:
        names = self.cpu.keys() | other.cpu.keys()
        cpu = {n: self.cpu.get(n, 0.0) + other.cpu.get(n, 0.0) for n in names}
        return Usage(self.wall + other.wall, cpu)

    def line(self, target: str, fake: str, webhooks: int) -> str:
        def share(name: str) -> str:
            return f"{self.cpu[name] / self.wall:.0%}"

        # CPU per webhook depends far less than req/s on what else runs on the machine.
        per_webhook = self.cpu[target] / webhooks * 1000
        return (
            f"cpu {target} {share(target)} ({per_webhook:.2f} ms/webhook), {fake} {share(fake)}, "
            f"{LOADER} {share(LOADER)}, {OTHERS} {share(OTHERS)}"
        )


@dataclass
class Run:
    """The live processes, and everything that went wrong, for the final report."""

    client: Client
    fake: Child
    stats_url: str
    children: list[Child]
    failures: list[str] = field(default_factory=list)
    clients: Counter[str] = field(default_factory=Counter)  # router's vendor clients, by family
    # Highest CPU share (1.0 = one CPU) that processes other than ours took during a phase.
    others: float = 0.0

    async def vendor_stats(self) -> tuple[Counter[str], Counter[str]]:
        async with self.client.session.get(self.stats_url) as response:
            stats = await response.json()
        return Counter(stats["requests"]), Counter(stats["clients"])

    async def phase(
        self, name: str, target: Child, work: Awaitable[PhaseResult]
    ) -> tuple[PhaseResult, Usage]:
        """Runs one phase; checks processes, answers and vendor counts; returns its CPU use."""
        progress(f"{name}...")
        before, clients_before = await self.vendor_stats()
        cpu = {child.name: child.cpu_seconds() for child in self.children}
        own = time.process_time()
        machine = machine_busy_seconds()
        started = time.perf_counter()
        result = await work
        wall = time.perf_counter() - started
        for error, count in result.errors.most_common():
            self.failures.append(f"{name}: {count} x {error}")
        for child in self.children:
            if not child.alive:
                code = child.proc.returncode
                raise ChildError(f"{child.name} died (exit {code}) during {name}{child.tail()}")
        used = {c.name: c.cpu_seconds() - cpu[c.name] for c in self.children}
        used[LOADER] = time.process_time() - own
        used[OTHERS] = max(0.0, machine_busy_seconds() - machine - sum(used.values()))
        self.others = max(self.others, used[OTHERS] / wall)
        after, clients_after = await self.vendor_stats()
        if target.name == "router":
            self.clients += clients_after - clients_before
        sent = after - before
        delivered = len(result.latencies)
        wrong = {kind: sent[kind] for kind in FAN_OUT if sent[kind] != result.requests}
        extra = {kind: n for kind, n in sent.items() if kind not in FAN_OUT}
        if wrong or extra:
            self.failures.append(
                f"{name}: {result.requests} webhooks ({delivered} answered 200) but vendors saw "
                f"{dict(sent)} (expected {result.requests} each of {', '.join(FAN_OUT)})"
            )
        return result, Usage(wall, used)


def errors_text(result: PhaseResult) -> str:
    count = sum(result.errors.values())
    return f"{count} errors" if count else "0 errors"


def mib(kb: int) -> str:
    return f"{kb / MIB:.1f} MiB"


async def measure(options: Options, log_dir: Path) -> int:
    children: list[Child] = []
    ratio: float | None = None
    failures: list[str] = []
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
        say("checks: every response 200, every process alive, 1 request per vendor per webhook")
    if ratio is not None:
        say(f"ratio={ratio:.3f}")
    return 1 if failures or ratio is None else 0


# Started through the interpreter, so Child can supervise it like the others: no persistence.
REDIS_SERVER = (
    "import os, sys; os.execvp('redis-server', ['redis-server', '--port', sys.argv[1], "
    "'--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])"
)


async def _wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


async def _measure(
    options: Options, log_dir: Path, children: list[Child], failures: list[str]
) -> float:
    say(
        f"oncall-router benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"aiohttp {aiohttp.__version__}, all processes on 127.0.0.1"
    )
    progress("starting fake vendors, router and baseline relay")
    fake = await Child.start("fake-vendors", ["-m", "bench.fake_vendors"], os.environ, log_dir)
    children.append(fake)
    ports: dict[str, int] = (await fake.ready_line(seconds=20))["ports"]
    env = vendor_env(ports)
    if options.redis:
        redis_port = free_port()
        redis = await Child.start(
            "redis",
            ["-c", REDIS_SERVER, str(redis_port)],
            os.environ,
            log_dir,
            reports_ready=False,
        )
        children.append(redis)
        await _wait_for_port(redis_port)
        env = {**env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    say(f"store: {'Redis (one local redis-server)' if options.redis else 'in the process'}")
    say(f"routing: {ROUTING.relative_to(REPO)}, critical route -> {', '.join(FAN_OUT)}")
    # Loaded as the router will load it: a file the router would refuse fails here, named.
    config = load_config(ROUTING, env)
    say(pacing_line(config))
    if any(config.delivery.rate_limits.values()):
        failures.append(f"pacing is on in {ROUTING}: the router would queue, not work")
    router_port = free_port()
    router = await Child.start(
        "router",
        [
            "-m",
            "receiver",
            "serve",
            "--config",
            str(ROUTING),
            "--listen",
            f"127.0.0.1:{router_port}",
        ],
        env,
        log_dir,
        reports_ready=False,
    )
    children.append(router)
    relay = await Child.start("relay", ["-m", "bench.relay"], env, log_dir)
    children.append(relay)
    relay_port: int = (await relay.ready_line(seconds=20))["port"]
    await router.wait_http(f"http://127.0.0.1:{router_port}/-/ready", seconds=30)
    urls = {
        "router": f"http://127.0.0.1:{router_port}/webhooks/alertmanager",
        "relay": f"http://127.0.0.1:{relay_port}/webhooks/alertmanager",
    }
    payloads = Payloads()
    say(
        f"payload: Alertmanager webhook, {payloads.alerts} alerts, ~{payloads.sample_size()} "
        "bytes; every request a new groupKey, fingerprints and labels (nothing deduplicated)"
    )
    # Many connections, so the client never queues; the pool keeps them alive between phases.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, payloads)
        run = Run(client, fake, f"http://127.0.0.1:{ports['slack_api']}/_stats", children, failures)
        targets = {"router": router, "relay": relay}
        c = options.concurrency

        # Warm-up: connections opened, code paths and templates compiled, before timing anything.
        for name in ("router", "relay"):
            if options.warmup:
                await run.phase(
                    f"warm-up {name}",
                    targets[name],
                    client.closed_loop(urls[name], options.warmup, c),
                )

        say(
            f"peak throughput: {options.requests} requests each, concurrency {c}, closed loop, "
            "in halves ordered router, baseline, baseline, router"
        )
        # The ABBA order cancels a load that drifts over the run (another process starting, the
        # CPU warming up) instead of handing it all to whichever service goes second.
        halves = (options.requests // 2, options.requests - options.requests // 2)
        peak: dict[str, PhaseResult] = {}
        usage: dict[str, Usage] = {}
        for half, name in enumerate(("router", "relay", "relay", "router")):
            result, used = await run.phase(
                f"peak {name} ({'first' if name not in peak else 'second'} half)",
                targets[name],
                client.closed_loop(urls[name], halves[half // 2], c),
            )
            peak[name] = peak[name] + result if name in peak else result
            usage[name] = usage[name] + used if name in usage else used
        for name, label in (("router", "router  "), ("relay", "baseline")):
            result = peak[name]
            say(
                f"  {label} {result.rate:8.1f} req/s  ({result.elapsed:.1f} s, "
                f"p50 {result.percentile_ms(0.5):.1f} ms, p99 {result.percentile_ms(0.99):.1f} ms "
                f"at concurrency {c}; {errors_text(result)}; "
                f"{usage[name].line(name, fake.name, result.requests)})"
            )

        rate = peak["router"].rate / 2
        say(
            f"latency at {rate:.1f} req/s (50% of the router's peak) for "
            f"{options.latency_seconds:g} s, open loop, from each request's scheduled time:"
        )
        for name, label in (("router", "router  "), ("relay", "baseline")):
            result, used = await run.phase(
                f"latency {name}",
                targets[name],
                client.open_loop(urls[name], rate, options.latency_seconds),
            )
            say(
                f"  {label} p50 {result.percentile_ms(0.5):6.2f} ms  "
                f"p99 {result.percentile_ms(0.99):6.2f} ms  ({result.requests} requests sent "
                f"over {result.send_span:.1f} s; {errors_text(result)}; "
                f"{used.line(name, fake.name, result.requests)})"
            )

        say("memory: peak RSS (VmHWM) after the throughput and latency phases")
        for name, label in (("router", "router  "), ("relay", "baseline")):
            say(f"  {label} {mib(targets[name].status_kb('VmHWM'))}")

        say(f"soak: router alone, {options.soak} requests, concurrency {c}")
        # The dedupe store grows until full, then stays flat: say where that point is, so early
        # growth is not mistaken for a leak.
        before = options.warmup + options.requests + round(rate * options.latency_seconds)
        capacity = config.delivery.dedupe_max_entries
        fan_out = len(FAN_OUT)
        say(
            f"  dedupe store: at most {capacity} keys, {fan_out} per webhook, so full after "
            f"{capacity // fan_out} webhooks; the router had {before} before the soak"
        )
        soak, used = await run.phase(
            "soak router",
            router,
            client.closed_loop(
                urls["router"], options.soak, c, sample=lambda: router.status_kb("VmRSS")
            ),
        )
        curve = " ".join(f"{kb / MIB:.1f}" for _, kb in soak.samples)
        say(f"  RSS every 10% (0%..100%, MiB): {curve}")
        half, full = soak.samples[5][1], soak.samples[10][1]
        growth = full - half
        say(
            f"  RSS at 50%: {mib(half)}, at 100%: {mib(full)}, second-half growth: "
            f"{growth / MIB:+.1f} MiB ({growth / half:+.1%}); "
            f"peak RSS now {mib(router.status_kb('VmHWM'))}"
        )
        say(
            f"  {soak.rate:.1f} req/s over {soak.elapsed:.1f} s; {errors_text(soak)}; "
            f"{used.line('router', fake.name, soak.requests)}"
        )

        families = {k.split(":", 1)[1] for k in run.clients if k.startswith("twilio:")}
        if families == {"aiohttp"}:
            say(TWILIO_SHARED_SESSION)
        else:
            say(f"twilio: router's Twilio requests came from {sorted(families) or 'nothing'}")
            failures.append("the router's Twilio requests did not all come from aiohttp")
        if run.others > 0.15:
            say(
                f"WARNING: other processes took up to {run.others:.0%} of a CPU during a phase; "
                "the machine was not idle and these numbers are disturbed"
            )
        logged = router.stderr_lines()
        if logged:
            failures.append(f"router logged {logged} warning/error lines:{router.tail(5)}")
        return peak["router"].rate / peak["relay"].rate


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)

    async def guarded() -> int:
        # SIGTERM cancels the run like Ctrl-C does, so the finally clause stops every child.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with tempfile.TemporaryDirectory(prefix="oncall-bench-") as log_dir:
            return await measure(options, Path(log_dir))

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        # measure()'s finally clause has already stopped every child.
        print("interrupted", file=sys.stderr)
        return 130
