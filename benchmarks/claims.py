"""The paper's claims at one budget, decided by seed-paired t-tests on a sweep's runs (read from MLflow only).

    python benchmarks/claims.py --experiment claims_B4 --out results/claims_B4/claims.md

Each claim compares two variants on the seeds both ran: mean difference, its 95% interval and the two-sided
paired-t p, once on FID (distribution quality) and once on token agreement with the unaccelerated run (fidelity
to the base model). Verdict: HOLDS (the claimed direction, p < 0.05), DOES NOT HOLD (the opposite direction,
p < 0.05), NOT SIGNIFICANT (otherwise), n/a where a measure does not exist (step reduction has no paired run).
"""

from __future__ import annotations

import argparse

import numpy as np

from analysis.report import write_with_command
from analysis.runs import load_runs
from analysis.stats import ALPHA, half_width, paired_p

SHORTCUT = {"n_block": 1, "use_tokens": True, "kl_weight": 3.0, "rollout_tokens": "teacher"}
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
MEASURES = [("fid", "min"), ("token_agreement", "max")]


def pick(df, method, knobs):
    g = df[df["method"] == method]
    if method == "shortcut":
        want = {**SHORTCUT, **knobs}
        for k, v in want.items():
            if k not in g:  # a knob added after these runs were logged: they ran at its default
                continue
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            g = g[g[k].astype(float) == float(v)] if numeric else g[g[k].astype(str) == str(v)]
    return g


def verdict(a: dict, b: dict, better: str, claim_says_equal: bool = False) -> tuple[str, str]:
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
        return ("DOES NOT HOLD" if (p < ALPHA and good) else "HOLDS (no significant gain)"), text
    if not p < ALPHA:
        return "NOT SIGNIFICANT", text
    return ("HOLDS" if good else "DOES NOT HOLD"), text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="claims_B4")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--budget", type=int, default=4, help="the full steps B the claims compare at")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    df = load_runs([args.experiment], [args.tracking_uri], with_steps=False)
    df = df[df["B"] == args.budget]
    budgets = [args.budget]
    n = sorted(int(x) for x in df["n_samples"].dropna().unique())
    lines = [f"Claims at B = {', '.join(map(str, budgets))} of N = {int(df['N'].max())}, {', '.join(map(str, n))} "
             f"samples a run, sampling seeds {', '.join(str(int(s)) for s in sorted(df['seed'].unique()))}; "
             "difference = first minus second, mean ± 95% half-width over seeds, two-sided paired t-test.", "",
             "| claim | FID verdict | FID difference | token agreement verdict | token agreement difference |",
             "|---|---|---|---|---|"]
    for claim, (ma, ka), (mb, kb) in CLAIMS:
        a, b = pick(df, ma, ka), pick(df, mb, kb)
        cells = []
        for m, better in MEASURES:
            if m not in df or a[m].isna().all() or b[m].isna().all():
                cells += ["n/a", "–"]
                continue
            va, vb = dict(zip(a["seed"], a[m])), dict(zip(b["seed"], b[m]))
            cells += list(verdict(va, vb, better, claim_says_equal=claim.startswith("two blocks")))
        lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    write_with_command(lines, args.out, "benchmarks/claims.py", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
