"""dkv_cache: a K/V cache of committed tokens, in the spirit of dKV-Cache (delayed caching for diffusion LMs).

A committed token's keys and values stop changing much once its token is fixed, so they are cached and reused: at a
cheap step the base model recomputes the still-masked positions and the ones committed at the previous step (a token's
K/V are cached one step after it is committed, with its committed token in place), against the cached K/V of every
token committed earlier. A full step recomputes everything (a refresh): every `refresh_interval` steps on its own
schedule, or at a budget's full steps given one. It differs from ML-Cache's `masked_only` (a fixed share of the masked
positions, chosen by logit, and committed tokens never refreshed after they are committed) in what it recomputes.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ablate.methods.base import Knobs
from ablate.methods.kv_reuse import KVReuse


class DKVCache(KVReuse):
    name = "dkv_cache"
    label = "dKV-Cache"
    color = "#bcbd22"
    marker = "d"
    rank = 4.5

    class Knobs(Knobs):
        refresh_interval: int = Field(4, ge=1, description="a full step (every position recomputed) every k steps, on "
                                                          "its own schedule; 1 is vanilla; a budget overrides it")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        if budget is None:  # its own rule: a refresh every k steps
            self.full = {i for i in range(steps) if i % self.knobs.refresh_interval == 0}
            self.budget = len(self.full)

    def choose(self, state) -> torch.Tensor:
        """Still-masked positions and the ones committed at the previous step; every row has as many of each (the
        mask schedule's count), so one width serves the whole batch."""
        need = (state.mask | state.committed_prev).repeat(state.branches, 1)
        width = int(need[0].sum())
        pos = need.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :width]
        return pos.sort(dim=1).values
