"""Severity words as RE2 regexes that take exactly the label values the router takes.

The router reads a severity label as `severity_word(value)`: case (Python's `casefold`),
whitespace, `-` and `_` do not count. Alertmanager matches with Go's RE2, anchored at both ends.
The regex of a set of words lets a run of separators stand before, between and after the
characters of each word; `(?i)` folds case as `casefold` does for every character that folds to
one character (tests/test_alertmanager_config.py checks all of Unicode), and a character that
folds to several (`ß` to `ss`, `ﬁ` to `fi`) is offered as an alternative where they stand.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Iterable

# Python's `str.isspace` (what `\s`, `strip` and `severity_word` use), written for RE2, whose
# `\s` is ASCII only: controls \t-\r and \x1c-\x1f, NEL, and every Unicode separator (\pZ).
SPACE = r"[\t-\r\x1c-\x1f\x85\pZ]"
# ...and the other two characters `severity_word` drops.
SEPARATOR = r"[-_\t-\r\x1c-\x1f\x85\pZ]"
# Go's regexp.QuoteMeta: the characters RE2 gives a meaning to.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def quote_meta(text: str) -> str:
    """Escape RE2 metacharacters, as Go's regexp.QuoteMeta does."""
    return "".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in text)


def words_regex(words: Iterable[str]) -> str:
    """`(?i:S*(?:w1|w2)S*)`, each word's letters with `S*` between: a value matches exactly when
    its `severity_word` is one of `words` (which are `severity_word`s themselves)."""
    sep = SEPARATOR + "*"
    body = "|".join(_word(w, sep) for w in words)
    return f"(?i:{sep}(?:{body}){sep})"


def _char(c: str) -> str:
    # Controls and format characters, written as escapes, stay visible in the YAML.
    return quote_meta(c) if c.isprintable() else f"\\x{{{ord(c):x}}}"


def _word(word: str, sep: str) -> str:
    """One word: a character at a time, or a character folding to the next few at once."""
    spans = [
        (i, i + len(folded), chars)
        for i in range(len(word))
        for folded, chars in _multi_folds().get(word[i], ())
        if word.startswith(folded, i)
    ]
    # Cut where no such character spans the gap: each part is written on its own, so
    # alternatives only nest within a run like `ffi` or `sss` (a handful of letters).
    inside = {j for a, b, _ in spans for j in range(a + 1, b)}
    cuts = [j for j in range(len(word) + 1) if j not in inside]
    return sep.join(_part(word, a, b, spans, sep) for a, b in itertools.pairwise(cuts))


def _part(word: str, start: int, end: int, spans: list[tuple[int, int, str]], sep: str) -> str:
    if start == end:
        return ""
    options = []
    for a, b, chars in [(start, start + 1, _char(word[start])), *spans]:
        if a != start or b > end:
            continue
        rest = _part(word, b, end, spans, sep)
        options.append(chars + (sep + rest if rest else ""))
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


@functools.cache
def _multi_folds() -> dict[str, list[tuple[str, str]]]:
    """Characters whose `casefold` is several characters, as (folded, RE2 class of them), by the
    folded text's first character; read from the running Python, so its Unicode version."""
    by_fold: dict[str, list[str]] = {}
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        folded = c.casefold()
        if len(folded) > 1:
            by_fold.setdefault(folded, []).append(c)
    out: dict[str, list[tuple[str, str]]] = {}
    for folded, chars in by_fold.items():
        cls = chars[0] if len(chars) == 1 else "[" + "".join(chars) + "]"
        out.setdefault(folded[0], []).append((folded, cls))
    return out
