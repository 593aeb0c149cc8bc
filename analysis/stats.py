"""Intervals and paired tests over seeds (scipy): what decides that a difference is real.

Methods share labels and noise per seed, so two methods are compared by their seed-paired differences: a
paired t-test over the seeds both ran (scipy.stats.ttest_rel), two-sided at 5%. An interval is the mean ±
the half-width of a 95% t-interval over seeds; one seed has no interval and never wins a test.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05


def interval(mean: float, hw: float, digits: int = 2, sign: str = "") -> str:
    """`mean ± half-width`, the one way every table prints an interval (`sign="+"` for a difference)."""
    return f"{mean:{sign},.{digits}f} ± {hw:.{digits}f}"


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


# -- deciding many claims (scipy and statsmodels: the tests, the corrections, the power) -------------------------

CORRECTIONS = {"holm": "holm", "bh": "fdr_bh"}  # our name -> statsmodels' multipletests method


def adjust(pvalues: Sequence[float], correction: str = "holm") -> list[float]:
    """Adjusted p-values of one family (Holm by default; Benjamini-Hochberg as `bh`); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=CORRECTIONS[correction])[1]
    return out.tolist()


def non_inferiority_p(loss: Sequence[float], margin: float) -> float:
    """One-sided paired-t p of H0: mean loss >= margin (the second loses at least `margin`); small p: no loss as
    large as the margin."""
    x = np.asarray(loss, dtype=float)
    if len(x) < 2:
        return math.nan
    return float(stats.ttest_1samp(x, margin, alternative="less").pvalue) if x.std(ddof=1) > 0 else \
        float(x.mean() < margin)


def tost_p(d: Sequence[float], margin: float) -> float:
    """Two one-sided tests: H0 |mean d| >= margin; p = the larger of the two one-sided p's (small: equivalent)."""
    x = np.asarray(d, dtype=float)
    if len(x) < 2:
        return math.nan
    if x.std(ddof=1) == 0:
        return float(not abs(x.mean()) < margin)
    lower = stats.ttest_1samp(x, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(x, margin, alternative="less").pvalue
    return float(max(lower, upper))


def power(effect: float, n: int, alpha: float, one_sided: bool = False) -> float:
    """Power of a paired t-test on n seeds at level alpha for a true difference of `effect` paired SDs (scipy's
    noncentral t)."""
    df, nc = n - 1, effect * math.sqrt(n)
    if one_sided:
        p = stats.nct.sf(stats.t.isf(alpha, df), df, nc)
    else:
        crit = stats.t.isf(alpha / 2, df)
        p = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    return 1.0 if math.isnan(p) else float(min(1.0, p))  # NaN: far out in the tail, where power is 1


def mde(sd: float, n: int, alpha: float, target: float = 0.8, one_sided: bool = False) -> float:
    """The smallest true paired difference a paired t-test on n seeds finds with this power at level alpha, given the
    paired spread sd."""
    from scipy.optimize import brentq

    if n < 2 or not (sd > 0):
        return math.nan
    hi = 1.0
    while power(hi, n, alpha, one_sided) < target and hi < 1e6:
        hi *= 2
    return float(brentq(lambda e: power(e, n, alpha, one_sided) - target, 1e-9, hi) * sd)


def seeds_needed(sd: float, diff: float, alpha: float, target: float = 0.8, one_sided: bool = False,
                 most: int = 10_000) -> int:
    """Seeds a paired t-test needs to find a true difference `diff` with this power at level alpha (at least 2)."""
    if not (sd > 0):
        return 2
    n = 2
    while n < most and power(abs(diff) / sd, n, alpha, one_sided) < target:
        n += 1
    return n


def spent(n_min: int, n_max: int, alpha: float) -> dict[int, float]:
    """Alpha spent by each look n = n_min .. n_max seeds (cumulative): Lan-DeMets' O'Brien-Fleming function
    a(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t = n / n_max: early looks spend little, the last look reaches alpha."""
    z = stats.norm.ppf(1 - alpha / 2)
    return {n: float(2 - 2 * stats.norm.cdf(z / math.sqrt(n / n_max))) for n in range(n_min, n_max + 1)}


@functools.lru_cache(maxsize=None)
def boundaries(n_min: int, n_max: int, alpha: float, reps: int = 200_000, seed: int = 0) -> dict[int, float]:
    """Nominal levels of a group-sequential paired t-test, one look per added seed: a claim is decided at look n when
    its two-sided paired-t p is below c_n. The c_n are calibrated by simulating the test under no difference (normal
    paired differences: the t statistics' joint law does not depend on their spread) so that the chance of deciding
    by look n is exactly the alpha spent by then (`spent`): the error rate over all looks is alpha, not the
    alpha x looks of testing again at alpha after each seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((reps, n_max))
    alive = np.ones(reps, dtype=bool)
    cum = spent(n_min, n_max, alpha)
    out, before = {}, 0.0
    for n in range(n_min, n_max + 1):
        d = x[:, :n]
        t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
        p = 2 * stats.t.sf(np.abs(t), n - 1)
        k = int(round((cum[n] - before) * reps))  # rejections this look may add
        cand = np.sort(p[alive])
        c = float(cand[k - 1]) if 0 < k <= len(cand) else 0.0
        out[n] = c
        alive &= ~(p <= c)
        before = cum[n]
    return out


def sequential_p(p_by_n: dict[int, float], n_min: int, n_max: int, alpha: float) -> float:
    """A claim tested at every look (its p at n seeds, n = n_min ..) against `boundaries`: min_n alpha p_n / c_n,
    capped at 1, which is below alpha exactly when some look decided it."""
    c = boundaries(n_min, n_max, alpha)
    ratios = [alpha * p / c[n] for n, p in p_by_n.items() if c.get(n, 0) > 0 and not math.isnan(p)]
    return float(min(1.0, min(ratios))) if ratios else math.nan
