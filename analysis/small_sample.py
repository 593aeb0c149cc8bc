"""Which ranking of methods survives at a smaller sample count: FID and KID of the first 250 / 500 / 1,000 samples
of each run against the full run's, from the same images (read from a sweep's MLflow runs; nothing is sampled again;
a study's `small_sample` analysis).

Kendall's tau (scipy) between the ranking of the variants by the small-n measure and by the full-n FID, on the
seed means and per seed; and the mean shift small-n minus full-n per variant (FID is biased upward at small n, by
an amount that can differ between methods).
"""

from __future__ import annotations

from scipy.stats import kendalltau

from analysis.labels import add_labels


def small_sample(df, experiment: str, small: list[int]) -> list[str]:
    """The Markdown lines: Kendall's tau per smaller count, and each variant's measures and shift."""
    df = add_labels(df)
    df = df[df["method"] != "vanilla"]
    df = df.assign(series=df["series"] + " B=" + df["B"].map(lambda b: f"{b:g}"))
    n = int(df["n_samples"].max())
    small = sorted(s for s in small if s < n)
    cols = {}
    for s in small:
        cols |= {f"fid_n{s}": f"FID@{s}", f"kid_mean_n{s}": f"KID@{s}"}
    cols["kid_mean"] = f"KID@{n}"
    have = [c for c in cols if c in df and df[c].notna().any()]
    means = df.groupby("series")[["fid", *have]].mean().sort_values("fid")
    lines = [f"Rankings of {len(means)} variants ({experiment}, B = {', '.join(f'{b:g}' for b in sorted(df['B'].unique()))}, "
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
    return lines

