"""adaptive: beyond the paper. Full steps where they are needed, on average B of them, instead of a fixed schedule.

At every step after the first, a cheap signal says how stale the last full step's prediction has become: the
surprise of the tokens committed since then under the logits of that full step, S(t) = mean over the batch of
sum over those positions of (1 - p_full(token)) / L. Tokens the base model expected change its features
little; unexpected ones change them a lot, and no cache or forecast can see them. A full step is taken when
S(t) > threshold; other steps forecast the feature (Taylor, order 1 from the last two full steps).

The decision is per batch (the sampler runs the base model on the whole batch or not at all). The threshold is
calibrated so that the mean number of full steps equals the budget B: bisection on a calibration batch of the
sampler's own settings and batch size, with its own labels and seed (a store entry). FLOPs and the ideal
speedup of a trial count the full steps actually taken in each generated batch (`adaptive = True`).
"""

from __future__ import annotations

from typing import Optional

import torch
from pydantic import Field

from ablate.methods.base import Knobs, Method
from ablate.methods.taylor import first_order


class Adaptive(Method):
    name = "adaptive"
    label = "Adaptive full steps (ours)"
    color = "#7f7f7f"
    marker = "h"
    rank = 6.7
    learned = True  # calibrated before sampling
    adaptive = True

    class Knobs(Knobs):
        threshold: Optional[float] = Field(None, ge=0, description="surprise that triggers a full step (default: "
                                                                   "calibrated so the mean full steps equal B)")
        calib_images: int = Field(250, ge=1, description="images of the calibration batch; the signal is a batch "
                                                         "mean, so keep it equal to eval.batch_size (250 in the "
                                                         "shipped spaces)")
        calib_seed: int = Field(12345, ge=0, description="seed of the calibration batch (not a sampling seed)")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        self.threshold = self.knobs.threshold
        self.sampler_cfg = None
        self.full_taken: list[int] = []

    def follow_sampler(self, cfg) -> None:
        self.sampler_cfg = cfg

    # -- the policy -----------------------------------------------------------------------------
    def begin(self, model, batch_size):
        self.prepare(model)
        self.ts, self.fs, self.probs, self.mask_at_full = [], [], None, None

    def surprise(self, state) -> float:
        since = self.mask_at_full & ~state.mask
        p = self.probs.gather(-1, state.tokens.clamp_max(self.probs.shape[-1] - 1)[..., None])[..., 0]
        return float(((1 - p) * since).sum(1).mean() / state.mask.shape[1])

    def is_full(self, state) -> bool:
        return state.step == 0 or self.surprise(state) > self.threshold

    def observe(self, state, logits, feature):
        self.ts, self.fs = (self.ts + [state.step])[-2:], (self.fs + [feature])[-2:]
        b = state.tokens.shape[0]
        self.probs = logits[:b].float().softmax(-1)  # the conditional branch's prediction
        self.mask_at_full = state.mask.clone()

    def skip_step(self, model, state):
        feature = first_order(self.ts, self.fs, state.step)
        return model.head(feature), feature

    # -- calibration ----------------------------------------------------------------------------
    def prepare(self, model, log=print) -> None:
        if self.threshold is not None:
            return
        from ablate import store
        from ablate.sampling import MaskGITSampler, SamplerConfig
        from ablate.sampling.sampler import balanced_labels
        from ablate.shortcut.cache import base_hash

        cfg = self.sampler_cfg or SamplerConfig(self.steps)
        k = self.knobs
        key = {"base": base_hash(model), "sampler": cfg.__dict__, "budget": self.budget,
               "calib_images": k.calib_images, "calib_seed": k.calib_seed}

        def build(folder):
            log(f"calibrating the adaptive policy to {self.budget} full steps of {self.steps}; cached after")
            sampler = MaskGITSampler(model, cfg)
            labels = balanced_labels(k.calib_images, model.num_classes)

            def full_steps(tau: float) -> int:
                self.threshold = tau
                out = sampler.sample(labels, torch.Generator().manual_seed(k.calib_seed), self)
                return len(out.full_steps)

            lo, hi = 0.0, 1.0  # S <= 1: at hi only step 0 is full; more full steps as tau falls
            best = (abs(full_steps(hi) - self.budget), hi)
            for _ in range(20):
                mid = (lo + hi) / 2
                n = full_steps(mid)
                best = min(best, (abs(n - self.budget), mid))
                if n == self.budget:
                    break
                lo, hi = (mid, hi) if n > self.budget else (lo, mid)
            (folder / "threshold.txt").write_text(repr(best[1]))

        folder = store.get_or_build("adaptive", key, build, log=log)
        self.threshold = float((folder / "threshold.txt").read_text())

    def describe(self) -> dict:
        return {**super().describe(), "full_steps": []}  # decided while sampling, batch by batch

    def ideal_speedup(self, measured_c: float) -> float:
        """N / (F + (N - F) c) with F the mean full steps actually taken (`full_taken`, set by the trial)."""
        n = self.nominal_steps
        f = sum(self.full_taken) / len(self.full_taken) if self.full_taken else self.budget
        return n / (f + (n - f) * measured_c)
