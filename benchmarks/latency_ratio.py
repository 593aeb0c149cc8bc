"""Wall-clock speedup of a method over vanilla N, timed interleaved so machine load hits both alike.

    python benchmarks/latency_ratio.py --steps 16 --budget 4 --method shortcut --rounds 6 --batch-size 250
    python benchmarks/latency_ratio.py --space baselines_N16 --rounds 5 --batch-size 100

--space times every (method, N, B, knobs) of a search space's grid, as its sweep runs them, against its
unaccelerated references: the wall-clock column of a sweep that spanned several sessions divides latencies
timed under different machine loads, and this one run replaces it.

Each round times one vanilla batch and one batch of each method on the same labels and noise, in
alternating order; the speedup is the ratio of the medians. Next to it: the ideal speedup
N / (B + (N - B) c) from the FLOPs of one run (c = cost of an accelerated step over a full one).
A shared 2-core machine drifts by tens of percent between minutes, which makes speedups from
separate runs unreliable; interleaving cancels the drift.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace

import torch

from ablate.device import Timer, describe
from ablate.evaluate import EvalConfig, setup
from ablate.methods import parse_knobs, run_name
from ablate.metrics import cost


def space_settings(name: str) -> list:
    """The EvalConfig of every distinct trial of a space (its sampler settings, base and dataset included), its
    reference first; seeds are dropped (a setting's latency does not depend on them)."""
    from ablate.sweep.space import grid_trials, load_space

    space = load_space(name)
    if len(space.references) != 1:
        raise SystemExit(f"--space: {space.name} has references {space.references}; one is needed to divide by")
    out, seen = [], set()
    for t in grid_trials(space):
        key = (t.method, t.steps, t.budget, json.dumps(t.knobs, sort_keys=True))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return sorted(out, key=lambda t: t.method != "vanilla")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--budget", type=int, nargs="+", default=[4])
    p.add_argument("--method", nargs="+", default=["shortcut"], help="method names (knobs: --knob, shared)")
    p.add_argument("--knob", action="append", default=[], help="NAME=VALUE for every method")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--space", help="time every setting of this search space's grid (name or YAML); "
                   "replaces --steps/--budget/--method/--knob")
    args = p.parse_args(argv)

    def trial(cfg: EvalConfig):
        log = lambda s: print(s, file=sys.stderr)  # stdout is the table
        return run_name({"method": cfg.method, "steps": cfg.steps, "budget": cfg.budget, "knobs": cfg.knobs}), \
            setup(cfg, log=log)

    if args.space:  # the space's own configs, on one batch of the given size and device
        configs = [replace(c, n_samples=args.batch_size, device=args.device) for c in space_settings(args.space)]
        args.steps = configs[0].steps
    else:
        configs = [EvalConfig(dataset=args.dataset, method=m, steps=args.steps, budget=b, knobs=k,
                              n_samples=args.batch_size, device=args.device)
                   for m, b, k in [("vanilla", None, {})]
                   + [(m, b, parse_knobs(args.knob)) for b in args.budget for m in args.method]]
    runs = [trial(c) for c in configs]
    dev = runs[0][1].device
    labels = runs[0][1].labels
    ideal, measured_flops = {}, {}
    for name, st in runs:
        f = cost.count_flops(st.sampler, labels[:4], torch.Generator().manual_seed(0), st.method).as_measures()
        measured_flops[name] = f["gflops_per_image"]
        ideal[name] = st.method.ideal_speedup(f["accel_cost_ratio"])  # the method's own cost model
        st.sampler.sample(labels[:2], torch.Generator().manual_seed(1), st.method)  # warm-up

    times = {name: [] for name, _ in runs}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        order = runs if r % 2 == 0 else runs[::-1]
        for name, st in order:
            gen = torch.Generator().manual_seed(100 + r)
            with Timer(dev) as timer:  # CUDA events on a GPU
                st.sampler.sample(labels, gen, st.method)
            times[name].append(timer.seconds * 1000 / len(labels))
        print(f"# round {r + 1}/{args.rounds} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    v = statistics.median(times[runs[0][0]])
    print(f"\n`python benchmarks/latency_ratio.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ")
    print(f"N = {args.steps}, batch {args.batch_size}, {args.rounds} interleaved rounds, {describe(dev)}, "
          f"{torch.get_num_threads()} CPU threads\n")
    print("| run | ms/img (median) | spread | speedup wall | speedup FLOPs | ideal | wall / ideal |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in runs:
        ms = statistics.median(times[name])
        spread = (max(times[name]) - min(times[name])) / ms
        wall = v / ms
        fl = measured_flops[runs[0][0]] / measured_flops[name]
        print(f"| {name} | {ms:.1f} | {spread:.0%} | {wall:.2f}x | {fl:.2f}x | {ideal[name]:.2f}x | {wall / ideal[name]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
