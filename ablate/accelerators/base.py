"""The accelerator interface the sampler talks to.

The sampler owns the loop. At every step it asks `is_full(state)`:
- full step: `full_step` runs the base model (default) and `observe`s the fresh feature, so the
  accelerator can cache whatever it needs;
- other steps: `skip_step` returns (logits, feature) without the full model, however it likes.
Both branches of classifier-free guidance are stacked on the batch dimension: [cond; uncond].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from ablate.sampling.schedule import check_budget, full_steps

if TYPE_CHECKING:
    from ablate.sampling.sampler import StepState


class Accelerator:
    name = "base"
    # True: cheap steps run the base model on some positions against cached K/V (forward(positions=,
    # kv_cache=, return_kv=)), which only a base with `supports_positions` offers (the native model).
    position_level = False

    def __init__(self, steps: int, budget: Optional[int] = None):
        budget = steps if budget is None else budget
        check_budget(steps, budget)
        self.steps = steps
        self.budget = budget
        self.full = set(full_steps(steps, budget))

    @classmethod
    def from_options(cls, steps: int, budget: Optional[int] = None, **knobs) -> "Accelerator":
        return cls(steps=steps, budget=budget, **knobs)

    def begin(self, model, batch_size: int) -> None:
        """Called before each batch: drop any state carried from the previous one."""

    def is_full(self, state: "StepState") -> bool:
        return state.step in self.full

    def full_step(self, model, state: "StepState") -> tuple[torch.Tensor, torch.Tensor]:
        logits, feature = model(state.model_tokens(), state.model_labels())
        self.observe(state, logits, feature)
        return logits, feature

    def observe(self, state: "StepState", logits: torch.Tensor, feature: torch.Tensor) -> None:
        """See the fresh full-step output (e.g. to cache it)."""

    def skip_step(self, model, state: "StepState") -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{self.name} has no cheap step")

    def num_params(self) -> int:
        """Parameters the accelerator adds to the base model (a learned shortcut has some)."""
        return 0

    def describe(self) -> dict:
        """Knobs that identify this accelerator (logged as params)."""
        return {"method": self.name, "steps": self.steps, "budget": self.budget}
