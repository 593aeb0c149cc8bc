"""A study's claims, decided on its runs (read from MLflow only): the entries of `claims.json` and `claims.md`.

A claim is data (studies/*.yaml): two variants (a method at knobs, resolved to every knob's value by the study before
it gets here), the measures, the budgets, what it says (`better`, `no_loss` within a margin, `equivalent` within a
margin) and its family. Each (claim, budget, measure) compares the two variants on the seeds both ran, by their
seed-paired differences d = first minus second:
- `better`: two-sided paired t-test; HOLDS (the claimed direction) or DOES NOT HOLD (the opposite) when the adjusted p
  is below alpha, else NOT SIGNIFICANT;
- `no_loss`: one-sided test that the second loses less than the margin; `equivalent`: two one-sided tests that |d|
  is below the margin; HOLDS when the adjusted p is below alpha, else NOT SHOWN.
p-values are adjusted within each family and measure (Holm by default, Benjamini-Hochberg as `bh`; a study with a
seed plan uses the group-sequential test of analysis/stats.py instead, Bonferroni over its family). A verdict that
decides nothing carries its minimum detectable difference (`mde`): 80% power at the claim's corrected level
(alpha / m, Holm's strictest step) from the observed paired spread, so it reads "smaller than mde, if any".

At equal cost: a `better` claim between variants whose FLOPs differ also compares the first with the second's measure
linearly interpolated in FLOPs at the first's FLOPs, seed by seed between the second's two nearest budgets (n/a, with
the reason, where no run of the second lies on each side: never an extrapolation); those tests join their family.
A claim `at: equal_cost` is tested that way only: its first variant has no budget to pair by (parallel decoding
takes the steps it needs; dKV-Cache refreshes on its own rule), so its entry (budget None) carries the equal-FLOPs
test and its verdict.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from ablate.errors import AblateError
from analysis.labels import measure_name, mode
from analysis.stats import (adjust, boundaries, half_width, interval, mde, non_inferiority_p, paired_p,
                            sequential_p, tost_p)

UNDECIDED = ("NOT SIGNIFICANT", "NOT SHOWN")
STEERING = ("budgets_equal_cost",)  # what a seed plan steers by, not a result: kept out of claims.json
SAME_COST = 0.005  # relative FLOPs difference below which two variants cost the same


def select(df: pd.DataFrame, method: str, knobs: dict, budget: Optional[int],
           sampler: Optional[dict] = None) -> pd.DataFrame:
    """The runs of one variant: the method's runs whose every knob has these values, at budget B (vanilla: its N; None:
    every budget), at these sampler settings where given."""
    g = df[df["method"] == method]
    if method != "vanilla" and budget is not None:
        g = g[g["B"] == budget]
    for k, v in {**knobs, **(sampler or {})}.items():
        if k not in g:  # a knob added after these runs were logged: they ran at its default
            continue
        if v is None:
            g = g[g[k].isna()]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            g = g[pd.to_numeric(g[k], errors="coerce") == float(v)]
        else:
            g = g[g[k].astype(str) == str(v)]
    return g


def by_seed(runs: pd.DataFrame, measure: str, what: str) -> dict:
    """seed -> value of one variant; two runs of a seed mean the knobs did not name one variant: refused."""
    if runs["seed"].duplicated().any():
        raise AblateError(f"claims: {what} has several runs of one seed; name the variant by its knobs")
    return {int(s): float(v) for s, v in zip(runs["seed"], runs[measure]) if pd.notna(v)}


def budgets_of(df: pd.DataFrame, claim: dict) -> list[int]:
    """The claim's budgets, or every budget at which a non-vanilla side of it ran."""
    if claim.get("budgets"):
        return list(claim["budgets"])
    sides = [s for s in (claim["better"], claim["other"]) if s["method"] != "vanilla"]
    found = set()
    for s in sides:
        if s.get("budget") is not None:
            found.add(int(s["budget"]))
        else:
            found |= {int(b) for b in df.loc[df["method"] == s["method"], "B"].dropna().unique()}
    return sorted(found)


def test(a: dict, b: dict, measure: str, kind: str = "better", margin: Optional[float] = None,
         seeds: Optional[list] = None) -> dict:
    """The paired comparison of two seed -> value maps on their common seeds (or the first `seeds` of them): n, the
    mean difference, its 95% half-width, the paired spread and the raw p of what the claim says."""
    common = sorted(set(a) & set(b)) if seeds is None else seeds
    out = {"n_seeds": len(common), "diff": math.nan, "half_width": math.nan, "sd": math.nan, "p": math.nan}
    if not common:
        return out
    d = np.array([a[s] - b[s] for s in common])
    out["diff"] = float(d.mean())
    if len(common) < 2:
        return out
    out["half_width"], out["sd"] = half_width(d), float(d.std(ddof=1))
    if kind == "better":
        out["p"] = paired_p({s: a[s] for s in common}, {s: b[s] for s in common})
    elif kind == "no_loss":  # the second's loss: d for a measure to maximise, -d for one to minimise
        out["p"] = non_inferiority_p(d if mode(measure) == "max" else -d, margin)
    else:
        out["p"] = tost_p(d, margin)
    return out


def equal_cost(df: pd.DataFrame, c: dict, b: int, measure: str, a: dict, seed_plan: Optional[dict] = None) -> dict:
    """The first variant against the second's measure interpolated at the first's FLOPs, seed by seed (linear in
    FLOPs between the second's two nearest budgets on either side), on the seeds where the second's runs lie on
    both sides of that cost (the others are no pair: never extrapolated); n/a with the reason below two such seeds."""
    if "gflops_per_image" not in df:
        return {"equal_cost": "n/a: no FLOPs logged"}
    v1, v2 = c["better"], c["other"]
    only = c.get("at") == "equal_cost"  # no equal-B pair: the first's runs at any budget, the second's at all
    first = select(df, v1["method"], v1["knobs"], v1.get("budget") or b, v1.get("sampler"))
    second = select(df, v2["method"], v2["knobs"], v2.get("budget") or (None if v2["method"] == "vanilla" else b),
                    v2.get("sampler"))
    if first.empty or second.empty:
        return {"equal_cost": "n/a"}
    c1, c2 = float(first["gflops_per_image"].mean()), float(second["gflops_per_image"].mean())
    out = {"cost_better": c1} if only else {"cost_better": c1, "cost_other": c2, "cost_diff": c1 - c2}
    if not only and abs(c1 - c2) <= SAME_COST * c2:
        return out | {"equal_cost": "same cost: equal B is equal FLOPs"}
    every = select(df, v2["method"], v2["knobs"], None, v2.get("sampler")).dropna(subset=["gflops_per_image", measure])
    interp, lacking = {}, None
    for s, x in zip(first["seed"].astype(int), first["gflops_per_image"].astype(float)):
        pts = every[every["seed"].astype(int) == s].sort_values("gflops_per_image")
        if s not in a or pts.empty:  # a seed the second variant never ran is no pair (seeds added to other claims)
            continue
        xs, ys = pts["gflops_per_image"].to_numpy(float), pts[measure].to_numpy(float)
        if len(xs) and (xs.min() <= x <= xs.max()):
            interp[s] = float(np.interp(x, xs, ys))
        else:
            lacking = (x, xs)
    if len(interp) < 2:
        x, xs = lacking if lacking is not None else (c1, np.array([]))
        span = f"its runs cost {xs.min():.3f}-{xs.max():.3f}" if len(xs) else "it has no runs"
        return out | {"equal_cost": f"n/a: no run of {v2['method']} on each side of {x:.3f} GFLOPs/image ({span}); "
                                    "never extrapolated"}
    res = test(a, interp, measure)
    # the second's budgets nearest the first's cost on either side: where a seed plan adds the second's seeds
    per_budget = every.groupby("B")["gflops_per_image"].mean()
    below, above = per_budget[per_budget <= c1], per_budget[per_budget >= c1]
    if len(below) and len(above):
        out["budgets_equal_cost"] = sorted({int(below.idxmax()), int(above.idxmin())})
    if seed_plan:
        common = sorted(set(a) & set(interp))
        out["p_by_seeds_equal_cost"] = {n: test(a, interp, measure, seeds=common[:n])["p"]
                                        for n in range(seed_plan["min"], len(common) + 1)}
    return out | {"equal_cost": "interpolated", "diff_equal_cost": res["diff"],
                  "half_width_equal_cost": res["half_width"], "p_equal_cost": res["p"], "sd_equal_cost": res["sd"],
                  "n_seeds_equal_cost": res["n_seeds"]}


def evaluate(df: pd.DataFrame, claims: list[dict], study: str, alpha: float = 0.05, correction: str = "holm",
             seed_plan: Optional[dict] = None) -> list[dict]:
    """One entry per claim, budget and measure (claims.json), decided after the correction."""
    entries = []
    for c in claims:
        kind = c.get("kind", "better")
        if c.get("at") == "equal_cost":
            entries += _equal_cost_only(df, c, study, seed_plan)
            continue
        for b in budgets_of(df, c):
            sides = {}
            for side in ("better", "other"):
                v = c[side]
                sides[side] = select(df, v["method"], v["knobs"], v.get("budget") or b, v.get("sampler"))
            for m in c["measures"]:
                e = {"claim": c["name"], "measure": m, "family": c.get("family") or study, "budget": b, "kind": kind,
                     "margin": (c.get("margin") or {}).get(m),
                     "variants": {s: {"method": c[s]["method"], "knobs": c[s].get("given", {}),
                                      "budget": c[s].get("budget") or (None if c[s]["method"] == "vanilla" else b),
                                      **({"sampler": c[s]["sampler"]} if c[s].get("sampler") else {})}
                                  for s in ("better", "other")}}
                x, y = sides["better"], sides["other"]
                if m not in df or x.empty or y.empty or x[m].isna().all() or y[m].isna().all():
                    entries.append(e | {"n_seeds": 0, "verdict": "n/a", "why_na": f"no paired {m} for both variants"})
                    continue
                a, o = by_seed(x, m, c["better"]["method"]), by_seed(y, m, c["other"]["method"])
                e |= test(a, o, m, kind, e["margin"])
                if seed_plan:  # every look's p, for the group-sequential test
                    common = sorted(set(a) & set(o))
                    e["p_by_seeds"] = {n: test(a, o, m, kind, e["margin"], common[:n])["p"]
                                       for n in range(seed_plan["min"], len(common) + 1)}
                if kind == "better":
                    e |= equal_cost(df, c, b, m, a, seed_plan)
                entries.append(e)
    finalize(entries, alpha, correction, seed_plan)
    return [_clean(e) for e in entries]


def _equal_cost_only(df: pd.DataFrame, c: dict, study: str, seed_plan: Optional[dict]) -> list[dict]:
    """The entries of a claim `at: equal_cost`: the first variant (every run of it) against the second interpolated
    at its FLOPs, seed by seed; the equal-B fields stay empty."""
    v = c["better"]
    first = select(df, v["method"], v["knobs"], v.get("budget"), v.get("sampler"))
    out = []
    for m in c["measures"]:
        e = {"claim": c["name"], "measure": m, "family": c.get("family") or study, "budget": None, "kind": "better",
             "margin": None, "compared": "equal_cost", "n_seeds": 0,
             "variants": {s: {"method": c[s]["method"], "knobs": c[s].get("given", {}), "budget": c[s].get("budget"),
                              **({"sampler": c[s]["sampler"]} if c[s].get("sampler") else {})}
                          for s in ("better", "other")}}
        if m not in df or first.empty or first[m].isna().all():
            out.append(e | {"verdict": "n/a", "why_na": f"no {m} for {v['method']}"})
            continue
        out.append(e | equal_cost(df, c, None, m, by_seed(first, m, v["method"]), seed_plan))
    return out


def finalize(entries: list[dict], alpha: float, correction: str, seed_plan: Optional[dict]) -> None:
    """Adjusted p, verdict and mde of every entry, family by family and measure. A family's equal-cost tests are
    corrected together with its equal-B tests (each counts: a claim tested both ways is two tests). Under a seed
    plan, a test looked at on more than one seed count is group-sequential; an equal-cost test looked at on one seed
    count only (its bracketing runs have the space's seeds and no more) is looked at once: Bonferroni on its p."""
    families: dict = {}
    for i, e in enumerate(entries):
        key = (e["family"], e["measure"])
        if "verdict" not in e and not math.isnan(e.get("p", math.nan)):
            families.setdefault(key, []).append((i, ""))
        if not math.isnan(e.get("p_equal_cost", math.nan)):
            families.setdefault(key, []).append((i, "_equal_cost"))
    for tests in families.values():
        m = len(tests)
        if seed_plan:
            adj = [m * entries[i]["p_equal_cost"] if sfx and len(entries[i].get("p_by_seeds_equal_cost") or {}) <= 1
                   else m * sequential_p(entries[i]["p_by_seeds" if not sfx else "p_by_seeds_equal_cost"],
                                         seed_plan["min"], seed_plan["max"], alpha / m)
                   for i, sfx in tests]
            level = boundaries(seed_plan["min"], seed_plan["max"], alpha / m)[seed_plan["max"]]
            name = (f"group-sequential, O'Brien-Fleming spending over {seed_plan['min']}-{seed_plan['max']} seeds, "
                    f"Bonferroni over {m}")
        else:
            adj, level, name = adjust([entries[i]["p" + sfx] for i, sfx in tests], correction), alpha / m, correction
        for (i, sfx), p in zip(tests, adj):
            e = entries[i]
            p = min(1.0, p) if not math.isnan(p) else p
            e["p_adjusted" + sfx] = p
            e["correction"], e["family_size"] = name, m
            e["verdict" + sfx] = _verdict(e | ({"diff": e["diff_equal_cost"]} if sfx else {}), p, alpha)
            if e["verdict" + sfx] in UNDECIDED:
                e["mde" + sfx] = mde(e["sd" + sfx], e["n_seeds" + sfx], level, one_sided=e["kind"] != "better")
    for e in entries:
        if e.get("compared") == "equal_cost":  # its one test is the equal-FLOPs one
            e["verdict"] = e.get("verdict_equal_cost") or e.get("verdict") or "n/a"
            e["n_seeds"] = e.get("n_seeds_equal_cost") or 0
        if "verdict" not in e:
            e["verdict"] = "UNTESTED (1 seed)" if e.get("n_seeds") == 1 else "n/a"


def _verdict(e: dict, p: float, alpha: float) -> str:
    if math.isnan(p):
        return "n/a"
    if e["kind"] != "better":
        return "HOLDS" if p < alpha else "NOT SHOWN"
    if not p < alpha:
        return "NOT SIGNIFICANT"
    good = e["diff"] < 0 if mode(e["measure"]) == "min" else e["diff"] > 0
    return "HOLDS" if good else "DOES NOT HOLD"


def _clean(e: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in e.items()}


def _num(v, digits=3, sign="") -> str:
    return "–" if v is None else f"{v:{sign}.{digits}f}"


def markdown(entries: list[dict], df: pd.DataFrame, title: Optional[str] = None, alpha: float = 0.05) -> list[str]:
    """claims.md: one row per claim, budget and measure, rendered from the entries."""
    budgets = sorted({e["budget"] for e in entries if e["budget"] is not None})
    at = df[df["B"].isin(budgets)] if budgets else df
    n = sorted(int(x) for x in at["n_samples"].dropna().unique())
    corr = sorted({e["correction"] for e in entries if e.get("correction")})
    head = title or (f"Claims at B = {', '.join(map(str, budgets)) or '–'} of N = {int(at['N'].max())}, "
                     f"{', '.join(map(str, n))} samples a run, sampling seeds "
                     f"{', '.join(str(int(s)) for s in sorted(at['seed'].unique()))}.")
    lines = [head, "",
             f"Difference = first minus second, mean ± 95% half-width over seeds; p: paired t-test (two-sided; one-sided "
             f"for no_loss, two one-sided tests for equivalent); adjusted within each family and measure "
             f"({'; '.join(corr) or 'none'}); verdicts at {alpha:g} after the adjustment. mde: the smallest true "
             "difference these seeds would find with 80% power at the claim's corrected level (no_loss/equivalent: "
             "the smallest margin they could show), so an undecided verdict reads \"smaller than mde, if any\". At "
             "equal FLOPs: the second's measure linearly interpolated in FLOPs at the first's, seed by seed.", "",
             "| claim | B | measure | difference | p | p adj. | verdict | mde | FLOPs first − second (GFLOPs/img) | "
             "at equal FLOPs: difference | p adj. | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    # stable: claims in their declared order per budget; claims at equal FLOPs only last
    for e in sorted(entries, key=lambda e: (e["budget"] is None, e["budget"] or 0)):
        kind = "" if e["kind"] == "better" else (f" (no loss, margin {e['margin']:g})" if e["kind"] == "no_loss"
                                                 else f" (equivalent, margin ±{e['margin']:g})")
        if e.get("compared") == "equal_cost":
            d = e.get("diff_equal_cost")
            d = "–" if d is None else interval(d, e["half_width_equal_cost"], 3, "+")
            lines.append("| " + " | ".join([
                e["claim"], "–", measure_name(e["measure"]), "at equal FLOPs only", "", "", "", "",
                f"0 (interpolated at {_num(e.get('cost_better'))})" if d != "–" else "",
                f"{d} ({e['n_seeds']} seeds)" if d != "–" else (e.get("equal_cost") or e.get("why_na") or "n/a"),
                _num(e.get("p_adjusted_equal_cost")),
                e["verdict"] + (f" (mde {e['mde_equal_cost']:.3g})" if e.get("mde_equal_cost") else "")]) + " |")
            continue
        diff = "–" if e.get("diff") is None else (
            interval(e["diff"], e["half_width"], 3, "+") if e.get("half_width") is not None else f"{e['diff']:+.3f}")
        row = [e["claim"] + kind, str(e["budget"]), measure_name(e["measure"]), f"{diff} ({e['n_seeds']} seeds)",
               _num(e.get("p")), _num(e.get("p_adjusted")), e["verdict"],
               f"< {e['mde']:.3g}" if e.get("mde") is not None else ""]
        ec = e.get("equal_cost")
        if e["kind"] != "better" or ec is None:
            row += ["", "", "", ""]
        elif ec.startswith("same cost") or ec.startswith("n/a"):
            row += [_num(e.get("cost_diff"), 3, "+"), ec, "", ""]
        else:
            d = interval(e["diff_equal_cost"], e["half_width_equal_cost"], 3, "+")
            row += [_num(e["cost_diff"], 3, "+"), d, _num(e.get("p_adjusted_equal_cost")),
                    e["verdict_equal_cost"] + (f" (mde {e['mde_equal_cost']:.3g})" if e.get("mde_equal_cost") else "")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def summary(entries: list[dict]) -> dict:
    """Counts of corrected verdicts, all and on FID, for the README and the results index."""
    out = {"tests": len(entries), "verdicts": {}, "fid": {}}
    for e in entries:
        out["verdicts"][e["verdict"]] = out["verdicts"].get(e["verdict"], 0) + 1
        if e["measure"] == "fid":
            out["fid"][e["verdict"]] = out["fid"].get(e["verdict"], 0) + 1
    out["verdicts"], out["fid"] = dict(sorted(out["verdicts"].items())), dict(sorted(out["fid"].items()))
    return out
