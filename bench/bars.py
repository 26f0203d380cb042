"""The bars of issue 15, shown next to their figures: the benchmark reports them, never fails."""

from __future__ import annotations

import math
from dataclasses import dataclass


def verdict(label: str, met: bool | None) -> str:
    """`[bar <label>: met]`; None when the figure could not be measured."""
    state = "not measured" if met is None else "met" if met else "NOT met"
    return f"[bar {label}: {state}]"


@dataclass(frozen=True)
class Bar:
    """A figure's limit: at least `limit` (`at_least`), else strictly under it."""

    label: str
    limit: float
    at_least: bool

    def met(self, value: float) -> bool | None:
        if math.isnan(value):
            return None
        return value >= self.limit if self.at_least else value < self.limit

    def check(self, value: float) -> str:
        return verdict(self.label, self.met(value))


# Throughput ratios are judged on the median of the rounds, as the issue says.
PLAIN_RATIO = Bar("router / plain relay >= 0.9, median", 0.9, at_least=True)
SAME_STACK_RATIO = Bar("router / same-stack relay >= 0.6, median", 0.6, at_least=True)
BIG_GROUP_MS = Bar("5,000-alert group < 150 ms end to end, median", 150.0, at_least=False)
FIRST_VENDOR_P99_MS = Bar("first-vendor-request p99 at half peak < 10 ms, median", 10.0, False)
BURST = "burst: every webhook answered within the deadline, 0 duplicate sends"
RSS_MB = 100.0  # "RSS < 100 MB": decimal megabytes, the stricter reading
RSS = f"RSS < {RSS_MB:g} MB and flat in the soak's second half"
