"""Ways of skipping work at sampling time, all behind `Accelerator` (base.py).

Each method lives in its own module and registers here by name, so `--method NAME` finds it.
"""

from __future__ import annotations

import inspect

from ablate.accelerators.base import Accelerator
from ablate.accelerators.feature_cache import FeatureCache
from ablate.accelerators.ml_cache import MLCache
from ablate.accelerators.recap import ReCAP
from ablate.accelerators.shortcut import ShortcutAccelerator
from ablate.accelerators.step_reduction import StepReduction
from ablate.accelerators.taylor import Taylor
from ablate.accelerators.vanilla import Vanilla
from ablate.errors import AblateError

REGISTRY: dict[str, type[Accelerator]] = {
    cls.name: cls for cls in (Vanilla, StepReduction, FeatureCache, Taylor, MLCache, ReCAP, ShortcutAccelerator)
}


def knobs_of(method: str) -> dict:
    """The method's knobs and their defaults (its constructor's keyword arguments)."""
    sig = inspect.signature(REGISTRY[method].__init__)
    return {k: p.default for k, p in sig.parameters.items() if k not in ("self", "steps", "budget")}


def build(method: str, steps: int, budget: int | None = None, **knobs) -> Accelerator:
    """The accelerator for `method` with its knobs; budget None means every step is full."""
    if method not in REGISTRY:
        raise AblateError(f"method: unknown method {method!r}; choose one of {', '.join(sorted(REGISTRY))}")
    allowed = knobs_of(method)
    for k in knobs:
        if k not in allowed:
            have = ", ".join(allowed) or "none"
            raise AblateError(f"knob: method {method} has no knob {k!r} (its knobs: {have})")
    return REGISTRY[method].from_options(steps=steps, budget=budget, **knobs)


def parse_knobs(items: list[str]) -> dict:
    """['order=2', 'cache_ratio=0.8', 'use_tokens=false'] -> typed dict."""
    out = {}
    for item in items:
        if "=" not in item:
            raise AblateError(f"--knob: expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        low = v.lower()
        if low in ("true", "false"):
            out[k] = low == "true"
        else:
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return out


__all__ = ["Accelerator", "REGISTRY", "Vanilla", "build"]
