"""Multi-fidelity promotion for `search: halving`: which trials of a rung run again on more samples.

Small-sample FID is biased upward by an amount that differs by method, so trials are only ever compared within
a rung (all on the same sample count, the same seeds and labels), never against another rung's numbers. Ray's
schedulers and Optuna's pruners are single-objective; promotion here is multi-objective: non-dominated sorting
of the rung's results on the space's objectives, then crowding distance inside the last front that fits (as
NSGA-II selects), keeping ceil(n / eta) trials. Each rung runs as an ordinary batch of Tune trials.
"""

from __future__ import annotations

import math


def pareto_ranks(points: list[tuple[float, ...]]) -> list[int]:
    """Front index of each point (0: non-dominated), every coordinate to be minimised; NaN rows rank last."""
    n = len(points)
    bad = [any(math.isnan(x) for x in p) for p in points]
    rank = [-1] * n
    left = [i for i in range(n) if not bad[i]]
    front = 0
    while left:
        now = [i for i in left if not any(_dominates(points[j], points[i]) for j in left if j != i)]
        for i in now:
            rank[i] = front
        left = [i for i in left if rank[i] < 0]
        front += 1
    return [front if b else r for r, b in zip(rank, bad)]


def _dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def crowding(points: list[tuple[float, ...]]) -> list[float]:
    """NSGA-II crowding distance within one front (inf at the ends of each objective)."""
    n = len(points)
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:]):
            dist[i] += (points[b][m] - points[a][m]) / (hi - lo)
    return dist


def promote(results: list[tuple[str, dict]], objectives: list[tuple[str, str]], eta: float) -> list[str]:
    """Keys of the ceil(n / eta) trials that go on: whole fronts first, then the most crowding-distant of the
    front that does not fit. results: (key, measures); objectives: (metric, "min" | "max")."""
    if not results:
        return []
    keep = max(1, math.ceil(len(results) / eta))
    pts = [tuple((1 if mode == "min" else -1) * float(m.get(metric, math.nan)) for metric, mode in objectives)
           for _, m in results]
    ranks = pareto_ranks(pts)
    chosen: list[int] = []
    for front in sorted(set(ranks)):
        members = [i for i, r in enumerate(ranks) if r == front]
        if len(chosen) + len(members) <= keep:
            chosen += members
            continue
        d = crowding([pts[i] for i in members])
        members = [i for _, i in sorted(zip(d, members), key=lambda x: (-x[0], x[1]))]
        chosen += members[: keep - len(chosen)]
        break
    return [results[i][0] for i in sorted(chosen)]
