"""step_reduction: the plain sampler with N = B steps, so a budget costs the same for every method."""

from __future__ import annotations

from ablate.methods.base import Method
from ablate.sampling.schedule import check_budget


class StepReduction(Method):
    name = "step_reduction"
    label = "Step reduction"
    color = "#7f7f7f"
    marker = "v"
    rank = 1

    def __init__(self, steps, budget=None, knobs=None):
        budget = steps if budget is None else budget
        check_budget(steps, budget)
        super().__init__(budget, budget, knobs)  # the sampler runs B steps, all of them full
        self.nominal_steps = steps

    def cheap_step_cost(self, measured: float) -> float:
        return 0.0  # B full steps and nothing else
