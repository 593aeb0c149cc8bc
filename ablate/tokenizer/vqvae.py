"""A small VQ-VAE (EMA codebook): 28x28x1 -> 7x7 code ids in [0, K) -> 28x28x1.

`downsample` = 1 keeps a 14x14 grid instead (196 tokens: the longer sequence of the scaling study
and of `mnist14`); the layers keep their names, so the 7x7 weights load as they always did.

EMA codebook updates (van den Oord et al., 2017, appendix) and restarting unused codes from
the batch keep every code alive, which the base model's vocabulary relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ablate.errors import AblateError
from ablate.progress import progress


@dataclass(frozen=True)
class VQVAEConfig:
    codebook_size: int = 128
    code_dim: int = 16
    hidden: int = 32
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    commitment: float = 0.25
    ema_decay: float = 0.99
    seed: int = 0
    downsample: int = 2  # stride-2 stages: 2 -> 7x7 tokens, 1 -> 14x14


def _res(ch: int) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 1))


class _Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = _res(ch)

    def forward(self, x):
        return x + self.body(x)


class VQVAE(nn.Module):
    """encode(images float [0,1]) -> codes (B, g, g), g = grid; decode(codes) -> images float [0,1]."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        h, d, k = cfg.hidden, cfg.code_dim, cfg.codebook_size
        if cfg.downsample not in (1, 2):
            raise AblateError(f"tokenizer.downsample: must be 1 (14x14 tokens) or 2 (7x7), got {cfg.downsample}")
        two = cfg.downsample == 2
        self.encoder = nn.Sequential(
            nn.Conv2d(1, h, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.Conv2d(h, 2 * h, 4, 2, 1) if two else nn.Conv2d(h, 2 * h, 3, 1, 1),  # 7x7 (or 14x14)
            _Residual(2 * h), _Residual(2 * h), nn.ReLU(),
            nn.Conv2d(2 * h, d, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(d, 2 * h, 3, padding=1),
            _Residual(2 * h), _Residual(2 * h), nn.ReLU(),
            nn.ConvTranspose2d(2 * h, h, 4, 2, 1) if two else nn.Conv2d(2 * h, h, 3, 1, 1), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(h, 1, 4, 2, 1),  # 28x28
        )
        self.register_buffer("codebook", torch.randn(k, d) * 0.1)
        self.register_buffer("ema_count", torch.ones(k))
        self.register_buffer("ema_sum", self.codebook.clone())

    @property
    def grid(self) -> int:
        return 28 // 2 ** self.cfg.downsample

    def _nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d, H, W) -> code ids (B, H, W)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        return dist.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 1, 28, 28) in [0, 1] -> code ids (B, grid, grid) int64."""
        return self._nearest(self.encoder(images * 2 - 1))

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook[codes].permute(0, 3, 1, 2)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """code ids (B, grid, grid) or (B, grid**2) -> images float (B, 1, 28, 28) in [0, 1]."""
        if codes.dim() == 2:
            codes = codes.view(codes.shape[0], self.grid, self.grid)
        return torch.sigmoid(self.decoder(self.embed(codes)))

    def training_loss(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction + commitment loss; updates the EMA codebook. Returns (loss, codes)."""
        z = self.encoder(images * 2 - 1)
        codes = self._nearest(z)
        q = self.embed(codes)
        self._ema_update(z.detach(), codes)
        z_q = z + (q - z).detach()  # straight-through
        recon = self.decoder(z_q)
        loss = F.binary_cross_entropy_with_logits(recon, images) + self.cfg.commitment * F.mse_loss(z, q.detach())
        return loss, codes

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        onehot = F.one_hot(codes.flatten(), self.cfg.codebook_size).type_as(flat)
        decay = self.cfg.ema_decay
        self.ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(onehot.t() @ flat, alpha=1 - decay)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.cfg.codebook_size * 1e-5) * n
        self.codebook.copy_(self.ema_sum / count[:, None])
        # Restart codes that fell out of use (under ~1 use per batch) at encoder outputs of this batch.
        dead = torch.nonzero(self.ema_count < 1.0).flatten()
        if len(dead):
            pick = flat[torch.arange(len(dead), device=flat.device) * 7 % len(flat)]
            self.codebook[dead] = pick
            self.ema_sum[dead] = pick
            self.ema_count[dead] = 1.0


def train_vqvae(images: torch.Tensor, cfg: VQVAEConfig, desc: str = "tokenizer", device=None) -> VQVAE:
    """Train on uint8 images (N, 1, 28, 28); deterministic for a fixed cfg.seed and thread count.

    Batches are drawn with a CPU generator whatever the device, so the data order never depends on it.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device or "cpu")
    model = VQVAE(cfg).to(dev)
    x = (images.float() / 255.0).to(dev)
    init = torch.randperm(len(x), generator=gen)[: cfg.codebook_size * 4]
    with torch.no_grad():  # start the codebook at encoder outputs of real images
        z = model.encoder(x[init.to(dev)] * 2 - 1).permute(0, 2, 3, 1).reshape(-1, cfg.code_dim)
        pick = z[torch.randperm(len(z), generator=gen)[: cfg.codebook_size].to(dev)]
        model.codebook.copy_(pick)
        model.ema_sum.copy_(pick)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    model.train()
    bar = progress(range(cfg.steps), desc=desc)
    for step in bar:
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen).to(dev)
        loss, codes = model.training_loss(x[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", codes=int(codes.unique().numel()))
    model.eval()
    return model.cpu()
