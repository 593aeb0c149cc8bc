"""ml_cache: Lumina-DiMOO's max-logit cache.

Full compute for the first warmup_ratio*N steps and every refresh_interval-th step after (or, given
a budget, at the budget's full steps, so it is compared at the same number of full steps). In
between, only the fraction (1 - cache_ratio) of positions with the lowest max-logit at the previous
step is run through the network, against the cached K/V of the others; the others keep their
cached logits. Per CFG branch (each row of the stacked batch chooses its own positions).
"""

from __future__ import annotations

import math


from ablate.accelerators.kv_reuse import KVReuse
from ablate.errors import AblateError


class MLCache(KVReuse):
    name = "ml_cache"

    def __init__(self, steps, budget=None, warmup_ratio: float = 0.3, refresh_interval: int = 5, cache_ratio: float = 0.9):
        if not 0 <= cache_ratio <= 1:
            raise AblateError(f"cache_ratio: must lie in [0, 1], got {cache_ratio}")
        if not 0 <= warmup_ratio <= 1:
            raise AblateError(f"warmup_ratio: must lie in [0, 1], got {warmup_ratio}")
        if refresh_interval < 1:
            raise AblateError(f"refresh_interval: must be at least 1, got {refresh_interval}")
        super().__init__(steps, budget)
        self.warmup_ratio, self.refresh_interval, self.cache_ratio = warmup_ratio, refresh_interval, cache_ratio
        if budget is None:  # the method's own rule
            warm = max(1, math.ceil(warmup_ratio * steps))
            self.full = {i for i in range(steps) if i < warm or (i - warm) % refresh_interval == 0}
            self.budget = len(self.full)

    def choose(self, state):
        max_logit = self.logits.max(-1).values  # (rows, L): confidence at the previous step
        rows, L = max_logit.shape
        k = max(1, round((1 - self.cache_ratio) * L))
        return max_logit.topk(k, dim=-1, largest=False).indices

    def describe(self):
        return {
            **super().describe(),
            "warmup_ratio": self.warmup_ratio,
            "refresh_interval": self.refresh_interval,
            "cache_ratio": self.cache_ratio,
        }
