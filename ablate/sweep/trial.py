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

from ablate.evaluate import EvalConfig, evaluate


def trial_dict(config: dict) -> dict:
    """The trial's EvalConfig fields, from a grid config or an Optuna sample."""
    if "trial" in config:
        return dict(config["trial"])
    trial = dict(config["base"])
    trial["budget"] = int(config["budget"])
    trial["knobs"] = {**trial.get("knobs", {}), **config.get("knobs", {})}
    return trial


def speedups(measures: dict, reference: Optional[dict]) -> dict:
    """Wall-clock and FLOPs speedups against the sweep's vanilla reference (the method's own ideal is already
    among the measures: its cost model, methods/base.py)."""
    if not reference:
        return {}
    return {"speedup_wall": reference["latency_ms_per_image"] / measures["latency_ms_per_image"],
            "speedup_flops": reference["gflops_per_image"] / measures["gflops_per_image"]}


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
    m.update(speedups(m, reference or m))
    bad = [k for k, v in m.items() if isinstance(v, float) and math.isnan(v)]
    if bad:
        raise FloatingPointError(f"trial produced NaN in: {', '.join(bad)}")
    payload = {
        "per_step": result["per_step"],
        "description": result["description"],
        "grid_png": base64.b64encode(grid_png(result["images"], result["labels"], int(result["labels"].max()) + 1)).decode(),
    }
    return {**{k: v for k, v in m.items() if v is not None}, "payload": json.dumps(payload)}


def trainable(config: dict) -> None:
    """The Ray Tune function trainable."""
    from ray import tune

    tune.report(run_trial(trial_dict(config), config.get("reference")))
