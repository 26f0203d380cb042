"""YAML loading that remembers line numbers, and a reader that collects every problem at once.

Reading a routing file ends in data or in located problems, never in an exception: the bytes
must be UTF-8 without control characters, the YAML is typed by a strict schema (`_Loader`), and
`Reader` checks each value's type before it is used.
"""

from __future__ import annotations

import codecs
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from yaml.constructor import ConstructorError

T = TypeVar("T")

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


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# Longer is a typo, and would overflow date arithmetic further on.
MAX_DURATION = 3650 * 86400.0


def parse_duration(value: str) -> float:
    """`500ms`, `10s`, `15m`, `1h`, `1d`, `1w` in seconds, at most 3650d."""
    m = _DURATION.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"bad duration {value!r} (e.g. 500ms, 10s, 15m, 1h, 1d, 1w)")
    seconds = float(m[1]) * _UNITS[m[2]]
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {value!r} is over 3650d")
    return seconds


class Reader:
    """Walks loaded YAML, converting values and collecting problems with their locations."""

    def __init__(self, file: str, environ: Mapping[str, str], secrets_required: bool) -> None:
        self.file = file
        self.environ = environ
        self.secrets_required = secrets_required
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.secrets: set[str] = set()

    def error(self, line: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, path, message))

    def warn(self, line: int, path: str, message: str) -> None:
        self.warnings.append(Problem(self.file, line, path, message))

    def mapping(self, value: Any, line: int, path: str, allowed: Iterable[str]) -> LineDict | None:
        """Check that `value` is a mapping with only `allowed` keys."""
        if value is None:
            empty = LineDict()
            empty.line, empty.key_lines = line, {}
            return empty
        if not isinstance(value, LineDict):
            self.error(line, path, f"expected a mapping, got {kind_of(value)}")
            return None
        known = list(allowed)
        for key in value:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                also = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(value.key_lines[key], _join(path, key), f"unknown key{also}")
        return value

    def section(
        self, parent: LineDict, key: str, path: str, allowed: Iterable[str] | None = None
    ) -> LineDict:
        """`parent[key]` as a mapping located at its key, with only `allowed` keys (None: any).

        Empty when absent or, after the problem is recorded, when it is not a mapping.
        """
        value = parent.get(key)
        if allowed is None:
            allowed = list(value) if isinstance(value, dict) else ()
        table = self.mapping(value, self.line_of(parent, key), path, allowed)
        if table is None:
            table = LineDict()
            table.line, table.key_lines = self.line_of(parent, key), {}
        return table

    def entries(
        self, parent: LineDict, key: str, path: str, allowed: Iterable[str] | None = None
    ) -> list[tuple[str, int, str, Any]]:
        """The mapping `parent[key]` as (name, line, path, value) per entry; [] if not one."""
        table = self.section(parent, key, path, allowed)
        return [
            (name, self.line_of(table, name), _join(path, name), v) for name, v in table.items()
        ]

    def sequence(self, value: Any, line: int, path: str) -> list[tuple[int, str, Any]]:
        """Items of a list as (line, path, value); a problem if it is not a list."""
        if value is None:
            return []
        if not isinstance(value, LineList):
            self.error(line, path, f"expected a list, got {kind_of(value)}")
            return []
        return [(value.item_lines[i], f"{path}[{i}]", v) for i, v in enumerate(value)]

    def line_of(self, m: LineDict, key: str) -> int:
        return m.key_lines.get(key, m.line)

    def string(self, m: LineDict, key: str, path: str, *, required: bool = False) -> str | None:
        if key not in m or m[key] is None:
            if required:
                self.error(m.line, _join(path, key), "required")
            return None
        value = m[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            where = _join(path, key)
            self.error(self.line_of(m, key), where, f"expected text, got {kind_of(value)}")
            return None
        return self.expand(str(value), self.line_of(m, key), _join(path, key))

    def secret(self, m: LineDict, key: str, path: str) -> str | None:
        """A secret given inline, as `${ENV}`, or through `<key>_file`."""
        file_key = f"{key}_file"
        line = self.line_of(m, key if key in m else file_key)
        if key in m and file_key in m:
            self.error(line, _join(path, key), f"give {key} or {file_key}, not both")
            return None
        if file_key in m:
            file_path = self.string(m, file_key, path)
            if file_path is None:
                return None
            value = self._read_secret_file(file_path, line, _join(path, file_key), "")
            if value is None:
                return None
            self.secrets.add(value)
            return value
        inline = self.string(m, key, path)
        if inline:
            self.secrets.add(inline)
        return inline

    def expand(self, text: str, line: int, path: str) -> str:
        """Replace `${NAME}` with the environment variable, or the file `NAME_FILE` names
        (a mounted Kubernetes Secret), as for the service's own secrets; unset ones are reported."""

        def sub(match: re.Match[str]) -> str:
            name = match[1]
            value = self.environ.get(name)
            file_name = self.environ.get(f"{name}_FILE")
            if value is None and file_name:
                value = self._read_secret_file(file_name, line, path, f"{name}_FILE: ")
                if value is None:
                    return ""
            if value is not None:
                self.secrets.add(value)
                return value
            self._missing_secret(line, path, f"environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(sub, text)

    def _read_secret_file(self, file_name: str, line: int, path: str, what: str) -> str | None:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as e:
            reason = e.strerror or str(e)
        except ValueError as e:  # not UTF-8, or a NUL in the name
            reason = str(e)
        # Never the content: it is a secret.
        self._missing_secret(line, path, f"{what}cannot read {file_name}: {reason}")
        return None

    def _missing_secret(self, line: int, path: str, message: str) -> None:
        # check and dry-run work without secrets; serving for real must not.
        if self.secrets_required:
            self.error(line, path, message)
        else:
            self.warn(line, path, message)

    def boolean(self, m: LineDict, key: str, path: str, default: bool) -> bool:
        value = m.get(key, default)
        if isinstance(value, str) and value.lower() in _WORDS:
            # YAML 1.1 spellings: the loader keeps them as text, but this key asks for a bool.
            return _WORDS[value.lower()]
        if not isinstance(value, bool):
            self.error(self.line_of(m, key), _join(path, key), "expected true or false")
            return default
        return value

    def number(self, m: LineDict, key: str, path: str, default: float, minimum: float) -> float:
        value = m.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < minimum
        ):
            self.error(self.line_of(m, key), _join(path, key), f"expected a number >= {minimum}")
            return default
        return float(value)

    def strings(self, m: LineDict, key: str, path: str) -> list[tuple[int, str, str]]:
        """A list of text items (a single string counts as a list of one)."""
        value = m.get(key)
        line = self.line_of(m, key)
        if isinstance(value, str):
            return [(line, _join(path, key), value)]
        out = []
        for item_line, item_path, item in self.sequence(value, line, _join(path, key)):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.error(item_line, item_path, f"expected text, got {kind_of(item)}")
            else:
                out.append((item_line, item_path, str(item)))
        return out

    def check_name(self, line: int, path: str, name: str) -> None:
        if not _NAME.fullmatch(name):
            self.error(line, path, "names use lower-case letters, digits, '-', '_' and '.'")

    def members(
        self, parent: LineDict, key: str, path: str, people: Mapping[str, object]
    ) -> tuple[str, ...]:
        """A list of person ids, each checked against `people`."""
        out = []
        for line, item_path, pid in self.strings(parent, key, path):
            if pid not in people:
                self.error(line, item_path, f"unknown person {pid!r}")
            out.append(pid)
        return tuple(out)

    def duration(self, m: LineDict, key: str, path: str, default: float) -> float:
        text = self.string(m, key, path)
        if text is None:
            return default
        value = self.convert(self.line_of(m, key), _join(path, key), text, parse_duration)
        return default if value is None else value

    def convert(self, line: int, path: str, value: Any, parse: Callable[[Any], T]) -> T | None:
        """Run a parser, turning its ValueError, TypeError or OverflowError into a problem at this
        location."""
        try:
            return parse(value)
        except (ValueError, TypeError, OverflowError) as e:
            self.error(line, path, str(e))
            return None


_WORDS = {"yes": True, "on": True, "no": False, "off": False}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    """What a YAML value is, for messages: `a mapping`, `int 3`, `str 'x'`."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
