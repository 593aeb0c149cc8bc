"""The native base model: a class-conditional bidirectional transformer (MaskGIT).

x = tok_emb(tokens) + pos_emb + cls_emb(label)  ->  depth x [pre-LN attention + MLP]
  -> LayerNorm = "the feature"  ->  head (one Linear) = logits over the codebook.

Two extras serve the position-level baselines: `return_kv=True` hands back every layer's K/V,
and `positions=` computes only those positions, attending to `kv_cache` for all others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ablate.models.protocol import KVCache


@dataclass(frozen=True)
class MaskGITConfig:
    vocab_size: int = 128  # codebook size of the tokenizer
    seq_len: int = 49  # 7x7 tokens
    num_classes: int = 10
    dim: int = 128
    depth: int = 12  # deep next to the shortcut: one shortcut step must cost a few % of a base step
    heads: int = 4
    mlp_ratio: float = 4.0
    label_drop: float = 0.1  # label dropout during training, for classifier-free guidance


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x, positions=None, cache=None):
        """x: (B, P, d) hidden states of `positions` (all positions when None).

        Returns (x, (k, v)) where k, v cover every position: fresh for the computed ones,
        taken from `cache` for the rest.
        """
        b, p, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, p, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if positions is not None:
            idx = positions[:, None, :, None].expand(-1, self.heads, -1, d // self.heads)
            k = cache[0].scatter(2, idx, k)
            v = cache[1].scatter(2, idx, v)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, p, d))
        x = x + self.mlp(self.norm2(x))
        return x, (k, v)


class MaskGIT(nn.Module):
    supports_positions = True  # forward(positions=, kv_cache=, return_kv=) for ml_cache / recap

    def __init__(self, cfg: MaskGITConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = cfg.vocab_size
        self.mask_id = cfg.vocab_size
        self.seq_len = cfg.seq_len
        self.num_classes = cfg.num_classes
        self.dim = cfg.dim
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, cfg.dim)  # + mask token
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.dim))
        self.cls_emb = nn.Embedding(cfg.num_classes + 1, cfg.dim)  # + null label
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.vocab_size)
        self.apply(self._init)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def null_label(self) -> int:
        return self.num_classes

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.tok_emb(tokens)

    def position_embedding(self) -> torch.Tensor:
        """(L, d) learned position embedding."""
        return self.pos_emb[0]

    def head(self, feature: torch.Tensor) -> torch.Tensor:
        """Feature (..., d) -> logits (..., vocab_size)."""
        return self.out(feature)

    def forward(
        self,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        drop_label: Optional[torch.Tensor] = None,
        *,
        positions: Optional[torch.Tensor] = None,
        kv_cache: Optional[KVCache] = None,
        return_kv: bool = False,
    ):
        """tokens (B, L) with mask_id at masked places; labels (B,); drop_label (B,) bool -> null label.

        positions (B, P): compute only these positions against kv_cache (required then).
        Returns (logits, feature) over the computed positions, plus the updated K/V if return_kv.
        """
        if drop_label is not None:
            labels = torch.where(drop_label, torch.full_like(labels, self.null_label), labels)
        pos = self.pos_emb.expand(tokens.shape[0], -1, -1)
        if positions is not None:
            if kv_cache is None:
                raise ValueError("positions= needs kv_cache= (the K/V of every other position)")
            tokens = tokens.gather(1, positions)
            pos = pos.gather(1, positions[..., None].expand(-1, -1, self.dim))
        x = self.tok_emb(tokens) + pos + self.cls_emb(labels)[:, None, :]
        new_kv: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, positions, kv_cache[i] if positions is not None else None)
            new_kv.append(kv)
        feature = self.norm(x)
        logits = self.head(feature)
        if return_kv:
            return logits, feature, new_kv
        return logits, feature

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
