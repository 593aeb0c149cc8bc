"""parallel_decode: threshold parallel decoding, in the spirit of Fast-dLLM: a step commits, besides what the mask
schedule asks for, every still-masked token whose sampled probability reaches `tau` (at most `k_max` in all), so a
confident sample needs fewer steps and the loop ends once nothing is masked (the steps taken vary per batch; a trial
counts FLOPs and the ideal speedup from them). The schedule's count is a floor, so a batch never needs more than N
steps and guidance and temperature ramps keep their meaning. Its steps are full steps of the base model unless
`cheap` names a feature method (feature caching, Taylor, the shortcut), which then runs the cheap steps of the
budget's schedule.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ablate.errors import AblateError
from ablate.methods.base import Knobs, Method
from ablate.sampling.policy import confidence_top_k
from ablate.shortcut.train import TRAINING_FORMAT


class ParallelDecode(Method):
    name = "parallel_decode"
    label = "Parallel decoding (threshold)"
    color = "#aec7e8"
    marker = ">"
    rank = 1.5
    variable_steps = True
    training_format = TRAINING_FORMAT  # its cheap steps may be the shortcut's

    class Knobs(Knobs):
        tau: float = Field(0.9, gt=0, le=1, description="commit every masked token whose sampled probability reaches "
                                                        "tau (besides the schedule's count)")
        k_max: int = Field(16, ge=1, description="at most this many commits a step (never fewer than the schedule's)")
        cheap: Literal["none", "feature_cache", "taylor", "shortcut"] = Field(
            "none", description="the feature method of the budget's cheap steps (none: every step runs the base)")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        k = self.knobs
        if k.cheap == "none":
            if budget is not None and budget < steps:
                raise AblateError(f"budget: parallel_decode with cheap: none runs the base model at every step it "
                                  f"takes; leave the budget out, or give cheap: feature_cache, taylor or shortcut")
            self.inner = None
        else:
            from ablate import methods

            self.inner = methods.build(k.cheap, steps=steps, budget=budget)
            self.full = self.inner.full
        self.learned = self.inner is not None and self.inner.learned

    # -- the step policy: the inner method's steps, its own commit rule -------------------------------------------
    def follow_sampler(self, cfg) -> None:
        if self.inner is not None:
            self.inner.follow_sampler(cfg)

    def prepare(self, model, log=print) -> None:
        if self.inner is not None:
            self.inner.prepare(model, log=log)

    def begin(self, model, batch_size):
        if self.inner is not None:
            self.inner.begin(model, batch_size)

    def is_full(self, state) -> bool:
        return self.inner is None or self.inner.is_full(state)

    def full_step(self, model, state):
        return super().full_step(model, state) if self.inner is None else self.inner.full_step(model, state)

    def skip_step(self, model, state):
        return self.inner.skip_step(model, state)

    def commit(self, state, confidence: torch.Tensor, count: int) -> torch.Tensor:
        """The schedule's `count` most confident, plus every masked token at or above tau, at most max(k_max, count)
        a row (the most probable first)."""
        base = confidence_top_k(state, confidence, count)
        prob = state.sampled_logp.exp()
        extra = (prob >= self.knobs.tau) & state.mask & ~base
        room = (max(self.knobs.k_max, count) - base.sum(1, keepdim=True)).clamp_min(0)
        rank = prob.masked_fill(~extra, -1.0).argsort(dim=1, descending=True).argsort(dim=1)  # 0: most probable
        return base | (extra & (rank < room))

    def num_params(self) -> int:
        return 0 if self.inner is None else self.inner.num_params()

    def cheap_step_cost(self, measured: float) -> float:
        return 0.0 if self.inner is None else measured

    def describe(self) -> dict:
        return {**super().describe(), "full_steps": []}  # the steps a batch takes vary
