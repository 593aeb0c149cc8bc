"""taylor: TaylorSeer-style forecasting of the feature from the last full steps.

At full steps keep the feature and its finite differences up to order m (divided by the step gap,
so they estimate derivatives in the step index); at a skipped step t extrapolate
f(t) = sum_i D_i (t - t_k)^i / i!. Order 0 is feature caching.
"""

from __future__ import annotations

import math

from typing import Literal

from pydantic import Field

from ablate.methods.base import Knobs, Method


def first_order(ts: list[int], fs: list, t: int):
    """Taylor's order-1 forecast at t from the last two full steps (times ts, features fs); one: the cache.
    Shared by the methods that start from it (adaptive, residual_shortcut)."""
    if len(fs) < 2:
        return fs[-1]
    (tp, tk), (fp, fk) = ts[-2:], fs[-2:]
    return fk + (fk - fp) * ((t - tk) / (tk - tp))


class Taylor(Method):
    name = "taylor"
    label = "Taylor"
    color = "#ff7f0e"
    marker = "^"
    rank = 3

    class Knobs(Knobs):
        order: int = Field(1, ge=0, le=2, description="order m of the forecast (0 = feature caching)")
        schedule: Literal["paper", "searched"] = Field(
            "paper", description="which B steps are full: the paper's rule, or searched for token agreement with the "
                                 "unaccelerated run (methods/schedule_search.py; a store entry)")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        self.order = self.knobs.order
        self.sampler_cfg = None

    def follow_sampler(self, cfg) -> None:
        self.sampler_cfg = cfg

    def prepare(self, model, log=print) -> None:
        if self.knobs.schedule == "searched" and not getattr(self, "_searched", False):
            from ablate.methods.schedule_search import searched_full_steps
            from ablate.sampling import SamplerConfig

            self._searched = True
            self.full = set(searched_full_steps(self, model, self.sampler_cfg or SamplerConfig(self.steps), log=log))

    def begin(self, model, batch_size):
        self.derivs, self.t_last = [], None

    def observe(self, state, logits, feature):
        new = [feature]
        if self.t_last is not None:
            gap = state.step - self.t_last
            for i in range(1, self.order + 1):
                if i - 1 >= len(self.derivs):
                    break
                new.append((new[i - 1] - self.derivs[i - 1]) / gap)
        self.derivs, self.t_last = new, state.step

    def skip_step(self, model, state):
        dt = state.step - self.t_last
        feature = sum(d * (dt**i / math.factorial(i)) for i, d in enumerate(self.derivs))
        return model.head(feature), feature
