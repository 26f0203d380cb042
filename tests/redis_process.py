"""A real `redis-server` on loopback for tests of the shared store, which can fail on demand.

No persistence (`--save ""`, `--appendonly no`): a restart starts empty, as the Deployment in
deploy/k8s does. `stop()` then `start()` brings it back on the same port (Redis down for a
while); `pause()` / `resume()` freeze it with SIGSTOP / SIGCONT (connections are still accepted
by the kernel, commands never answer: a hung Redis).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

import pytest

from tests.helpers import free_port, require_tool

# A bound on each wait; redis-server answers within milliseconds of starting.
READY_TIMEOUT = 10.0


def resp(*words: str) -> bytes:
    """One command in the Redis protocol (RESP), as redis-cli would send it."""
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclasses.dataclass
class RedisServer:
    """One `redis-server` on 127.0.0.1, nothing kept on disk, its files in a temp dir."""

    binary: str
    workdir: Path
    password: str | None = None
    port: int = dataclasses.field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0, with `:PASSWORD@` (percent-encoded) when one is set."""
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again, on the same port) and return once it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.log_file is None:
            self.log_file = (self.workdir / "redis.log").open("ab")  # every run, in order
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",  # stdout, into the log file
        ]
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.paused = False
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer yet"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                pid = self.answering_pid()
                if pid == self.process.pid:
                    return
                last = f"port {self.port} answered by pid {pid}, not {self.process.pid}"
            except (OSError, ValueError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"redis-server on port {self.port} did not answer within "
                    f"{READY_TIMEOUT:g}s ({last}):\n{self.log()}"
                )
            time.sleep(0.05)

    def answering_pid(self) -> int:
        """The process_id of whoever answers on the port (AUTH first when a password is set).

        Ready means answering *and* being this process: after `stop()`, something else may sit
        on the port, and a PING alone would not tell.
        """
        commands = [resp("INFO", "server")]
        if self.password is not None:
            commands.insert(0, resp("AUTH", self.password))
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
            conn.sendall(b"".join(commands))
            with conn.makefile("rb") as replies:
                if self.password is not None and replies.readline() != b"+OK\r\n":
                    raise ValueError("AUTH refused")
                header = replies.readline()
                if not header.startswith(b"$"):
                    raise ValueError(f"INFO answered {header!r}")
                info = replies.read(int(header[1:]) + 2).decode()
        for line in info.splitlines():
            key, _, value = line.partition(":")
            if key == "process_id":
                return int(value)
        raise ValueError("INFO server has no process_id")

    def stop(self) -> None:
        """SIGTERM and wait for the exit (SIGKILL after 5 s); the data is gone."""
        if self.process is not None and self.process.poll() is None:
            if self.paused:
                self.resume()  # a stopped process only acts on SIGTERM once continued
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.paused = False

    def close(self) -> None:
        """Stop, and close the log file (after which `log()` still reads it)."""
        self.stop()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "never started"
        assert self.process.poll() is None, f"redis-server has exited:\n{self.log()}"
        return self.process

    def pause(self) -> None:
        """SIGSTOP: connections still open (the kernel accepts them), nothing is answered."""
        self.running().send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: answers again, including what was sent while paused."""
        self.running().send_signal(signal.SIGCONT)
        self.paused = False

    def log(self) -> str:
        if self.log_file is not None:
            self.log_file.flush()
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    @contextlib.contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """On any failure, show redis-server's own log with the test's output."""
        try:
            yield
        except BaseException:
            print(f"--- redis-server log ---\n{self.log()}")
            raise

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def redis_binary() -> str:
    """redis-server: skipped locally without it, a failure in CI."""
    return require_tool("redis-server", "redis-server")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server without a password; stopped after the test whatever it did."""
    with RedisServer(redis_binary(), tmp_path / "redis") as server:
        yield server
