"""Schedules: how many tokens each step commits, in which order, and which steps of a budget run the base model."""

from __future__ import annotations

import math

import torch

from ablate.errors import AblateError


def check_budget(steps: int, budget: int) -> None:
    """One-line errors for impossible step/budget pairs."""
    if steps < 1:
        raise AblateError(f"steps: must be at least 1, got {steps}")
    if budget < 1:
        raise AblateError(f"budget: must be at least 1, got {budget}")
    if budget > steps:
        raise AblateError(f"budget: {budget} full steps cannot fit in {steps} steps (need budget <= steps)")


def full_steps(steps: int, budget: int) -> list[int]:
    """The paper's rule: step 0, then max(previous + 1, round(N*k/B)) for k = 1..B-1.

    Python's round (half to even) on purpose: it is what the reference results used.
    """
    check_budget(steps, budget)
    chosen = [0]
    for k in range(1, budget):
        chosen.append(max(chosen[-1] + 1, round(steps * k / budget)))
    return chosen


ORDERS = ("confidence", "halton")  # which still-masked positions a step commits first


def radical_inverse(i: int, base: int) -> float:
    """The i-th element of the van der Corput sequence in `base` (digits of i mirrored behind the point)."""
    f, r = 1.0, 0.0
    while i > 0:
        f /= base
        r += f * (i % base)
        i //= base
    return r


def halton_order(height: int, width: int) -> list[int]:
    """Grid positions (row-major) in the order of the 2-D Halton sequence in bases 2 (columns) and 3 (rows) from its
    first point, each cell taken where the sequence first lands in it: spread out, never clustered."""
    seen, order, i = set(), [], 0
    while len(order) < height * width:
        i += 1
        cell = int(radical_inverse(i, 3) * height) * width + int(radical_inverse(i, 2) * width)
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
    return order


def order_ranks(order: str, seq_len: int):
    """Rank of each position in a fixed unmasking order (None: by confidence, MaskGIT's)."""
    if order not in ORDERS:
        raise AblateError(f"unmasking: unknown order {order!r}; choose {' or '.join(ORDERS)}")
    if order == "confidence":
        return None
    side = math.isqrt(seq_len)
    if side * side != seq_len:
        raise AblateError(f"unmasking: halton needs a square token grid, got {seq_len} positions")
    ranks = torch.empty(seq_len, dtype=torch.long)
    ranks[torch.tensor(halton_order(side, side))] = torch.arange(seq_len)
    return ranks


def mask_schedule(steps: int, seq_len: int, mode: str = "arccos") -> list[int]:
    """Tokens committed at each of `steps` steps; they sum to seq_len and each is at least 1.

    arccos (Halton-MaskGIT): r = linspace(1, 0, N), m = arccos(r)/(pi/2), counts proportional to m,
    rounded, zeros raised to 1, the last step takes the remainder.
    """
    if steps < 1:
        raise AblateError(f"steps: must be at least 1, got {steps}")
    if steps > seq_len:
        raise AblateError(f"steps: {steps} steps cannot each commit a token of {seq_len} positions")
    r = torch.linspace(1, 0, steps, dtype=torch.float64)
    if mode == "arccos":
        m = torch.arccos(r) / (math.pi / 2)
    elif mode == "linear":
        m = 1 - r
    elif mode == "cosine":
        m = 1 - torch.cos((1 - r) * math.pi / 2)
    else:
        raise AblateError(f"schedule: unknown mask schedule {mode!r}; choose arccos, linear or cosine")
    if steps == 1:
        return [seq_len]
    counts = (m / m.sum() * seq_len).round().long().tolist()
    counts = [max(1, c) for c in counts]
    counts[-1] = seq_len - sum(counts[:-1])
    # Rounding up small counts can overshoot; take the excess back from the largest earlier steps.
    while counts[-1] < 1:
        j = max(range(steps - 1), key=lambda i: counts[i])
        counts[j] -= 1
        counts[-1] += 1
    return counts
