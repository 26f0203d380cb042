"""A routing file's YAML with line numbers: data, or located problems, never an exception.

The bytes must be UTF-8 without control characters, and the YAML is typed by a strict schema
(`_Loader`): dates and yes/no stay text.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError

# The key path of problems about the file as a whole (its encoding, its YAML syntax).
FILE = "(file)"
# A binary or wrongly encoded file would otherwise list a problem per line.
MAX_FILE_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a routing file, located by file, line and key path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        # One line per problem, `file:line: key.path: message`, whatever the file contains:
        # control characters are escaped, and a colon in a key path would split it.
        path = _printable(self.path).replace(":", r"\x3a")
        where = f" {path}:" if path else ""
        return f"{self.file}:{self.line}:{where} {_printable(self.message)}"


# Control characters, line separators, and lone surrogates (from YAML escapes: not UTF-8).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m[0])[1:-1], text)


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows its own line and each key's line."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, typing plain scalars by YAML 1.2's core schema instead of YAML 1.1.

    YAML 1.1 (PyYAML's default) turns `2027-02-29` into a date, or into an exception (no such
    day), `yes`/`no`/`on`/`off` into booleans, `010` into 8 and `1:30` into 90, before the
    schema has a say. Here only null, true/false, integers and floats are recognised; all else
    stays text, and the key that wants a date or a duration parses the text and reports a bad
    one at its line. Explicit tags other than those (`!!timestamp`, `!!binary`, `!!set`, ...)
    are refused at their line. A subclass of PyYAML rather than ruamel.yaml: no new dependency,
    and PyYAML's marks already give every line.
    """

    # Own tables, so nothing of SafeLoader's YAML 1.1 typing is inherited.
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 (an instance variable to the stubs)
    yaml_constructors: ClassVar[dict[Any, Any]] = {}
    yaml_multi_constructors: ClassVar[dict[Any, Any]] = {}
    duplicate_keys: list[tuple[str, int]]


_TAG = "tag:yaml.org,2002:"
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
for _tag, _pattern, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", _INT.pattern, "-+0123456789"),
    ("float", rf"{_FLOAT.pattern}|{_INF.pattern}|{_NAN.pattern}", "-+.0123456789"),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),  # `<<: *defaults`, which SafeLoader's flatten_mapping applies
):
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(rf"^(?:{_pattern})\Z"), list(_first))


def _null(loader: _Loader, node: yaml.ScalarNode) -> None:
    return None


def _str(loader: _Loader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


def _bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    text = loader.construct_scalar(node)
    if text.lower() not in ("true", "false"):
        raise ConstructorError(None, None, f"{text!r} is not true or false", node.start_mark)
    return text.lower() == "true"


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if _INT.fullmatch(text) is None:
        raise ConstructorError(None, None, f"{text!r} is not an integer", node.start_mark)
    try:
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)
    except ValueError:  # over Python's 4300 digits
        raise ConstructorError(None, None, "integer too long", node.start_mark) from None


def _float(loader: _Loader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    if _NAN.fullmatch(text):
        return math.nan
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _FLOAT.fullmatch(text) is None:
        raise ConstructorError(None, None, f"{text!r} is not a number", node.start_mark)
    return float(text)


def _unsupported(loader: _Loader, node: yaml.Node) -> None:
    raise ConstructorError(
        None, None, f"the tag {node.tag!r} is not supported here", node.start_mark
    )


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        # A key is a name, as written: `on`, `true` and `010` stay themselves.
        if isinstance(key_node, yaml.ScalarNode):
            key = str(key_node.value)
        else:
            key = str(loader.construct_object(key_node, deep=True))
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicate_keys.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(_TAG + "null", _null)
_Loader.add_constructor(_TAG + "str", _str)
_Loader.add_constructor(_TAG + "bool", _bool)
_Loader.add_constructor(_TAG + "int", _int)
_Loader.add_constructor(_TAG + "float", _float)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
_Loader.add_constructor(None, _unsupported)


class ConfigError(Exception):
    """The routing file is invalid; `problems` lists everything found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_yaml(path: Path) -> tuple[Any, list[Problem]]:
    """Parse a YAML file; undecodable bytes, control characters and syntax errors raise
    ConfigError with their lines; duplicate keys come back as problems."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        problem = Problem(name, 0, FILE, f"cannot read file: {e.strerror or e}")
        raise ConfigError([problem]) from None
    text = _decode(name, data)
    unprintable = _unprintable(name, text)
    if unprintable:
        raise ConfigError(unprintable)
    loader = _Loader(text)
    loader.duplicate_keys = []
    try:
        loaded = loader.get_single_data()
    except ConstructorError as e:
        raise ConfigError([_marked(name, e, "")]) from None
    except yaml.MarkedYAMLError as e:
        raise ConfigError([_marked(name, e, "YAML syntax: ")]) from None
    except yaml.reader.ReaderError as e:  # kept out by _unprintable; located all the same
        line = text.count("\n", 0, e.position) + 1
        raise ConfigError([Problem(name, line, FILE, f"YAML: {e.reason}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError([Problem(name, loader.line + 1, FILE, f"YAML: {e}")]) from None
    except RecursionError:
        # PyYAML composes nested collections recursively.
        raise ConfigError([Problem(name, loader.line + 1, FILE, "nested too deeply")]) from None
    finally:
        loader.dispose()
    dupes = [Problem(name, line, key, "duplicate key") for key, line in loader.duplicate_keys]
    return loaded, dupes


def _marked(name: str, e: yaml.MarkedYAMLError, prefix: str) -> Problem:
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark is not None else 1
    return Problem(name, line, FILE, f"{prefix}{e.problem or e.context or e}")


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _decode(name: str, data: bytes) -> str:
    """The file's text; each line with bytes that are not UTF-8 is a problem at its first one."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise ConfigError(
                [
                    Problem(
                        name,
                        1,
                        FILE,
                        f"not UTF-8 text at byte 0 (a {encoding} byte order mark); "
                        "save the file as UTF-8",
                    )
                ]
            )
    # A UTF-8 byte order mark is harmless: some editors on Windows write one.
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError:
        pass
    problems = []
    offset = start
    for number, line in enumerate(data[start:].split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            at = offset + e.start
            problems.append(
                Problem(
                    name,
                    number,
                    FILE,
                    f"not UTF-8 text at byte {at} (0x{data[at]:02x}); save the file as UTF-8",
                )
            )
            if len(problems) == MAX_FILE_PROBLEMS:
                break
        offset += len(line) + 1
    raise ConfigError(problems)


# What YAML does not allow in a stream (PyYAML's Reader would stop at the first one).
_NOT_YAML = re.compile(r"[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _unprintable(name: str, text: str) -> list[Problem]:
    """Control characters (pasted from a terminal, a NUL of UTF-16), one problem per line."""
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        found = _NOT_YAML.search(line)
        if found is None:
            continue
        char = found[0]
        what = "control character" if ord(char) < 0xA0 else "character"
        hint = " (UTF-16 text? save the file as UTF-8)" if char == "\0" else ""
        problems.append(
            Problem(
                name,
                number,
                FILE,
                f"{what} U+{ord(char):04X} at column {found.start() + 1} is not allowed{hint}",
            )
        )
        if len(problems) == MAX_FILE_PROBLEMS:
            break
    return problems
