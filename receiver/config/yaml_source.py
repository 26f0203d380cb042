"""A reader that walks a loaded routing file, checks each value's type before it is used, and
collects every problem at once, located (see `yaml_file` for the loading).
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from receiver.config.yaml_file import LineDict, LineList, Problem

T = TypeVar("T")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# One `<number><unit>` of a duration; Alertmanager and Prometheus chain them (`1h30m`).
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|y|w|d|h|m|s)")
_UNITS = {
    "y": 365 * 86400.0,
    "w": 604800.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_ORDER = list(_UNITS)
# Longer is a typo, and would overflow date arithmetic further on.
MAX_DURATION = 3650 * 86400.0


def parse_duration(value: str) -> float:
    """A duration as Alertmanager and Prometheus write it, in seconds, at most 3650d:
    `500ms`, `90s`, `15m`, `1h30m`, `2d`, `1w`, `1y` (parts from the largest unit down, each
    once). A single part may have a fraction (`1.5h`), as this file always allowed."""
    text = value.strip()
    parts = [(m[0], m[1], m[2]) for m in _DURATION_PART.finditer(text)]
    units = [unit for _, _, unit in parts]
    ordered = units == sorted(set(units), key=_ORDER.index)
    fraction = len(parts) > 1 and any("." in number for _, number, _ in parts)
    if not parts or "".join(p for p, _, _ in parts) != text or not ordered or fraction:
        raise ValueError(
            f"bad duration {value!r} (e.g. 500ms, 90s, 15m, 1h30m, 2d, 1w: units from the "
            "largest down, each once)"
        )
    seconds = sum(float(number) * _UNITS[unit] for _, number, unit in parts)
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {value!r} is over 3650d")
    return seconds


class Reader:
    """Walks loaded YAML, converting values and collecting problems with their locations."""

    def __init__(self, file: str, environ: Mapping[str, str], secrets_required: bool) -> None:
        self.file = file
        # Put before every problem's key: a team's sections are read by a scoped reader.
        self.prefix = ""
        self.environ = environ
        self.secrets_required = secrets_required
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.secrets: set[str] = set()

    def error(self, line: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, _join(self.prefix, path), message))

    def warn(self, line: int, path: str, message: str) -> None:
        self.warnings.append(Problem(self.file, line, _join(self.prefix, path), message))

    def scoped(self, prefix: str) -> Reader:
        """A reader whose problems' keys start with `prefix` (e.g. `teams.madplan`); it shares
        this one's problems, warnings and secrets."""
        child = copy.copy(self)
        child.prefix = _join(self.prefix, prefix)
        return child

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
    return f"{path}.{key}" if path and key else path or key


def kind_of(value: Any) -> str:
    """What a YAML value is, for messages: `a mapping`, `int 3`, `str 'x'`."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
