"""The process as Kubernetes drives it: SIGTERM, SIGHUP, ConfigMap updates (real subprocesses)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from receiver.config.load import load_config
from receiver.config.yaml_file import ConfigError
from receiver.web.logs import Redactor
from tests.fakes import FakeSlack, Slow
from tests.fakes.slack import TEST_BOT_TOKEN
from tests.helpers import ROOT, fixture_bytes, free_port
from tests.test_config_fuzz import KINDS, MUTANTS, SHIPPED, Mutant

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


@dataclass
class LogTail:
    """A running service's stderr, read as it comes: nobody reading would fill the pipe and
    block its logging. `Service.stop()` reads the pipes itself, so use `stop()` here instead."""

    service: Service
    records: list[dict[str, object]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        proc = self.service.proc
        assert proc.stderr is not None
        assert proc.stdout is not None
        self._tasks = [
            asyncio.create_task(self._read(proc.stderr, keep=True)),
            asyncio.create_task(self._read(proc.stdout, keep=False)),
        ]

    async def _read(self, stream: asyncio.StreamReader, *, keep: bool) -> None:
        while line := await stream.readline():
            if not keep:
                continue
            text = line.decode("utf-8", "replace")
            self.lines.append(text)
            with contextlib.suppress(ValueError):  # not a record: `lines` still has it
                self.records.append(json.loads(text))

    def count(self, msg: str) -> int:
        return sum(1 for r in self.records if r.get("msg") == msg)

    async def wait_for_more(self, msg: str, than: int, what: str) -> None:
        """Until more than `than` records say `msg`."""
        for _ in range(400):
            if self.count(msg) > than:
                return
            assert self.service.proc.returncode is None, "".join(self.lines[-30:])
            await asyncio.sleep(0.025)
        pytest.fail(f"{what} did not happen; last log lines:\n{''.join(self.lines[-30:])}")

    async def stop(self) -> int:
        self.service.terminate()
        code = await asyncio.wait_for(self.service.proc.wait(), 30)
        await asyncio.gather(*self._tasks)
        return code


def rejected(mutant: Mutant, path: Path) -> list[str] | None:
    """The problems `load_config` finds in the mutant at `path`, as the log would show them
    (redacted alike); None if the mutant happens to be a valid file."""
    path.write_bytes(mutant.content)
    try:
        load_config(path, {})
    except ConfigError as e:
        redact = Redactor()
        return [json.loads(redact(json.dumps(str(p), ensure_ascii=False))) for p in e.problems]
    return None


def replace_file(path: Path, content: bytes) -> None:
    """Write `content` beside `path`, then rename it over `path` in one step."""
    scratch = path.with_name(f".{path.name}.new")
    scratch.write_bytes(content)
    os.replace(scratch, path)


async def test_broken_reloads_are_refused_and_the_watcher_goes_on(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Fuzzed broken files as hot reloads: alive, gauge 0, each problem logged; then a good edit
    is picked up by the watcher without SIGHUP, and SIGTERM still drains and exits 0."""
    scratch = tmp_path / "scratch.yaml"
    # Two broken variants of each kind (and the audit's cases): as check, the file's own
    # problems, expected in the log.
    sample = [
        (m, problems)
        for m in MUTANTS
        if (m.seed < 2 or m.kind.startswith("audit-"))
        and (problems := rejected(m, scratch)) is not None
    ]
    assert {m.kind for m, _ in sample} >= set(KINDS)
    config = tmp_path / "routing.yaml"
    config.write_text(SHIPPED)
    service = await start(config, "--dry-run", "--reload-interval", "0.1")
    tail = LogTail(service)
    gauge = "oncall_router_config_last_reload_successful"
    try:
        for mutant, problems in sample:
            before = tail.count("reload failed; keeping the running configuration")
            mark = len(tail.records)
            # The same problems at the service's path: render them for it.
            # Whole files, as editors and ConfigMap updates swap them in: the watcher must not
            # catch a half-written file (that would be rejected for the wrong reason).
            replace_file(config, mutant.content)
            expected = [p.replace(str(scratch), str(config)) for p in problems]
            await tail.wait_for_more(
                "reload failed; keeping the running configuration", before, mutant.id
            )
            assert await metric(session, service.url, gauge) == 0, mutant.id
            logged = [
                r["problem"] for r in tail.records[mark:] if r.get("msg") == "routing file rejected"
            ]
            assert logged == expected, mutant.id
            async with session.get(f"{service.url}/-/ready") as r:
                assert r.status == 200  # still serving the old file
        done = tail.count("routing file reloaded")
        good = SHIPPED.replace("timezone: Europe/London", "timezone: Europe/Dublin")
        replace_file(config, good.encode())
        await tail.wait_for_more("routing file reloaded", done, "the good edit")
        assert await metric(session, service.url, gauge) == 1
        reloaded = [r for r in tail.records if r.get("msg") == "routing file reloaded"]
        assert reloaded[-1]["reason"] == "file changed"  # the watcher, not a SIGHUP
    finally:
        code = await tail.stop()
    assert code == 0, "".join(tail.lines[-30:])
    assert tail.count("stopped") == 1
    assert not any("Traceback" in line for line in tail.lines)
    assert not any("exc" in r for r in tail.records)
    assert len(sample) >= 15
