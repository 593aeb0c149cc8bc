"""What the sampler and methods may assume of a base model.

Feature-level methods need only `forward`, `head` and the embeddings; position-level ones
(ml_cache, recap) also need `forward(..., positions=, kv_cache=)`, which the native model offers.
"""

from __future__ import annotations

from typing import Optional, Protocol

import torch

# One (keys, values) pair per layer, each (B, heads, L, head_dim).
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class BaseModel(Protocol):
    vocab_size: int  # number of real token ids; the mask id is vocab_size
    mask_id: int
    seq_len: int
    num_classes: int  # the null (unconditional) label is num_classes
    dim: int

    def forward(
        self,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        drop_label: Optional[torch.Tensor] = None,
        *,
        positions: Optional[torch.Tensor] = None,
        kv_cache: Optional[KVCache] = None,
        return_kv: bool = False,
    ): ...

    def head(self, feature: torch.Tensor) -> torch.Tensor: ...

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def position_embedding(self) -> torch.Tensor: ...


def token_table(base) -> torch.Tensor:
    """(vocab_size + 1, d) fp32: the base's embedding of every image token id and of the mask id.

    What the shortcut copies (frozen) to embed newly sampled tokens; for the native model it is exactly
    `tok_emb.weight`, for an adapter whatever its `token_embedding` maps image ids to.
    """
    from ablate.device import model_device

    ids = torch.arange(base.vocab_size + 1, device=model_device(base))
    with torch.no_grad():
        return base.token_embedding(ids).float()
