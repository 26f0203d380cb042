"""The process as Kubernetes drives it: SIGTERM, SIGHUP, ConfigMap updates (real subprocesses)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.fakes import FakeSlack, Slow
from tests.fakes.slack import TEST_BOT_TOKEN
from tests.helpers import ROOT, fixture_bytes, free_port

JSON = {"Content-Type": "application/json"}
ROUTING_V1 = """\
people:
  alice: {phone: "+447700900101", email: alice@example.com, slack: U0ALICE}
slack:
  incidents: {channel: C0INCIDENTS}
delivery: {rate_limits: {slack: 0s}, deadline: 5s}
routes:
  - name: everything
    targets: [{kind: slack, channel: incidents}]
"""
ROUTING_V2 = ROUTING_V1.replace(
    "targets: [{kind: slack, channel: incidents}]",
    "targets: [{kind: slack, channel: incidents}, {kind: email, person: alice}]",
)


@dataclass
class Service:
    proc: asyncio.subprocess.Process
    url: str
    terminated: bool = False

    def terminate(self) -> None:
        """One SIGTERM, as Kubernetes sends (a second one during exit would kill the process)."""
        self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    async def stop(self) -> tuple[int, str, str]:
        if not self.terminated:
            self.terminate()
        out, err = await asyncio.wait_for(self.proc.communicate(), 30)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()


async def start(config: Path, *extra: str, env: dict[str, str] | None = None) -> Service:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "serve",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        *extra,
        cwd=ROOT,
        env={**_clean_env(), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/-/ready") as r:
                    if r.status == 200:
                        return Service(proc, url)
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    proc.kill()
    _, err = await proc.communicate()
    pytest.fail(f"service did not start: {err.decode()}")


def _clean_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("LC_")}


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(f"{url}/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {"SLACK_API_URL": f"{fake.url}/api", "SLACK_BOT_TOKEN": TEST_BOT_TOKEN}


async def test_sigterm_turns_ready_off_then_exits_cleanly(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """SIGTERM: /-/ready says 503 at once while still serving, then the process exits 0."""
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTING_V1)
    service = await start(config, "--dry-run", "--shutdown-delay", "2")
    service.terminate()
    await asyncio.sleep(0.3)
    async with session.get(f"{service.url}/-/ready") as r:
        assert r.status == 503
    async with session.get(f"{service.url}/-/healthy") as r:
        assert r.status == 200  # alive: liveness must not restart a draining pod
    code, _, err = await service.stop()
    assert code == 0, err
    assert '"msg": "stopped"' in err


async def test_in_flight_delivery_finishes(
    tmp_path: Path, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    """A webhook whose Slack post is still in flight at SIGTERM is delivered and answered."""
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTING_V1)
    service = await start(config, env=slack_env(fake_slack))
    fake_slack.script(Slow(1.5))
    post = asyncio.create_task(
        session.post(
            f"{service.url}/webhooks/alertmanager",
            data=fixture_bytes("alertmanager-firing-critical.json"),
            headers=JSON,
        )
    )
    await fake_slack.wait_for_requests(1)
    service.terminate()
    response = await post
    assert response.status == 200
    assert (await response.json())["notifications"][0]["outcome"] == "delivered"
    response.release()
    code, _, err = await service.stop()
    assert code == 0, err


async def test_background_sentry_delivery_is_drained(
    tmp_path: Path, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    """A Sentry event answered 202 is still delivered when SIGTERM comes right after."""
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTING_V1)
    secret = "sentry-secret-for-lifecycle"
    service = await start(config, env={**slack_env(fake_slack), "SENTRY_CLIENT_SECRET": secret})
    fake_slack.script(Slow(1.0))
    body = fixture_bytes("sentry-issue-created.json")
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {**JSON, "Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": signature}
    async with session.post(f"{service.url}/webhooks/sentry", data=body, headers=headers) as r:
        assert r.status == 202
    service.terminate()
    code, _, err = await service.stop()
    assert code == 0, err
    assert len(fake_slack.requests) == 1
    assert json.loads(fake_slack.requests[0].body)["channel"] == "C0INCIDENTS"


async def post_and_read(service: Service, session: aiohttp.ClientSession) -> list[str]:
    async with session.post(
        f"{service.url}/webhooks/alertmanager",
        data=fixture_bytes("alertmanager-firing-critical.json"),
        headers=JSON,
    ) as r:
        assert r.status == 200
        return [n["channel"] for n in (await r.json())["notifications"]]


async def test_configmap_symlink_swap_is_picked_up(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Kubernetes swaps `..data`; the watcher sees it, validates, and routes by the new file."""
    (tmp_path / "..v1").mkdir()
    (tmp_path / "..v1" / "routing.yaml").write_text(ROUTING_V1)
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "routing.yaml").symlink_to("..data/routing.yaml")
    service = await start(tmp_path / "routing.yaml", "--dry-run", "--reload-interval", "0.1")
    before = await metric(
        session, service.url, "oncall_router_config_last_reload_success_timestamp_seconds"
    )
    assert await post_and_read(service, session) == ["slack"]

    (tmp_path / "..v2").mkdir()
    (tmp_path / "..v2" / "routing.yaml").write_text(ROUTING_V2)
    (tmp_path / "..data_tmp").symlink_to("..v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")  # atomic, as the kubelet does
    for _ in range(100):
        await asyncio.sleep(0.05)
        after = await metric(
            session, service.url, "oncall_router_config_last_reload_success_timestamp_seconds"
        )
        if after > before:
            break
    assert after > before
    assert await post_and_read(service, session) == ["slack", "email"]
    code, _, err = await service.stop()
    assert code == 0, err


async def test_invalid_file_keeps_the_running_config(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A broken edit is refused: old routes keep working, the gauge says 0, problems are logged."""
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTING_V1)
    service = await start(config, "--dry-run", "--reload-interval", "0")
    config.write_text(ROUTING_V2.replace("continue", "x").replace("targets:", "targetz:", 1))
    service.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if await metric(session, service.url, "oncall_router_config_last_reload_successful") == 0:
            break
    assert await metric(session, service.url, "oncall_router_config_last_reload_successful") == 0
    assert await post_and_read(service, session) == ["slack"]

    config.write_text(ROUTING_V2)
    service.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if await metric(session, service.url, "oncall_router_config_last_reload_successful") == 1:
            break
    assert await post_and_read(service, session) == ["slack", "email"]
    code, _, err = await service.stop()
    assert code == 0
    assert "routes[0].targetz: unknown key (did you mean 'targets'?)" in err
    assert "reload failed; keeping the running configuration" in err
