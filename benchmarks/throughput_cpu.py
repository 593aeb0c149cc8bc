"""Images per second on this CPU by batch size, thread count and torch.compile, and whether two torch processes
sharing the cores oversubscribe them (a timing tool: run it on an idle machine, never beside a sweep).

    python benchmarks/throughput_cpu.py --n-samples 500 --rounds 2 --out results/throughput/throughput_cpu.md

For each setting (vanilla N=16, the shortcut at B=4) every configuration samples the same labels and seed; rounds
interleave the configurations (their order reversed every other round) so machine load hits all alike. Reported: the
median images per second over rounds, its ratio to the default configuration measured in the same rounds (batch
250, 2 threads, eager), the compile seconds a compiled configuration's first call took beyond an eager first call
(a trial pays them once), and the share of tokens it samples as the default does (compiled kernels may round
differently; only a configuration of the default's batch size draws the same noise). "2 processes x 1 thread" runs
two copies at once, one thread each: its images per second is both together, what a sweep with
`resources: {cpu: 1}` and two trials at a time gets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

SETTINGS = [("vanilla", None), ("shortcut", 4)]
DEFAULT = (250, 2, False)
CONFIGS = [(100, 2, False), (250, 2, False), (500, 2, False), (250, 1, False), (250, 2, True)]


def _setup(method, budget, n, batch_size, threads, compile_):
    from ablate.evaluate import EvalConfig, setup

    torch.set_num_threads(threads)
    st = setup(EvalConfig(method=method, steps=16, budget=budget, n_samples=n, batch_size=batch_size, device="cpu"),
               log=lambda *_: None)
    t = time.perf_counter()
    if compile_:
        st.base.forward = torch.compile(st.base.forward)
        net = getattr(st.method, "net", None)
        if net is not None:
            net.forward = torch.compile(net.forward)
    first_batch = min(batch_size, n)
    st.sampler.generate(st.labels[:first_batch], 10**6, batch_size, st.method)  # warm-up (and compile) at full batch
    return st, time.perf_counter() - t


def run(method, budget, n, batch_size, threads, compile_, seed=0) -> dict:
    st, first = _setup(method, budget, n, batch_size, threads, compile_)
    t = time.perf_counter()
    tokens = st.sampler.generate(st.labels, seed, batch_size, st.method).tokens.cpu()
    return {"images_per_s": n / (time.perf_counter() - t), "first_call_s": first, "tokens": tokens}


def two_processes(method, budget, n, batch_size) -> float:
    """Two copies at once, one thread each: images per second of both together."""
    code = ("import sys, torch; sys.path.insert(0, %r); from benchmarks.throughput_cpu import run; "
            "run(%r, %r, %d, %d, 1, False)" % (str(Path(__file__).resolve().parents[1]), method, budget, n, batch_size))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]
    if any(p.wait() for p in procs):
        raise RuntimeError("a benchmark process failed")
    return 2 * n / (time.perf_counter() - t)  # set-up of both included: an upper bound on its cost


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=500, help="at least the largest batch (500)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=None, help="Markdown file to write (a manifest is written beside it)")
    args = p.parse_args(argv)
    if args.n_samples < max(c[0] for c in CONFIGS):
        p.error(f"--n-samples: at least {max(c[0] for c in CONFIGS)} (the largest batch), got {args.n_samples}")
    command = "python benchmarks/throughput_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    def name(c):
        return f"batch {c[0]}, {c[1]} thread{'s' if c[1] > 1 else ''}, {'compiled' if c[2] else 'eager'}"

    lines = [f"# Images per second on this CPU by batch size, threads and torch.compile ({args.n_samples} samples a "
             f"run, {args.rounds} interleaved rounds)", "", f"Command: `{command}`", "",
             "Median images/s over rounds; ratio to batch 250, 2 threads, eager in the same rounds (median of the "
             "per-round ratios); compile: seconds the first call took beyond an eager first call; agreement: share "
             "of tokens sampled as the default configuration samples them (same seed and labels). The last row runs "
             "two processes of one thread each at once (both counted, their set-up included).", "",
             "| setting | configuration | images/s | ratio to default | compile s | token agreement |",
             "|---|---|---:|---:|---:|---:|"]
    for method, budget in SETTINGS:
        res = {c: [] for c in CONFIGS + ["2x1"]}
        for r in range(args.rounds):
            order = CONFIGS + ["2x1"] if r % 2 == 0 else list(reversed(CONFIGS + ["2x1"]))
            for c in order:
                if c == "2x1":
                    res[c].append({"images_per_s": two_processes(method, budget, args.n_samples, 250)})
                else:
                    res[c].append(run(method, budget, args.n_samples, *c))
                print(method, c, f"{res[c][-1]['images_per_s']:.1f} images/s", flush=True)
        label = method if budget is None else f"{method} B={budget}"
        eager_first = statistics.median(x["first_call_s"] for x in res[DEFAULT])
        for c in CONFIGS + ["2x1"]:
            ips = statistics.median(x["images_per_s"] for x in res[c])
            ratio = statistics.median(x["images_per_s"] / d["images_per_s"] for x, d in zip(res[c], res[DEFAULT]))
            if c == "2x1":
                lines.append(f"| {label} N=16 | 2 processes x 1 thread, batch 250 | {ips:.1f} | {ratio:.2f} "
                             "| – | – |")
                continue
            comp = statistics.median(x["first_call_s"] for x in res[c]) - eager_first if c[2] else None
            agree = (f"{float((res[c][0]['tokens'] == res[DEFAULT][0]['tokens']).float().mean()):.4f}"
                     if c[0] == DEFAULT[0] else "–")  # another batch size draws other noise (batch j: seed (seed, j))
            lines.append(f"| {label} N=16 | {name(c)} | {ips:.1f} | {ratio:.2f} | "
                         f"{'–' if comp is None else f'{comp:.1f}'} | {agree} |")
    print("\n".join(lines))
    if args.out:
        from ablate.study.manifest import write_tool_output

        write_tool_output(args.out, lines, command,
                          {"what": "timing: images per second by batch size, threads and torch.compile on this CPU",
                           "n_samples": args.n_samples, "rounds": args.rounds, "seed": 0,
                           "cpu_count": os.cpu_count()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
