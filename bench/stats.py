"""Percentiles by the nearest-rank definition: the p-th percentile of n sorted samples is the sample
at rank ceil(p/100 * n) (1-based), so it is always a value that was measured, never interpolated;
p99 of fewer than 100 samples is the maximum. simulator/load.py's figures() uses the same rule, so
the bench and `redbutton load` agree on the same samples."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_samples: Sequence[float], p: float) -> float:
    """Nearest rank of already sorted samples; p in [0, 100]."""
    if not sorted_samples:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {p}")
    rank = max(1, math.ceil(p / 100 * len(sorted_samples)))
    return sorted_samples[rank - 1]


@dataclass(frozen=True)
class Summary:
    """A distribution in milliseconds; n == 0 (and every figure None) when nothing was measured."""

    n: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_ms(samples_ms: Iterable[float]) -> Summary:
    """p50, p90, p99, max and mean of samples already in milliseconds, rounded to a microsecond."""
    s = sorted(samples_ms)
    if not s:
        return Summary()

    def r(x: float) -> float:
        return round(x, 3)

    return Summary(len(s), r(percentile(s, 50)), r(percentile(s, 90)), r(percentile(s, 99)), r(s[-1]),
                   r(math.fsum(s) / len(s)))


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b to two decimals, or None when either is missing or b is not positive."""
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 2)
