"""Mutation fuzz of the shipped routing.yaml through `oncall-router check`.

A seeded generator makes a fixed number of broken variants of the shipped file: wrong types,
impossible dates, other encodings (Latin-1, UTF-16, invalid UTF-8), control characters, deleted
and duplicated keys, scalars, lists and mappings swapped, YAML tags and escapes. `check` must
never raise: it exits 0 or 1, and every line it prints is a located problem
(`file:line: key.path: message`), a warning, or the count. tests/test_lifecycle.py sends a sample
of the same variants to a running `serve` as hot reloads.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.cli.main import main
from tests.helpers import ROUTING

SHIPPED = ROUTING.read_text(encoding="utf-8")
CASES_PER_KIND = 20
SUMMARY = re.compile(r"^\d+ problem\(s\) found$")


@dataclass(frozen=True)
class Mutant:
    """One broken variant of the shipped file: its bytes and what was done to it."""

    kind: str
    seed: int
    content: bytes
    what: str

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.seed}"


# -- structural mutations, on the loaded document ------------------------------------------------

WRONG_VALUES: tuple[Any, ...] = (
    -1,
    3,
    0,
    1.5,
    10**30,
    math.nan,
    math.inf,
    True,
    False,
    None,
    "",
    "x",
    "2027-02-29",
    "yes",
    "9999w",
    "0x1F",
    "\0",
    [],
    [1],
    ["x", None],
    {},
    {"a": 1},
    {"name": {"x": []}},
)


def _plain() -> Any:
    # PyYAML's own loader: only to get a document to mutate and dump again.
    return yaml.safe_load(SHIPPED)


def _nodes(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _nodes(value, (*path, i))


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return data


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode()


def wrong_type(rng: random.Random) -> tuple[bytes, str]:
    data = _plain()
    path, _ = rng.choice(list(_nodes(data))[1:])
    value = rng.choice(WRONG_VALUES)
    return _dump(_set(data, path, value)), f"{path} = {value!r}"


def delete_key(rng: random.Random) -> tuple[bytes, str]:
    data = _plain()
    mappings = [(p, v) for p, v in _nodes(data) if isinstance(v, dict) and v]
    path, mapping = rng.choice(mappings)
    key = rng.choice(list(mapping))
    del mapping[key]
    return _dump(data), f"del {(*path, key)}"


def swap_shape(rng: random.Random) -> tuple[bytes, str]:
    data = _plain()
    path, value = rng.choice(list(_nodes(data))[1:])
    if isinstance(value, dict):
        swapped: Any = rng.choice([list(value.values()), list(value), [value], str(value)])
    elif isinstance(value, list):
        swapped = rng.choice([{"k": value}, dict(enumerate(value)), value[0] if value else "x"])
    else:
        swapped = rng.choice([[value], {str(value): value}, {"k": [value]}])
    return _dump(_set(data, path, swapped)), f"{path}: {type(value).__name__} swapped"


# -- textual mutations, on the file's lines and bytes -------------------------------------------

_SCALAR = re.compile(r"(?<=: )[^\s{\[#][^,}\]\n#]*|(?<=- )[^\s{\[#][^,}\]\n#]*")
IMPOSSIBLE = ("2027-02-29", "2026-13-01", "2026-02-30 25:00", "0000-01-01", "9999-12-31 23:59:60")


def impossible_date(rng: random.Random) -> tuple[bytes, str]:
    spots = list(_SCALAR.finditer(SHIPPED))
    spot = rng.choice(spots)
    date = rng.choice(IMPOSSIBLE)
    text = SHIPPED[: spot.start()] + date + SHIPPED[spot.end() :]
    return text.encode(), f"{spot[0]!r} -> {date} at {spot.start()}"


def encoding(rng: random.Random) -> tuple[bytes, str]:
    how = rng.choice(["latin-1", "utf-16", "utf-16-le", "utf-32", "invalid", "cp1252"])
    at = rng.randrange(len(SHIPPED))
    if how in ("latin-1", "cp1252"):
        text = SHIPPED[:at] + rng.choice(["é", "£", "ü"]) + SHIPPED[at:]
        return text.encode(how), f"{how} at {at}"
    if how == "invalid":
        raw = SHIPPED.encode()
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xc0\xaf"])
        return raw[:at] + bad + raw[at:], f"{bad!r} at byte {at}"
    return SHIPPED.encode(how), how


CONTROL = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x80, 0x9B)]


def control_character(rng: random.Random) -> tuple[bytes, str]:
    at = rng.randrange(len(SHIPPED))
    char = rng.choice([*CONTROL, "\ufffe", "\uffff"])
    return (SHIPPED[:at] + char + SHIPPED[at:]).encode(), f"U+{ord(char):04X} at {at}"


def duplicate(rng: random.Random) -> tuple[bytes, str]:
    lines = SHIPPED.splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*[\w-]+:", line)]
    i = rng.choice(keyed)
    if rng.random() < 0.5 or not lines[i][0].isalpha():
        lines.insert(i, lines[i])  # the same key twice in one mapping
        return "".join(lines).encode(), f"line {i + 1} twice"
    block = [lines[i]]
    for line in lines[i + 1 :]:
        if line[:1].isalpha():
            break
        block.append(line)
    return (SHIPPED + "".join(block)).encode(), f"top-level block at line {i + 1} twice"


def line_edit(rng: random.Random) -> tuple[bytes, str]:
    lines = SHIPPED.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    how = rng.choice(["delete", "indent", "dedent", "tab", "truncate"])
    if how == "delete":
        del lines[i]
    elif how == "indent":
        lines[i] = "   " + lines[i]
    elif how == "dedent":
        lines[i] = lines[i].lstrip(" ")
    elif how == "tab":
        lines[i] = "\t" + lines[i]
    else:
        return SHIPPED.encode()[: rng.randrange(len(SHIPPED))], "truncated"
    return "".join(lines).encode(), f"{how} line {i + 1}"


TAGS = (
    "!!timestamp",
    "!!binary",
    "!!int",
    "!!float",
    "!!bool",
    "!!set",
    "!!python/object:os.system",
    "!custom",
)
ESCAPES = ("\\0", "\\ud800", "\\x07", "\\n", "\\u2028", "\\e", "\\N")


def yaml_feature(rng: random.Random) -> tuple[bytes, str]:
    spots = list(_SCALAR.finditer(SHIPPED))
    spot = rng.choice(spots)
    how = rng.choice(["tag", "escape", "alias", "anchor-loop", "merge", "deep"])
    if how == "tag":
        new = f"{rng.choice(TAGS)} {spot[0]}"
    elif how == "escape":
        body = spot[0].strip('"')
        cut = rng.randrange(len(body) + 1)
        new = f'"{body[:cut]}{rng.choice(ESCAPES)}{body[cut:]}"'
    elif how == "alias":
        new = "*nowhere"
    elif how == "anchor-loop":
        new = "&loop [*loop]"
    elif how == "merge":
        new = rng.choice(["{<<: 3}", "{<<: [1, 2]}", "{<<: {a: 1}, b: 2}"])
    else:
        depth = rng.choice([50, 2000])
        new = "[" * depth + "]" * depth
    text = SHIPPED[: spot.start()] + new + SHIPPED[spot.end() :]
    return text.encode(), f"{how}: {spot[0]!r} -> {new[:40]!r}"


KINDS: dict[str, Callable[[random.Random], tuple[bytes, str]]] = {
    "wrong-type": wrong_type,
    "delete-key": delete_key,
    "swap-shape": swap_shape,
    "impossible-date": impossible_date,
    "encoding": encoding,
    "control-character": control_character,
    "duplicate": duplicate,
    "line-edit": line_edit,
    "yaml-feature": yaml_feature,
}
# Each of the audit's findings, as written in the report.
AUDIT: tuple[tuple[str, str], ...] = (
    ("holidays", "time_windows:\n  business-hours:\n    holidays: [2027-02-29]"),
    ("people", "people: 3"),
    ("groups", "groups: 3"),
    ("slack", "slack: -1"),
    ("levels", "sentry:\n  levels: 1.5"),
    ("route-name", "routes:\n  - name: -1\n    targets: [{kind: slack, channel: incidents}]"),
)


def mutants(per_kind: int = CASES_PER_KIND) -> list[Mutant]:
    """The same list on every run: each case's own generator is seeded by its kind and number."""
    out = []
    for kind, make in KINDS.items():
        for seed in range(per_kind):
            content, what = make(random.Random(f"{kind}:{seed}"))
            out.append(Mutant(kind, seed, content, what))
    for seed, (name, snippet) in enumerate(AUDIT):
        # Appended: a later duplicate of a top-level key is its own problem, listed as well.
        out.append(Mutant(f"audit-{name}", seed, (SHIPPED + snippet + "\n").encode(), snippet))
    out.append(Mutant("audit-latin-1", 0, ("# café\n" + SHIPPED).encode("latin-1"), "latin-1"))
    out.append(Mutant("audit-utf-16", 0, SHIPPED.encode("utf-16"), "utf-16 with BOM"))
    out.append(
        Mutant("audit-control", 0, SHIPPED.replace("Europe/", "Europe/\x1b").encode(), "ESC")
    )
    return out


MUTANTS = mutants()


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`oncall-router check`, in process: an exception would fail the test with its traceback."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", "--config", str(path)])
    return code, capsys.readouterr().err.splitlines()


def problem_lines(path: Path, code: int, err: list[str]) -> list[str]:
    """The problems `check` printed, after asserting every line is well formed."""
    located = re.compile(rf"^{re.escape(str(path))}:\d+: [^:]+: .+$")
    problems = [line for line in err if not line.startswith("warning: ")]
    assert code in (0, 1), err
    assert not any("Traceback" in line or "internal error" in line for line in err), err
    if code == 0:
        assert problems == [], err
        return []
    assert problems, err
    assert SUMMARY.match(problems[-1]), err
    bad = [line for line in problems[:-1] if not located.match(line)]
    assert bad == [], f"not file:line: key: message: {bad}"
    assert problems[-1] == f"{len(problems) - 1} problem(s) found"
    return problems[:-1]


def test_the_generator_is_bounded_and_varied() -> None:
    """A few hundred cases, every kind present, nearly all distinct, and the same on each run."""
    assert 150 <= len(MUTANTS) <= 400
    assert len({m.content for m in MUTANTS}) > 0.9 * len(MUTANTS)
    assert [m.content for m in mutants()] == [m.content for m in MUTANTS]
    assert {m.kind for m in MUTANTS} >= set(KINDS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_check_never_raises_and_locates_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutant: Mutant
) -> None:
    """`check` on a broken variant: exit 0 or 1, and each problem is `file:line: key: message`."""
    path = tmp_path / "routing.yaml"
    path.write_bytes(mutant.content)
    code, err = check(path, capsys)
    problem_lines(path, code, err)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("holidays", ": time_windows.business-hours.holidays[0]: '2027-02-29' is not a date"),
        ("people", ": people: expected a mapping, got int 3"),
        ("groups", ": groups: expected a mapping, got int 3"),
        ("slack", ": slack: expected a mapping, got int -1"),
        ("levels", ": sentry.levels: expected a mapping, got float 1.5"),
    ],
)
def test_the_audits_cases_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, expected: str
) -> None:
    """Each mistake from the audit is one located problem that says what is wrong."""
    mutant = next(m for m in MUTANTS if m.kind == f"audit-{name}")
    path = tmp_path / "routing.yaml"
    path.write_bytes(mutant.content)
    code, err = check(path, capsys)
    assert code == 1
    assert any(expected in line for line in problem_lines(path, code, err)), err
