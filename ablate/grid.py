"""Sample grids: one row per class, written as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def class_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int, pad: int = 2, scale: int = 2) -> Image.Image:
    """uint8 images (N, 1, H, W) -> grid with class c in row c, in the order they come."""
    rows = [torch.nonzero(labels == c).flatten().tolist() for c in range(num_classes)]
    cols = max(1, max(len(r) for r in rows))
    h, w = images.shape[-2:]
    canvas = np.full((num_classes * (h + pad) + pad, cols * (w + pad) + pad), 40, dtype=np.uint8)
    for c, idx in enumerate(rows):
        for j, i in enumerate(idx):
            y, x = pad + c * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = images[i, 0].numpy()
    img = Image.fromarray(canvas, mode="L")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def save_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    class_grid(images, labels, num_classes).save(out)
    return out
