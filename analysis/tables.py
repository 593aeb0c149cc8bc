"""Markdown and LaTeX (booktabs) tables: mean ± half-width of a 95% interval over seeds, and the number of
seeds; a value is bold only when it is significantly best in its column (analysis/stats.py: better than
every other row under a seed-paired t-test at 5%), and only among the accelerated methods at the same budget:
vanilla is the reference row, not a competitor. One seed gives no interval and no bold.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from analysis import labels as L
from analysis.figures import panel_title, ablation_groups, aggregate
from analysis.pareto import hypervolume_2d, pareto_front
from analysis.stats import half_width, interval, significantly_best

SUMMARY = ["fid", "kid_mean", "precision", "recall", "class_acc", "latency_ms_per_image", "gflops_per_image",
           "full_steps_mean", "steps_mean", "speedup_wall", "speedup_flops", "feature_cos", "token_agreement", "psnr", "ssim"]
NOT_RANKED = {"full_steps_mean", "steps_mean"}  # a description of the run (B's mean), not a quality: never bold
WALL = {"latency_ms_per_image", "speedup_wall"}  # timed, so comparable only within one machine session
FLOOR = {"fid": "floor_fid", "kid_mean": "floor_kid_mean", "precision": "floor_precision", "recall": "floor_recall"}
DIGITS = {k: m.digits for k, m in L.MEASURES.items()}
SHORT = {k: m.short for k, m in L.MEASURES.items()}
PAIRS = [("fid", "speedup_wall"), ("fid", "speedup_flops"), ("class_acc", "latency_ms_per_image")]


class Table:
    """Header, rows of cells (text, best?), groups of rows (a rule between them), a caption."""

    def __init__(self, header: list[str], align: str, caption: str, notes: Sequence[str] = ()):
        self.header, self.align, self.caption, self.groups = header, align, caption, []
        self.notes = list(notes)  # extra lines: bullets under the Markdown table, sentences in the LaTeX caption

    def add_group(self, rows: list[list[tuple[str, bool]]]) -> None:
        if rows:
            self.groups.append(rows)

    def markdown(self) -> str:
        al = {"l": ":---", "r": "---:", "c": ":---:"}
        lines = ["| " + " | ".join(self.header) + " |", "| " + " | ".join(al[a] for a in self.align) + " |"]
        for rows in self.groups:
            for row in rows:
                lines.append("| " + " | ".join(f"**{t}**" if best else t for t, best in row) + " |")
        notes = "".join(f"- {n}\n" for n in self.notes)
        return "\n".join(lines) + f"\n\n{self.caption}\n" + (f"\n{notes}" if notes else "")

    def latex(self) -> str:
        def cell(t: str, best: bool) -> str:
            t = _tex(t)
            return f"\\textbf{{{t}}}" if best else t

        out = ["\\begin{table}[t]", "\\centering", "\\small", f"\\begin{{tabular}}{{{self.align}}}", "\\toprule",
               " & ".join(_tex(h) for h in self.header) + " \\\\", "\\midrule"]
        for i, rows in enumerate(self.groups):
            if i:
                out.append("\\midrule")
            out += [" & ".join(cell(t, b) for t, b in row) + " \\\\" for row in rows]
        caption = " ".join([self.caption] + [n.rstrip(".") + "." for n in self.notes])
        out += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{_tex(caption)}}}", "\\end{table}"]
        return "\n".join(out) + "\n"


def _tex(s: str) -> str:
    s = str(s)
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
                 ("$", "\\$"), ("{", "\\{"), ("}", "\\}")):
        s = s.replace(a, b)
    for a, b in (("–", "--"), ("±", "$\\pm$"), ("×", "$\\times$"), ("↓", "$\\downarrow$"), ("↑", "$\\uparrow$"),
                 ("≥", "$\\geq$"), ("→", "$\\rightarrow$"), ("`", "")):
        s = s.replace(a, b)
    return s


def _fmt(mean: float, ci: float, n: int, digits: int) -> str:
    if pd.isna(mean):
        return "–"
    return interval(mean, ci, digits) if n > 1 and pd.notna(ci) else f"{mean:,.{digits}f}"


def _head(m: str) -> str:
    if m in NOT_RANKED:  # no better direction: no arrow
        return SHORT.get(m, m)
    return f"{SHORT.get(m, m)} {'↓' if L.mode(m) == 'min' else '↑'}"


def wall_sessions(df: pd.DataFrame) -> int:
    """How many sweep sessions timed the runs' wall clock. A resumed sweep times its later trials under
    another machine load and divides by the reference latency of an earlier session; across sessions the
    wall columns are not comparable, so they are not ranked and the report says so."""
    if "session" not in df or "latency_ms_per_image" not in df:
        return 1
    return max(1, df.dropna(subset=["latency_ms_per_image"])["session"].nunique())


def wall_warning(df: pd.DataFrame) -> Optional[str]:
    k = wall_sessions(df)
    if k < 2:
        return None
    return (f"The wall-clock columns (ms/img, × wall, the wall-speedup figure and hypervolume) mix {k} sweep "
            "sessions, timed under different machine loads: they are not ranked and not comparable across "
            "methods; FLOPs are exact. `python benchmarks/latency_ratio.py --space <space>` times every "
            "setting interleaved in one run.")


def _best_flags(block: pd.DataFrame, cols: Sequence[str], raw: pd.DataFrame, by: Sequence[str]) -> dict[str, pd.Series]:
    """Per column, the row (of the aggregated `block`) that is significantly best over the seeds of `raw`."""
    flags = {}
    unranked = NOT_RANKED | (WALL if wall_sessions(raw) > 1 else set())
    for c in cols:
        if c in unranked:
            flags[c] = pd.Series(False, index=block.index)
            continue
        per_seed = {}
        for i, r in block.iterrows():
            sel = np.ones(len(raw), dtype=bool)
            for k in by:
                sel &= (raw[k] == r[k]).to_numpy() | (raw[k].isna() & pd.isna(r[k])).to_numpy()
            rows = raw[sel].dropna(subset=[c])
            per_seed[i] = dict(zip(rows["seed"], rows[c]))
        best = significantly_best(per_seed, L.mode(c))
        flags[c] = pd.Series([i == best for i in block.index], index=block.index)
    return flags


def summary(df: pd.DataFrame, measures: Sequence[str] = SUMMARY) -> Table:
    """Every method and budget: rows grouped by budget, vanilla on top; best per budget marked."""
    cols = [m for m in measures if m in df and df[m].notna().any()]
    agg = aggregate(df, cols, ["source", "variant", "B"])
    agg = agg.sort_values(["B", "method_rank", "variant", "source"], na_position="last")
    multi_seed = (agg["n"] > 1).any()
    t = Table(["Method", "B"] + [_head(m) for m in cols] + (["seeds"] if multi_seed else []),
              "lr" + "r" * len(cols) + ("r" if multi_seed else ""),
              "Mean ± half-width of the 95% interval over seeds where several ran. Bold: significantly best in its "
              "column among the accelerated methods at the same budget B (full steps of N), by a seed-paired "
              "t-test at 5% against every other; no bold with one seed. Vanilla is the reference. Speedups are "
              "against the sweep's vanilla run at N. – : not measured (step reduction has no per-step or "
              "paired counterpart)."
              + (" Full steps: the mean an adaptive policy actually took per image (a fixed schedule takes B)."
                 if "full_steps_mean" in cols else ""),
              notes=[w for w in [wall_warning(df)] if w])
    ref = agg[agg["method"] == "vanilla"].sort_values("B", ascending=False)
    t.add_group([_row(r, cols, {}, multi_seed) for _, r in ref.iterrows()] + _floor_rows(df, cols, multi_seed))
    rest = agg[agg["method"] != "vanilla"]
    for b, block in rest.groupby("B", dropna=False, sort=True):
        flags = _best_flags(block, cols, df, ["source", "variant", "B"])
        t.add_group([_row(r, cols, {c: flags[c][i] for c in cols}, multi_seed) for i, r in block.iterrows()])
    return t


def _floor_rows(df: pd.DataFrame, cols: Sequence[str], multi_seed: bool) -> list:
    """Real vs real: as many real images of the other split as the runs sampled, scored against the reference
    like the samples (logged by every trial; read from the vanilla runs): the best any generator can do."""
    have = [m for m in FLOOR.values() if m in df and df[m].notna().any()]
    van = df[df["method"] == "vanilla"].dropna(subset=have[:1]) if have else df.iloc[0:0]
    if van.empty:
        return []
    vals = {c: van[FLOOR[c]] if FLOOR.get(c) in van else pd.Series(dtype=float) for c in cols}
    n = len(van)
    row = [("Real images (floor)", False), ("–", False)]
    row += [(_fmt(v.mean(), half_width(v), n, DIGITS.get(c, 3)) if len(v.dropna()) else "", False)
            for c, v in vals.items()]
    return [row + ([(str(n), False)] if multi_seed else [])]


def _row(r, cols, flags, multi_seed) -> list[tuple[str, bool]]:
    b = "–" if pd.isna(r["B"]) else f"{r['B']:g}"
    row = [(r["series"], False), (b, False)]
    row += [(_fmt(r[c], r.get(f"{c}_ci"), int(r["n"]), DIGITS.get(c, 3)), bool(flags.get(c, False))) for c in cols]
    return row + ([(str(int(r["n"])), False)] if multi_seed else [])


def default_ref(agg: pd.DataFrame, measure: str) -> float:
    """Stated reference point: speedups at 1 (no faster than vanilla adds nothing); other measures at
    their worst observed value, pushed out by 10% of the observed range."""
    if measure.startswith("speedup") or measure == "ideal_speedup":
        return 1.0
    v = agg[measure].dropna()
    span = (v.max() - v.min()) or abs(v.max()) or 1.0
    return float(v.max() + 0.1 * span) if L.mode(measure) == "min" else float(v.min() - 0.1 * span)


def pareto(df: pd.DataFrame, pairs: Sequence[tuple[str, str]] = PAIRS, refs: Optional[dict] = None,
           notes: Optional[list] = None) -> tuple[Table, dict]:
    """Hypervolume per method and overall for each objective pair, and who sits on the overall front.

    Points are the seed means per (method variant, budget). Returns the table and the raw numbers.
    """
    refs = dict(refs or {})
    pairs = [p for p in pairs if all(m in df and df[m].notna().any() for m in p)]
    if notes is not None:
        for p in PAIRS:
            if p not in pairs:
                notes.append(f"pareto table: no finished run has both {p[0]} and {p[1]}; that pair is left out")
    series = list(dict.fromkeys(df.sort_values(["method_rank", "variant", "source"])["series"]))
    hv = {s: {} for s in series + ["all methods"]}
    hv_seeds = {s: {} for s in series + ["all methods"]}  # the same hypervolume on each seed's points alone
    fronts, used = {}, {}
    for q, s in pairs:
        agg = aggregate(df.dropna(subset=[q, s]), [q, s], ["source", "variant", "B"])
        ref = (refs.get(q, default_ref(agg, q)), refs.get(s, default_ref(agg, s)))
        used[(q, s)] = ref
        modes = [L.mode(q), L.mode(s)]
        for name in series:
            pts = agg.loc[agg["series"] == name, [q, s]].to_numpy()
            hv[name][(q, s)] = hypervolume_2d(pts, ref, modes) if len(pts) else np.nan
        hv["all methods"][(q, s)] = hypervolume_2d(agg[[q, s]].to_numpy(), ref, modes)
        for seed, g in df.dropna(subset=[q, s]).groupby("seed"):
            a = aggregate(g, [q, s], ["source", "variant", "B"])
            for name in series:
                pts = a.loc[a["series"] == name, [q, s]].to_numpy()
                if len(pts):
                    hv_seeds[name].setdefault((q, s), []).append(hypervolume_2d(pts, ref, modes))
            hv_seeds["all methods"].setdefault((q, s), []).append(hypervolume_2d(a[[q, s]].to_numpy(), ref, modes))
        front = agg.iloc[pareto_front(agg[[q, s]].to_numpy(), modes)]
        fronts[(q, s)] = [f"{r['series']} B={r['B']:g}" if pd.notna(r["B"]) else r["series"]
                          for _, r in front.sort_values(s).iterrows()]
    header = ["Method"] + [f"HV {pair_name(q, s)} ↑" for q, s in pairs]
    t = Table(header, "l" + "r" * len(pairs),
              "Hypervolume (area dominated; larger is better) of each method's points (seed means per budget) "
              "and of all points together; ± the half-width of the 95% interval of the same hypervolume computed "
              "on each seed's points alone, where several seeds ran. Best method per column in bold (rounded "
              "value; see the summary table's tests for significance).",
              notes=[f"Reference point for {pair_name(q, s)}: {q} = {used[(q, s)][0]:.4g}, {s} = "
                     f"{used[(q, s)][1]:.4g}" for q, s in pairs]
              + [f"Overall front, {pair_name(q, s)}: " + ", ".join(fronts[(q, s)]) for q, s in pairs])
    def cell(name, p):
        per = hv_seeds[name].get(p, [])
        return _hv(hv[name][p]) + (f" ± {half_width(per):.3g}" if len(per) > 1 else "")

    rows = [[(name, False)] + [(cell(name, p), False) for p in pairs] for name in series]
    mixed_wall = wall_sessions(df) > 1
    for j, p in enumerate(pairs, start=1):
        vals = [hv[name][p] for name in series]
        best = np.nanmax(vals) if np.isfinite(vals).any() else np.nan
        if mixed_wall and set(p) & WALL:
            continue  # timed in several sessions: not ranked
        for row, v in zip(rows, vals):
            row[j] = (row[j][0], bool(np.isfinite(v) and v > 0 and _hv(v) == _hv(best)))
    t.add_group(rows)
    t.add_group([[("all methods", False)] + [(cell("all methods", p), False) for p in pairs]])
    return t, {"hypervolume": {k: {f"{q}|{s}": v for (q, s), v in d.items()} for k, d in hv.items()},
               "hypervolume_per_seed": {k: {f"{q}|{s}": v for (q, s), v in d.items()} for k, d in hv_seeds.items()},
               "front": {f"{q}|{s}": v for (q, s), v in fronts.items()},
               "reference": {f"{q}|{s}": list(r) for (q, s), r in used.items()}}


def pair_name(q: str, s: str) -> str:
    names = {"speedup_wall": "wall speedup", "speedup_flops": "FLOPs speedup", "latency_ms_per_image": "latency"}
    return f"{SHORT.get(q, q)} vs {names.get(s, SHORT.get(s, s))}"


def _hv(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.4g}"


def ablation(df: pd.DataFrame, measures: Sequence[str] = ("fid", "speedup_flops", "speedup_wall", "feature_cos",
                                                           "shortcut_params")) -> Optional[Table]:
    """Each method's varied knobs one at a time (others at their most common value); None when none varies."""
    groups = ablation_groups(df)
    cols = [m for m in measures if m in df and df[m].notna().any()]
    multi = df["seed"].nunique() > 1
    t = Table(["Knob", "Setting", "B"] + [_head(m) for m in cols] + (["seeds"] if multi else []),
              "llr" + "r" * len(cols) + ("r" if multi else ""),
              "Ablations, one knob at a time with the others at their most common value. Mean ± half-width of "
              "the 95% interval over seeds; bold: significantly best per knob and budget (seed-paired t-test, 5%).",
              notes=[w for w in [wall_warning(df)] if w])
    for (method, knob), g in groups.items():
        title = panel_title(df, method, knob)
        if g.empty or g[knob].astype(str).nunique() < 2:
            continue
        agg = aggregate(g, cols, ["B", knob]).sort_values(["B", knob])
        rows = []
        for b, block in agg.groupby("B", sort=True):
            if len(block) < 2:  # a budget with one setting compares nothing
                continue
            flags = _best_flags(block, cols, g, ["B", knob])
            for i, r in block.iterrows():
                rows.append([(title, False), (L.knob_text(knob, r[knob]), False), (f"{b:g}", False)]
                            + [(_fmt(r[c], r.get(f"{c}_ci"), int(r["n"]), DIGITS.get(c, 3)), bool(flags[c][i]))
                               for c in cols] + ([(str(int(r["n"])), False)] if multi else []))
        t.add_group(rows)
    return t if t.groups else None
