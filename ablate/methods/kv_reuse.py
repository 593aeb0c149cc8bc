"""Shared machinery of the position-level baselines (ml_cache, recap).

Full steps keep every layer's K/V and the logits/features of all positions. A cheap step runs the
base model on a few chosen positions only, attending to the cached K/V of all others; every other
position keeps its cached logits and feature. Subclasses choose the positions.
"""

from __future__ import annotations

import torch

from ablate.methods.base import Method


class KVReuse(Method):
    """Not a method of its own (no `name`): the cheap step of ml_cache and recap."""

    position_level = True

    def begin(self, model, batch_size):
        self.kv = self.logits = self.feature = None

    def full_step(self, model, state):
        logits, feature, kv = model(state.model_tokens(), state.model_labels(), return_kv=True)
        self.kv, self.logits, self.feature = kv, logits, feature
        self.observe(state, logits, feature)
        return logits, feature

    def choose(self, state) -> torch.Tensor:
        """(branches*B, P) positions to recompute at this cheap step."""
        raise NotImplementedError

    def skip_step(self, model, state):
        pos = self.choose(state)
        sub_logits, sub_feature, self.kv = model(
            state.model_tokens(), state.model_labels(), positions=pos, kv_cache=self.kv, return_kv=True
        )
        self.logits = self.logits.scatter(1, pos[..., None].expand(-1, -1, self.logits.shape[-1]), sub_logits)
        self.feature = self.feature.scatter(1, pos[..., None].expand(-1, -1, self.feature.shape[-1]), sub_feature)
        return self.logits, self.feature
