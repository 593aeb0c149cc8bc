"""ml_cache: Lumina-DiMOO's max-logit cache.

Full compute for the first warmup_ratio*N steps and every refresh_interval-th step after (or, given
a budget, at the budget's full steps, so it is compared at the same number of full steps). In
between, only the fraction (1 - cache_ratio) of positions with the lowest max-logit at the previous
step is run through the network, against the cached K/V of the others; the others keep their
cached logits. Per CFG branch (each row of the stacked batch chooses its own positions).

`masked_only: true` is our variant: it chooses among still-masked positions only. Committed positions are
never sampled again, so their logits are never read; the original spends part of its recompute on them.
"""

from __future__ import annotations

import math

from pydantic import Field

from ablate.methods.base import Knobs
from ablate.methods.kv_reuse import KVReuse


class MLCache(KVReuse):
    name = "ml_cache"
    label = "ML-Cache"
    color = "#2ca02c"
    marker = "D"
    rank = 4

    class Knobs(Knobs):
        warmup_ratio: float = Field(0.3, ge=0, le=1, description="share of the first steps run in full (own schedule)")
        refresh_interval: int = Field(5, ge=1, description="every k-th step after the warm-up is full (own schedule)")
        cache_ratio: float = Field(0.9, ge=0, le=1, description="share of positions that keep their cached logits")
        masked_only: bool = Field(False, description="recompute only still-masked positions (committed ones never "
                                                     "need logits)")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        k = self.knobs
        warmup_ratio, refresh_interval, self.cache_ratio = k.warmup_ratio, k.refresh_interval, k.cache_ratio
        if budget is None:  # the method's own rule
            warm = max(1, math.ceil(warmup_ratio * steps))
            self.full = {i for i in range(steps) if i < warm or (i - warm) % refresh_interval == 0}
            self.budget = len(self.full)

    def choose(self, state):
        max_logit = self.logits.max(-1).values  # (rows, L): confidence at the previous step
        if self.knobs.masked_only:
            max_logit = max_logit.masked_fill(~state.mask.repeat(state.branches, 1), float("inf"))
        rows, L = max_logit.shape
        k = max(1, round((1 - self.cache_ratio) * L))
        return max_logit.topk(k, dim=-1, largest=False).indices
