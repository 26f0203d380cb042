"""One phase at a time: the CPU each process used, the load average, and what the vendors saw."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from bench.load import PhaseResult
from bench.procs import Child, ChildError, load_average, machine_busy_seconds
from bench.services import Service

T = TypeVar("T")
# Vendor endpoints one critical webhook must reach, once each (the fake's counter names).
FAN_OUT = ("slack_webhook", "twilio_messages", "twilio_calls", "sendgrid")
FAKE = "fake-vendors"  # the fake vendors' process name
LOADER = "load generator"
OTHERS = "other processes"


def progress(line: str) -> None:
    print(f"# {line}", file=sys.stderr, flush=True)


@dataclass
class Usage:
    """CPU seconds each process used during a phase of `wall` seconds, and the 1-minute load
    average when it started."""

    wall: float
    cpu: dict[str, float]
    load1: float

    def share(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / self.wall if self.wall else 0.0

    def ms_per_webhook(self, name: str, webhooks: int) -> float:
        # CPU per webhook depends far less than req/s on what else runs on the machine.
        return self.cpu.get(name, 0.0) / webhooks * 1000 if webhooks else float("nan")


@dataclass(frozen=True)
class VendorRecord:
    """What the fake vendors recorded during a phase, per message key (bench/fake_vendors.py)."""

    first: Mapping[str, float]
    last: Mapping[str, float]
    sends: Mapping[str, Mapping[str, int]]
    unkeyed: Mapping[str, int]

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> VendorRecord:
        return cls(data["first"], data["last"], data["sends"], data["unkeyed"])


@dataclass
class Meter:
    """The live processes, and everything that went wrong, for the final report."""

    session: aiohttp.ClientSession
    fake_base: str
    children: list[Child]
    failures: list[str] = field(default_factory=list)
    clients: Counter[str] = field(default_factory=Counter)  # routers' vendor clients, by family
    # CPU share (1.0 = one CPU) that processes other than ours took during each phase.
    others: list[float] = field(default_factory=list)

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    async def _get(self, path: str, method: str = "GET") -> Any:
        async with self.session.request(method, f"{self.fake_base}{path}") as response:
            return await response.json()

    async def vendor_counts(self) -> tuple[Counter[str], Counter[str]]:
        stats = await self._get("/_stats")
        return Counter(stats["requests"]), Counter(stats["clients"])

    async def quiet(self, settle: float = 1.0, limit: float = 20.0) -> None:
        """Waits until the vendors have seen no request for `settle` seconds (a router that
        answered early may still be sending), or `limit` seconds pass."""
        give_up = time.monotonic() + limit
        before = await self.vendor_counts()
        while time.monotonic() < give_up:
            await asyncio.sleep(settle)
            now = await self.vendor_counts()
            if now == before:
                return
            before = now

    async def phase(
        self,
        name: str,
        target: Service | None,
        work: Awaitable[T],
        *,
        keyed: bool = True,
        answered: Callable[[T], int] | None = None,
    ) -> tuple[T, Usage, VendorRecord]:
        """Runs one phase; checks the processes and, given `answered` (the webhooks the result
        says were answered 200), that each vendor endpoint saw exactly one request per webhook;
        returns its CPU use and what the vendors recorded (`keyed=False`: counts only)."""
        progress(f"{name}...")
        await self._get(f"/_record?keyed={int(keyed)}", method="POST")
        before, clients_before = await self.vendor_counts()
        cpu = {child.name: child.cpu_seconds() for child in self.children}
        own = time.process_time()
        machine = machine_busy_seconds()
        load1 = load_average()
        started = time.perf_counter()
        result = await work
        wall = time.perf_counter() - started
        for child in self.children:
            if not child.alive:
                code = child.proc.returncode
                raise ChildError(f"{child.name} died (exit {code}) during {name}{child.tail()}")
        used = {c.name: c.cpu_seconds() - cpu[c.name] for c in self.children}
        used[LOADER] = time.process_time() - own
        used[OTHERS] = max(0.0, machine_busy_seconds() - machine - sum(used.values()))
        self.others.append(used[OTHERS] / wall)
        after, clients_after = await self.vendor_counts()
        if target is not None and target.kind == "router":
            self.clients += clients_after - clients_before
        record = VendorRecord.of(await self._get("/_record"))
        sent = after - before
        extra = {kind: n for kind, n in sent.items() if kind not in FAN_OUT}
        if extra:
            self.failures.append(f"{name}: unexpected vendor requests {extra}")
        if answered is not None:
            webhooks = answered(result)
            wrong = {kind: sent[kind] for kind in FAN_OUT if sent[kind] != webhooks}
            if wrong:
                self.failures.append(
                    f"{name}: {webhooks} webhooks answered 200 but vendors saw {dict(sent)} "
                    f"(expected {webhooks} each of {', '.join(FAN_OUT)})"
                )
        return result, Usage(wall, used, load1), record

    def check_answers(self, name: str, result: PhaseResult) -> None:
        """Every webhook of a phase outside the burst must be answered 200."""
        for error, count in result.errors.most_common():
            self.failures.append(f"{name}: {count} x {error}")
