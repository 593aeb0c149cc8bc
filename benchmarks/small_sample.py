"""Which ranking of methods survives at a smaller sample count: FID and KID of the first 250 / 500 / 1,000 samples
of each run against the full run's, from the same images (read from a sweep's MLflow runs; nothing is sampled again).

    python benchmarks/small_sample.py --experiment claims_B4 --out results/claims_B4/small_sample.md
    python benchmarks/small_sample.py --experiment search_grid --small 250 500 1000 --out results/search_cost/small_sample.md

Kendall's tau (scipy) between the ranking of the variants by the small-n measure and by the full-n FID, on the
seed means and per seed; and the mean shift small-n minus full-n per variant (FID is biased upward at small n, by
an amount that can differ between methods).
"""

from __future__ import annotations

import argparse

from scipy.stats import kendalltau

from analysis.labels import add_labels
from analysis.report import write_with_command
from analysis.runs import load_runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="claims_B4")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--small", type=int, nargs="+", default=[500], help="smaller sample counts (scored prefixes)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    df = add_labels(load_runs([args.experiment], [args.tracking_uri], with_steps=False))
    df = df[df["method"] != "vanilla"]
    df = df.assign(series=df["series"] + " B=" + df["B"].map(lambda b: f"{b:g}"))
    n = int(df["n_samples"].max())
    small = sorted(s for s in args.small if s < n)
    cols = {}
    for s in small:
        cols |= {f"fid_n{s}": f"FID@{s}", f"kid_mean_n{s}": f"KID@{s}"}
    cols["kid_mean"] = f"KID@{n}"
    have = [c for c in cols if c in df and df[c].notna().any()]
    means = df.groupby("series")[["fid", *have]].mean().sort_values("fid")
    lines = [f"Rankings of {len(means)} variants ({args.experiment}, B = {', '.join(f'{b:g}' for b in sorted(df['B'].unique()))}, "
             f"{n} samples a run, seeds {', '.join(str(int(x)) for x in sorted(df['seed'].unique()))}) by a small-n "
             f"measure against the ranking by FID@{n}: Kendall's tau (1 = same order).", "",
             "| measure | tau on seed means | tau per seed |", "|---|---|---|"]
    for c in have:
        tau = kendalltau(means["fid"], means[c]).statistic
        per = []
        for seed, g in df.groupby("seed"):
            m = g.groupby("series")[["fid", c]].mean()
            per.append(f"{kendalltau(m['fid'], m[c]).statistic:.2f}")
        lines.append(f"| {cols[c]} | {tau:.2f} | {', '.join(per)} |")
    shifts = [s for s in small if f"fid_n{s}" in have]
    lines += ["", f"| variant | FID@{n} | " + " | ".join(cols[c] for c in have)
              + "".join(f" | FID@{s} - FID@{n}" for s in shifts) + " |",
              "|---|---|" + "---|" * (len(have) + len(shifts))]
    for name, r in means.iterrows():
        lines.append(f"| {name} | {r['fid']:.2f} | " + " | ".join(f"{r[c]:.2f}" for c in have)
                     + "".join(f" | {r[f'fid_n{s}'] - r['fid']:+.2f}" for s in shifts) + " |")
    write_with_command(lines, args.out, "benchmarks/small_sample.py", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
