"""The README's examples are what the commands really print: each `$ oncall-router ...` line of
the "Commands" section is run and its output compared with the text under it."""

from __future__ import annotations

import difflib
import io
import json
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from receiver.cli.main import main
from receiver.config.settings import Settings
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.helpers import ROOT, dry_run_router, fixture_bytes, printed

README = ROOT / "README.md"
PROMPT = "$ oncall-router "
ELISION = "..."
# Secrets the shipped routing file names: the examples show a machine where they are unset.
UNSET = ("SENTRY_LEGACY_TOKEN", "SLACK_ALERTS_WEBHOOK_URL")


def section(title: str) -> str:
    """The text of one `## title` section of the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def fenced(text: str) -> list[tuple[str, list[str]]]:
    """(info string, lines) of each fenced block."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)
    return [(info, body.splitlines()) for info, body in blocks]


@dataclass(frozen=True)
class Example:
    command: str
    expected: tuple[str, ...]


def examples(text: str) -> list[Example]:
    """Each prompt line of the console blocks and the output shown under it."""
    out: list[Example] = []
    for info, lines in fenced(text):
        if info != "console":
            continue
        command: str | None = None
        shown: list[str] = []
        for line in [*lines, PROMPT]:
            if line.startswith("$ "):
                if command is not None:
                    while shown and not shown[-1].strip():
                        shown.pop()
                    out.append(Example(command, tuple(shown)))
                command = line[len(PROMPT) :] if line.startswith(PROMPT) else None
                shown = []
            elif command is not None:
                shown.append(line)
    return out


def files(text: str) -> dict[str, str]:
    """Files the section shows: YAML blocks whose first line is `# NAME.yaml`."""
    out = {}
    for info, lines in fenced(text):
        if info == "yaml" and lines and re.fullmatch(r"# [\w.-]+\.yaml", lines[0]):
            out[lines[0][2:]] = "\n".join(lines) + "\n"
    return out


def matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """Line for line; a line `...` stands for any number of lines (here none or more)."""
    segments: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == ELISION:
            segments.append([])
        else:
            segments[-1].append(line.rstrip())
    pos = 0
    for i, segment in enumerate(segments):
        if i == 0:
            if actual[: len(segment)] != segment:
                return False
            pos = len(segment)
            continue
        found = next(
            (
                j
                for j in range(pos, len(actual) - len(segment) + 1)
                if actual[j : j + len(segment)] == segment
            ),
            None,
        )
        if found is None:
            return False
        pos = found + len(segment)
    # Without a trailing `...` the output must end where the example does.
    return (len(segments) > 1 and not segments[-1]) or pos == len(actual)


def run(command: str) -> tuple[int, list[str]]:
    """Run as the shell would, stdout and stderr interleaved as on a terminal."""
    buffer = io.StringIO()
    with redirect_stdout(buffer), redirect_stderr(buffer):
        code = main(shlex.split(command))
    return code, [line.rstrip() for line in buffer.getvalue().splitlines()]


COMMANDS = section("Commands")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout-like directory holding the files the section shows, with secrets unset."""
    (tmp_path / "routing.yaml").write_bytes((ROOT / "routing.yaml").read_bytes())
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    for name, content in files(COMMANDS).items():
        (tmp_path / name).write_text(content)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_section_has_examples_of_each_core_command() -> None:
    """The parser finds the examples (an empty list would make the next test pass vacuously)."""
    found = {e.command.split()[0] for e in examples(COMMANDS)}
    assert {"check", "route", "who", "simulate"} <= found
    assert all(e.expected for e in examples(COMMANDS))


@pytest.mark.parametrize("example", examples(COMMANDS), ids=lambda e: e.command)
def test_example_output_is_real(workdir: Path, example: Example) -> None:
    """Each example prints what the README shows (`...` lines elide the rest)."""
    code, actual = run(example.command)
    assert code in (0, 1), actual  # 2 would be a usage error: the example is mistyped
    diff = "\n".join(difflib.unified_diff(example.expected, actual, "README", "real", lineterm=""))
    assert matches(example.expected, actual), diff


ROUTING_FILE = section("The routing file")


def test_the_routing_file_section_shows_teams_at_work() -> None:
    assert any("examples/company.yaml" in e.command for e in examples(ROUTING_FILE))


@pytest.mark.parametrize("example", examples(ROUTING_FILE), ids=lambda e: e.command)
def test_routing_file_example_output_is_real(
    example: Example, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The examples of "The routing file" (teams), run on the repository's own files."""
    monkeypatch.chdir(ROOT)
    code, actual = run(example.command)
    assert code == 0, actual
    diff = "\n".join(difflib.unified_diff(example.expected, actual, "README", "real", lineterm=""))
    assert matches(example.expected, actual), diff


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (("a", "b"), ["a", "b"], True),
        (("a", "b"), ["a", "b", "c"], False),
        (("a", "..."), ["a", "b", "c"], True),
        (("a", "  ...", "c"), ["a", "b", "c"], True),
        (("...", "c"), ["a", "b", "c"], True),
        (("a", "...", "b"), ["a", "c"], False),
        (("b", "..."), ["a", "b"], False),
        (("a", "...", "c", "b"), ["a", "b", "c"], False),
    ],
)
def test_elision(expected: tuple[str, ...], actual: list[str], ok: bool) -> None:
    """`...` skips lines but keeps order and anchors; without it the match is exact."""
    assert matches(expected, actual) is ok


async def posted_sms(
    aiohttp_client: AiohttpClient, service: Service, out: io.StringIO
) -> list[dict[str, str]]:
    """The SMS lines a dry-run service prints for the critical fixture."""
    client = await aiohttp_client(create_app(service))
    body = fixture_bytes("alertmanager-firing-critical.json")
    answer = await client.post(
        "/webhooks/alertmanager", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 200
    return [line for line in printed(out) if line["channel"] == "sms"]


async def test_start_here_output_is_real(aiohttp_client: AiohttpClient) -> None:
    """The SMS line "Start here" shows is what the dry-run service prints for the fixture."""
    blocks = [lines for info, lines in fenced(section("Start here")) if info == "json"]
    assert [len(lines) for lines in blocks] == [1]
    shown = json.loads(blocks[0][0])
    service, out = dry_run_router()
    sms = await posted_sms(aiohttp_client, service, out)
    assert sms == [shown]
    # And it is printed exactly so: one JSON line, keys in this order.
    assert json.dumps(shown, ensure_ascii=False) in out.getvalue().splitlines()


async def test_acknowledgement_example_output_is_real(aiohttp_client: AiohttpClient) -> None:
    """The SMS line the Acknowledgement section shows, code included, is what a dry run with
    those settings prints for the fixture, and the table quotes the same code."""
    text = section("Acknowledgement")
    shown = [
        json.loads(line)
        for _, lines in fenced(text)
        for line in lines
        if line.startswith("{") and "Reply ACK" in line
    ]
    assert len(shown) == 1
    settings = Settings(
        ack_secret="demo",
        alertmanager_url="http://127.0.0.1:9093",
        public_url="https://oncall.example.com",
    )
    service, out = dry_run_router(settings=settings)
    sms = await posted_sms(aiohttp_client, service, out)
    assert sms == shown
    code = sms[0]["text"].rsplit(" ", 1)[1]
    assert f"replies `ACK {code}`" in README.read_text(encoding="utf-8")
