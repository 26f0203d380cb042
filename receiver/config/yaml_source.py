"""YAML loading that remembers line numbers, and a reader that collects every problem at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a routing file, located by file, line and key path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f" {self.path}:" if self.path else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows its own line and each key's line."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    duplicate_keys: list[tuple[str, int]]


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
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


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


class ConfigError(Exception):
    """The routing file is invalid; `problems` lists everything found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_yaml(path: Path) -> tuple[Any, list[Problem]]:
    """Parse a YAML file; syntax errors and duplicate keys come back as problems."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, 0, "", f"cannot read file: {e.strerror}")]) from None
    loader = _Loader(text)
    loader.duplicate_keys = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError([Problem(name, line, "", f"YAML syntax: {e.problem}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError([Problem(name, 0, "", f"YAML: {e}")]) from None
    finally:
        loader.dispose()
    dupes = [Problem(name, line, key, "duplicate key") for key, line in loader.duplicate_keys]
    return data, dupes


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: str) -> float:
    """`500ms`, `10s`, `15m`, `1h`, `1d`, `1w` in seconds."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ValueError(f"bad duration {value!r} (e.g. 500ms, 10s, 15m, 1h, 1d, 1w)")
    return float(m[1]) * _UNITS[m[2]]


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
            self.error(line, path, f"expected a mapping, got {_kind(value)}")
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
            self.error(line, path, f"expected a list, got {_kind(value)}")
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
            self.error(self.line_of(m, key), _join(path, key), f"expected text, got {_kind(value)}")
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
            try:
                value = Path(file_path).read_text(encoding="utf-8").strip()
            except OSError as e:
                self._missing_secret(
                    line, _join(path, file_key), f"cannot read {file_path}: {e.strerror}"
                )
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
                try:
                    value = Path(file_name).read_text(encoding="utf-8").strip()
                except OSError as e:
                    self._missing_secret(
                        line, path, f"{name}_FILE: cannot read {file_name}: {e.strerror}"
                    )
                    return ""
            if value is not None:
                self.secrets.add(value)
                return value
            self._missing_secret(line, path, f"environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(sub, text)

    def _missing_secret(self, line: int, path: str, message: str) -> None:
        # check and dry-run work without secrets; serving for real must not.
        if self.secrets_required:
            self.error(line, path, message)
        else:
            self.warn(line, path, message)

    def boolean(self, m: LineDict, key: str, path: str, default: bool) -> bool:
        value = m.get(key, default)
        if not isinstance(value, bool):
            self.error(self.line_of(m, key), _join(path, key), "expected true or false")
            return default
        return value

    def number(self, m: LineDict, key: str, path: str, default: float, minimum: float) -> float:
        value = m.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
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
                self.error(item_line, item_path, f"expected text, got {_kind(item)}")
            else:
                out.append((item_line, item_path, str(item)))
        return out

    def check_name(self, line: int, path: str, name: str) -> None:
        if not _NAME.match(name):
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

    def convert(self, line: int, path: str, value: str, parse: Callable[[str], T]) -> T | None:
        """Run a parser, turning its ValueError or TypeError into a problem at this location."""
        try:
            return parse(value)
        except (ValueError, TypeError) as e:
            self.error(line, path, str(e))
            return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
