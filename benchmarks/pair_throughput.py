"""Training throughput of the shortcut: mixed-step padded batches (what training does) against one step per
batch, timed interleaved on the same shard so machine load hits both alike.

    python benchmarks/pair_throughput.py --rounds 20 --out results/pair_throughput/pair_throughput.md

Uses the default training config's teacher trajectories (from the store; recorded first if missing).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ablate import pretrained
from ablate.models.protocol import token_table
from ablate.shortcut.cache import trajectories_for
from ablate.shortcut.model import Shortcut, ShortcutConfig
from ablate.shortcut.train import TrainConfig, shortcut_loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--steps-per-round", type=int, default=10)
    ap.add_argument("--out", default=None, help="Markdown file to write (with a manifest.json in its folder)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    base = pretrained.load("mnist").base
    cfg = TrainConfig()
    data = trajectories_for(base, cfg.trajectories).load(0)
    n, branches, steps = data["features"].shape[:3]
    net = Shortcut(ShortcutConfig(), token_table(base), base.position_embedding())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)

    def step(mixed: bool) -> None:
        b = cfg.batch_size
        img, br = torch.randint(0, n, (b,), generator=gen), torch.randint(0, branches, (b,), generator=gen)
        hi = steps - cfg.rollout
        s = torch.randint(0, hi, (b,), generator=gen) if mixed else torch.full((b,), int(torch.randint(0, hi, (1,), generator=gen)))
        loss = shortcut_loss(net, base, data, img, br, s, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()

    times = {True: [], False: []}
    for r in range(args.rounds):
        for mixed in ((True, False) if r % 2 else (False, True)):
            t = time.perf_counter()
            for _ in range(args.steps_per_round):
                step(mixed)
            times[mixed].append((time.perf_counter() - t) / args.steps_per_round)
    a, b = statistics.median(times[True]), statistics.median(times[False])
    text = (f"mixed-step padded: {1 / a:.1f} it/s; one step per batch: {1 / b:.1f} it/s; ratio {b / a:.2f} "
            f"({args.rounds} interleaved rounds of {args.steps_per_round} steps, batch {cfg.batch_size}, rollout "
            f"{cfg.rollout}, {torch.get_num_threads()} threads)")
    print(text)
    if args.out:
        import sys
        from pathlib import Path

        from ablate.study.manifest import write_tool_manifest

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        cmd = "python benchmarks/pair_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
        Path(args.out).write_text(f"{text}\n\n`{cmd}`\n")
        write_tool_manifest(Path(args.out), cmd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
