"""Device helpers shared by the sampler's timer and the cost measures."""

from __future__ import annotations

import torch


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work so a timer measures it (a no-op on CPU)."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()
