"""What one Ray Tune trial runs: `evaluate`, speedups against the sweep's vanilla reference, checks.

Runs in a Ray worker; it writes nothing to MLflow itself. It reports flat measures (Tune's
objectives read them) plus a JSON payload the driver logs (per-step errors, sample grid).
"""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Optional

from ablate.metrics import cost

from ablate.evaluate import EvalConfig, evaluate


def trial_dict(config: dict) -> dict:
    """The trial's EvalConfig fields, from a grid config or an Optuna sample."""
    if "trial" in config:
        return dict(config["trial"])
    trial = dict(config["base"])
    trial["budget"] = int(config["budget"])
    trial["knobs"] = {**trial.get("knobs", {}), **config.get("knobs", {})}
    return trial


def speedups(measures: dict, trial: dict, accelerator: dict, reference: Optional[dict]) -> dict:
    n = trial["steps"]
    b = accelerator.get("budget") or n
    c = measures.get("accel_cost_ratio", 0.0)
    # step_reduction runs B full steps and nothing else: c = 0
    ideal = cost.ideal_speedup(n, b, 0.0 if trial["method"] in ("vanilla", "step_reduction") else c)
    out = {"ideal_speedup": ideal}
    if reference:
        out["speedup_wall"] = reference["latency_ms_per_image"] / measures["latency_ms_per_image"]
        out["speedup_flops"] = reference["gflops_per_image"] / measures["gflops_per_image"]
    return out


def grid_png(images, labels, num_classes: int = 10, per_class: int = 10) -> bytes:
    import torch

    from ablate.grid import class_grid

    keep = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)])
    buf = io.BytesIO()
    class_grid(images[keep], labels[keep], num_classes).save(buf, format="PNG")
    return buf.getvalue()


def run_trial(trial: dict, reference: Optional[dict]) -> dict:
    result = evaluate(EvalConfig(**trial), keep_images=True)
    m = dict(result["measures"])
    # The reference trial (vanilla at N) runs without one: it is its own reference, speedup 1.
    m.update(speedups(m, trial, result["accelerator"], reference or m))
    bad = [k for k, v in m.items() if isinstance(v, float) and math.isnan(v)]
    if bad:
        raise FloatingPointError(f"trial produced NaN in: {', '.join(bad)}")
    payload = {
        "per_step": result["per_step"],
        "accelerator": result["accelerator"],
        "full_steps": result["full_steps"],
        "grid_png": base64.b64encode(grid_png(result["images"], result["labels"], int(result["labels"].max()) + 1)).decode(),
    }
    return {**{k: v for k, v in m.items() if v is not None}, "payload": json.dumps(payload)}


def trainable(config: dict) -> None:
    """The Ray Tune function trainable."""
    from ray import tune

    tune.report(run_trial(trial_dict(config), config.get("reference")))
