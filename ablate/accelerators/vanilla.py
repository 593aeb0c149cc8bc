"""vanilla: the base model at every step; the reference every method is measured against."""

from __future__ import annotations

from ablate.accelerators.base import Accelerator
from ablate.errors import AblateError


class Vanilla(Accelerator):
    name = "vanilla"

    def __init__(self, steps: int, budget=None):
        if budget is not None and budget != steps:
            raise AblateError(
                f"budget: method vanilla runs all {steps} steps; a budget of {budget} needs an accelerating method"
            )
        super().__init__(steps, steps)
