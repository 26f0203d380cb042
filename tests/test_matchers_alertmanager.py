"""The router and a real Alertmanager agree on every matcher (amtool 0.25, Go's RE2).

Every matcher line the tests and the shipped routing files use, and a table of lines where
Python's `re` and RE2 differ, goes through both: `check` refuses exactly the lines Alertmanager
refuses (`amtool check-config`), and for the lines both accept, the router's route matching
(`load_config` + `match_routes`) and Alertmanager's (`amtool config routes test`) pick the same
routes for every label set tried.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.cli.commands.alertmanager_config import matcher as am_quote
from receiver.cli.main import main
from receiver.config.load import load_config
from receiver.config.matchers import MatcherError, parse_line
from receiver.config.yaml_file import ConfigError, load_yaml
from receiver.model import Alert, Severity, Source, Status
from receiver.routing.plan import match_routes
from tests.helpers import ROOT, require_tool
from tests.test_matchers import BAD_MATCHERS, MATCHING

# Lines where Python's `re` and RE2 (or Go's RE2 and the C++ one) part ways, with label values
# that tell the readings apart.
TRICKY: tuple[tuple[str, tuple[str, ...]], ...] = (
    # refused by RE2, accepted by Python's re
    ('alertname=~"(?!Watchdog)Kube.*"', ()),  # look-ahead
    ('x=~"(?=a)a"', ()),
    ('x=~"(?<=a)b"', ()),  # look-behind
    ('x=~"(?<!a)b"', ()),
    ('x=~"(a)\\\\1"', ()),  # backreference
    ('x=~"(?P<n>a)(?P=n)"', ()),
    ('x=~"a\\\\Z"', ()),  # Python's end of text
    ('x=~"a*+"', ()),  # possessive (Python 3.11)
    ('x=~"a++"', ()),
    ('x=~"(?>a)"', ()),  # atomic group
    ('x=~"(?#comment)a"', ()),
    ('x=~"(?x) a b"', ()),  # verbose flag
    ('x=~"(?a)\\\\w"', ()),  # ASCII flag
    ('x=~"\\\\N{DIGIT ONE}"', ()),
    ('x=~"\\\\u0041"', ()),
    ('x=~"a{1001}"', ()),  # over RE2's repeat limit
    # accepted by the C++ RE2 but not by Go 1.19's regexp (Debian's Alertmanager 0.25)
    ('x=~"(?<n>a)"', ()),
    ('x=~"\\\\C"', ()),
    # refused by Python's re, accepted by RE2
    ('severity=~"(?i)critical|p0"', ("CRITICAL", "Critical", "P0", "p1", "critical\n")),
    ('x=~"\\\\pL+"', ("héllo", "abc", "123", "")),
    ('x=~"\\\\p{Greek}+"', ("αβγ", "abc")),
    ('x=~"\\\\PL+"', ("123", "a1")),
    ('x=~"\\\\Qa.b\\\\E"', ("a.b", "axb")),
    ('x=~"\\\\x{41}"', ("A", "a")),
    ('x=~"(?U)a+"', ("aaa", "")),
    ('x=~"a\\\\z"', ("a", "a\n")),
    # accepted by both, read differently
    ('x=~"\\\\d+"', ("123", "١٢٣", "12\n", "")),  # Python: Unicode digits
    ('x=~"\\\\w+"', ("abc_1", "é", "ß", "a-b")),  # Python: Unicode word characters
    ('x=~"a\\\\sb"', ("a b", "a\tb", "a\vb", "a\u00a0b", "a\x1cb")),  # Python: Unicode spaces
    ('x=~".*\\\\bé.*"', ("a é", "aé", "é")),  # Python: Unicode word boundary
    ('x=~"a"', ("a", "a\n", "A")),  # Python's $ also matches before a final newline
    ('x=~"a{,3}"', ("aa", "a{,3}", "")),  # Python: {0,3}; RE2: literal
    ('x=~"[[:alpha:]]+"', ("abc", "[:a]", "a1")),  # Python: a set with '[' ':' ...
    ('x=~"(?i)k"', ("k", "K", "\u212a")),  # Kelvin sign folds to k
    ('x=~"(?i)s"', ("s", "S", "\u017f")),  # long s folds to s
    ('x=~"."', ("a", "\n", "é", "😀")),
    ('x=~"(?s)."', ("\n",)),
    ('x=~"[^a]"', ("\n", "b", "a")),
    ('x=~"a|"', ("", "a", "b")),
    ('x=~"(?m)^a$"', ("a", "a\nb")),
    # Alertmanager's matcher syntax around the value
    ('x="a\\tb"', ("a\\tb", "a\tb")),  # a stray backslash stays a backslash
    ('x=~"a\\\\.b"', ("a.b", "axb")),
    ('x="a\\nb"', ("a\nb", "a\\nb")),
    ("x=a b", ("a b", "a")),  # unquoted, with a space
    ("x=", ("", "a")),
    ('x!~""', ("", "a")),
    ('x="é"', ("é", "e")),
    ('x:y="1"', ("1", "2")),  # a colon in a label name
    ('{x="a", y=~"b|c"}', ()),
    ('x="a",', ("a",)),
    ('x=~"a,b"', ("a,b", "a")),
    ("x=~a,b", ()),  # two matchers, the second one bad
    ('x="a"b"', ()),
    ('x="a', ()),
    ('x=~"\\"', ()),
    ("x==a", ("=a",)),
    ("1x=a", ()),
    ("x~=a", ()),
)
# Alertmanager takes an empty line as no matcher at all (matching everything); `check` refuses
# it on purpose, as surely a mistake in a routing file.
REFUSED_ON_PURPOSE = frozenset({"", "{}"})
SHIPPED_ROUTING_FILES = ("routing.yaml", "deploy/k8s/routing.yaml", "bench/routing.yaml")


def _walk_matchers(data: Any) -> Iterator[str]:
    """Every string in a `matchers:` list, anywhere in loaded YAML or a Python literal."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "matchers" and isinstance(value, list):
                yield from (item for item in value if isinstance(item, str))
            else:
                yield from _walk_matchers(value)
    elif isinstance(data, list):
        for item in data:
            yield from _walk_matchers(item)


def _strict_yaml(text: str) -> Any:
    with contextlib.suppress(yaml.YAMLError, ValueError):
        return yaml.safe_load(text)
    return None


def collected_matchers() -> list[str]:
    """The matcher lines of tests/test_matchers.py, of the routing files the tests and the
    repository hold (YAML files, and YAML or dicts inside tests/*.py), and of the generated
    Alertmanager config."""
    found = [text for text, _, _ in MATCHING] + list(BAD_MATCHERS)
    for name in SHIPPED_ROUTING_FILES:
        with contextlib.suppress(ConfigError):
            found += _walk_matchers(load_yaml(ROOT / name)[0])
    found += _walk_matchers(
        _strict_yaml((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    )
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if "matchers" in node.value:
                    found += _walk_matchers(_strict_yaml(node.value))
            elif isinstance(node, ast.Dict):
                with contextlib.suppress(ValueError, TypeError):
                    found += _walk_matchers(ast.literal_eval(node))
    return list(dict.fromkeys(found))


def sample_values(line: str) -> list[dict[str, str]]:
    """Label sets that exercise a line: each matcher's own value, its alternatives, near misses."""
    try:
        matchers = parse_line(line)
    except MatcherError:
        return []
    sets: list[dict[str, str]] = [{m.name: m.value for m in matchers}]
    for m in matchers:
        words = {m.value, "", "x", m.value.upper(), m.value.lower(), f"{m.value}\n", f" {m.value}"}
        words |= set(re.split(r"[|()]", m.value))
        sets += [{m.name: w} for w in sorted(words)]
    return sets


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *args], capture_output=True, text=True, timeout=30, check=False
    )


def alertmanager_accepts(line: str, tmp_path: Path, index: int) -> bool:
    path = tmp_path / f"one-{index}.yml"
    doc = {
        "route": {"receiver": "none", "routes": [{"receiver": "hit", "matchers": [line]}]},
        "receivers": [{"name": "none"}, {"name": "hit"}],
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    result = amtool("check-config", str(path))
    assert "SUCCESS" in result.stdout or result.returncode != 0, result.stdout + result.stderr
    return result.returncode == 0


def router_accepts(line: str) -> bool:
    try:
        parse_line(line)
    except MatcherError:
        return False
    return True


def alertmanager_routes(config: Path, labels: dict[str, str]) -> set[str]:
    args = [am_quote(name, "=", value) for name, value in sorted(labels.items())]
    result = amtool("config", "routes", "test", f"--config.file={config}", *args)
    assert result.returncode == 0, f"{labels}: {result.stdout}{result.stderr}"
    return set(result.stdout.strip().split(",")) - {"none"}


def router_routes(lines: Sequence[str], tmp_path: Path) -> Any:
    """A routing file with one `continue: true` route per line; returns a label-set matcher."""
    routes: list[dict[str, Any]] = [
        {
            "name": f"m{i}",
            "matchers": [line],
            "continue": True,
            "targets": [{"kind": "slack", "channel": "c"}],
        }
        for i, line in enumerate(lines)
    ]
    routes.append({"name": "rest", "targets": [{"kind": "slack", "channel": "c"}]})
    path = tmp_path / "routing.yaml"
    path.write_text(
        yaml.safe_dump({"slack": {"c": {"channel": "C1"}}, "routes": routes}, allow_unicode=True)
    )
    config = load_config(path, {})

    def pick(labels: dict[str, str]) -> set[str]:
        alert = Alert(
            Source.ALERTMANAGER, Status.FIRING, labels, {}, datetime(2026, 3, 16, tzinfo=UTC), "f"
        )
        return {r.name for r in match_routes(config, alert, Severity.HIGH)} - {"rest"}

    return pick


def test_check_refuses_exactly_what_alertmanager_refuses(tmp_path: Path) -> None:
    """Every line: the router accepts it if and only if `amtool check-config` does."""
    lines = [*collected_matchers(), *(line for line, _ in TRICKY)]
    lines = list(dict.fromkeys(lines))
    assert len(lines) > 80
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(
            pool.map(lambda il: alertmanager_accepts(il[1], tmp_path, il[0]), enumerate(lines))
        )
    disagree = [
        (line, "alertmanager" if am else "router")
        for line, am in zip(lines, verdicts, strict=True)
        if router_accepts(line) != am and line not in REFUSED_ON_PURPOSE
    ]
    assert disagree == [], f"(line, the one that accepts it): {disagree}"
    assert sum(verdicts) > 40
    assert verdicts.count(False) > 20


def test_router_and_alertmanager_pick_the_same_routes(tmp_path: Path) -> None:
    """For the lines both accept, every label set tried picks the same routes in both."""
    lines = [
        line
        for line in dict.fromkeys([*collected_matchers(), *(line for line, _ in TRICKY)])
        if router_accepts(line)
    ]
    extra = {line: values for line, values in TRICKY}
    label_sets: list[dict[str, str]] = [{}]
    for line in lines:
        label_sets += sample_values(line)
        names = {m.name for m in parse_line(line)}
        label_sets += [{name: value} for name in sorted(names) for value in extra.get(line, ())]
    unique = list({tuple(sorted(s.items())): s for s in label_sets}.values())
    unique = [s for s in unique if not any("\0" in v for v in s.values())]  # argv cannot
    assert len(unique) > 200

    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "none",
                    "routes": [
                        {"receiver": f"m{i}", "matchers": [line], "continue": True}
                        for i, line in enumerate(lines)
                    ],
                },
                "receivers": [{"name": "none"}, *({"name": f"m{i}"} for i in range(len(lines)))],
            },
            allow_unicode=True,
        )
    )
    check = amtool("check-config", str(am_config))
    assert check.returncode == 0, check.stdout + check.stderr
    router = router_routes(lines, tmp_path)
    with ThreadPoolExecutor(4) as pool:
        alertmanager = list(pool.map(lambda s: alertmanager_routes(am_config, s), unique))
    differ = [
        (sorted(lines[int(name[1:])] for name in router(labels) ^ am), labels)
        for labels, am in zip(unique, alertmanager, strict=True)
        if router(labels) != am
    ]
    assert differ == [], f"(lines read differently, labels): {differ[:20]}"
    assert sum(len(am) for am in alertmanager) > 100  # many matches, not only misses


@pytest.mark.parametrize("line", [line for line, _ in TRICKY[:18]])
def test_check_locates_a_regex_re2_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    """`check` names the file, line and key of a matcher RE2 (or Go) refuses, and exits 1."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "slack: {c: {channel: C1}}\n"
        "routes:\n"
        "  - name: r\n"
        f"    matchers: [{json.dumps(line)}]\n"
        "    targets: [{kind: slack, channel: c}]\n"
        "  - name: rest\n"
        "    targets: [{kind: slack, channel: c}]\n"
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:4: routes[0].matchers[0]: bad regex in matcher "), err
    assert err[-1] == "1 problem(s) found"
