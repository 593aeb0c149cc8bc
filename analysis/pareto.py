"""Pareto frontiers and 2-D hypervolume for any mix of minimised and maximised objectives.

Pure numpy, no MLflow: the hand-computed tests pin the rules. A point is on the front when no other
point is at least as good in every objective and strictly better in one, so exact ties all stay on
it; points with a NaN objective are never on it (they cannot be compared).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ablate.errors import AblateError


def _as_min(points, modes: Sequence[str]) -> np.ndarray:
    """Points as a float array in which every objective is minimised (max objectives negated)."""
    p = np.asarray(points, dtype=float)
    if p.ndim == 1:
        p = p.reshape(1, -1) if p.size else p.reshape(0, len(modes))
    if p.shape[1] != len(modes):
        raise AblateError(f"pareto: {p.shape[1]} objectives but {len(modes)} modes")
    bad = [m for m in modes if m not in ("min", "max")]
    if bad:
        raise AblateError(f"pareto: mode must be 'min' or 'max', got {bad[0]!r}")
    sign = np.array([1.0 if m == "min" else -1.0 for m in modes])
    return p * sign


def pareto_mask(points, modes: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `points` (n x k), objective j minimised or maximised per modes[j]."""
    p = _as_min(points, modes)
    ok = ~np.isnan(p).any(axis=1)
    mask = np.zeros(len(p), dtype=bool)
    q = p[ok]
    if len(q):
        # q[i] is dominated when some row is <= everywhere and < somewhere.
        le = (q[None, :, :] <= q[:, None, :]).all(axis=2)  # le[i, j]: row j <= row i everywhere
        lt = (q[None, :, :] < q[:, None, :]).any(axis=2)
        mask[np.flatnonzero(ok)] = ~(le & lt).any(axis=1)
    return mask


def pareto_front(points, modes: Sequence[str]) -> np.ndarray:
    """Indices of the non-dominated points, sorted along the first objective (best first)."""
    idx = np.flatnonzero(pareto_mask(points, modes))
    p = _as_min(points, modes)
    return idx[np.lexsort(tuple(p[idx, j] for j in reversed(range(p.shape[1]))))] if len(idx) else idx


def hypervolume_2d(points, ref: Sequence[float], modes: Sequence[str]) -> float:
    """Area dominated by `points` (n x 2) and bounded by the reference point `ref`.

    Points not strictly better than `ref` in both objectives add nothing; an empty set gives 0.
    """
    if len(modes) != 2 or len(ref) != 2:
        raise AblateError("hypervolume: only two objectives are supported")
    p = _as_min(points, modes)
    r = _as_min([ref], modes)[0]
    if np.isnan(r).any():
        raise AblateError("hypervolume: the reference point has a NaN")
    p = p[~np.isnan(p).any(axis=1)]
    p = p[(p[:, 0] < r[0]) & (p[:, 1] < r[1])]
    if not len(p):
        return 0.0
    p = p[pareto_mask(p, ["min", "min"])]
    p = p[np.lexsort((p[:, 1], p[:, 0]))]  # x ascending, so y descends along the front
    xs = np.append(p[1:, 0], r[0])
    return float(np.sum((xs - p[:, 0]) * (r[1] - p[:, 1])))


def significant_dominations(data, speed: str, quality: str, better: str, alpha: float = 0.05) -> list[tuple]:
    """Pairs (dominating, dominated) of points (source, variant, B) where the first is at least as fast (mean speed)
    and better on `quality` under a seed-paired t-test, Holm-adjusted over every pair tested: what the Pareto figure
    may claim beyond "this mean is below that one"."""
    from analysis.stats import adjust, paired_p

    per = {}
    for key, g in data.groupby(["source", "variant", "B"], dropna=False, sort=False):
        per[key] = (float(g[speed].mean()), dict(zip(g["seed"].astype(int), g[quality].astype(float))))
    cands, ps = [], []
    for p, (sp, qp) in per.items():
        for q, (sq, qq) in per.items():
            if p == q or p[0] != q[0] or sp < sq or len(set(qp) & set(qq)) < 2:
                continue
            mp, mq = np.mean([qp[s] for s in set(qp) & set(qq)]), np.mean([qq[s] for s in set(qp) & set(qq)])
            if (mp < mq) if better == "min" else (mp > mq):
                cands.append((p, q))
                ps.append(paired_p(qp, qq))
    return [c for c, pa in zip(cands, adjust(ps, "holm")) if pa < alpha]
