"""parallel_decode: threshold parallel decoding, in the spirit of Fast-dLLM: a step commits every still-masked token
whose sampled probability reaches `tau` (at most `k_max`), and at least a floor: the single most confident one
(`floor: one`, Fast-dLLM's rule) or the mask schedule's count (`floor: schedule`, which on a short schedule leaves
nothing to save). The loop keeps the N steps of the sampler as a ceiling (guidance and temperature ramps keep their
meaning; the last step commits whatever is left, as MaskGIT's does), so a sample takes between 1 and N steps.

The steps adapt per sample: with `cheap: none` a sample that has nothing masked leaves the batch (its rows are no
longer sent through the base model), so its cost is its own steps, and a trial counts FLOPs and the ideal speedup
from the steps each sample took. With `cheap` naming a feature method (feature caching, Taylor, the shortcut), that
method runs the cheap steps of the budget's schedule; its caches hold the whole batch, so the batch runs until its
last sample is done and each sample is charged the batch's steps.
"""

from __future__ import annotations

from dataclasses import replace
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
                                                        "tau (besides the floor)")
        k_max: int = Field(16, ge=1, description="at most this many commits a step (never fewer than the floor)")
        floor: Literal["one", "schedule"] = Field(
            "one", description="commit at least this many a step: one (the most confident; Fast-dLLM) or the mask "
                               "schedule's count (a sample then never finishes before the schedule's last steps)")
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
        self.per_sample = self.inner is None  # finished samples leave the batch: each is charged its own steps

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
        if self.inner is not None:
            return self.inner.full_step(model, state)
        active = state.mask.any(1)
        if bool(active.all()):
            return super().full_step(model, state)
        # only the samples with something masked go through the base; the others' outputs are zeros, never used
        # (nothing of theirs is masked, so nothing is committed)
        rows = active.nonzero().squeeze(1)
        sub = replace(state, tokens=state.tokens[rows], labels=state.labels[rows], mask=state.mask[rows],
                      committed_prev=state.committed_prev[rows])
        logits_sub, feature_sub = model(sub.model_tokens(), sub.model_labels())
        b = state.tokens.shape[0]
        every = torch.cat([rows + j * b for j in range(state.branches)])
        logits = logits_sub.new_zeros((state.branches * b,) + tuple(logits_sub.shape[1:]))
        feature = feature_sub.new_zeros((state.branches * b,) + tuple(feature_sub.shape[1:]))
        logits[every], feature[every] = logits_sub, feature_sub
        return logits, feature

    def skip_step(self, model, state):
        return self.inner.skip_step(model, state)

    def commit(self, state, confidence: torch.Tensor, count: int) -> torch.Tensor:
        """The floor's most confident (one, or the schedule's `count`; everything left at the last step), plus every
        masked token at or above tau, at most max(k_max, floor) a row (the most probable first)."""
        if self.knobs.floor == "one":
            count = 1 if state.step < state.steps - 1 else state.tokens.shape[1]
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
