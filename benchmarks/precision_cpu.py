"""What bf16 autocast buys and costs on this CPU: images per second against fp32, and fidelity to the fp32 run with
the same seeds and labels (a timing tool).

    python benchmarks/precision_cpu.py --n-samples 500 --seeds 0 1 2 --out results/throughput/precision_cpu.md

For each setting (vanilla N=16, the shortcut at B=4) and seed, fp32 and bf16 sample the same labels and noise back to
back (their order alternating by seed, so machine load hits both alike). Reported per setting: the images-per-second
ratio bf16/fp32 (median and range over seeds), token agreement of the bf16 run with the fp32 run, and the paired FID
difference bf16 - fp32 against the held-out reference, mean and 95% t-interval over the seeds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from analysis.stats import half_width, interval
from ablate.data import load_dataset
from ablate.evaluate import EvalConfig, setup
from ablate.metrics import quality
from ablate.study.manifest import write_tool_output

SETTINGS = [("vanilla", None), ("shortcut", 4)]


def run(method: str, budget, amp: str, seed: int, n: int, batch_size: int, ref: torch.Tensor) -> dict:
    st = setup(EvalConfig(method=method, steps=16, budget=budget, n_samples=n, seed=seed, device="cpu", amp=amp,
                          batch_size=batch_size), log=lambda *_: None)
    st.sampler.generate(st.labels[:2], seed + 10**6, 2, st.method)  # warm-up
    t = time.perf_counter()
    tokens = st.sampler.generate(st.labels, seed, batch_size, st.method).tokens.cpu()
    secs = time.perf_counter() - t
    feats = quality.features(st.bundle.decode(tokens), st.bundle, "classifier")
    return {"tokens": tokens, "images_per_s": n / secs, "fid": quality.score(feats, ref, prc=False)["fid"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=500)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--out", default=None, help="Markdown file to write (a manifest is written beside it)")
    args = p.parse_args(argv)
    command = "python benchmarks/precision_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    from ablate import pretrained

    bundle = pretrained.load("mnist")
    man = bundle.manifest["config"]
    _, held = load_dataset("mnist").split(man["held_out"], seed=man["seed"])
    ref = quality.reference_features(held.images, bundle, "classifier")
    lines = [f"# bf16 autocast against fp32 on this CPU ({args.n_samples} samples a run, seeds "
             f"{', '.join(map(str, args.seeds))})", "", f"Command: `{command}`", "",
             f"CPU threads: {torch.get_num_threads()}. Speed ratio: images per second of bf16 over fp32, the same "
             "trial back to back (median, range over seeds). Agreement: share of tokens the bf16 run samples as the "
             "fp32 run does (same seeds and labels). FID: bf16 - fp32, paired by seed, 95% t-interval.", "",
             "| setting | speed ratio bf16/fp32 | token agreement with fp32 | FID fp32 | FID bf16 - fp32 |",
             "|---|---:|---:|---:|---:|"]
    for method, budget in SETTINGS:
        ratio, agree, fid32, dfid = [], [], [], []
        for i, seed in enumerate(args.seeds):
            order = ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")
            r = {amp: run(method, budget, amp, seed, args.n_samples, args.batch_size, ref) for amp in order}
            ratio.append(r["bf16"]["images_per_s"] / r["fp32"]["images_per_s"])
            agree.append(float((r["bf16"]["tokens"] == r["fp32"]["tokens"]).float().mean()))
            fid32.append(r["fp32"]["fid"])
            dfid.append(r["bf16"]["fid"] - r["fp32"]["fid"])
            print(f"{method} B={budget} seed {seed}: ratio {ratio[-1]:.2f}, agreement {agree[-1]:.4f}, "
                  f"FID fp32 {fid32[-1]:.2f}, bf16 - fp32 {dfid[-1]:+.2f}", flush=True)
        name = method if budget is None else f"{method} B={budget}"
        lines.append(f"| {name} N=16 | {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f}) | "
                     f"{statistics.mean(agree):.4f} ({min(agree):.4f}-{max(agree):.4f}) | "
                     f"{statistics.mean(fid32):.2f} | {interval(statistics.mean(dfid), half_width(dfid), sign='+')} |")
    print("\n".join(lines))
    if args.out:
        write_tool_output(args.out, lines, command,
                          {"what": "timing and fidelity: bf16 autocast against fp32 on this CPU",
                           "n_samples": args.n_samples, "seeds": args.seeds, "batch_size": args.batch_size})
    return 0


if __name__ == "__main__":
    sys.exit(main())
