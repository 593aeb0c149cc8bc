"""Every method side by side at N steps and a few budgets , as Markdown.

    python benchmarks/methods_table.py --steps 16 --budgets 4 3 6 --all-methods-at 4 --n-samples 2000 \
        --out results/methods_N16.json

Runs `ablate.evaluate.evaluate` per (method, budget) with one seed, so all methods see the same
labels and noise; speedups are against vanilla N in the same run (same machine, same load).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ablate.evaluate import EvalConfig, evaluate
from ablate.methods import run_name

METHODS = [
    ("step_reduction", {}),
    ("feature_cache", {}),
    ("taylor", {"order": 1}),
    ("taylor", {"order": 2}),
    ("ml_cache", {}),
    ("recap", {}),
    ("shortcut", {}),  # depth 1, with tokens, r = 2
    ("shortcut", {"use_tokens": False}),
    ("shortcut", {"n_block": 0}),
    ("shortcut", {"n_block": 2}),
]


CORE = [("step_reduction", {}), ("feature_cache", {}), ("taylor", {"order": 1}), ("shortcut", {})]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--budgets", type=int, nargs="+", default=[3, 4, 6])
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--only", nargs="*", default=None, help="restrict to these method names")
    p.add_argument("--all-methods-at", type=int, nargs="*", default=None,
                   help="run every method only at these budgets; the other budgets run the core methods")
    p.add_argument("--out", default=None, help="JSON file with every result")
    args = p.parse_args(argv)

    def run(method, budget, knobs):
        cfg = EvalConfig(dataset=args.dataset, method=method, steps=args.steps, budget=budget, knobs=knobs,
                         n_samples=args.n_samples, seed=args.seed)
        t = time.perf_counter()
        r = evaluate(cfg)
        print(f"# {run_name(cfg.__dict__)}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        return r

    results = [run("vanilla", None, {})]
    for budget in args.budgets:
        methods = METHODS if args.all_methods_at is None or budget in args.all_methods_at else CORE
        for method, knobs in methods:
            if args.only and method not in args.only:
                continue
            results.append(run(method, budget, knobs))
    ref = results[0]["measures"]
    rows = ["| method | B | FID | class_acc | GFLOPs/img | latency ms/img | speedup FLOPs | speedup wall | ideal | c |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m, b = r["measures"], r["description"]["budget"]
        c, ideal = m["accel_cost_ratio"], m["ideal_speedup"]
        rows.append(
            f"| {run_name(r['config'])} | {b} | {m['fid']:.2f} | {m['class_acc']:.3f} | {m['gflops_per_image']:.3f} | "
            f"{m['latency_ms_per_image']:.2f} | {ref['gflops_per_image'] / m['gflops_per_image']:.2f} | "
            f"{ref['latency_ms_per_image'] / m['latency_ms_per_image']:.2f} | {ideal:.2f} | {c:.3f} |"
        )
    table = "\n".join(rows)
    cmd = "python benchmarks/methods_table.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{table}\n\n`{cmd}`")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": cmd, "results": results, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
