"""Search cost, replayed: grid, Optuna and halving over one grid sweep's runs (read from MLflow only; a study's
`search_cost` analysis, its settings under the stage's `replay:`).

The grid must have run every configuration on its largest sample count, on every seed, with the smaller counts
scored from the same images (`fid_n500`, ...; `sample_seconds_n500`, ... where logged, else pro rata). Each
strategy is replayed `reps` times in random orders (Optuna: its own seeds), and its hypervolume of the
configurations measured on the largest count is recorded against CPU-seconds. Writes search_cost.md, the figure
search_cost.png/.pdf and replay.json into --out.

`live: {halving: search_halving, optuna: search_optuna}` sets live sweeps of the same space beside the replay: their
CPU-seconds as logged, the hypervolume of what they measured on the largest count, whether their frontier is the
grid's, and whether each of their runs scored exactly what the grid scored for that configuration and count (the
replay's premise). A live Optuna sweep is compared with Optuna replayed for the same number of trials.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np

from analysis import search_cost as sc
from analysis.runs import load_runs

META = {"method", "B"}


def configs_from_runs(df, objectives, rungs_wanted=None, score_at=None):
    """One Config per (method, B, knobs) holding every seed; the rungs = the prefix counts scored for it.
    Scoring a smaller count costs the top count's scoring pro rata, or `score_at[n]` seconds a run where given
    (measured: scoring has parts that do not shrink with the count, e.g. KID's subsets of up to 1,000)."""
    df = df[df["method"] != "vanilla"]
    top = int(df["n_samples"].max())
    knobs = df.attrs.get("knobs", [])
    prefixes = sorted({int(c.split("_n")[-1]) for c in df.columns if c.startswith("fid_n")})
    rungs = [n for n in (rungs_wanted or prefixes) if n < top] + [top]
    seeds = sorted(df["seed"].unique())
    out, pro_rata = [], False
    for _, g in df.groupby(["method", "B"] + [k for k in knobs if k in df], dropna=False, sort=True):
        if sorted(g["seed"].unique()) != seeds:
            continue
        row = g.iloc[0]
        params = {"method": row["method"], "budget": int(row["B"])}
        params |= {k: row[k] for k in knobs if k in g and not sc.is_missing(row[k])}
        values, samp, score = {}, {}, {}
        for n in rungs:
            values[n] = {m: float(g[f"{m}_n{n}" if n < top and f"{m}_n{n}" in g else m].astype(float).mean())
                         for m, _ in objectives}
            col = f"sample_seconds_n{n}"
            if n < top and col in g and g[col].notna().all():
                samp[n] = float(g[col].astype(float).sum())
            else:
                samp[n] = float(g["sample_seconds"].astype(float).sum()) * n / top
                pro_rata |= n < top
            score[n] = (len(g) * score_at[n] if score_at and n in score_at
                        else float(sc.besides_sampling(g).sum()) * n / top)
        train = float(g["train_seconds"].astype(float).max()) if "train_seconds" in g else 0.0
        name = ", ".join(f"{k}={v}" for k, v in params.items())
        key = f"{row['method']}:{train:.3f}" if train > 0 else None
        out.append(sc.make_config(name, params, values, samp, score, key, train))
    return out, rungs, seeds, pro_rata


def replay(experiment: str, tracking_uri: Optional[str], out: Path, objectives=("fid:min", "speedup_flops:max"),
           rungs: Optional[list] = None, eta: float = 3.0, reps: int = 200, optuna_reps: int = 30,
           optuna_sampler: str = "nsga2", live: Optional[dict] = None, score_seconds: Optional[dict] = None) -> list[str]:
    """Writes search_cost.png/.pdf and replay.json into `out`; returns search_cost.md's lines.
    `score_seconds`: {n: seconds} scoring a run at a smaller count n costs, as measured (default: pro rata)."""
    from ablate.errors import AblateError

    score_at = {int(n): float(v) for n, v in (score_seconds or {}).items()}
    live = dict(live or {})
    for strategy in live:
        if strategy not in ("halving", "optuna"):
            raise AblateError(f"replay.live: expected halving or optuna, got {strategy!r}")
    args = SimpleNamespace(experiment=experiment, tracking_uri=tracking_uri, objectives=list(objectives),
                           rungs=rungs, eta=eta, reps=reps, optuna_reps=optuna_reps,
                           optuna_sampler=optuna_sampler, out=str(out))
    objectives = [tuple(o.split(":")) for o in args.objectives]
    df = load_runs([args.experiment], [args.tracking_uri], with_steps=False)
    configs, rungs, seeds, pro_rata = configs_from_runs(df, objectives, args.rungs, score_at)
    top = rungs[-1]
    pts = np.array([[c.values[top][m] for m, _ in objectives] for c in configs])
    lo, hi = pts.min(0), pts.max(0)
    ref = [hi[i] + 0.05 * (hi[i] - lo[i]) if d == "min" else lo[i] - 0.05 * (hi[i] - lo[i])
           for i, (_, d) in enumerate(objectives)]
    all_names = [c.name for c in configs]
    grid_front = sc.frontier(configs, all_names, top, objectives)

    traces = {"grid": [], "halving": [], f"optuna ({args.optuna_sampler})": []}
    for r in range(args.reps):
        traces["grid"].append(sc.replay_grid(configs, top, np.random.default_rng(r)))
        traces["halving"].append(sc.replay_halving(configs, rungs, args.eta, objectives, np.random.default_rng(r)))
    for r in range(args.optuna_reps):
        traces[f"optuna ({args.optuna_sampler})"].append(
            sc.replay_optuna(configs, top, objectives, len(configs), seed=r, sampler=args.optuna_sampler))

    grid_total = traces["grid"][0].cost[-1]
    full_hv = sc.hv_curve(traces["grid"][0], configs, top, objectives, ref, [grid_total])[0]
    horizon = max(t.cost[-1] for ts in traces.values() for t in ts)
    xs = np.linspace(0, horizon, 400)
    summary, curves = {}, {}
    for name, ts in traces.items():
        hv = np.array([sc.hv_curve(t, configs, top, objectives, ref, xs) for t in ts]) / full_hv
        curves[name] = hv
        reach = np.array([sc.seconds_to_reach(t, configs, top, objectives, ref, full_hv) for t in ts]) / grid_total
        final = np.array([sc.hv_curve(t, configs, top, objectives, ref, [t.cost[-1]])[0] for t in ts]) / full_hv
        fronts = [sc.frontier(configs, t.top[-1], top, objectives) for t in ts]
        third = np.array([sc.hv_curve(t, configs, top, objectives, ref, [grid_total / 3])[0] for t in ts]) / full_hv
        summary[name] = {
            "reps": len(ts), "total_cpu_fraction": float(np.mean([t.cost[-1] for t in ts]) / grid_total),
            "final_hv_fraction": [float(np.mean(final)), float(np.quantile(final, 0.05)),
                                  float(np.quantile(final, 0.95))],
            "reach_full_hv_fraction_median": float(np.median(reach)),
            "reach_full_hv_share": float(np.mean(np.isfinite(reach))),
            "same_frontier_share": float(np.mean([f == grid_front for f in fronts])),
            "evaluations": float(np.mean([len(t.cost) for t in ts])),
            "hv_at_a_third_of_grid_cpu": [float(third.mean()), float(np.quantile(third, 0.05)),
                                          float(np.quantile(third, 0.95))],
        }
    live_rows, live_pts = [], []
    for strategy, exp in live.items():
        ldf = load_runs([exp], [args.tracking_uri], with_steps=False, every_run=True)
        lv = sc.live_sweep(ldf, df.attrs.get("knobs", []), objectives, configs, top, seeds)
        if lv["unknown"]:
            raise AblateError(f"replay.live: {strategy}={exp}: configurations the grid did not run: {lv['unknown'][:3]}")
        counts = sorted({int(n) for n in ldf.loc[ldf["method"] != "vanilla", "n_samples"]})
        if not set(counts) <= set(rungs):
            raise AblateError(f"replay.rungs: the live sweep {exp} ran the counts {counts}, the replay's rungs are "
                              f"{rungs}: give rungs: {counts[:-1]}")
        mine = ldf["method"] != "vanilla"
        lv["charged_whole_runs"] = _logs_setup(ldf[mine])
        lv["eval_fraction"] = float(ldf.loc[mine, "eval_seconds"].astype(float).sum()
                                    / df.loc[df["method"] != "vanilla", "eval_seconds"].astype(float).sum())
        lv["hv_fraction"] = sc.hypervolume(configs, lv["found"], top, objectives, ref) / full_hv
        lv["cpu_fraction"] = lv["cpu_seconds"] / grid_total
        lv["same_frontier"] = sc.frontier(configs, lv["found"], top, objectives) == grid_front
        if strategy == "halving":
            lv["replay"] = summary["halving"]
            # the same replay with scoring charged as the live runs measured it at each smaller count
            low = ldf[(ldf["method"] != "vanilla") & (ldf["n_samples"].astype(int) < top)]
            measured = {int(n): float(sc.besides_sampling(g).median()) for n, g in low.groupby("n_samples")}
            cal, _, _, _ = configs_from_runs(df, objectives, args.rungs, measured)
            ts = [sc.replay_halving(cal, rungs, args.eta, objectives, np.random.default_rng(r))
                  for r in range(args.reps)]
            lv["score_seconds_measured"] = measured
            lv["replay_measured_scoring_cpu_fraction"] = float(np.mean([t.cost[-1] for t in ts]) / grid_total)
        else:  # Optuna replayed for as many trials as the live sweep ran, with the sampler Ray Tune's OptunaSearch
            # uses when given none (TPE: its first 10 trials are random startup)
            trials = lv["runs"] // max(1, ldf.loc[mine, "seed"].nunique())
            ts = [sc.replay_optuna(configs, top, objectives, trials, seed=r, sampler="tpe")
                  for r in range(args.optuna_reps)]
            fin = np.array([sc.hv_curve(t, configs, top, objectives, ref, [t.cost[-1]])[0] for t in ts]) / full_hv
            lv["replay"] = {"reps": len(ts), "trials": trials,
                            "total_cpu_fraction": float(np.mean([t.cost[-1] for t in ts]) / grid_total),
                            "final_hv_fraction": [float(fin.mean()), float(np.quantile(fin, 0.05)),
                                                  float(np.quantile(fin, 0.95))]}
            lv["replay_measured_scoring_cpu_fraction"] = lv["replay"]["total_cpu_fraction"]  # top count only
        live_rows.append((strategy, exp, lv))
        live_pts.append((f"{strategy}, live ({exp})", lv["cpu_seconds"] / 3600, lv["hv_fraction"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _figure(xs / 3600, curves, grid_total / 3600, out, args.experiment, live_pts)
    (out / "replay.json").write_text(json.dumps({
        "experiment": args.experiment, "objectives": objectives, "rungs": rungs, "eta": args.eta, "seeds": seeds,
        "configs": len(configs), "ref": ref, "grid_cpu_seconds": grid_total, "grid_frontier": sorted(grid_front),
        "sampling_seconds_pro_rata": pro_rata, "summary": summary,
        **({"live": {s: dict(lv, experiment=e) for s, e, lv in live_rows}} if live_rows else {})},
        indent=1, default=str))

    lines = [f"# Search cost, replayed: {args.experiment}", "",
             f"{len(configs)} configurations x {len(seeds)} seeds ({', '.join(map(str, seeds))}), largest count {top} "
             f"samples; halving rungs {rungs}, eta {args.eta:g}; objectives "
             f"{', '.join(f'{m} ({d})' for m, d in objectives)}; hypervolume relative to the full grid's, reference "
             f"point 5% beyond the grid's worst values. Grid CPU time: {grid_total / 3600:.2f} h (sampling, scoring "
             f"and training once per trained model; the vanilla reference, common to all, left out)."
             + (" Scoring at smaller counts as measured: " + ", ".join(f"{n}: {v:g} s a run" for n, v in
                                                                      sorted(score_at.items())) + "." if score_at
                else " Scoring at smaller counts pro rata to the largest's.")
             + (" Smaller counts' sampling seconds are pro rata (the grid did not log them)." if pro_rata else ""),
             "", ("| strategy | replays | evaluations | CPU (x grid) | final HV (mean, 5-95%) | reaches the grid's HV "
                  "(share; median CPU x grid) | same frontier as the grid | HV at a third of the grid's CPU |"),
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        f = s["final_hv_fraction"]
        lines.append(f"| {name} | {s['reps']} | {s['evaluations']:.1f} | {s['total_cpu_fraction']:.2f} | "
                     f"{f[0]:.3f} ({f[1]:.3f}-{f[2]:.3f}) | {s['reach_full_hv_share']:.2f}; "
                     f"{s['reach_full_hv_fraction_median']:.2f} | {s['same_frontier_share']:.2f} | "
                     "{:.3f} ({:.3f}-{:.3f}) |".format(*s["hv_at_a_third_of_grid_cpu"]))
    lines += ["", f"Grid frontier: {'; '.join(sorted(grid_front))}.", ""]
    if live_rows:
        lines += ["## Live sweeps of the same space", "",
                  "| strategy | experiment | runs | CPU (x grid) | whole eval time (x grid's) | HV found | replay: CPU "
                  "(x grid) | replay, scoring as measured live: CPU (x grid) | replay: final HV (mean, 5-95%) | same "
                  "frontier as the grid | max abs difference from the grid's measures |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for strategy, exp, lv in live_rows:
            rp = lv["replay"]
            f = rp["final_hv_fraction"]
            label = strategy if strategy == "halving" else f"{strategy} (tpe, {rp['trials']} trials)"
            cal = lv.get("replay_measured_scoring_cpu_fraction")
            lines.append(f"| {label} | {exp} | {lv['runs']} | {lv['cpu_fraction']:.2f} | {lv['eval_fraction']:.2f} | "
                         f"{lv['hv_fraction']:.3f} | "
                         f"{rp['total_cpu_fraction']:.2f} | {'–' if cal is None else f'{cal:.2f}'} | "
                         f"{f[0]:.3f} ({f[1]:.3f}-{f[2]:.3f}) | "
                         f"{'yes' if lv['same_frontier'] else 'no'} | {lv['max_abs_diff_vs_grid']:.3g} "
                         f"({lv['compared']} measures"
                         + (f"; {lv['not_compared']} not on the grid's seeds" if lv["not_compared"] else "") + ") |")
        lines += ["", "Live CPU-seconds are what the live runs logged (sampling of the images they drew, scoring, "
                  "training once per model; with runs that log their set-up time also warm-up, FLOPs count and feature "
                  "error), timed on the same machine on another occasion than the grid; the whole eval time adds each "
                  "run's set-up. The replay charges the same for a run of the grid's largest count, and at a smaller "
                  "count "
                  + ("as given by score_seconds" if score_at else "pro rata to the grid's scoring of its largest")
                  + "; the column beside it charges the median of what the live runs spent besides sampling at "
                  "each smaller count "
                  + "(" + ", ".join(f"{n}: {v:.1f} s" for lv in [x[2] for x in live_rows]
                                    for n, v in lv.get("score_seconds_measured", {}).items())
                  + " a run) against the grid's "
                  + f"{float(sc.besides_sampling(df[df['method'] != 'vanilla']).median()):.1f}"
                  + f" s at {top}.", ""]
        grid_whole = _logs_setup(df[df["method"] != "vanilla"])
        if any(lv["charged_whole_runs"] != grid_whole for _, _, lv in live_rows):
            lines += ["**Charged on two bases**: the grid's and a live sweep's runs differ in whether they log their "
                      "set-up time, so one side is charged sampling and scoring only; compare their CPU with care.", ""]
    lines += ["![hypervolume against CPU time](search_cost.png)"]
    return lines


def _logs_setup(df) -> bool:
    """Whether every run logs its set-up time (charged eval - set-up) rather than sampling and scoring only."""
    return "setup_seconds" in df and bool(df["setup_seconds"].notna().all())


def _figure(xs, curves, grid_h, out: Path, title: str, live_pts=()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, hv in curves.items():
        m = hv.mean(0)
        line, = ax.plot(xs, m, label=name)
        ax.fill_between(xs, np.quantile(hv, 0.05, 0), np.quantile(hv, 0.95, 0), color=line.get_color(), alpha=0.2)
    for (label, x, y), marker in zip(live_pts, "*Xo"):
        ax.plot([x], [y], marker=marker, ms=11, ls="none", color="black", label=label)
    ax.axvline(grid_h / 3, color="grey", ls=":", label="a third of the grid's CPU")
    ax.set_xlabel("CPU hours spent")
    ax.set_ylabel("hypervolume / grid's final")
    ax.set_title(f"Search cost ({title}): mean and 5-95% over replays")
    ax.legend(loc="lower right")
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"search_cost.{ext}", dpi=130)
    plt.close(fig)

