"""Teacher trajectories: what the vanilla sampler's base model computes at every step.

For each image: the feature of every step for both CFG branches (fp16), the final tokens and the
step at which each position was committed (generation order). Everything a training pair needs
follows: (f_s, tokens committed at s with their positions, mask ratio after s) -> f_{s+1}.
Stored as safetensors shards so training streams them instead of holding them all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ablate.progress import progress
from ablate.sampling import MaskGITSampler, SamplerConfig


@dataclass(frozen=True)
class TrajectoryConfig:
    n_images: int = 1200
    steps: int = 16  # N_train
    shard_size: int = 100
    seed: int = 1234
    cfg_w: float = 1.0
    r_temp: float = 7.0
    sm_temp: float = 1.0
    unmasking: str = "confidence"  # the sampler's order: a Halton-order trial never learns from confidence order


def record(base, cfg: TrajectoryConfig, out: Path) -> Path:
    """Run the vanilla sampler on random labels and write shards + index.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    sampler = MaskGITSampler(base, SamplerConfig(cfg.steps, cfg.cfg_w, cfg.r_temp, cfg.sm_temp, unmasking=cfg.unmasking))
    gen = torch.Generator().manual_seed(cfg.seed)
    shards = []
    bar = progress(range(0, cfg.n_images, cfg.shard_size), desc="teacher trajectories")
    for j, start in enumerate(bar):
        n = min(cfg.shard_size, cfg.n_images - start)
        labels = torch.randint(0, base.num_classes, (n,), generator=gen)
        feats = []

        def hook(state, step_out):
            feats.append(step_out.feature.to(torch.float16).view(state.branches, n, *step_out.feature.shape[1:]))

        res = sampler.sample(labels, gen, hooks=[hook])
        features = torch.stack(feats, dim=2).transpose(0, 1).contiguous()  # (n, branches, N, L, d)
        name = f"shard_{j:04d}.safetensors"
        save_file({"features": features.cpu(), "tokens": res.tokens.cpu(), "order": res.order.cpu(), "labels": labels},
                  str(out / name))
        shards.append(name)
    (out / "index.json").write_text(json.dumps({"config": asdict(cfg), "shards": shards}, indent=2))
    return out


class Trajectories:
    """Streams training pairs from the shards, one shard in memory at a time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text())
        self.cfg = TrajectoryConfig(**index["config"])
        self.shards = index["shards"]

    def load(self, i: int) -> dict:
        data = load_file(str(self.folder / self.shards[i]))
        data["features"] = data["features"].float()
        return data

    def batches(self, batch_size: int, rollout: int, gen: torch.Generator, device=None):
        """Endless stream of (shard data, image idx, branch idx, start step) with room for `rollout` steps.

        Indices come from the CPU generator `gen` whatever the device; the shard and indices are moved there.
        """
        N = self.cfg.steps
        while True:
            for i in torch.randperm(len(self.shards), generator=gen).tolist():
                data = self.load(i)
                if device is not None:
                    data = {k: v.to(device) for k, v in data.items()}
                n, branches = data["features"].shape[:2]
                per_shard = max(1, n * branches * (N - 1) // batch_size)
                for _ in range(per_shard):
                    img = torch.randint(0, n, (batch_size,), generator=gen)
                    br = torch.randint(0, branches, (batch_size,), generator=gen)
                    s = torch.randint(0, N - rollout, (batch_size,), generator=gen)
                    if device is not None:
                        img, br, s = img.to(device), br.to(device), s.to(device)
                    yield data, img, br, s
