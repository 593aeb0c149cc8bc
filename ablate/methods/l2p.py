"""l2p: L2P, a data-driven linear predictor of the feature from the cached features of past full steps.

At a skipped step t, f(t) = sum_j w[t, j] f(t_j) over the last `history` full steps t_j < t, with weights
fitted by least squares (MSE) on teacher trajectories of this very (N, B) schedule, as the paper does.
`granularity: channel` fits one weight per channel (per step and source) instead of one scalar.

Fit: over the positions still masked at t (the only ones whose logits sampling reads), the normal equations
summed over the trajectories' images and guidance branches, with a ridge relative to their mean diagonal.
The trajectories are the shortcut's store entries (recorded at the sampler's guidance, N steps), so the two
methods share them; the fitted weights are a store entry of their own, keyed by schedule, knobs and base.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Iterable, Literal

import torch
from pydantic import Field

from ablate.methods.base import Knobs, Method
from ablate.shortcut.train import TRAINING_FORMAT


def sources(full: set[int], t: int, history: int) -> list[int]:
    """The last `history` full steps before t (increasing)."""
    return sorted(s for s in full if s < t)[-history:]


def fit(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], full: set[int], steps: int, history: int,
        granularity: str = "scalar", ridge: float = 1e-4) -> dict[int, torch.Tensor]:
    """Least-squares weights per skipped step from (features (n, branches, N, L, d), order (n, L)) batches:
    {t: (k,) or (k, d)} with k = len(sources(t))."""
    skips = [t for t in range(steps) if t not in full and sources(full, t, history)]
    A: dict[int, torch.Tensor] = {}
    b: dict[int, torch.Tensor] = {}
    for feats, order in batches:
        feats = feats.double()
        for t in skips:
            src = sources(full, t, history)
            m = (order >= t)[:, None, :, None].to(feats.dtype)  # (n, 1, L, 1): masked at the start of step t
            X = feats[:, :, src] * m[:, :, None]  # (n, br, k, L, d)
            y = feats[:, :, t]
            if granularity == "scalar":
                a_t = torch.einsum("nbild,nbjld->ij", X, X)
                b_t = torch.einsum("nbild,nbld->i", X, y)
            else:
                a_t = torch.einsum("nbild,nbjld->dij", X, X)
                b_t = torch.einsum("nbild,nbld->di", X, y)
            A[t] = A.get(t, 0) + a_t
            b[t] = b.get(t, 0) + b_t
    out = {}
    for t in skips:
        a_t = A[t]
        k = a_t.shape[-1]
        eye = torch.eye(k, dtype=a_t.dtype)
        scale = torch.diagonal(a_t, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
        reg = ridge * scale[..., None, None] * eye if a_t.dim() == 3 else ridge * scale * eye
        w = torch.linalg.solve(a_t + reg, b[t][..., None])[..., 0]  # (k,) or (d, k)
        out[t] = (w if w.dim() == 1 else w.T).float().contiguous()  # (k,) or (k, d)
    return out


class L2P(Method):
    name = "l2p"
    label = "L2P"
    color = "#bcbd22"
    marker = "p"
    rank = 3.6  # among the forecasters, after FoCa
    learned = True
    training_format = TRAINING_FORMAT  # its teacher trajectories and training pairs (shortcut/train.py)

    class Knobs(Knobs):
        history: int = Field(3, ge=1, le=8, description="past full steps each prediction combines")
        granularity: Literal["scalar", "channel"] = Field("scalar", description="one weight per source step, or one "
                                                                                 "per source step and channel")
        fit_images: int = Field(1200, ge=1, description="teacher trajectories the weights are fitted on")
        ridge: float = Field(1e-4, ge=0, description="ridge on the normal equations, relative to their mean diagonal")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        from ablate.shortcut.trajectories import TrajectoryConfig

        self.traj = TrajectoryConfig(n_images=self.knobs.fit_images, steps=steps)
        self.weights = None

    def follow_sampler(self, cfg) -> None:
        """Fit on trajectories of the sampler's own guidance and temperatures."""
        self.traj = replace(self.traj, cfg_w=cfg.cfg_w, r_temp=cfg.r_temp, sm_temp=cfg.sm_temp, unmasking=cfg.unmasking)

    def prepare(self, model, log=print) -> None:
        if self.weights is not None:
            return
        from safetensors.torch import load_file, save_file

        from ablate import store
        from ablate.shortcut.cache import base_hash, trajectories_for

        k = self.knobs
        key = {"base": base_hash(model), "trajectories": asdict(self.traj), "full": sorted(self.full),
               "history": k.history, "granularity": k.granularity, "ridge": k.ridge}

        def build(folder):
            traj = trajectories_for(model, self.traj, log)
            log(f"fitting L2P weights on {self.traj.n_images} trajectories; cached after")
            shards = (traj.load(i) for i in range(len(traj.shards)))
            w = fit(((d["features"], d["order"]) for d in shards), self.full, self.steps, k.history,
                    k.granularity, k.ridge)
            save_file({f"t{t}": v for t, v in w.items()}, str(folder / "weights.safetensors"))

        folder = store.get_or_build("l2p", key, build, log=log)
        dev = next(model.parameters()).device
        self.weights = {int(n[1:]): v.to(dev) for n, v in load_file(str(folder / "weights.safetensors")).items()}

    def begin(self, model, batch_size):
        self.prepare(model)
        self.cache = {}

    def observe(self, state, logits, feature):
        self.cache[state.step] = feature

    def skip_step(self, model, state):
        src = sources(self.full, state.step, self.knobs.history)
        w = self.weights[state.step]
        feature = sum((w[i] * self.cache[s].float()).to(self.cache[s].dtype) for i, s in enumerate(src))
        return model.head(feature), feature
