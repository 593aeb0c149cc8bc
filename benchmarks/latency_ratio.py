"""Wall-clock speedup of methods over vanilla N, timed interleaved so machine load hits both alike (a timing tool;
the code is ablate/study/latency.py, which a study's `latency` analysis runs too).

    python benchmarks/latency_ratio.py --steps 16 --budget 4 --method shortcut --rounds 6 --batch-size 250 --out x.md
    python benchmarks/latency_ratio.py --space smoke --rounds 5 --batch-size 100 --out results/latency_smoke.md

--space times every distinct setting of a search space's grid, as its sweep runs them, against its unaccelerated
reference. Writes the table to --out (and prints it) with a manifest beside it (`<out>.manifest.json`).
"""

from __future__ import annotations

import argparse
import sys

from ablate.evaluate import EvalConfig
from ablate.methods import parse_knobs
from ablate.study.latency import interleaved, space_settings
from ablate.study.manifest import write_tool_output


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
    p.add_argument("--out", default=None, help="Markdown file to write (a manifest is written beside it)")
    args = p.parse_args(argv)
    if args.space:
        from ablate.sweep.space import load_space

        configs = space_settings(load_space(args.space))
    else:
        configs = [EvalConfig(dataset=args.dataset, method=m, steps=args.steps, budget=b, knobs=k)
                   for m, b, k in [("vanilla", None, {})]
                   + [(m, b, parse_knobs(args.knob)) for b in args.budget for m in args.method]]
    command = "python benchmarks/latency_ratio.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = interleaved(configs, args.rounds, args.batch_size, args.device, command)
    print("\n".join(lines))
    if args.out:
        write_tool_output(args.out, lines, command, {"rounds": args.rounds, "batch_size": args.batch_size,
                                                     "settings": len(configs)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
