"""Where one trial's time goes: a trial run under cProfile, its time split by stage (a timing tool).

    python benchmarks/profile_trial.py --method shortcut --budget 4 --n-samples 1000 --rounds 2 \
        --out results/throughput/profile.md
    python benchmarks/profile_trial.py --method taylor --budget 4 --n-samples 250 --rounds 3 \
        --measures fid,speedup_flops --out results/throughput/profile_lower_rung.md

The trial is run once unprofiled first, so the store holds what a sweep's later trials find there (the unaccelerated
run of these seeds, the real-vs-real floor, the reference features). Then `--rounds` rounds, each profiling the
trial with torch-fidelity's KID (the former scoring) and with ours, interleaved so machine load hits both alike;
the table gives each stage's median seconds. The scoring share is scoring over sampling + scoring, the stored
unaccelerated run left out of scoring. With `--measures`, the two columns are the trial with every measure and the
trial asked only for those (what a halving sweep's lower rung computes) instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
from contextlib import contextmanager

from ablate.evaluate import EvalConfig, evaluate
from ablate.methods import parse_knobs
from ablate.metrics import quality
from ablate.study.manifest import write_tool_output

# (row, file suffix, function names): a row's seconds are its functions' inclusive time, summed over calls.
STAGES = [
    ("trial (all)", "ablate/evaluate.py", ["evaluate"]),
    ("set-up: load, build, prepare", "ablate/evaluate.py", ["setup"]),
    ("sampling: every batch", "ablate/evaluate.py", ["_generate"]),
    ("decoding tokens to images (also the unaccelerated run's, inside scoring)", "ablate/pretrained/__init__.py",
     ["decode"]),
    ("FLOPs counting", "ablate/metrics/cost.py", ["count_flops"]),
    ("per-step feature error", "ablate/metrics/feature_error.py", ["feature_error"]),
    ("scoring (all)", "ablate/evaluate.py", ["quality_measures"]),
    ("  features of the samples", "ablate/metrics/quality.py", ["features"]),
    ("  reference features (cached on disk)", "ablate/metrics/quality.py", ["reference_features"]),
    ("  FID", "torch_fidelity/metric_fid.py", ["fid_features_to_statistics", "fid_statistics_to_metric"]),
    ("  KID", "ablate/metrics/quality.py", ["kid"]),
    ("  KID (torch-fidelity)", "torch_fidelity/metric_kid.py", ["kid_features_to_metric"]),
    ("  precision and recall", "torch_fidelity/metric_prc.py", ["prc_features_to_metric"]),
    ("  real-vs-real floor (stored)", "ablate/metrics/quality.py", ["real_score"]),
    ("  class accuracy", "ablate/metrics/quality.py", ["class_accuracy"]),
    ("  paired: token agreement, PSNR, SSIM", "ablate/metrics/quality.py", ["paired"]),
    ("  unaccelerated run (stored)", "ablate/evaluate.py", ["vanilla_tokens"]),
]


def stage_seconds(prof: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(prof).stats  # (file, line, function) -> (calls, primitive calls, own, inclusive, callers)
    out = {}
    for row, suffix, names in STAGES:
        out[row] = sum(ct for (f, _, fn), (_, _, _, ct, _) in stats.items()
                       if f.replace("\\", "/").endswith(suffix) and fn in names)
    return out


@contextmanager
def torch_fidelity_kid():
    """The former scoring: torch-fidelity's KID, a subset's three kernels built per subset."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    def kid(gen, ref, subsets=quality.KID_SUBSETS, size=quality.KID_SUBSET_SIZE, seed=quality.KID_SEED):
        k = kid_features_to_metric(gen, ref, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
        return k["kernel_inception_distance_mean"], k["kernel_inception_distance_std"]

    ours, quality.kid = quality.kid, kid
    try:
        yield
    finally:
        quality.kid = ours


def profiled(cfg: EvalConfig) -> tuple[dict[str, float], dict]:
    prof = cProfile.Profile()
    result = prof.runcall(evaluate, cfg)
    return stage_seconds(prof), result["measures"]


def besides(s: dict[str, float]) -> float:
    """What a sweep's replay charges a run besides its sampling (analysis/search_cost.besides_sampling)."""
    return s["trial (all)"] - s["set-up: load, build, prepare"] - s["sampling: every batch"]


def share(s: dict[str, float]) -> float:
    scoring = s["scoring (all)"] - s["  unaccelerated run (stored)"]
    return scoring / (s["sampling: every batch"] + scoring)


def table(runs: dict[str, list[dict[str, float]]], command: str, cfg: EvalConfig, rounds: int,
          what: str = "scoring (all)") -> list[str]:
    names = list(runs)
    med = {n: {row: statistics.median(r[row] for r in runs[n]) for row, _, _ in STAGES} for n in names}
    lines = [f"# Where a trial's time goes: {cfg.method} N={cfg.steps} B={cfg.budget}, {cfg.n_samples} samples", "",
             f"Command: `{command}`", "",
             f"Median seconds over {rounds} interleaved rounds per column (cProfile, inclusive time; an indented row "
             f"is part of the row above it). Seed {cfg.seed}; the store already held this trial's unaccelerated run, "
             "floor and reference features, as for a sweep's later trials.", "",
             "| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row, _, _ in STAGES:
        lines.append(f"| {row} | " + " | ".join(f"{med[n][row]:.2f}" for n in names) + " |")
    rest = {n: statistics.median(besides(r) for r in runs[n]) for n in names}
    lines.append("| **besides sampling and set-up** (trial - set-up - sampling) | "
                 + " | ".join(f"{rest[n]:.2f}" for n in names) + " |")
    lines.append("| **scoring share** (scoring / (sampling + scoring)) | "
                 + " | ".join(f"{statistics.median(share(r) for r in runs[n]):.3f}" for n in names) + " |")
    if len(names) == 2:
        a, b = names
        what = "Scoring" if what == "scoring (all)" else "Everything besides sampling and set-up"
        get = (lambda r: r["scoring (all)"]) if what == "Scoring" else besides
        ratio = [get(x) / get(y) for x, y in zip(runs[a], runs[b])]
        lines += ["", f"{what} took {min(ratio):.1f}x to {max(ratio):.1f}x less time with {b} than with {a}, "
                  "round by round (the same trial, back to back)."]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="shortcut")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--budget", type=int, default=4)
    p.add_argument("--knob", action="append", default=[], help="NAME=VALUE")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--measures", default=None, help="compare every measure with only these (comma-separated)")
    p.add_argument("--out", default=None, help="Markdown file to write (a manifest is written beside it)")
    args = p.parse_args(argv)
    cfg = EvalConfig(method=args.method, steps=args.steps, budget=None if args.method == "vanilla" else args.budget,
                     knobs=parse_knobs(args.knob), n_samples=args.n_samples, seed=args.seed)
    command = "python benchmarks/profile_trial.py " + " ".join(sys.argv[1:] if argv is None else argv)
    evaluate(cfg)  # the store now holds what later trials of a sweep find there
    if args.measures:
        from dataclasses import replace

        some = replace(cfg, measures=args.measures)
        evaluate(some)
        runs = {"every measure": [], f"only {args.measures}": []}
        for _ in range(args.rounds):
            for name, c in zip(runs, (cfg, some)):
                runs[name].append(profiled(c)[0])
        lines = table(runs, command, cfg, args.rounds, what="besides")
        what = "timing: a trial with every measure against one asked for a few (a lower rung)"
    else:
        runs = {"torch-fidelity KID": [], "our KID": []}
        for _ in range(args.rounds):
            with torch_fidelity_kid():
                before, m_before = profiled(cfg)
            after, m_after = profiled(cfg)
            assert abs(m_before["kid_mean"] - m_after["kid_mean"]) < 1e-9, "the two KIDs disagree"
            runs["torch-fidelity KID"].append(before)
            runs["our KID"].append(after)
        lines = table(runs, command, cfg, args.rounds)
        what = "timing: where a trial's time goes, by stage (cProfile), former and new KID"
    print("\n".join(lines))
    if args.out:
        write_tool_output(args.out, lines, command,
                          {"what": what, "rounds": args.rounds, "n_samples": args.n_samples, "seed": args.seed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
