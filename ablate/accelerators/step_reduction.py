"""step_reduction: the plain sampler with N = B steps, so a budget costs the same for every method."""

from __future__ import annotations

from ablate.accelerators.base import Accelerator
from ablate.sampling.schedule import check_budget


class StepReduction(Accelerator):
    name = "step_reduction"

    def __init__(self, steps, budget=None):
        budget = steps if budget is None else budget
        check_budget(steps, budget)
        self.nominal_steps = steps
        super().__init__(budget, budget)  # the sampler runs B steps, all of them full

    def describe(self):
        return {"method": self.name, "steps": self.nominal_steps, "budget": self.budget}
