"""Cost of vanilla vs shortcut sampling as the token sequence grows: 7x7 and 14x14 tokens, a wider base.

    python benchmarks/scaling.py                       # default: a few minutes on 2 CPU cores
    python benchmarks/scaling.py --device cuda --batch-size 64 --rounds 5 --configs 7x7 14x14 14x14-wide 7x7-wide

For every base (native MaskGIT, depth 12; weights randomly initialised: only cost is measured, not
quality) and N in {8, 16, 32} at budget B = N/4: GFLOPs per image of vanilla N and of the shortcut
(one block, r = 2) with their ratio, c = FLOPs of a shortcut step / a full step, the ideal speedup
N / (B + (N - B) c), and the wall-clock speedup from interleaved timing (each round times vanilla
and shortcut on the same labels and noise, in alternating order, so machine load hits both alike;
medians over rounds; CUDA events on a GPU). Last, the sweep overhead: a smoke-sized Ray Tune +
MLflow sweep on the shipped model, its wall time against the trials' own time (`--no-sweep` skips
it). Prints a Markdown table and the command that reproduced it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ablate import methods
from ablate.device import Timer, autocast_dtype, describe, resolve_device
from ablate.metrics import cost
from ablate.models import MaskGIT, MaskGITConfig
from ablate.models.protocol import token_table
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.sampling.sampler import balanced_labels
from ablate.shortcut.model import Shortcut, ShortcutConfig

# name -> (token grid side, width, heads); depth 12 and codebook 128 as the shipped base. 14x14-wide is
# the architecture `python -m ablate prepare --dataset mnist14` trains (gpu_default's base).
CONFIGS = {
    "7x7": (7, 128, 4),
    "14x14": (14, 128, 4),
    "7x7-wide": (7, 256, 8),
    "14x14-wide": (14, 256, 8),
}


def build_base(name: str, depth: int, device) -> MaskGIT:
    side, dim, heads = CONFIGS[name]
    torch.manual_seed(0)
    cfg = MaskGITConfig(vocab_size=128, seq_len=side * side, num_classes=10, dim=dim, depth=depth, heads=heads)
    return MaskGIT(cfg).eval().requires_grad_(False).to(device)


def shortcut_for(base, steps: int, budget: int):
    acc = methods.build("shortcut", steps=steps, budget=budget)
    torch.manual_seed(1)
    net = Shortcut(ShortcutConfig(), token_table(base), base.position_embedding())
    torch.nn.init.normal_(net.out.weight, std=0.02)  # not the zero start: the values do not change the cost
    acc.net = net.to(token_table(base).device).eval().requires_grad_(False)
    return acc


def time_interleaved(runs: dict, labels, rounds: int, device) -> dict:
    """Median seconds per image of each sampler/accelerator pair, timed in alternating order."""
    names = list(runs)
    for name in names:  # warm-up
        sampler, acc = runs[name]
        sampler.sample(labels, torch.Generator().manual_seed(0), acc)
    times = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sampler, acc = runs[name]
            with Timer(device) as t:
                sampler.sample(labels, torch.Generator().manual_seed(r), acc)
            times[name].append(t.seconds / len(labels))
    return {n: statistics.median(v) for n, v in times.items()}


def measure(name: str, steps_list, args, device) -> list[dict]:
    base = build_base(name, args.depth, device)
    amp = autocast_dtype(device, args.amp, base)
    labels = balanced_labels(args.batch_size, base.num_classes)
    rows = []
    for n in steps_list:
        b = max(1, n // 4)
        sampler = MaskGITSampler(base, SamplerConfig(steps=n), amp_dtype=amp)
        vanilla = methods.build("vanilla", steps=n)
        short = shortcut_for(base, n, b)
        gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        fv = cost.count_flops(sampler, labels[:1], gen(), vanilla).as_measures()
        fs = cost.count_flops(sampler, labels[:1], gen(), short).as_measures()
        c = fs["accel_cost_ratio"]
        t0 = time.perf_counter()
        pair = {"vanilla": (sampler, vanilla), "shortcut": (sampler, short)}
        lat = time_interleaved(pair, labels, args.rounds, device)
        rows.append({
            "config": name, "tokens": base.seq_len, "dim": base.dim, "depth": args.depth, "params": base.num_params(),
            "shortcut_params": short.num_params(), "N": n, "B": b,
            "gflops_vanilla": fv["gflops_per_image"], "gflops_shortcut": fs["gflops_per_image"],
            "gflops_full_step": fv["gflops_full_step"], "c": c,
            "speedup_flops": fv["gflops_per_image"] / fs["gflops_per_image"],
            "ideal_speedup": short.ideal_speedup(c),
            "ms_vanilla": 1000 * lat["vanilla"], "ms_shortcut": 1000 * lat["shortcut"],
            "speedup_wall": lat["vanilla"] / lat["shortcut"],
        })
        print(f"# {name} N={n} B={b}: {time.perf_counter() - t0:.0f} s timing", file=sys.stderr, flush=True)
    return rows


def sweep_overhead(space: str) -> dict:
    """A smoke-sized sweep through Ray Tune + MLflow in a throwaway runs folder: wall vs the trials' own time."""
    import ray

    from ablate.sweep.run import run_sweep
    from ablate.sweep.space import grid_trials, load_space

    sp = load_space(space)
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("ABLATE_RUNS")
        os.environ["ABLATE_RUNS"] = tmp
        try:
            with contextlib.redirect_stdout(sys.stderr):
                t = time.perf_counter()
                s = run_sweep(sp, max_concurrent=1)
                wall_incl_start = time.perf_counter() - t
        finally:
            if old is None:
                os.environ.pop("ABLATE_RUNS", None)
            else:
                os.environ["ABLATE_RUNS"] = old
            ray.shutdown()
    trials = s["trials_finished"]
    return {
        "space": space, "trials": trials, "planned": len(grid_trials(sp)) if sp.search == "grid" else None,
        "sweep_seconds": s["sweep_seconds"], "wall_with_setup": wall_incl_start, "trial_seconds": s["trial_seconds"],
        "overhead_per_trial": (s["sweep_seconds"] - s["trial_seconds"]) / max(1, trials),
        "overhead_ratio": s["overhead_ratio"],
    }


def table(rows: list[dict]) -> str:
    out = ["| base | tokens | d | N | B | vanilla ms/img | shortcut ms/img | wall speedup | vanilla GFLOPs/img | "
           "shortcut GFLOPs/img | FLOPs speedup | c | ideal speedup |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['config']} | {r['tokens']} | {r['dim']} | {r['N']} | {r['B']} | {r['ms_vanilla']:.1f} | "
                   f"{r['ms_shortcut']:.1f} | {r['speedup_wall']:.2f} | {r['gflops_vanilla']:.2f} | "
                   f"{r['gflops_shortcut']:.3f} | {r['speedup_flops']:.2f} | {r['c']:.4f} | {r['ideal_speedup']:.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["7x7", "14x14", "14x14-wide"], choices=list(CONFIGS))
    p.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32], help="N values; B = N/4")
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=2, help="images per timed batch (x2 rows with CFG)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per method (after one warm-up)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--amp", default="auto", help="autocast on a GPU: auto | fp32 | bf16 | fp16")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--sweep-space", default="smoke", help="space whose sweep measures the overhead")
    p.add_argument("--no-sweep", action="store_true", help="skip the sweep-overhead measurement")
    p.add_argument("--out", default=None, help="JSON file with every number (the table beside it as .md, and a "
                                                "manifest.json in its folder)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    rows = [r for name in args.configs for r in measure(name, args.steps, args, device)]
    overhead = None if args.no_sweep else sweep_overhead(args.sweep_space)
    cmd = "python benchmarks/scaling.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        table(rows), "",
        f"Base: native MaskGIT, depth {args.depth}, codebook 128, weights randomly initialised "
        "(cost only, no quality); "
        f"shortcut: 1 block, r = 2, with tokens. Latency: median of {args.rounds} interleaved rounds of "
        f"{args.batch_size} images (CFG: x2 rows) after a warm-up, VQ decoding excluded. Device {describe(device)}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.machine()}.",
    ]
    if overhead:
        lines.append(
            f"Sweep overhead (Ray Tune + MLflow, space `{overhead['space']}`, {overhead['trials']} trials, one at a "
            f"time): {overhead['sweep_seconds']:.1f} s wall for {overhead['trial_seconds']:.1f} s of trial time = "
            f"{overhead['overhead_per_trial']:.1f} s per trial (wall / trial time {overhead['overhead_ratio']:.2f})."
        )
    lines += ["", f"`{cmd}` ({time.perf_counter() - t0:.0f} s)"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": cmd, "rows": rows, "sweep_overhead": overhead,
                                              "device": describe(device), "threads": torch.get_num_threads(),
                                              "text": text}, indent=2) + "\n")
        Path(args.out).with_suffix(".md").write_text(text + "\n")
        from ablate.study.manifest import write_tool_manifest

        for f in (Path(args.out), Path(args.out).with_suffix(".md")):
            write_tool_manifest(f, cmd, {"device": describe(device), "threads": torch.get_num_threads()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
