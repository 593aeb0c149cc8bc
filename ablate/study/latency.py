"""Wall-clock speedups timed interleaved: every setting of a space against its unaccelerated reference, round by round
on the same labels and noise in alternating order, so machine load hits all alike (a study's `latency` analysis, and
benchmarks/latency_ratio.py). A shared 2-core machine drifts by tens of percent between minutes, which makes speedups
from separate runs unreliable; interleaving cancels the drift. Timing: regenerated only by timing again.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from typing import Optional

import torch

from ablate.device import Timer, describe
from ablate.errors import AblateError
from ablate.evaluate import EvalConfig, setup, trial_key
from ablate.methods import run_name
from ablate.metrics import cost


def space_settings(space, tuned: Optional[dict] = None) -> list[EvalConfig]:
    """The EvalConfig of every distinct trial of a space (its sampler settings, base and dataset included), its
    reference first; seeds are dropped (a setting's latency does not depend on them)."""
    from ablate.sweep.space import grid_trials

    if len(space.references) != 1:
        raise AblateError(f"latency: {space.name} has references {space.references}; one is needed to divide by")
    out, seen = [], set()
    for t in grid_trials(space, tuned):
        key = trial_key(replace(t, seed=0))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return sorted(out, key=lambda t: t.method != "vanilla")


def interleaved(configs: list[EvalConfig], rounds: int = 5, batch_size: int = 100, device: str = "cpu",
                command: str = "") -> list[str]:
    """Markdown lines: ms/img (median over rounds), spread, wall and FLOPs speedups against the first config (the
    unaccelerated reference), the method's ideal N / (B + (N - B) c), and wall over ideal."""
    configs = [replace(c, n_samples=batch_size, device=device) for c in configs]
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    runs = [(run_name({"method": c.method, "steps": c.steps, "budget": c.budget, "knobs": c.knobs,
                       "cfg_w": c.cfg_w, "r_temp": c.r_temp, "sm_temp": c.sm_temp}), setup(c, log=log))
            for c in configs]
    dev, labels = runs[0][1].device, runs[0][1].labels
    ideal, flops = {}, {}
    for name, st in runs:
        f = cost.count_flops(st.sampler, labels[:4], torch.Generator().manual_seed(0), st.method).as_measures()
        flops[name] = f["gflops_per_image"]
        ideal[name] = st.method.ideal_speedup(f["accel_cost_ratio"])  # the method's own cost model
        st.sampler.sample(labels[:2], torch.Generator().manual_seed(1), st.method)  # warm-up
    times = {name: [] for name, _ in runs}
    t0 = time.perf_counter()
    for r in range(rounds):
        for name, st in (runs if r % 2 == 0 else runs[::-1]):
            with Timer(dev) as timer:  # CUDA events on a GPU
                st.sampler.sample(labels, torch.Generator().manual_seed(100 + r), st.method)
            times[name].append(timer.seconds * 1000 / len(labels))
        print(f"# round {r + 1}/{rounds} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    v = statistics.median(times[runs[0][0]])
    lines = [f"Wall-clock speedups timed interleaved (timing: differs at every run): N = {configs[0].steps}, batch "
             f"{batch_size}, {rounds} rounds, {describe(dev)}, {torch.get_num_threads()} CPU threads"
             + (f"; `{command}`" if command else ""), "",
             "| run | ms/img (median) | spread | speedup wall | speedup FLOPs | ideal | wall / ideal |",
             "|---|---|---|---|---|---|---|"]
    for name, _ in runs:
        ms = statistics.median(times[name])
        wall = v / ms
        lines.append(f"| {name} | {ms:.1f} | {(max(times[name]) - min(times[name])) / ms:.0%} | {wall:.2f}x | "
                     f"{flops[runs[0][0]] / flops[name]:.2f}x | {ideal[name]:.2f}x | {wall / ideal[name]:.0%} |")
    return lines
