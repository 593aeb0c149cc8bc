"""taylor: TaylorSeer-style forecasting of the feature from the last full steps.

At full steps keep the feature and its finite differences up to order m (divided by the step gap,
so they estimate derivatives in the step index); at a skipped step t extrapolate
f(t) = sum_i D_i (t - t_k)^i / i!. Order 0 is feature caching.
"""

from __future__ import annotations

import math

from ablate.accelerators.base import Accelerator
from ablate.errors import AblateError


class Taylor(Accelerator):
    name = "taylor"

    def __init__(self, steps, budget=None, order: int = 1):
        super().__init__(steps, budget)
        if order not in (0, 1, 2):
            raise AblateError(f"order: taylor supports order 0, 1 or 2, got {order}")
        self.order = order

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

    def describe(self):
        return {**super().describe(), "order": self.order}
