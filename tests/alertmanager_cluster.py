"""Real `prometheus-alertmanager` processes gossiping as an HA cluster on loopback.

tests/alertmanager_process.py runs one Alertmanager with gossip off; this runs several that know
each other (`--cluster.peer`), with gossip and state sync shortened to fractions of a second, so
a pair settles in about a second and shares its notification log as a production pair does.
Each one's `--web.external-url` is its own address, so a webhook's `externalURL` tells which
member sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.alertmanager_process import Alertmanager
from tests.helpers import free_port, require_tool

GOSSIP_INTERVAL = "50ms"  # settling polls every 10 gossip intervals: ~2 s to settle
PUSHPULL_INTERVAL = "1s"
SETTLE_TIMEOUT = 15.0


@dataclasses.dataclass
class ClusteredAlertmanager(Alertmanager):
    """One member of a gossiping Alertmanager cluster; `peers` are the others' cluster ports."""

    cluster_port: int = dataclasses.field(default_factory=free_port)
    peers: tuple[int, ...] = ()
    peer_timeout: str = "15s"

    def flags(self) -> list[str]:
        """Listen for gossip on `cluster_port` and join `peers`."""
        return [
            f"--web.external-url={self.url}",
            f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
            f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}",
            *(f"--cluster.peer=127.0.0.1:{p}" for p in self.peers),
            f"--cluster.gossip-interval={GOSSIP_INTERVAL}",
            f"--cluster.pushpull-interval={PUSHPULL_INTERVAL}",
            f"--cluster.peer-timeout={self.peer_timeout}",
            "--cluster.reconnect-interval=1s",
            "--log.level=info",
        ]

    async def cluster_status(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """`cluster` of /api/v2/status: `status` ("ready" once settled) and `peers`."""
        async with session.get(f"{self.url}/api/v2/status") as response:
            assert response.status == 200, await response.text()
            status: dict[str, Any] = (await response.json())["cluster"]
            return status


@contextlib.contextmanager
def alertmanager_cluster(
    workdir: Path, size: int = 2, peer_timeout: str = "15s"
) -> Iterator[list[ClusteredAlertmanager]]:
    """`size` members, each peering with all the others (not started); stopped on the way out."""
    binary = require_tool("prometheus-alertmanager")
    ports = [free_port() for _ in range(size)]
    members = [
        ClusteredAlertmanager(
            binary,
            workdir / f"am{i}",
            cluster_port=port,
            peers=tuple(p for p in ports if p != port),
            peer_timeout=peer_timeout,
        )
        for i, port in enumerate(ports)
    ]
    try:
        yield members
    finally:
        for am in members:
            am.stop()


async def settled(session: aiohttp.ClientSession, members: list[ClusteredAlertmanager]) -> None:
    """Wait until every member is ready, sees all the others and says its gossip settled."""
    for am in members:
        await am.ready(session)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        statuses = [await am.cluster_status(session) for am in members]
        if all(
            s.get("status") == "ready" and len(s.get("peers") or []) == len(members)
            for s in statuses
        ):
            return
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {am.url} ---\n{am.log()}" for am in members)
            pytest.fail(f"cluster did not settle in {SETTLE_TIMEOUT:g}s: {statuses}\n{logs}")
        await asyncio.sleep(0.1)
