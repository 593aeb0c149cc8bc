"""Ways of skipping work at sampling time, all behind `Accelerator` (base.py).

Each method lives in its own module and registers here by name, so `--method NAME` finds it.
"""

from __future__ import annotations

from ablate.accelerators.base import Accelerator
from ablate.accelerators.vanilla import Vanilla
from ablate.errors import AblateError

REGISTRY: dict[str, type[Accelerator]] = {
    "vanilla": Vanilla,
}


def build(method: str, steps: int, budget: int | None = None, **knobs) -> Accelerator:
    """The accelerator for `method` with its knobs; budget None means every step is full."""
    if method not in REGISTRY:
        raise AblateError(f"method: unknown method {method!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[method].from_options(steps=steps, budget=budget, **knobs)


__all__ = ["Accelerator", "REGISTRY", "Vanilla", "build"]
