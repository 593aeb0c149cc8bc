"""vanilla: the base model at every step; the reference every method is measured against."""

from __future__ import annotations

from ablate.errors import AblateError
from ablate.methods.base import Method


class Vanilla(Method):
    name = "vanilla"
    label = "Vanilla"
    color = "#000000"
    marker = "*"
    rank = 0

    def __init__(self, steps: int, budget=None, knobs=None):
        if budget is not None and budget != steps:
            raise AblateError(
                f"budget: method vanilla runs all {steps} steps; a budget of {budget} needs an accelerating method"
            )
        super().__init__(steps, steps, knobs)

    def cheap_step_cost(self, measured: float) -> float:
        return 0.0
