"""Child processes of the benchmark: start, wait until ready, read their memory and CPU, stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import aiohttp

REPO = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ChildError(RuntimeError):
    """A child did not start, or died."""


class Child:
    """One process under our control; its stderr goes to a file so a full pipe never blocks it."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: TextIO) -> None:
        self.name = name
        self.proc = proc
        self._log = log

    @classmethod
    async def start(
        cls,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        *,
        reports_ready: bool = True,
    ) -> Child:
        """`python ARGS` in the repository; `reports_ready`: it prints a JSON line when ready."""
        log = (log_dir / f"{name}.stderr").open("w+", encoding="utf-8")
        # A child that prints nothing we read gets no pipe: an unread pipe could fill and block it.
        stdout = asyncio.subprocess.PIPE if reports_ready else asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=REPO,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=log,
        )
        return cls(name, proc, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def ready_line(self, *, seconds: float) -> dict[str, Any]:
        """The JSON line a child prints once it listens; ChildError if none within `seconds`."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(seconds):
                line = await self.proc.stdout.readline()
        except TimeoutError:
            raise ChildError(f"{self.name} printed nothing in {seconds:.0f} s") from None
        if not line:
            await self.proc.wait()
            raise ChildError(f"{self.name} exited ({self.proc.returncode}){self.tail()}")
        value: dict[str, Any] = json.loads(line)
        return value

    async def wait_http(self, url: str, *, seconds: float) -> None:
        """Poll `url` until it answers 200; ChildError if the child dies or `seconds` pass."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + seconds
        # A child that accepts but never answers must not hold a poll for aiohttp's 5 minutes.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if not self.alive:
                    raise ChildError(f"{self.name} exited ({self.proc.returncode}){self.tail()}")
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass  # not listening (or not answering) yet
                if loop.time() > give_up:
                    raise ChildError(f"{self.name} not ready after {seconds:.0f} s{self.tail()}")
                await asyncio.sleep(0.05)

    def status_kb(self, field: str) -> int:
        """A `/proc/<pid>/status` field in kB: VmRSS now, VmHWM its peak (no psutil needed)."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise ChildError(f"{self.name}: no {field} in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, from `/proc/<pid>/stat`."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            # Fields after the command name, which may itself hold spaces and parentheses.
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def tail(self, lines: int = 15) -> str:
        """The end of the child's stderr, to explain a failure."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().splitlines()[-lines:]
        self._log.seek(0, os.SEEK_END)
        return "".join(f"\n    {self.name}: {line}" for line in text)

    def stderr_lines(self) -> int:
        self._log.flush()
        self._log.seek(0)
        count = sum(1 for _ in self._log)
        self._log.seek(0, os.SEEK_END)
        return count

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 5 s."""
        if self.alive:
            try:
                self.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(self.proc.wait(), 5)
            except ProcessLookupError:
                pass
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._log.close()


def machine_busy_seconds() -> float:
    """CPU time every CPU spent busy since boot (all processes), from the `cpu` line of /proc/stat.

    Minus what our own processes used, it tells whether something else was running during a
    measurement and took CPU from the process under test.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS


def load_average() -> float:
    """The 1-minute load average, from /proc/loadavg: how busy the shared machine was."""
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return float(loadavg.read().split()[0])


def free_port() -> int:
    """A port nobody listens on now, for a child that cannot be told to bind port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
