"""A study's claims, decided on its runs (read from MLflow only): `claims.json` and `claims.md`.

A claim is data (studies/*.yaml): two variants (a method at knobs, resolved to every knob's value by the study
before it gets here), the measures, the budgets, whether it says the two do not differ (`equal`), and its family.
Each (claim, budget, measure) compares the two variants on the seeds both ran: the mean seed-paired difference
(first minus second), its 95% half-width and the two-sided paired-t p. Verdict: HOLDS (the claimed direction,
p < 0.05), DOES NOT HOLD (the opposite direction, p < 0.05), NOT SIGNIFICANT (otherwise), n/a where a measure
does not exist (step reduction has no paired run); an `equal` claim holds unless the first is significantly better.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from ablate.errors import AblateError
from analysis.labels import mode
from analysis.stats import ALPHA, half_width, paired_p


def select(df: pd.DataFrame, method: str, knobs: dict, budget: Optional[int],
           sampler: Optional[dict] = None) -> pd.DataFrame:
    """The runs of one variant: the method's runs whose every knob has these values, at budget B (vanilla: its N),
    at these sampler settings where given."""
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


def decide(a: dict, b: dict, better: str, equal: bool = False) -> dict:
    """The seed-paired comparison of two seed -> value maps and its verdict (the module's docstring)."""
    seeds = sorted(set(a) & set(b))
    out = {"n_seeds": len(seeds), "diff": math.nan, "half_width": math.nan, "p": math.nan}
    if not seeds:
        return out | {"verdict": "n/a"}
    d = np.array([a[s] - b[s] for s in seeds])
    out["diff"] = float(d.mean())
    if len(seeds) < 2:
        return out | {"verdict": "UNTESTED (1 seed)"}
    out["p"], out["half_width"] = paired_p(a, b), half_width(d)
    good = d.mean() < 0 if better == "min" else d.mean() > 0
    if equal:  # "adds nothing" / "no loss": holds unless the first is significantly better
        return out | {"verdict": "DOES NOT HOLD" if (out["p"] < ALPHA and good) else "HOLDS"}
    if not out["p"] < ALPHA:
        return out | {"verdict": "NOT SIGNIFICANT"}
    return out | {"verdict": "HOLDS" if good else "DOES NOT HOLD"}


def evaluate(df: pd.DataFrame, claims: list[dict], study: str) -> list[dict]:
    """One entry per claim, budget and measure (claims.json)."""
    entries = []
    for c in claims:
        for b in budgets_of(df, c):
            sides = {}
            for side in ("better", "other"):
                v = c[side]
                sides[side] = select(df, v["method"], v["knobs"], v.get("budget") or b, v.get("sampler"))
            for m in c["measures"]:
                e = {"claim": c["name"], "measure": m, "family": c.get("family") or study, "budget": b,
                     "equal": bool(c.get("equal")),
                     "variants": {s: {"method": c[s]["method"], "knobs": c[s].get("given", {}),
                                      "budget": c[s].get("budget") or (None if c[s]["method"] == "vanilla" else b),
                                      **({"sampler": c[s]["sampler"]} if c[s].get("sampler") else {})}
                                  for s in ("better", "other")}}
                x, y = sides["better"], sides["other"]
                if m not in df or x.empty or y.empty or x[m].isna().all() or y[m].isna().all():
                    entries.append(e | {"n_seeds": 0, "diff": None, "half_width": None, "p": None, "verdict": "n/a"})
                    continue
                res = decide(by_seed(x, m, c["better"]["method"]), by_seed(y, m, c["other"]["method"]), mode(m),
                             equal=bool(c.get("equal")))
                entries.append(e | {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in res.items()})
    return entries


def cell(e: dict) -> tuple[str, str]:
    """(verdict, difference) as claims.md prints them."""
    if e["verdict"] == "n/a":
        return "n/a", "–"
    if e["n_seeds"] < 2:
        return e["verdict"], f"{e['diff']:+.3f}"
    verdict = e["verdict"]
    if e["equal"] and verdict == "HOLDS":
        verdict = "HOLDS (no significant loss)" if e["variants"]["better"]["method"] == "vanilla" else \
            "HOLDS (no significant gain)"
    return verdict, f"{e['diff']:+.3f} ± {e['half_width']:.3f} (p = {e['p']:.3f}, {e['n_seeds']} seeds)"


def markdown(entries: list[dict], df: pd.DataFrame, title: Optional[str] = None) -> list[str]:
    """claims.md: one row per claim and budget, a verdict and a difference per measure."""
    measures = list(dict.fromkeys(e["measure"] for e in entries))
    budgets = sorted({e["budget"] for e in entries})
    at = df[df["B"].isin(budgets)]
    n = sorted(int(x) for x in at["n_samples"].dropna().unique())
    head = title or (f"Claims at B = {', '.join(map(str, budgets))} of N = {int(at['N'].max())}, "
                     f"{', '.join(map(str, n))} samples a run, sampling seeds "
                     f"{', '.join(str(int(s)) for s in sorted(at['seed'].unique()))}; difference = first minus second, "
                     "mean ± 95% half-width over seeds, two-sided paired t-test.")
    from analysis.labels import measure_name

    names = {m: ("FID" if m == "fid" else measure_name(m).lower() if m == "token_agreement" else measure_name(m))
             for m in measures}
    lines = [head, "", "| claim | " + " | ".join(f"{names[m]} verdict | {names[m]} difference" for m in measures) + " |",
             "|---|" + "---|---|" * len(measures)]
    rows: dict = {}
    for e in entries:
        rows.setdefault((e["budget"], e["claim"]), {})[e["measure"]] = e
    order = list(dict.fromkeys((e["budget"], e["claim"]) for e in sorted(entries, key=lambda e: e["budget"])))
    for b, claim in order:
        cells = []
        for m in measures:
            cells += list(cell(rows[(b, claim)][m])) if m in rows[(b, claim)] else ["n/a", "–"]
        label = f"B = {b}: {claim}" if len(budgets) > 1 else claim
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines
