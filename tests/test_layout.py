"""Each package imports only what its `__init__.py` docstring allows ("May import: ...")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "receiver"
_RULE = re.compile(r"^May import: (.+?)\.$", re.M)


def parts() -> dict[str, frozenset[str]]:
    """Every part of the package (a sub-package) and the parts it may import."""
    out = {}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        rule = _RULE.search(doc)
        assert rule is not None, f"{init.relative_to(ROOT)}: no 'May import: ...' line"
        names = rule[1].strip()
        out[init.parent.name] = frozenset(
            () if names == "nothing of ours" else (n.strip() for n in names.split(","))
        )
    return out


def imported_parts(source: str) -> set[str]:
    """The parts of `receiver` that a module's source imports (any form, at any depth)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "receiver":
                names = [f"receiver.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        # `receiver.__version__` is the distribution's, not a part's.
        found |= {n.split(".")[1] for n in names if n.startswith("receiver.") and "__" not in n}
    return found


def violations(root: Path, rules: dict[str, frozenset[str]]) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            continue  # receiver/__init__.py and __main__.py sit above every part
        part = rel.parts[0]
        for used in sorted(imported_parts(path.read_text(encoding="utf-8")) - {part}):
            if used not in rules[part]:
                out.append(f"receiver/{rel}: {part} must not import {used}")
    return out


def test_every_part_declares_its_imports() -> None:
    """Every sub-package states what it may import, naming only real parts."""
    rules = parts()
    assert set(rules) >= {"model", "config", "sources", "routing", "delivery", "channels", "web"}
    for part, allowed in rules.items():
        assert allowed <= set(rules), f"{part} names an unknown part: {allowed - set(rules)}"


def test_no_part_imports_one_it_must_not() -> None:
    """The import graph follows the flow: web → sources → routing → delivery → channels."""
    assert violations(PACKAGE, parts()) == []


@pytest.mark.parametrize(
    ("part", "source", "forbidden"),
    [
        ("channels", "from receiver.routing.plan import Plan\n", "routing"),
        ("routing", "from receiver.delivery import fanout\n", "delivery"),
        ("model", "import receiver.config.types\n", "config"),
        ("channels", "def f():\n    from receiver import metrics\n", "metrics"),
    ],
)
def test_a_forbidden_import_is_caught(
    tmp_path: Path, part: str, source: str, forbidden: str
) -> None:
    """The check finds a forbidden import in any form, also inside a function."""
    (tmp_path / part).mkdir()
    (tmp_path / part / "bad.py").write_text(source)
    assert violations(tmp_path, parts()) == [
        f"receiver/{part}/bad.py: {part} must not import {forbidden}"
    ]
