"""Intervals and paired tests over seeds (scipy): what decides that a difference is real.

Methods share labels and noise per seed, so two methods are compared by their seed-paired differences: a
paired t-test over the seeds both ran (scipy.stats.ttest_rel), two-sided at 5%. An interval is the mean ±
the half-width of a 95% t-interval over seeds; one seed has no interval and never wins a test.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05


def half_width(values: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean of `values` (NaN below two values)."""
    v = np.asarray([x for x in values if pd.notna(x)], dtype=float)
    if len(v) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def paired_p(a: dict, b: dict) -> float:
    """Two-sided p of the paired t-test on seed -> value maps (seeds both have); NaN with fewer than 2 pairs,
    0 when every paired difference is the same non-zero number, 1 when all are zero."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return math.nan
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    if np.allclose(d, d[0]):
        return 0.0 if d[0] != 0 else 1.0
    return float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)


def significantly_best(per_seed: dict[str, dict], better: str) -> str | None:
    """The key whose seed mean is best and better than every other key's under the paired test, else None."""
    means = {k: np.mean(list(v.values())) for k, v in per_seed.items() if v}
    if len(means) < 2:
        return None
    best = min(means, key=means.get) if better == "min" else max(means, key=means.get)
    for k in means:
        if k == best:
            continue
        p = paired_p(per_seed[best], per_seed[k])
        if not (p < ALPHA) or means[k] == means[best]:
            return None
    return best
