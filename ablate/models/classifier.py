"""The dataset's evaluation classifier: judges class accuracy and gives 128-d features for FID."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ablate.progress import progress


@dataclass(frozen=True)
class ClassifierConfig:
    num_classes: int = 10
    feature_dim: int = 128
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


class Classifier(nn.Module):
    """3 conv + fc128 (about 0.46M parameters, cheap on a CPU); input float (B, 1, 28, 28) in [0, 1]."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(64 * 7 * 7, cfg.feature_dim)
        self.out = nn.Linear(cfg.feature_dim, cfg.num_classes)
        self.drop = nn.Dropout(0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d penultimate activations used as the FID feature space."""
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        self.eval()
        return torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        return (self.predict(x) == labels).float().mean().item()


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation by up to max_shift pixels: cheap augmentation that helps on generated digits."""
    pad = F.pad(x, (max_shift,) * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


def train_classifier(images: torch.Tensor, labels: torch.Tensor, cfg: ClassifierConfig, desc: str = "classifier",
                     device=None):
    """images uint8 (N, 1, 28, 28); deterministic for a fixed seed and thread count (batches from a CPU generator)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device or "cpu")
    model = Classifier(cfg).to(dev)
    x = images.float() / 255.0
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    model.train()
    bar = progress(range(cfg.steps), desc=desc)
    for step in bar:
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen)
        loss = F.cross_entropy(model(_shift(x[idx], gen).to(dev)), labels[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model.cpu()
