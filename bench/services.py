"""The processes under test: the fake vendors, the router and the relay on each stack, and the
router with one-line texts (bench/one_line_router.py) on each stack."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from bench.procs import REPO, Child, free_port
from receiver.config.settings import Settings

ROUTING = REPO / "bench" / "routing.yaml"
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
class Stack:
    """An event loop and JSON codec, and the arguments that put each service on it."""

    name: str
    router_args: tuple[str, ...]
    relay_args: tuple[str, ...]
    relay_name: str  # the relay's stack in full: its JSON codec differs from the router's


# The fixed reference; and the same fast stack for both (the router's JSON is its own business).
PLAIN = Stack("asyncio", (), (), "asyncio+json")
FAST = Stack(
    "uvloop", ("--loop", "uvloop"), ("--loop", "uvloop", "--json", "orjson"), "uvloop+orjson"
)
STACKS = (PLAIN, FAST)


@dataclass(frozen=True)
class Service:
    kind: str  # "router", "relay" or ONE_LINE
    stack: Stack
    child: Child
    base: str  # http://127.0.0.1:PORT

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.stack.relay_name if self.kind == 'relay' else self.stack.name}"

    @property
    def url(self) -> str:
        return f"{self.base}/webhooks/alertmanager"

    @property
    def health(self) -> str:
        return f"{self.base}/-/healthy"


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


# Started through the interpreter, so Child can supervise it like the others: no persistence.
REDIS_SERVER = (
    "import os, sys; os.execvp('redis-server', ['redis-server', '--port', sys.argv[1], "
    "'--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])"
)


async def start_redis(log_dir: Path, children: list[Child]) -> str:
    port = free_port()
    redis = await Child.start(
        "redis", ["-c", REDIS_SERVER, str(port)], os.environ, log_dir, reports_ready=False
    )
    children.append(redis)
    await _wait_for_port(port)
    return f"redis://127.0.0.1:{port}/0"


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


ONE_LINE = "router-one-line"


async def _start_router(
    name: str, module: str, stack: Stack, env: Mapping[str, str], log_dir: Path, port: int
) -> Child:
    return await Child.start(
        name,
        [
            *("-m", module, "serve", "--config", str(ROUTING)),
            *("--listen", f"127.0.0.1:{port}", *stack.router_args),
        ],
        env,
        log_dir,
        reports_ready=False,
    )


async def start_services(
    env: Mapping[str, str], log_dir: Path, children: list[Child]
) -> list[Service]:
    """Router and relay on each stack, all running at once (an idle one costs nothing), in the
    order of a round: router, relay, router, relay."""
    started: list[tuple[str, Stack, Child, int | None]] = []
    for stack in STACKS:
        port = free_port()
        router = await _start_router(f"router-{stack.name}", "receiver", stack, env, log_dir, port)
        children.append(router)
        relay = await Child.start(
            f"relay-{stack.name}", ["-m", "bench.relay", *stack.relay_args], env, log_dir
        )
        children.append(relay)
        started += [("router", stack, router, port), ("relay", stack, relay, None)]
    services = []
    for kind, stack, child, known in started:
        if known is None:
            listening: int = (await child.ready_line(seconds=20))["port"]
        else:
            listening = known
            await child.wait_http(f"http://127.0.0.1:{known}/-/ready", seconds=30)
        services.append(Service(kind, stack, child, f"http://127.0.0.1:{listening}"))
    return services


async def start_one_line_routers(
    env: Mapping[str, str], log_dir: Path, children: list[Child]
) -> list[Service]:
    """The router with the relay's texts on each stack: throughput phase only."""
    services = []
    for stack in STACKS:
        port = free_port()
        name = f"{ONE_LINE}-{stack.name}"
        child = await _start_router(name, "bench.one_line_router", stack, env, log_dir, port)
        children.append(child)
        await child.wait_http(f"http://127.0.0.1:{port}/-/ready", seconds=30)
        services.append(Service(ONE_LINE, stack, child, f"http://127.0.0.1:{port}"))
    return services
