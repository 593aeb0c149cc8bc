"""Fair tuning, read back: each method's settings on validation seeds, its budget, and the setting it keeps (a
study's `tuning` analysis; a stage `tuned_by` it runs the chosen settings on other seeds).

Per method: every setting its runs tried (FID and token agreement, mean ± 95% half-width over the validation
seeds), the budget it got (settings, runs, CPU-seconds: each run's sampling and scoring, plus each trained model
once), and the chosen setting: lowest mean FID, the rule fixed before the runs. Beside each other setting, the
paired test of its FID against the chosen one over the same seeds: where no difference is significant, the choice
is a coin toss among equals, and the table says so. Knob values are typed by the method's own knobs, so the
choice feeds the next stage as it is.
"""

from __future__ import annotations

import math

from ablate import methods
from analysis.stats import ALPHA, half_width, interval, paired_p, significantly_best


def settings(df) -> list[tuple[str, dict, object]]:
    """(method, knobs it varied, runs) per setting tried; knobs every setting of the method shares are left out.
    Values are typed by the method's own knobs (MLflow hands back 2.0 for an int knob), so they paste into a
    space as they are."""
    out = []
    knobs = [k for k in df.attrs.get("knobs", []) if k in df]
    for method, g in df[df["method"] != "vanilla"].groupby("method", sort=True):
        varied = [k for k in knobs if g[k].astype(str).nunique() > 1]
        for vals, runs in (g.groupby(varied, dropna=False, sort=True) if varied else [((), g)]):
            vals = vals if isinstance(vals, tuple) else (vals,)
            typed = methods.knobs(method, {k: _plain(v) for k, v in zip(varied, vals)}).model_dump(mode="json")
            out.append((method, {k: typed[k] for k in varied}, runs))
    return out


def cpu_seconds(runs) -> float:
    """Sampling + scoring of every run, and each trained model once (runs sharing a model log the same time)."""
    trained = set(runs["train_seconds"].astype(float).round(3)) - {0.0} if "train_seconds" in runs else set()
    return float(runs["eval_seconds"].astype(float).sum()) + sum(trained)


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def summarize(df) -> tuple[list, dict, dict]:
    """Rows (method, knobs, FID mean, half-width, agreement mean, half-width, runs, paired p of its FID against
    the chosen setting's), the chosen knobs per method (lowest mean FID) and each method's budget (settings, runs,
    CPU-seconds). A method with a setting that lacks one of the frame's seeds gets no choice yet: the rule is the
    lowest mean over every setting on the same seeds, so a study read back part-way never picks the setting
    that happened to run one lucky seed."""
    rows, chosen, budget, by_seed = [], {}, {}, []
    seeds = set(df["seed"].astype(int))
    for method, knobs, runs in settings(df):
        fid, agr = runs["fid"].astype(float), runs["token_agreement"].astype(float)
        rows.append([method, knobs, fid.mean(), half_width(fid.tolist()), agr.mean(),
                     half_width(agr.tolist()) if agr.notna().all() else math.nan, len(runs), None])
        if runs["seed"].duplicated().any():  # a pairing needs one run per seed
            raise SystemExit(f"{method} {knobs}: several runs of one seed; tune one sample count and budget")
        by_seed.append(dict(zip(runs["seed"].astype(int), fid)))
        b = budget.setdefault(method, {"settings": 0, "runs": 0, "cpu_seconds": 0.0})
        b["settings"] += 1
        b["runs"] += len(runs)
    for method in budget:
        budget[method]["cpu_seconds"] = cpu_seconds(df[df["method"] == method])
        mine = [i for i, r in enumerate(rows) if r[0] == method]
        if any(set(by_seed[i]) != seeds for i in mine):
            for i in mine:
                rows[i][7] = math.nan
            continue
        best = min(mine, key=lambda i: rows[i][2])
        chosen[method] = {k: _plain(v) for k, v in rows[best][1].items()}
        for i in mine:  # None: the chosen setting itself; NaN: no test possible (under two shared seeds)
            rows[i][7] = None if i == best else paired_p(by_seed[i], by_seed[best])
    return [tuple(r) for r in rows], chosen, budget


def _p(p) -> str:
    if p is None:
        return ""
    return "–" if math.isnan(p) else f"{p:.3f}" + ("" if p < ALPHA else " (n.s.)")


def clearly_chosen(df) -> list[str]:
    """Methods whose lowest-mean-FID setting beats every other of theirs under the seed-paired test."""
    per_method: dict = {}
    for method, knobs, runs in settings(df):
        per_method.setdefault(method, {})[str(knobs)] = dict(zip(runs["seed"].astype(int), runs["fid"].astype(float)))
    return [m for m, per_seed in per_method.items() if significantly_best(per_seed, "min") is not None]


def tuning(df, experiment: str, tuned_methods: list[str]) -> tuple[list[str], dict]:
    """The tuning table (Markdown lines) and its record: {experiment, seeds, chosen, not_chosen_yet, budget}.
    `tuned_methods`: the methods the tuning space runs, so that one the sweep has not reached yet waits too (read
    part-way, a method with no run must not be taken at its defaults)."""
    seeds = sorted(int(s) for s in df["seed"].unique())
    rows, chosen, budget = summarize(df)
    n = sorted(int(x) for x in df["n_samples"].unique())
    lines = [f"# Fair tuning: {experiment}", "",
             f"B = {', '.join(str(int(b)) for b in sorted(df[df['method'] != 'vanilla']['B'].unique()))} of "
             f"N = {int(df['N'].max())}, {', '.join(map(str, n))} samples a run, validation seeds "
             f"{', '.join(map(str, seeds))}; mean ± 95% half-width over seeds. Chosen: lowest mean FID (the rule "
             "fixed before the runs); the reporting space runs it on other seeds. p: paired t-test of the "
             "setting's FID against the chosen one's over the same seeds; (n.s.) = no significant difference at "
             f"{ALPHA:.0%}, so the choice between the two is not supported by these runs.", "",
             "| method | setting | FID | token agreement | runs | chosen | p vs chosen |",
             "|---|---|---|---|---|---|---|"]
    for method, knobs, f, fh, a, ah, k, p in rows:
        setting = ", ".join(f"{key}={val}" for key, val in knobs.items()) or "(default)"
        mark = "yes" if {kk: _plain(v) for kk, v in knobs.items()} == chosen.get(method) else ""
        lines.append(f"| {method} | {setting} | {interval(f, fh, 2)} | {interval(a, ah, 3)} | {k} | {mark} | {_p(p)} |")
    clear = [m for m in clearly_chosen(df) if m in chosen]
    waiting = [m for m in budget if m not in chosen]
    waiting += [m for m in dict.fromkeys(tuned_methods) if m not in budget]
    if waiting:
        lines += ["", "Not chosen yet (a setting lacks one of the seeds " + ", ".join(map(str, seeds))
                  + ", or the sweep has not reached the method; resume the sweep): " + ", ".join(waiting) + "."]
    lines += ["", "Chosen setting significantly better than every other setting of its method: "
              + (", ".join(clear) if clear else "none") + "."]
    lines += ["", "| method | settings | runs | CPU-seconds |", "|---|---|---|---|"]
    lines += [f"| {m} | {b['settings']} | {b['runs']} | {b['cpu_seconds']:.0f} |" for m, b in budget.items()]
    record = {"experiment": experiment, "seeds": seeds, "chosen": chosen, "not_chosen_yet": waiting, "budget": budget}
    return lines, record
