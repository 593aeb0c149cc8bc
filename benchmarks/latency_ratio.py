"""Wall-clock speedup of a method over vanilla N, timed interleaved so machine load hits both alike.

    python benchmarks/latency_ratio.py --steps 16 --budget 4 --method shortcut --rounds 6 --batch-size 250

Each round times one vanilla batch and one batch of each method on the same labels and noise, in
alternating order; the speedup is the ratio of the medians. Next to it: the ideal speedup
N / (B + (N - B) c) from the FLOPs of one run (c = cost of an accelerated step over a full one).
A shared 2-core machine drifts by tens of percent between minutes, which makes speedups from
separate runs unreliable; interleaving cancels the drift.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ablate import accelerators, pretrained
from ablate.device import Timer, autocast_dtype, describe, resolve_device
from ablate.metrics import cost
from ablate.models.select import load_base
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.sampling.sampler import balanced_labels


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
    args = p.parse_args(argv)

    dev = resolve_device(args.device)
    bundle = pretrained.load(args.dataset)
    base = load_base(None, bundle, dev)
    amp = autocast_dtype(dev, "auto", base)
    labels = balanced_labels(args.batch_size, base.num_classes)
    vanilla = accelerators.build("vanilla", steps=args.steps)
    runs = [("vanilla", args.steps, vanilla)]
    for budget in args.budget:
        for m in args.method:
            acc = accelerators.build(m, steps=args.steps, budget=budget, **accelerators.parse_knobs(args.knob))
            if hasattr(acc, "prepare"):
                acc.prepare(base)
            runs.append((f"{m} B={budget}", budget, acc))

    def sampler_for(acc):
        return MaskGITSampler(base, SamplerConfig(acc.steps), amp_dtype=amp)

    ideal, measured_flops = {}, {}
    for name, budget, acc in runs:
        f = cost.count_flops(MaskGITSampler(base, SamplerConfig(acc.steps)), labels[:4],
                             torch.Generator().manual_seed(0), acc).as_measures()
        measured_flops[name] = f["gflops_per_image"]
        # N / (B + (N - B) c); step_reduction runs B full steps, i.e. c = 0 over N steps.
        c = f["accel_cost_ratio"]
        ideal[name] = cost.ideal_speedup(args.steps, budget, c)
        sampler_for(acc).sample(labels[:2], torch.Generator().manual_seed(1), acc)  # warm-up

    times = {name: [] for name, _, _ in runs}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        order = runs if r % 2 == 0 else runs[::-1]
        for name, _, acc in order:
            gen = torch.Generator().manual_seed(100 + r)
            with Timer(dev) as timer:  # CUDA events on a GPU
                sampler_for(acc).sample(labels, gen, acc)
            times[name].append(timer.seconds * 1000 / len(labels))
        print(f"# round {r + 1}/{args.rounds} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    v = statistics.median(times["vanilla"])
    print(f"\n`python benchmarks/latency_ratio.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ")
    print(f"N = {args.steps}, batch {args.batch_size}, {args.rounds} interleaved rounds, {describe(dev)}, "
          f"{torch.get_num_threads()} CPU threads\n")
    print("| run | ms/img (median) | spread | speedup wall | speedup FLOPs | ideal | wall / ideal |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in runs:
        ms = statistics.median(times[name])
        spread = (max(times[name]) - min(times[name])) / ms
        wall = v / ms
        fl = measured_flops["vanilla"] / measured_flops[name]
        print(f"| {name} | {ms:.1f} | {spread:.0%} | {wall:.2f}x | {fl:.2f}x | {ideal[name]:.2f}x | {wall / ideal[name]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
