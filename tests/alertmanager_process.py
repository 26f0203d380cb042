"""A real `prometheus-alertmanager` on loopback for end-to-end tests, and polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import yaml

from tests.helpers import free_port, require_tool


@dataclasses.dataclass
class Alertmanager:
    """One `prometheus-alertmanager` process on loopback, gossip off, state in a temp dir."""

    binary: str
    workdir: Path
    port: int = dataclasses.field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        (self.workdir / "data").mkdir()
        self.log_file = (self.workdir / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.flags(),
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def flags(self) -> list[str]:
        """The flags after config, storage and address: here, no cluster."""
        return ["--cluster.listen-address=", "--log.level=warn"]  # empty: no peers to wait for

    async def ready(self, session: aiohttp.ClientSession) -> None:
        async with asyncio.timeout(15):
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    pytest.fail(
                        f"alertmanager exited with {self.process.returncode}:\n{self.log()}"
                    )
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    def log(self) -> str:
        path = self.workdir / "alertmanager.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.log_file is not None:
            self.log_file.close()

    @contextlib.contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """On any failure, show Alertmanager's own log with the test's output."""
        try:
            yield
        except BaseException:
            print(f"--- alertmanager log ---\n{self.log()}")
            raise


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(require_tool("prometheus-alertmanager"), tmp_path)
    try:
        yield am
    finally:
        am.stop()  # always, whatever the test did


def no_repeats(url: str, *, send_resolved: bool) -> dict[str, Any]:
    """One route to the router at `url`, grouped by alertname, 1 s timers and no repeats within
    a test: every webhook beyond the first of a group is Alertmanager retrying it."""
    hook: dict[str, Any] = {"url": url, "send_resolved": send_resolved}
    return {
        "route": {
            "receiver": "router",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "router", "webhook_configs": [hook]}],
    }


def shorten_timers(route: dict[str, Any], wait: float, interval: float, repeat: float) -> None:
    """Seconds instead of minutes, all through a generated tree; Alertmanager 0.25 honours them."""
    if "group_wait" in route:
        route.update(
            group_wait=f"{wait:g}s", group_interval=f"{interval:g}s", repeat_interval=f"{repeat:g}s"
        )
    for child in route.get("routes", []):
        shorten_timers(child, wait, interval, repeat)


async def until(
    what: str, done: Callable[[], bool], within: float, status: Callable[[], str]
) -> None:
    """Poll (the fakes record as requests arrive) until `done`, or fail saying what was seen."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {within:g}s waiting for {what}; {status()}")
        await asyncio.sleep(0.05)


async def post_alert(
    session: aiohttp.ClientSession, am: Alertmanager, labels: dict[str, str], **times: datetime
) -> None:
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "disk full on e2e-db-1"},
            **{key: value.isoformat() for key, value in times.items()},
        }
    ]
    async with session.post(f"{am.url}/api/v2/alerts", json=body) as response:
        assert response.status == 200, await response.text()
