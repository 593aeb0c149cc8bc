"""The contract between the sampler and whatever decides a step's work: `StepPolicy` (as a diffusers
scheduler is apart from its model, the sampler owns the loop and asks the policy).

At every step the sampler builds a `StepState`, asks `is_full(state)`, calls `full_step` or `skip_step` for
(logits, feature), turns the logits into a sampled token and a confidence per position, then asks
`commit(state, confidence, count)` which still-masked positions take their sampled token. It lives here, low
in the stack, so that methods (above) implement it and the sampler imports nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import torch


@dataclass
class StepState:
    """What the sampler knows at the start of step `step` (before this step's commits)."""

    step: int
    steps: int
    tokens: torch.Tensor  # (B, L), mask_id where still masked
    labels: torch.Tensor  # (B,)
    mask: torch.Tensor  # (B, L) bool, True = still masked
    committed_prev: torch.Tensor  # (B, L) bool, positions committed at the previous step
    mask_id: int
    null_label: int
    branches: int  # 2 with classifier-free guidance ([cond; uncond]), else 1
    is_full: bool = True
    sampled_logp: Optional[torch.Tensor] = None  # (B, L) log-probability of each position's sampled token (commit)

    @property
    def mask_ratio(self) -> float:
        return float(self.mask.float().mean())

    def model_tokens(self) -> torch.Tensor:
        return self.tokens.repeat(self.branches, 1)

    def model_labels(self) -> torch.Tensor:
        if self.branches == 1:
            return self.labels
        return torch.cat([self.labels, torch.full_like(self.labels, self.null_label)])


@dataclass
class StepOutput:
    """What a step produced; hooks receive it (trajectory recording, feature error)."""

    logits: torch.Tensor  # (branches*B, L, V) before guidance
    feature: torch.Tensor  # (branches*B, L, d)
    sampled: torch.Tensor  # (B, L) sampled token at every position (only masked ones are kept)
    committed: torch.Tensor  # (B, L) bool, positions committed at this step


def confidence_top_k(state: StepState, confidence: torch.Tensor, count: int) -> torch.Tensor:
    """MaskGIT's commit rule: the `count` still-masked positions of highest confidence, per row."""
    conf = confidence.masked_fill(~state.mask, float("-inf"))
    top = conf.topk(min(count, conf.shape[1]), dim=-1).indices
    return torch.zeros_like(state.mask).scatter_(1, top, True) & state.mask


@runtime_checkable
class StepPolicy(Protocol):
    """Which steps are full, what a cheap step returns, and which tokens a step commits."""

    steps: int  # the steps the sampler runs for it

    def begin(self, model, batch_size: int) -> None:
        """Before each batch: drop state carried from the previous one."""

    def is_full(self, state: StepState) -> bool:
        """Run the base model at this step?"""

    def full_step(self, model, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, feature) of the base model; the policy may keep what it needs."""

    def skip_step(self, model, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, feature) without the full base model."""

    def commit(self, state: StepState, confidence: torch.Tensor, count: int) -> torch.Tensor:
        """(B, L) bool: the still-masked positions that take their sampled token at this step; `count` is what
        the mask schedule asks for (`confidence_top_k` is MaskGIT's rule)."""


class Unaccelerated:
    """Every step a full step of the base model, MaskGIT's commit rule: what the sampler runs without a method."""

    def __init__(self, steps: int):
        self.steps = steps

    def begin(self, model, batch_size: int) -> None:
        pass

    def is_full(self, state: StepState) -> bool:
        return True

    def full_step(self, model, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        return model(state.model_tokens(), state.model_labels())

    def skip_step(self, model, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("the unaccelerated policy has no cheap step")

    def commit(self, state: StepState, confidence: torch.Tensor, count: int) -> torch.Tensor:
        return confidence_top_k(state, confidence, count)
