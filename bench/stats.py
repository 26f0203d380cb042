"""Numbers the benchmark reports: spreads over rounds, percentiles, RSS slope, duplicate sends."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Min, median and max of one figure over the rounds of an interleaved run."""

    low: float
    median: float
    high: float
    n: int
    missing: int = 0  # rounds that measured nothing (NaN)

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        every = list(values)
        # NaN (a round that measured nothing) would poison min/median/max: left out, and said.
        kept = sorted(v for v in every if not math.isnan(v))
        missing = len(every) - len(kept)
        if not kept:
            return cls(math.nan, math.nan, math.nan, 0, missing)
        return cls(kept[0], statistics.median(kept), kept[-1], len(kept), missing)

    def text(self, fmt: str = ".1f", unit: str = "") -> str:
        """`min/median/max` as `12.0/13.5/15.1 ms`; one value when all rounds agree."""
        if not self.n:
            return "n/a"
        values = (self.low, self.median, self.high)
        parts = "/".join(format(v, fmt) for v in values)
        if len({format(v, fmt) for v in values}) == 1:
            parts = format(self.low, fmt)
        gaps = f" ({self.missing} of {self.n + self.missing} rounds n/a)" if self.missing else ""
        return f"{parts}{unit}{gaps}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..1); NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 for fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread_x = sum((x - mean_x) ** 2 for x, _ in points)
    if spread_x == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread_x


# RSS counts as flat when the fitted growth over the soak's second half is under the larger of
# these: allocator noise (arenas, a GC generation) moves RSS by about a MiB either way.
FLAT_MIB = 1.0
FLAT_SHARE = 0.02


def second_half_growth(samples: Sequence[tuple[int, float]]) -> tuple[float, bool]:
    """Fitted RSS growth (same unit as the samples) over the second half of a soak, and whether
    that is flat. `samples` are (webhooks done, RSS in MiB), in order, starting at 0."""
    if len(samples) < 2:
        return 0.0, True
    end = samples[-1][0]
    half = [(float(x), y) for x, y in samples if x >= end / 2]
    growth = slope(half) * (end / 2)
    level = half[0][1] if half else samples[-1][1]
    return growth, growth < max(FLAT_MIB, FLAT_SHARE * level)


def duplicate_sends(sends: Mapping[str, Mapping[str, int]]) -> int:
    """Vendor requests beyond the first for the same message: `sends` maps a message key (the
    webhook's sequence number) to requests per vendor endpoint."""
    return sum(n - 1 for kinds in sends.values() for n in kinds.values() if n > 1)


def complete(sends: Mapping[str, Mapping[str, int]], kinds: Iterable[str]) -> set[str]:
    """The message keys that reached every one of `kinds`."""
    wanted = tuple(kinds)
    return {key for key, seen in sends.items() if all(seen.get(k, 0) for k in wanted)}


class Figures:
    """Named figures of each subject (a service, or a pair of them), one value per round, each
    with the 1-minute load average when it was measured."""

    def __init__(self) -> None:
        self._values: defaultdict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)

    def add(self, subject: str, figure: str, value: float, load1: float) -> None:
        self._values[subject, figure].append((value, load1))

    def values(self, subject: str, figure: str) -> list[float]:
        return [value for value, _ in self._values.get((subject, figure), [])]

    def spread(self, subject: str, figure: str) -> Spread:
        return Spread.of(self.values(subject, figure))

    def load(self, subject: str, figure: str) -> str:
        """The load averages the figure was measured under, as `load 1.2-2.3`."""
        loads = [load for _, load in self._values.get((subject, figure), [])]
        if not loads:
            return "load n/a"
        low, high = min(loads), max(loads)
        return f"load {low:.2f}" if low == high else f"load {low:.2f}-{high:.2f}"
