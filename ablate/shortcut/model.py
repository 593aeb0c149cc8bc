"""The shortcut g: f_{t+1} = f_t + g(f_t, tokens sampled at t, mask ratio) (docs/method.md).

features d -> d/r and new-token embeddings (a frozen copy of the base's token + position
embedding) d -> d/r; n_block x {[cross-attention to the new tokens + FFN], [self-attention + FFN]},
pre-LN; LayerNorm -> Linear -> GELU -> LayerNorm; adaptive scale/shift from a sinusoidal
embedding of mask_ratio*1000; d/r -> d, zero-initialised so an untrained shortcut is feature caching.

Ablations: use_tokens=False drops the cross-attention and the token input; time_embed=False drops
the scale/shift; n_block=0 has no attention at all: the new tokens' embeddings are then averaged and
added to every position (a position-wise model cannot otherwise see them at the masked positions,
which are the only ones the loss and the sampler look at).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ShortcutConfig:
    n_block: int = 1
    use_tokens: bool = True
    bottleneck: int = 2  # r: width d/r
    time_embed: bool = True
    heads: int = 2
    mlp_ratio: float = 2.0


class _Attn(nn.Module):
    def __init__(self, w: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.o = nn.Linear(w, w), nn.Linear(w, 2 * w), nn.Linear(w, w)

    def forward(self, x, ctx, valid=None):
        """valid (b, keys) bool: which keys of ctx are real (None: all of them)."""
        b, n, w = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, w // h).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, h, w // h).permute(2, 0, 3, 1, 4)
        mask = None if valid is None else valid[:, None, None, :]
        return self.o(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, w))


class _FFN(nn.Sequential):
    def __init__(self, w: int, ratio: float):
        super().__init__(nn.LayerNorm(w), nn.Linear(w, int(w * ratio)), nn.GELU(), nn.Linear(int(w * ratio), w))


class _Block(nn.Module):
    def __init__(self, w: int, cfg: ShortcutConfig):
        super().__init__()
        self.cross = None
        if cfg.use_tokens:
            self.norm_x, self.norm_c = nn.LayerNorm(w), nn.LayerNorm(w)
            self.cross, self.ffn1 = _Attn(w, cfg.heads), _FFN(w, cfg.mlp_ratio)
        self.norm_s = nn.LayerNorm(w)
        self.self_attn, self.ffn2 = _Attn(w, cfg.heads), _FFN(w, cfg.mlp_ratio)

    def forward(self, x, ctx, valid=None):
        if self.cross is not None and ctx is not None and ctx.shape[1] > 0:
            x = x + self.cross(self.norm_x(x), self.norm_c(ctx), valid)
            x = x + self.ffn1(x)
        h = self.norm_s(x)
        x = x + self.self_attn(h, h)
        return x + self.ffn2(x)


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Shortcut(nn.Module):
    def __init__(self, cfg: ShortcutConfig, tok_emb: torch.Tensor, pos_emb: torch.Tensor):
        """tok_emb (V+1, d) and pos_emb (L, d): copies of the base model's, kept frozen."""
        super().__init__()
        self.cfg = cfg
        d = tok_emb.shape[1]
        w = d // cfg.bottleneck
        self.register_buffer("tok_emb", tok_emb.detach().float().clone())
        self.register_buffer("pos_emb", pos_emb.detach().float().clone())
        self.inp = nn.Linear(d, w)
        self.tok_in = nn.Linear(d, w) if cfg.use_tokens else None
        self.blocks = nn.ModuleList(_Block(w, cfg) for _ in range(cfg.n_block))
        self.post = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, w), nn.GELU(), nn.LayerNorm(w))
        self.time = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, 2 * w)) if cfg.time_embed else None
        if self.time is not None:
            nn.init.zeros_(self.time[-1].weight)
            nn.init.zeros_(self.time[-1].bias)
        self.out = nn.Linear(w, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feature, new_tokens, new_positions, mask_ratio, new_valid=None):
        """feature (R, L, d); new_tokens/new_positions (R, k) committed at the previous step; mask_ratio (R,).

        new_valid (R, k) bool marks real entries where rows commit different counts (training pads them);
        None (sampling: every row commits the same count) means all are real.
        Returns the predicted next feature (R, L, d).
        """
        x = self.inp(feature)
        ctx = None
        if self.tok_in is not None and new_tokens.shape[1] > 0:
            ctx = self.tok_in(self.tok_emb[new_tokens] + self.pos_emb[new_positions])
            if not self.blocks:  # no attention: a pooled summary of the new tokens, at every position
                if new_valid is None:
                    x = x + ctx.mean(1, keepdim=True)
                else:
                    w = new_valid[..., None].to(ctx.dtype)
                    x = x + (ctx * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)
        for block in self.blocks:
            x = block(x, ctx, new_valid)
        x = self.post(x)
        if self.time is not None:
            scale, shift = self.time(sinusoidal(mask_ratio * 1000, x.shape[-1])).chunk(2, dim=-1)
            x = x * (1 + scale[:, None]) + shift[:, None]
        return feature + self.out(x)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
