"""Why the shortcut does or does not beat the forecasters: a study with its budget fixed before it ran.

    python benchmarks/shortcut_study.py --out results/shortcut_study_N16_B4

Budget (fixed in advance, reported whatever the outcome): the 12 variants of VARIANTS (the default and 11
single changes along capacity, data, schedule, loss and rollout), each trained once through the store with
the knobs a sweep would use; then FID for 4 finalists only.

1. Screen: every variant scored on held-out teacher trajectories (recorded with another seed, never trained
   on): the masked-position feature MSE of the shortcut chained 1 and 2 steps from a teacher feature, with the
   teacher's tokens (seconds per variant). Ranked by the 2-step error (sampling at B = 4 chains up to three
   shortcut steps; training chains two).
2. Finalists: the default and the three best others by that error, at N = 16, B = 4, 1,000 samples, on
   validation seeds 100 / 101 / 102 (results/ reports seeds 0 / 1 / 2): FID against the held-out split and
   token agreement with the unaccelerated run, seed-paired against the default.
3. Rule: a finalist replaces the default only if it is better on FID or on token agreement under the
   seed-paired t-test at 5% and not significantly worse on the other; among several, the lowest mean FID.

Everything lands in `raw.json` as it is measured, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.report import write_with_command  # noqa: E402
from analysis.stats import ALPHA, half_width, paired_p  # noqa: E402

# name -> the knobs it changes from the default (a sweep's shortcut knobs, so the winner ships as knobs).
VARIANTS = {  # cheapest first, so that an interrupted study has screened the most variants
    "default": {},
    "MSE only (KL 0)": {"kl_weight": 0.0},
    "KL 10": {"kl_weight": 10.0},
    "lr 1e-4 (paper)": {"lr": 1e-4},
    "FFN ratio 4 (paper)": {"mlp_ratio": 4.0},
    "rollout 3": {"rollout": 3},
    "student rollout": {"rollout_tokens": "student"},
    "full width (r = 1)": {"bottleneck": 1},
    "2 blocks": {"n_block": 2},
    "rollout 3, student": {"rollout": 3, "rollout_tokens": "student"},
    "6,000 steps": {"train_steps": 6000},
    "3,600 trajectories": {"traj_images": 3600},
}
FINALISTS = 3  # besides the default
HELD_OUT = {"n_images": 200, "seed": 999}


def chained_error(net, traj, max_chain: int = 2) -> list[float]:
    """Masked-position feature MSE of the shortcut chained 1..max_chain steps from every teacher feature of the
    held-out trajectories (teacher tokens, both guidance branches), as in training's loss without its weights."""
    from ablate.shortcut.train import pair_inputs

    sums, counts = [0.0] * max_chain, [0.0] * max_chain
    N = traj.cfg.steps
    with torch.no_grad():
        for i in range(len(traj.shards)):
            data = traj.load(i)
            n, branches = data["features"].shape[:2]
            img = torch.arange(n).repeat(branches)
            br = torch.arange(branches).repeat_interleave(n)
            feats = data["features"][img, br]
            rows = torch.arange(len(img))
            for s0 in range(N - max_chain):
                f = feats[rows, torch.full_like(img, s0)]
                for c in range(max_chain):
                    step = torch.full_like(img, s0 + c)
                    pos, tokens, valid, ratio, masked = pair_inputs(data, img, step)
                    f = net(f, tokens, pos, ratio, valid)
                    err = ((f - feats[rows, step + 1]) ** 2).mean(-1)
                    sums[c] += float((err * masked).sum())
                    counts[c] += float(masked.sum())
    return [s / max(c, 1) for s, c in zip(sums, counts)]


def screen(args, raw, save) -> None:
    from dataclasses import replace

    from ablate import methods, pretrained
    from ablate.sampling import SamplerConfig
    from ablate.shortcut.cache import trajectories_for
    from ablate.shortcut.trajectories import TrajectoryConfig

    base = pretrained.load("mnist").base.eval()
    sampler = SamplerConfig(args.steps, args.cfg_w)
    held = TrajectoryConfig(cfg_w=args.cfg_w, **HELD_OUT)
    val = trajectories_for(base, replace(held, r_temp=sampler.r_temp, sm_temp=sampler.sm_temp))
    for name, knobs in VARIANTS.items():
        if name in raw["screen"]:
            continue
        m = methods.build("shortcut", steps=args.steps, budget=args.budget, **knobs)
        m.follow_sampler(sampler)
        t = time.perf_counter()
        m.prepare(base)
        errs = chained_error(m.net, val)
        raw["screen"][name] = {"knobs": knobs, "err1": errs[0], "err2": errs[1], "params": m.num_params(),
                               "train_seconds": m.meta.get("stats", {}).get("train_seconds"),
                               "wall_seconds": time.perf_counter() - t}
        save()
        print(f"[study] {name}: 1-step {errs[0]:.4f}, 2-step {errs[1]:.4f}", flush=True)


def finalists(raw) -> list[str]:
    others = sorted((n for n in raw["screen"] if n != "default"), key=lambda n: raw["screen"][n]["err2"])
    return ["default"] + others[:FINALISTS]


def measure(args, raw, save) -> None:
    from ablate.evaluate import EvalConfig, evaluate

    for name in finalists(raw):
        for seed in args.seeds:
            k = f"{name}|{seed}"
            if k in raw["fid"]:
                continue
            cfg = EvalConfig(method="shortcut", steps=args.steps, budget=args.budget, knobs=VARIANTS[name],
                             cfg_w=args.cfg_w, n_samples=args.n, seed=seed, reference="held_out")
            res = evaluate(cfg)["measures"]
            raw["fid"][k] = {c: float(res[c]) for c in ("fid", "token_agreement", "psnr", "gflops_per_image")}
            save()
            print(f"[study] {name} seed {seed}: FID {res['fid']:.2f}, agreement {res['token_agreement']:.3f}", flush=True)


def per_seed(raw, name, col, seeds) -> dict:
    return {s: raw["fid"][f"{name}|{s}"][col] for s in seeds if f"{name}|{s}" in raw["fid"]}


def fmt(vals, d) -> str:
    hw = half_width(vals)
    return f"{np.mean(vals):.{d}f}" + ("" if np.isnan(hw) else f" ± {hw:.{d}f}")


def report(args, raw) -> list[str]:
    lines = ["| Variant | knobs | params | train s | held-out MSE, 1 step | 2 steps | rank |",
             "| :--- | :--- | ---: | ---: | ---: | ---: | ---: |"]
    order = sorted(raw["screen"], key=lambda n: raw["screen"][n]["err2"])
    for name in VARIANTS:
        r = raw["screen"].get(name)
        if r is None:
            lines.append(f"| {name} | {json.dumps(VARIANTS[name])} | | | not run | | |")
            continue
        ts = r.get("train_seconds")
        lines.append(f"| {name} | `{json.dumps(r['knobs'])}` | {r['params']:,} | {'' if ts is None else f'{ts:.0f}'} | "
                     f"{r['err1']:.4f} | {r['err2']:.4f} | {order.index(name) + 1} |")
    lines += ["", "## Finalists: N = 16, B = 4, validation seeds " + ", ".join(map(str, args.seeds)), "",
              "| Variant | FID ↓ | tok. agr. ↑ | PSNR ↑ | GFLOPs ↓ | FID − default | agreement − default | seeds |",
              "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    winners = []
    if len(raw["screen"]) == len(VARIANTS):
        for name in finalists(raw):
            fid, agr = per_seed(raw, name, "fid", args.seeds), per_seed(raw, name, "token_agreement", args.seeds)
            if not fid:
                continue
            psnr, fl = per_seed(raw, name, "psnr", args.seeds), per_seed(raw, name, "gflops_per_image", args.seeds)
            diffs = []
            for col, better in (("fid", "min"), ("token_agreement", "max")):
                a, b = per_seed(raw, name, col, args.seeds), per_seed(raw, "default", col, args.seeds)
                common = sorted(set(a) & set(b))
                if name == "default" or len(common) < 2:
                    diffs.append(("–", None, 0.0))
                    continue
                d = [a[s] - b[s] for s in common]
                p = paired_p(a, b)
                diffs.append((f"{np.mean(d):+.3f} ± {half_width(d):.3f} (p = {p:.3f})", p, np.mean(d)))
            lines.append(f"| {name} | {fmt(list(fid.values()), 2)} | {fmt(list(agr.values()), 3)} | "
                         f"{fmt(list(psnr.values()), 2)} | {fmt(list(fl.values()), 3)} | {diffs[0][0]} | {diffs[1][0]} | "
                         f"{len(fid)} |")
            if name != "default" and all(p is not None for _, p, _ in diffs):
                (_, pf, df), (_, pa, da) = diffs
                better = (pf < ALPHA and df < 0) or (pa < ALPHA and da > 0)
                worse = (pf < ALPHA and df > 0) or (pa < ALPHA and da < 0)
                if better and not worse:
                    winners.append((np.mean(list(fid.values())), name))
    verdict = (f"**{min(winners)[1]}** replaces the default." if winners else
               "No finalist beats the default significantly on validation seeds: the default stays.")
    return lines + ["", f"Decision (rule 3 of the docstring): {verdict}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--cfg-w", type=float, default=1.0, help="guidance of sampler and trajectories")
    ap.add_argument("--out", type=Path, default=Path("results/shortcut_study_N16_B4"))
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    raw_path = args.out / "raw.json"
    raw = json.loads(raw_path.read_text()) if raw_path.exists() else {"screen": {}, "fid": {}}

    def save():
        raw_path.write_text(json.dumps(raw, indent=1))

    if not args.report_only:
        t = time.perf_counter()
        screen(args, raw, save)
        measure(args, raw, save)
        raw["wall_seconds"] = raw.get("wall_seconds", 0) + time.perf_counter() - t
        save()
    text = [
        f"# Shortcut study, N = {args.steps}, B = {args.budget}, guidance {args.cfg_w:g}",
        "",
        "Budget fixed before the run: 12 variants (the default and 11 single changes) screened on held-out "
        f"teacher trajectories ({HELD_OUT['n_images']} images, seed {HELD_OUT['seed']}, never trained on), then "
        f"FID for the default and the {FINALISTS} best others only ({args.n} samples, validation seeds). "
        "Held-out MSE: masked-position feature MSE of the shortcut chained 1 and 2 steps from a teacher feature "
        "with the teacher's tokens. Mean ± half-width of the 95% t-interval over seeds; differences to the default "
        f"are seed-paired (t-test). Wall time of the whole study: {raw.get('wall_seconds', 0) / 60:.0f} min on 2 cores.",
        "",
        "## Screen",
        "",
        *report(args, raw),
    ]
    write_with_command(text, str(args.out / "README.md"), "benchmarks/shortcut_study.py", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
