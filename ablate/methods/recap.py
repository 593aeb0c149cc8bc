"""recap: ReCAP-style local refinement against cached K/V.

Each full step caches every layer's K/V and picks, by the confidence of its predictions, the group
of masked positions the following cheap steps will decode (as many as the mask schedule commits
before the next full step, times a margin). The cheap steps recompute only that group against the
cached K/V of all other positions; the rest keep their full-step logits.
"""

from __future__ import annotations

import math

from pydantic import Field

from ablate.methods.base import Knobs
from ablate.methods.kv_reuse import KVReuse
from ablate.sampling.schedule import mask_schedule


class ReCAP(KVReuse):
    name = "recap"
    label = "ReCAP"
    color = "#9467bd"
    marker = "P"
    rank = 5

    class Knobs(Knobs):
        margin: float = Field(1.5, ge=1, description="group size over the tokens the cheap steps decode (>= 1)")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        self.margin = self.knobs.margin

    def begin(self, model, batch_size):
        super().begin(model, batch_size)
        self.group = None

    def observe(self, state, logits, feature):
        counts = mask_schedule(state.steps, state.tokens.shape[1])
        nxt = min([s for s in self.full if s > state.step], default=state.steps)
        upcoming = sum(counts[state.step + 1 : nxt])  # tokens the cheap steps will commit
        if upcoming == 0:
            self.group = None
            return
        k = min(state.tokens.shape[1], math.ceil(upcoming * self.margin) + counts[state.step])
        conf = logits.float().log_softmax(-1).max(-1).values  # (rows, L)
        mask = state.mask.repeat(state.branches, 1)
        conf = conf.masked_fill(~mask, float("-inf"))  # committed positions never need decoding
        self.group = conf.topk(k, dim=-1).indices

    def choose(self, state):
        return self.group
