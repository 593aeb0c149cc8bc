"""Paper figures from the tidy runs DataFrame, each written as PNG (200 dpi) and PDF (vector).

Legends sit outside the axes so they never cover data; every axis names its measure, unit and
which direction is better. Seeds are averaged (error bars show their spread when there are several).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from ablate.errors import AblateError  # noqa: E402
from analysis import labels as L  # noqa: E402
from analysis.pareto import pareto_front, significant_dominations  # noqa: E402
from analysis.runs import missing_note, require  # noqa: E402
from analysis.stats import half_width  # noqa: E402

STYLE = {
    "font.size": 9, "axes.labelsize": 9, "axes.titlesize": 9.5, "legend.fontsize": 7.5, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "grid.linewidth": 0.6, "savefig.dpi": 200, "pdf.fonttype": 42, "ps.fonttype": 42,
    "legend.frameon": False, "lines.markersize": 6,
}
LINESTYLES = ["-", "--", ":", "-."]
REFERENCE = ("vanilla", "step_reduction")  # the same sampler with fewer steps: the curve to beat


def save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


def aggregate(df: pd.DataFrame, measures: list[str], by: list[str]) -> pd.DataFrame:
    """Mean, std and 95% interval half-width (over seeds) of `measures` per group; `n` counts the seeds."""
    g = df.groupby(by, dropna=False, sort=False)
    out = g[measures].mean()
    std = g[measures].std(ddof=1).add_suffix("_std")
    ci = g[measures].agg(half_width).add_suffix("_ci")
    first = g[[c for c in ("method", "label", "series", "method_rank", "color", "marker", "N", "source") if c in df]].first()
    first = first.drop(columns=[c for c in by if c in first.columns])
    return pd.concat([out, std, ci, first, g.size().rename("n")], axis=1).reset_index()


def _speed_axis(ax, values: np.ndarray) -> None:
    """Log scale with plain ticks (1×, 2×, 4×) once speeds span a factor of 3 or more."""
    lo, hi = np.nanmin(values), np.nanmax(values)
    if lo > 0 and hi / lo >= 3:
        ax.set_xscale("log")
        ticks = [t for t in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32) if lo / 1.15 <= t <= hi * 1.15]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.set_xlim(lo / 1.12, hi * 1.12)
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))


def speed_vs_quality(df: pd.DataFrame, out: Path, speed: str = "speedup_wall", quality: str = "fid",
                     notes: Optional[list] = None, stem: Optional[str] = None) -> list[Path]:
    """Quality against speedup: a line per method (in order of budget), the vanilla step-count
    curve as the reference, and the overall Pareto frontier drawn underneath."""
    what = f"the {quality}-vs-{speed} figure"
    data = require(df, [speed, quality], what)
    if notes is not None and (note := missing_note(df, [speed, quality], what)):
        notes.append(note)
    agg = aggregate(data, [speed, quality], ["source", "variant", "B"])
    if "unmasking" in data:  # the reference curve is MaskGIT's order only (a variant has one order)
        agg["unmasking"] = agg["variant"].map(data.groupby("variant")["unmasking"].first())
    sources = list(dict.fromkeys(agg["source"]))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.6, 4.0))
        for si, src in enumerate(sources):
            ls = LINESTYLES[si % len(LINESTYLES)]
            a = agg[agg["source"] == src]
            _reference_curve(ax, a, speed, quality, ls, src if len(sources) > 1 else None)
            rest = a[~a["method"].isin(REFERENCE)].sort_values(["method_rank", "variant", "B"])
            variants = list(dict.fromkeys(rest["variant"]))
            for var in variants:
                g = rest[rest["variant"] == var].sort_values(["B", speed])
                mk, shade = g["marker"].iloc[0], g["color"].iloc[0]
                budgets = ", ".join(f"{b:g}" for b in g["B"].dropna())
                ax.errorbar(g[speed], g[quality], yerr=_err(g, quality), color=shade, marker=mk, ls=ls,
                            lw=1.4, ms=6, capsize=2, elinewidth=0.8, zorder=3,
                            label=f"{g['series'].iloc[0]}" + (f", B = {budgets}" if budgets and len(agg) > 60 else ""))
                if len(agg) <= 60:
                    for _, r in g.dropna(subset=["B"]).iterrows():
                        ax.annotate(f"{r['B']:g}", (r[speed], r[quality]), xytext=(4, -9), textcoords="offset points",
                                    fontsize=6.5, color=shade, zorder=6)
        front = pareto_front(agg[[speed, quality]].to_numpy(), [L.mode(speed), L.mode(quality)])
        f = agg.iloc[front].sort_values(speed)
        if len(f):
            ax.plot(f[speed], f[quality], drawstyle="steps-pre" if L.mode(quality) == "min" else "steps-post",
                    color="#f2c14e", lw=7, alpha=0.45, zorder=1, solid_capstyle="round",
                    label=f"Pareto frontier, all methods ({len(f)} points)")
            ax.scatter(f[speed], f[quality], s=110, facecolors="none", edgecolors="#b8860b", lw=1.2, zorder=4)
        if speed == "speedup_flops":  # FLOPs are exact, so "at least as fast" is a fact and only quality is tested
            pairs = significant_dominations(data, speed, quality, L.mode(quality))
            pos = {(r["source"], r["variant"], r["B"] if pd.notna(r["B"]) else None): (r[speed], r[quality])
                   for _, r in agg.iterrows()}
            for i, (a, b) in enumerate(pairs):
                (xa, ya), (xb, yb) = pos[_key(a)], pos[_key(b)]
                ax.annotate("", xy=(xb, yb), xytext=(xa, ya), zorder=2,
                            arrowprops=dict(arrowstyle="->", color="#555555", lw=0.8, ls=":", alpha=0.8))
            if pairs:
                ax.plot([], [], color="#555555", ls=":", lw=0.8,
                        label=f"significantly dominates (arrow to the dominated; seed-paired, Holm): {len(pairs)}")
            elif notes is not None:
                notes.append(f"{stem or quality}: no point dominates another significantly (seed-paired t-test on "
                             f"{quality}, Holm over the pairs where one is at least as fast)")
        _speed_axis(ax, agg[speed].to_numpy())
        ns = sorted({int(n) for n in data["N"].dropna()})
        ref = f"vanilla N = {ns[0]}" if len(ns) == 1 else "each sweep's vanilla reference"
        kind = {"speedup_wall": "wall-clock", "speedup_flops": "FLOPs"}.get(speed)
        ax.set_xlabel(f"{kind} speedup over {ref} (×), → faster" if kind else L.axis_label(speed))
        ax.set_ylabel(_quality_label(quality, data))
        ax.set_title(f"{L.measure_name(quality)} against {kind or speed} speedup"
                     + (f" (N = {ns[0]}; B = full steps)" if len(ns) == 1 else ""))
        handles, names = ax.get_legend_handles_labels()
        rank = [2 if n.startswith("Pareto") else 0 if n.startswith(("vanilla", "step reduction")) else 1 for n in names]
        order = sorted(range(len(names)), key=lambda i: (rank[i], i))  # references, methods, the frontier
        ax.legend([handles[i] for i in order], [names[i] for i in order], loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0, title="small numbers: B (full steps)",
                  title_fontsize=7)
        return save(fig, out, stem or f"{quality}_vs_{speed}")


def _key(k: tuple) -> tuple:
    return (k[0], k[1], None if pd.isna(k[2]) else k[2])


def _quality_label(quality: str, data: pd.DataFrame) -> str:
    label = L.axis_label(quality)
    if quality in ("fid", "kid_mean"):
        ext = data["extractor"].dropna().unique() if "extractor" in data else []
        n = data["n_samples"].dropna().unique() if "n_samples" in data else []
        bits = ([f"{ext[0]} features"] if len(ext) == 1 else []) + ([f"{int(n[0]):,} samples"] if len(n) == 1 else [])
        if bits:
            name = L.measure_name(quality)
            label = label.replace(name, f"{name} ({', '.join(bits)})", 1)
    return label


def _err(g: pd.DataFrame, col: str):
    """Error bars: the 95% interval over seeds (none for a single seed)."""
    e = g.get(f"{col}_ci")
    return None if e is None or e.isna().all() else e.fillna(0).to_numpy()


def _reference_curve(ax, a: pd.DataFrame, speed: str, quality: str, ls: str, src: Optional[str]) -> None:
    """Vanilla at its step counts plus step reduction (vanilla run with B steps), joined by speed; step reduction
    in another unmasking order than MaskGIT's is its own series, off the curve."""
    ref = a[a["method"].isin(REFERENCE)].sort_values(speed)
    if ref.empty:
        return
    tag = f" [{src}]" if src else ""
    if "unmasking" in ref:
        order = ref["unmasking"].fillna("confidence").astype(str)
        for name, g in ref[order != "confidence"].groupby(order[order != "confidence"]):
            ax.errorbar(g[speed], g[quality], yerr=_err(g, quality), color=g["color"].iloc[0],
                        marker=g["marker"].iloc[0], mfc="none", ls="none", ms=7, zorder=5,
                        label=f"{'step reduction' if (g['method'] == 'step_reduction').all() else 'vanilla'}{tag} "
                              f"(unmasking={name}; N = B = {', '.join(f'{b:g}' for b in sorted(g['B']))})")
        ref = ref[order == "confidence"]
        if ref.empty:
            return
    van = ref[ref["method"] == "vanilla"]
    steps = sorted({int(b) for b in ref["B"].dropna()})
    if len(ref) >= 2:
        ax.plot(ref[speed], ref[quality], color="black", ls=ls if src else "--", lw=1.0, zorder=2,
                label=f"vanilla step-count curve{tag} (N = {', '.join(map(str, steps))})")
    elif len(van):
        n = int(van["B"].iloc[0]) if van["B"].notna().all() else "?"
        ax.axhline(van[quality].iloc[0], color="black", ls=":", lw=1.0, zorder=2,
                   label=f"vanilla N = {n}{tag}: its {L.measure_name(quality)} "
                         "(only step count run)")
    if len(van):
        ax.errorbar(van[speed], van[quality], yerr=_err(van, quality), color="black", marker="*", ms=11, ls="none",
                    zorder=5, label=f"vanilla{tag} (N = {', '.join(str(int(b)) for b in van['B'].dropna())})")
    sr = ref[ref["method"] == "step_reduction"]
    if len(sr):
        ax.errorbar(sr[speed], sr[quality], yerr=_err(sr, quality), color=sr["color"].iloc[0], marker=sr["marker"].iloc[0],
                    ls="none", ms=6, zorder=5, label=f"step reduction{tag} (N = B = "
                                                     f"{', '.join(f'{b:g}' for b in sorted(sr['B']))})")


def pick_budget(df: pd.DataFrame, budget: Optional[int] = None) -> int:
    """The budget for per-budget figures: the one given, else the one most accelerated variants share
    (ties: the one nearest N/4, the paper's headline setting)."""
    acc = df[~df["method"].isin(REFERENCE) & df["B"].notna()]
    if budget is not None:
        if not (acc["B"] == budget).any():
            have = ", ".join(f"{b:g}" for b in sorted(acc["B"].unique())) or "none"
            raise AblateError(f"budget: no accelerated run has B = {budget} (budgets run: {have})")
        return int(budget)
    if acc.empty:
        raise AblateError("budget: no accelerated method with a budget among the runs (only references)")
    counts = acc.groupby("B")["variant"].nunique()
    n = float(acc["N"].median())
    best = max(counts.index, key=lambda b: (counts[b], -abs(b - n / 4), -b))
    return int(best)


def feature_error(df: pd.DataFrame, out: Path, budget: int, notes: Optional[list] = None) -> list[Path]:
    """Per-step MSE and cosine to the vanilla trajectory (same seed), one line per method at one budget."""
    at = df[(df["B"] == budget) & ~df["method"].isin(REFERENCE)]
    have = at[at["feature_mse_steps"].map(lambda v: isinstance(v, list) and len(v) > 0)]
    if have.empty:
        raise AblateError(f"measure 'feature_mse': no run at B = {budget} logged per-step feature errors, "
                          "so the feature-error figure cannot be drawn")
    if notes is not None and len(have) < len(at):
        lack = at.loc[~at.index.isin(have.index), "run_name"]
        notes.append(f"feature-error figure: {len(lack)} run(s) at B = {budget} lack per-step feature errors "
                     f"and are left out ({', '.join(lack.head(4))})")
    series = list(dict.fromkeys(have.sort_values(["method_rank", "variant", "source"])["series"]))
    n_steps = int(have["N"].max())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.0), sharex=True)
        full = _full_steps(have)
        for ax in axes:
            for s in full:
                ax.axvspan(s + 0.5, s + 1.5, color="#dddddd", lw=0, zorder=0)
        sources = list(dict.fromkeys(have["source"]))
        for name in series:
            g = have[have["series"] == name]
            mk, ls = g["marker"].iloc[0], LINESTYLES[sources.index(g["source"].iloc[0]) % len(LINESTYLES)]
            for ax, key in zip(axes, ("feature_mse_steps", "feature_cos_steps")):
                vals = [v for v in g[key] if isinstance(v, list) and v]
                if not vals:
                    continue
                width = min(len(v) for v in vals)
                y = np.mean([v[:width] for v in vals], axis=0)
                x = np.arange(1, width + 1)
                if key == "feature_mse_steps":
                    y = np.where(y > 0, y, np.nan)  # step 1 is exact (0): no place on a log axis
                ax.plot(x, y, color=g["color"].iloc[0], marker=mk, ms=4, lw=1.3, ls=ls, label=name)
        axes[0].set_yscale("log")
        axes[0].set_ylabel("feature MSE to vanilla (log), ↓")
        axes[1].set_ylabel("cosine similarity to vanilla, ↑")
        for ax in axes:
            ax.set_xlabel(f"sampling step (of N = {n_steps})")
            ax.set_xlim(0.5, n_steps + 0.5)
            ax.xaxis.set_major_locator(FixedLocator(list(range(1, n_steps + 1, max(1, n_steps // 8)))))
        handles, labels_ = axes[0].get_legend_handles_labels()
        if full:
            handles.append(matplotlib.patches.Patch(color="#dddddd"))
            labels_.append(f"full step (the base model runs): {len(full)} of {n_steps}")
        fig.legend(handles, labels_, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(handles)))
        seeds = sorted(int(x) for x in have["seed"].unique())
        fig.suptitle(f"Feature error against vanilla's trajectory (same seed), B = {budget} of N = {n_steps} "
                     + (f"(seed {seeds[0]})" if len(seeds) == 1 else f"(mean over seeds {', '.join(map(str, seeds))})"),
                     y=1.0)
        fig.tight_layout()
        return save(fig, out, f"feature_error_B{budget}")


def _full_steps(g: pd.DataFrame) -> list[int]:
    """Full steps (0-based) the runs logged; none when they differ (or runs from before they were logged)."""
    logged = {tuple(v) for v in g["full_steps"] if isinstance(v, list) and v} if "full_steps" in g else set()
    return list(logged.pop()) if len(logged) == 1 else []


def ablation_knobs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(method, knob) for every knob that takes two or more values among a method's runs: the ablations these
    runs hold, for any method (a user's own too), read from the knobs the runs logged."""
    out = []
    for method, g in df[~df["method"].isin(REFERENCE)].groupby("method", sort=False):
        for knob in sorted(df.attrs.get("knobs", [])):
            if knob != "checkpoint" and knob in g and g[knob].notna().any() and g[knob].astype(str).nunique() > 1:
                out.append((method, knob))
    return sorted(out, key=lambda mk: (float(df.loc[df["method"] == mk[0], "method_rank"].iloc[0]), mk))


def ablation_groups(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(method, knob) -> that method's runs that vary only that knob (others at their most common value)."""
    out = {}
    for method, knob in ablation_knobs(df):
        g = df[df["method"] == method]
        # every other knob at its most common value, so no two settings are averaged as if they were seeds
        for k in sorted(df.attrs.get("knobs", [])):
            if k != knob and k in g and g[k].notna().any():
                common = g[k].astype(str).mode()
                if len(common):
                    g = g[g[k].astype(str) == common.iloc[0]]
        out[(method, knob)] = g
    return out


def panel_title(df: pd.DataFrame, method: str, knob: str) -> str:
    label = df.loc[df["method"] == method, "label"]
    return f"{label.iloc[0] if len(label) else method}: {knob}"


def ablations(df: pd.DataFrame, out: Path, speed: str = "speedup_flops", quality: str = "fid",
              notes: Optional[list] = None) -> list[Path]:
    """FID and speed against every knob a method's runs vary (others at their most common value), a line per
    budget: a panel per (method, knob)."""
    groups = ablation_groups(df)
    if not groups:
        raise AblateError("no method's runs vary a knob, so there is nothing to ablate; combine with the ablation "
                          "sweeps, e.g. --experiment depth --experiment tokens")
    panels = list(groups)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, len(panels), figsize=(2.5 * len(panels) + 0.6, 4.6), sharey="row",
                                 squeeze=False)
        cmap = plt.get_cmap("viridis")
        budgets_all = sorted({b for g in groups.values() for b in g["B"].dropna()})
        bcolor = {b: cmap(0.15 + 0.7 * i / max(1, len(budgets_all) - 1)) for i, b in enumerate(budgets_all)}
        drawn, missing, first = 0, [], 0
        for col, (method, knob) in enumerate(panels):
            title = panel_title(df, method, knob)
            g = groups[(method, knob)].dropna(subset=[quality, speed])
            values = sorted(g[knob].dropna().unique(), key=lambda v: (str(type(v)), v)) if len(g) else []
            axes[0, col].set_title(title)
            if len(values) < 2:
                only = f"only {L.knob_text(knob, values[0])}" if values else "no runs"
                for ax in axes[:, col]:
                    ax.axis("off")
                axes[0, col].set_title(title)
                axes[0, col].text(0.5, 0.0, f"{only} in these runs:\nnothing to compare", ha="center",
                                  va="center", transform=axes[0, col].transAxes, color="#666666", fontsize=8,
                                  bbox=dict(boxstyle="round", fc="#f4f4f4", ec="#cccccc"))
                missing.append(f"{title}: {only}")
                continue
            drawn += 1
            first = col if drawn == 1 else first
            pos = {v: i for i, v in enumerate(values)}
            agg = aggregate(g, [quality, speed], ["B", knob])
            for b, gb in agg.groupby("B"):
                if len(gb) < 2:  # a budget with one setting compares nothing
                    continue
                gb = gb.assign(x=gb[knob].map(pos)).sort_values("x")
                for row, meas in enumerate((quality, speed)):
                    axes[row, col].errorbar(gb["x"], gb[meas], yerr=_err(gb, meas), color=bcolor[b], marker="o",
                                            lw=1.4, capsize=2, label=f"B = {b:g}")
            for ax in axes[:, col]:
                ax.set_xticks(range(len(values)), [L.knob_text(knob, v) for v in values])
                ax.set_xlim(-0.4, len(values) - 0.6)
        if not drawn:
            plt.close(fig)
            raise AblateError("no knob varies among runs that have both measures, so there is nothing to ablate")
        if missing and notes is not None:
            notes.append("ablation figure: " + "; ".join(missing) + " in these runs, so those panels are empty")
        axes[0, first].set_ylabel(L.axis_label(quality))
        axes[1, first].set_ylabel(L.axis_label(speed))
        for ax in axes[:, first]:
            ax.yaxis.set_tick_params(labelleft=True)
        handles = {lab: h for ax in axes.flat for h, lab in zip(*ax.get_legend_handles_labels())}
        if handles:
            fig.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                       ncol=len(handles), title="full steps (budget) of N = "
                       + "/".join(str(int(n)) for n in sorted({n for g in groups.values() for n in g["N"].dropna()})))
        fig.suptitle("Ablations, one knob at a time (other knobs at their most common value; bars: 95% intervals over seeds)")
        fig.tight_layout()
        return save(fig, out, "ablations")


def sample_sheet(df: pd.DataFrame, images: dict, out: Path, budget: int, quality: str = "fid",
                 speed: str = "speedup_flops") -> list[Path]:
    """The same seed's samples under each method at one budget (vanilla first), side by side."""
    from PIL import Image

    seed = int(df["seed"].min())
    pick = df[(df["seed"] == seed) & ((df["B"] == budget) & ~df["method"].isin(["vanilla"])
                                      | (df["method"] == "vanilla"))]
    van = pick[pick["method"] == "vanilla"]
    van = van[van["B"] == van["B"].max()]
    pick = pd.concat([van, pick[pick["method"] != "vanilla"]]).sort_values(["method_rank", "variant", "source"])
    pick = pick[pick["run_id"].isin(images)]
    if pick.empty:
        raise AblateError(f"samples.png: no run at B = {budget} (seed {seed}) has a samples.png artifact")
    n = len(pick)
    cols = min(n, 4)
    rows = -(-n // cols)
    with plt.rc_context(STYLE | {"axes.grid": False}):
        fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.55 * rows), squeeze=False, layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        for ax, (_, r) in zip(axes.flat, pick.iterrows()):
            ax.imshow(np.asarray(Image.open(images[r["run_id"]]).convert("L")), cmap="gray", vmin=0, vmax=255,
                      interpolation="antialiased")
            steps = f"N = {int(r['N'])}" if r["method"] == "vanilla" else f"B = {budget:g}"
            stats = []
            if pd.notna(r.get(quality)):
                stats.append(f"{L.measure_name(quality)} {r[quality]:.1f}")
            if pd.notna(r.get(speed)):
                stats.append(f"{r[speed]:.2f}× FLOPs")
            ax.set_title(f"{r['series']}\n{steps} · " + " · ".join(stats), fontsize=7.5)
        fig.suptitle(f"Samples, seed {seed}: same labels and noise under every method (one class per row)",
                     fontsize=9)
        return save(fig, out, f"samples_B{budget}")


def interactive_pareto(df: pd.DataFrame, out: Path, speed: str = "speedup_flops", quality: str = "fid") -> list[Path]:
    """The Pareto figure as one HTML file (plotly, its script inside so it opens offline): a line per method
    variant in order of budget, the overall frontier, and on hover the method, B, its knobs, seeds and the
    paired measures."""
    import plotly.graph_objects as go

    data = require(df, [speed, quality], f"the interactive {quality}-vs-{speed} figure")
    extra = [m for m in ("token_agreement", "ssim", "feature_cos") if m in data and data[m].notna().any()]
    agg = aggregate(data, [speed, quality] + extra, ["source", "variant", "B"])
    knobs = L.knob_columns(data)
    fig = go.Figure()
    for var, g in agg.sort_values(["method_rank", "variant", "B"]).groupby("variant", sort=False):
        g = g.sort_values("B")
        method = g["method"].iloc[0]
        ks = knobs.get(method, [])
        first = data[data["variant"] == var].iloc[0]
        knob_text = ", ".join(L.knob_text(k, first[k]) for k in ks) or "defaults"
        hover = [f"<b>{r['series']}</b><br>B = {r['B']:g} of N = {int(r['N'])}<br>knobs: {knob_text}<br>"
                 f"{L.measure_name(quality)} {r[quality]:.3g}, {L.measure_name(speed)} {r[speed]:.3g}×<br>"
                 + "".join(f"{L.measure_name(m)} {r[m]:.3g}<br>" for m in extra if pd.notna(r.get(m)))
                 + f"seeds: {int(r['n'])}" for _, r in g.iterrows()]
        fig.add_trace(go.Scatter(x=g[speed], y=g[quality], mode="lines+markers", name=g["series"].iloc[0],
                                 line=dict(color=g["color"].iloc[0]), hovertext=hover, hoverinfo="text",
                                 error_y=dict(type="data", array=g[f"{quality}_ci"].fillna(0),
                                              visible=bool(g[f"{quality}_ci"].notna().any()))))
    front = agg.iloc[pareto_front(agg[[speed, quality]].to_numpy(), [L.mode(speed), L.mode(quality)])].sort_values(speed)
    fig.add_trace(go.Scatter(x=front[speed], y=front[quality], mode="lines", name="Pareto frontier, all methods",
                             line=dict(color="#f2c14e", width=8), opacity=0.45, hoverinfo="skip"))
    fig.update_layout(title=f"{L.measure_name(quality)} against {L.measure_name(speed)} (hover a point for its "
                            "method, budget and knobs)", xaxis_title=L.axis_label(speed),
                      yaxis_title=L.axis_label(quality), template="plotly_white", width=1000, height=620)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pareto_{quality}_vs_{speed}.html"
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return [path]
