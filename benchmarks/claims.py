"""The paper's claims at one budget, decided by seed-paired t-tests on a sweep's runs (read from MLflow only).

    python benchmarks/claims.py --experiment claims_B4 --out results/claims_B4/claims.md
    python benchmarks/claims.py --experiment claims_N32 --operating-point 8 12 --out results/claims_N32/claims.md
    python benchmarks/claims.py --experiment baselines_N16 --claims beyond --budget 3 4 6 \
        --chosen results/tuning_chosen.json --out results/baselines_N16/claims.md

Each claim compares two variants on the seeds both ran: mean difference, its 95% interval and the two-sided
paired-t p, once on FID (distribution quality) and once on token agreement with the unaccelerated run (fidelity
to the base model). Verdict: HOLDS (the claimed direction, p < 0.05), DOES NOT HOLD (the opposite direction,
p < 0.05), NOT SIGNIFICANT (otherwise), n/a where a measure does not exist (step reduction has no paired run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from analysis.report import write_with_command
from analysis.runs import load_runs
from analysis.stats import ALPHA, half_width, paired_p

SHORTCUT = {"n_block": 1, "use_tokens": True, "kl_weight": 3.0, "rollout_tokens": "teacher", "traj_steps": 16}
# (claim, better variant, other variant, what the claim says)
CLAIMS = [
    ("beats feature caching at equal full steps", ("shortcut", {}), ("feature_cache", {})),
    ("beats step reduction at equal full steps", ("shortcut", {}), ("step_reduction", {})),
    ("sampled tokens as input help", ("shortcut", {}), ("shortcut", {"use_tokens": False})),
    ("one block beats none (depth 1 vs 0)", ("shortcut", {}), ("shortcut", {"n_block": 0})),
    ("two blocks add nothing over one (depth 2 vs 1)", ("shortcut", {"n_block": 2}), ("shortcut", {})),
    ("the KL term helps (KL 3 vs MSE only)", ("shortcut", {}), ("shortcut", {"kl_weight": 0.0})),
    ("rollout on the student's own tokens helps (the official code's training)",
     ("shortcut", {"rollout_tokens": "student"}), ("shortcut", {})),
    ("(context) beats Taylor forecasting", ("shortcut", {}), ("taylor", {})),
]
# Beyond the paper (a space such as baselines_N16 that runs each method at one setting, ML-Cache both ways):
# each method at the setting tuning chose (--chosen), unless a claim names the knob (adaptive's forecaster is
# Taylor of order 1, whatever order Taylor was tuned to).
BEYOND = [
    ("the residual shortcut beats the shortcut", ("residual_shortcut", {}), ("shortcut", {})),
    ("the residual shortcut beats Taylor at its tuned order", ("residual_shortcut", {}), ("taylor", {})),
    ("the residual shortcut improves on the forecast it corrects (Taylor order 1)", ("residual_shortcut", {}),
     ("taylor", {"order": 1})),
    ("adaptive full steps beat the fixed schedule (Taylor order 1, its forecaster; equal mean B)",
     ("adaptive", {}), ("taylor", {"order": 1})),
    ("FoCa beats Taylor", ("foca", {}), ("taylor", {})),
    ("L2P beats Taylor", ("l2p", {}), ("taylor", {})),
    ("ML-Cache on still-masked positions beats ML-Cache", ("ml_cache", {"masked_only": True}),
     ("ml_cache", {"masked_only": False})),
    ("the shortcut beats Taylor", ("shortcut", {}), ("taylor", {})),
    ("the shortcut beats feature caching", ("shortcut", {}), ("feature_cache", {})),
]
CLAIM_SETS = {"paper": (CLAIMS, SHORTCUT), "beyond": (BEYOND, {})}
MEASURES = [("fid", "min"), ("token_agreement", "max")]


def pick(df, method, knobs, defaults=SHORTCUT):
    """The runs of one variant: the method's runs with these knobs (the shortcut's `defaults` under them)."""
    g = df[df["method"] == method]
    want = {**defaults, **knobs} if method == "shortcut" else knobs
    for k, v in want.items():
        if k not in g:  # a knob added after these runs were logged: they ran at its default
            continue
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        g = g[g[k].astype(float) == float(v)] if numeric else g[g[k].astype(str) == str(v)]
    return g


def by_seed(runs, measure: str) -> dict:
    """seed -> value of one variant; two runs of a seed mean the knobs did not name one variant: refused."""
    if runs["seed"].duplicated().any():
        raise SystemExit(f"claims: {runs['method'].iloc[0]} has several runs of one seed at this budget; name the "
                         "variant by its knobs")
    return dict(zip(runs["seed"], runs[measure]))


def verdict(a: dict, b: dict, better: str, claim_says_equal: bool = False,
            equal_words: str = "no significant gain") -> tuple[str, str]:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return "n/a", "–"
    if len(seeds) < 2:
        return "UNTESTED (1 seed)", f"{a[seeds[0]] - b[seeds[0]]:+.3f}"
    d = np.array([a[s] - b[s] for s in seeds])
    p = paired_p(a, b)
    hw = half_width(d)
    text = f"{d.mean():+.3f} ± {hw:.3f} (p = {p:.3f}, {len(seeds)} seeds)" if len(seeds) > 1 else f"{d.mean():+.3f}"
    good = d.mean() < 0 if better == "min" else d.mean() > 0
    if claim_says_equal:  # "adds nothing": holds unless the first is significantly better
        return ("DOES NOT HOLD" if (p < ALPHA and good) else f"HOLDS ({equal_words})"), text
    if not p < ALPHA:
        return "NOT SIGNIFICANT", text
    return ("HOLDS" if good else "DOES NOT HOLD"), text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="claims_B4")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--budget", type=int, nargs="+", default=[4], help="the full steps B the claims compare at")
    ap.add_argument("--claims", choices=sorted(CLAIM_SETS), default="paper",
                    help="paper: the paper's claims about the shortcut; beyond: the new baselines and ours against "
                         "the methods they refine")
    ap.add_argument("--operating-point", type=int, nargs="*", default=None, metavar="B",
                    help="the paper's operating point instead: at each B, the shortcut against vanilla with all N "
                         "steps (no significant loss claimed) and against vanilla with B steps (step reduction: "
                         "the most steps its FLOPs allow, since a shortcut step costs a few % of a full one)")
    ap.add_argument("--chosen", default=None, metavar="JSON",
                    help="benchmarks/tuning.py's tuning_chosen.json: a method a claim does not pin is taken at the "
                         "knobs tuning chose (needed where the sweep ran a method at several settings)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.chosen and not Path(args.chosen).is_file():
        ap.error(f"--chosen: no file {args.chosen} (benchmarks/tuning.py --out writes tuning_chosen.json beside it)")
    saved = json.loads(Path(args.chosen).read_text()) if args.chosen else {}
    if saved.get("not_chosen_yet"):
        ap.error(f"--chosen: {args.chosen} has no choice yet for {', '.join(saved['not_chosen_yet'])} (its tuning "
                 "sweep was read part-way: resume it, then rerun benchmarks/tuning.py)")
    chosen = saved.get("chosen", {})
    df = load_runs([args.experiment], [args.tracking_uri], with_steps=False)
    if args.operating_point:
        return operating_point(df, args.operating_point, args.out, argv)
    claims, defaults = CLAIM_SETS[args.claims]
    lines = _header(df[df["B"].isin(args.budget)], args.budget)
    for b in args.budget:
        at = df[df["B"] == b]
        for claim, (ma, ka), (mb, kb) in claims:
            x, y = (pick(at, m, {**chosen.get(m, {}), **k}, defaults) for m, k in ((ma, ka), (mb, kb)))
            cells = []
            for m, better in MEASURES:
                if m not in at or x[m].isna().all() or y[m].isna().all():
                    cells += ["n/a", "–"]
                    continue
                cells += list(verdict(by_seed(x, m), by_seed(y, m), better,
                                      claim_says_equal=claim.startswith("two blocks")))
            lines.append(f"| {f'B = {b}: ' if len(args.budget) > 1 else ''}{claim} | " + " | ".join(cells) + " |")
    write_with_command(lines, args.out, "benchmarks/claims.py", argv)
    return 0


def _header(df, budgets) -> list:
    n = sorted(int(x) for x in df["n_samples"].dropna().unique())
    return [f"Claims at B = {', '.join(map(str, budgets))} of N = {int(df['N'].max())}, {', '.join(map(str, n))} "
            f"samples a run, sampling seeds {', '.join(str(int(s)) for s in sorted(df['seed'].unique()))}; "
            "difference = first minus second, mean ± 95% half-width over seeds, two-sided paired t-test.", "",
            "| claim | FID verdict | FID difference | token agreement verdict | token agreement difference |",
            "|---|---|---|---|---|"]


def operating_point(df, budgets, out, argv) -> int:
    """The paper's N = 32 claims: near-lossless against vanilla N, and better than vanilla at equal FLOPs."""
    n_full = int(df["N"].max())
    vanilla = pick(df, "vanilla", {})
    lines = _header(df, budgets)
    shortcuts = [("shortcut", {}), (f"shortcut trained on N = {n_full}", {"traj_steps": n_full})]
    for b in budgets:
        at = df[df["B"] == b]
        for name, knobs in shortcuts:
            sc = pick(at, "shortcut", knobs)
            if sc.empty:
                continue
            rows = [(f"B = {b}, {name}: no loss against vanilla with all {n_full} steps", vanilla, sc, True),
                    (f"B = {b}, {name}: beats vanilla at its FLOPs ({b} steps, step reduction)", sc,
                     pick(at, "step_reduction", {}), False)]
            for claim, a, other, equal in rows:
                cells = []
                for m, better in MEASURES:
                    if m not in df or a[m].isna().all() or other[m].isna().all() or (equal and m != "fid"):
                        cells += ["n/a", "–"]  # agreement of vanilla with itself is 1 by definition
                        continue
                    cells += list(verdict(by_seed(a, m), by_seed(other, m), better, claim_says_equal=equal,
                                          equal_words="no significant loss"))
                lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    write_with_command(lines, out, "benchmarks/claims.py", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
