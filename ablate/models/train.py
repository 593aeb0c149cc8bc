"""Training of the native base model on token grids (masked-token cross-entropy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ablate.models.maskgit import MaskGIT, MaskGITConfig
from ablate.progress import progress


@dataclass(frozen=True)
class BaseTrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.03
    warmup: int = 100
    seed: int = 0


def random_mask(codes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mask a fraction arccos(u)/(pi/2) of each row (at least one position), as at sampling time."""
    b, L = codes.shape
    ratio = torch.arccos(torch.rand(b, generator=gen)) / (math.pi / 2)
    n_mask = (ratio * L).ceil().clamp(1, L).long()
    rank = torch.rand(b, L, generator=gen).argsort(1).argsort(1)
    return rank < n_mask[:, None]


def adamw_warmup_cosine(model, cfg, no_decay_key: str):
    """AdamW (no weight decay on biases, norms and embeddings) with linear warm-up then cosine decay.

    cfg needs lr, weight_decay, warmup and steps; shared by the native and the transformers trainers.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or no_decay_key in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * t))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def train_maskgit(
    codes: torch.Tensor, labels: torch.Tensor, model_cfg: MaskGITConfig, cfg: BaseTrainConfig, desc: str = "base model",
    device=None,
) -> MaskGIT:
    """codes (N, L) int64 token grids of the training images, labels (N,).

    Batches and masks come from a CPU generator whatever the device (the same data order on a GPU).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device or "cpu")
    model = MaskGIT(model_cfg).to(dev)
    opt, sched = adamw_warmup_cosine(model, cfg, no_decay_key="emb")
    model.train()
    bar = progress(range(cfg.steps), desc=desc)
    for step in bar:
        idx = torch.randint(len(codes), (cfg.batch_size,), generator=gen)
        x, y = codes[idx], labels[idx]
        mask = random_mask(x, gen)
        drop = torch.rand(len(y), generator=gen) < model_cfg.label_drop
        x, y, mask, drop = x.to(dev), y.to(dev), mask.to(dev), drop.to(dev)
        logits, _ = model(x.masked_fill(mask, model.mask_id), y, drop)
        loss = F.cross_entropy(logits[mask], x[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model.cpu()
