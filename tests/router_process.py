"""Router replicas as real `python -m receiver serve` processes on loopback, for end-to-end tests.

Each replica serves for real (not --dry-run) against the loopback fake vendors, with its stdout
and stderr in files under the test's tmp_path (appended across restarts, each start marked), so
a failing test can print them. `stop()` is SIGTERM, the graceful drain Kubernetes asks for;
`restart()` starts again on the same port with empty process memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import aiohttp
import pytest

from receiver.config.settings import Settings
from tests.helpers import ROOT, free_port

READY_TIMEOUT = 20.0  # seconds for `python -m receiver serve` to answer /-/ready
STOP_TIMEOUT = 15.0  # SIGTERM drain (delivery deadline + 1 s) with room to spare; then SIGKILL
POLL = 0.05
# What a replica inherits from the test's environment; everything else is set explicitly.
INHERITED = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")


def replica_env(
    settings: Settings, redis_url: str | None, log_level: str = "info"
) -> dict[str, str]:
    """The environment of a replica: each set Settings field as its variable (`slack_api_url`
    is SLACK_API_URL, as load_settings reads them), REDIS_URL and LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is not None:
            env[field.name.upper()] = str(value)
    env["LOG_LEVEL"] = log_level
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


@dataclasses.dataclass
class RouterReplica:
    """One `python -m receiver serve --config ... --listen 127.0.0.1:PORT` process."""

    name: str
    config: Path
    env: Mapping[str, str]
    workdir: Path
    port: int = dataclasses.field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    started_at: list[float] = dataclasses.field(default_factory=list)  # monotonic, each start

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        """Where the replica's stdout goes (every run, appended)."""
        return self.workdir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        """Where the replica's stderr (its JSON log lines) goes (every run, appended)."""
        return self.workdir / f"{self.name}.stderr"

    def running(self) -> bool:
        """True while the process is alive."""
        return self.process is not None and self.process.returncode is None

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start (again, on the same port) and return once /-/ready answers 200."""
        assert not self.running(), f"{self.name} is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        marker = f"--- {self.name} start #{len(self.started_at) + 1} ---\n".encode()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            out.write(marker)
            err.write(marker)
            out.flush()
            err.flush()
            # The child holds its own copies of the descriptors: ours can close at once.
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "receiver",
                "serve",
                "--config",
                str(self.config),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--reload-interval",
                "0",
                cwd=ROOT,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.started_at.append(time.monotonic())
        await self._ready(session)

    async def _ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer yet"
        while True:
            assert self.process is not None
            if self.process.returncode is not None:
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode} before ready:\n{self.log()}"
                )
            try:
                async with session.get(
                    f"{self.url}/-/ready", timeout=aiohttp.ClientTimeout(total=1)
                ) as response:
                    if response.status == 200:
                        return
                    last = f"/-/ready answered {response.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{self.name} not ready within {READY_TIMEOUT:g}s ({last}):\n{self.log()}"
                )
            await asyncio.sleep(POLL)

    async def stop(self) -> int | None:
        """SIGTERM (graceful drain) and wait for the exit, SIGKILL after STOP_TIMEOUT; the exit
        code (None if it was never started)."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
        return await process.wait()

    async def restart(self, session: aiohttp.ClientSession) -> int | None:
        """stop() then start() on the same port: a fresh process, nothing kept in memory."""
        code = await self.stop()
        await self.start(session)
        return code

    def log(self) -> str:
        """stdout and stderr of every run so far."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace") if path.exists() else "(none)"
            parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)

    async def metrics(self, session: aiohttp.ClientSession) -> str:
        """The replica's own /metrics text (scraped directly, not through any proxy)."""
        async with session.get(f"{self.url}/metrics") as response:
            assert response.status == 200, f"{self.name} /metrics answered {response.status}"
            return await response.text()


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of `name` (any labels) in Prometheus text format; 0 if absent."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}{{") or line.startswith(f"{name} "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.asynccontextmanager
async def running_replicas(
    names: Sequence[str],
    config: Path,
    env: Mapping[str, str],
    workdir: Path,
    session: aiohttp.ClientSession,
) -> AsyncIterator[list[RouterReplica]]:
    """Start the replicas together; on the way out stop them all (SIGTERM), and on a failure
    print every replica's output with the test's."""
    replicas = [RouterReplica(name, config, env, workdir) for name in names]
    try:
        await asyncio.gather(*(r.start(session) for r in replicas))
        yield replicas
    except BaseException:
        for r in replicas:
            print(f"=== router replica {r.name} ({r.url}) ===\n{r.log()}")
        raise
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
