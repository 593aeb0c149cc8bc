"""residual_shortcut: beyond the paper. A learned correction on top of a cheap forecast, not the next feature.

At a skipped step t after the last full step t_k: f(t) = F(t) + g(F(t), tokens committed since t_k, mask ratio),
where F is Taylor's first-order forecast from the last two full steps (one: the cache) and g is the shortcut's
network (zero-initialised: untrained, this is Taylor). Each skipped step starts from its own forecast, so
errors do not compound along a chain of predictions, and g sees every token committed since the last full
step, which the forecast cannot know.

Trained for one (N, B) schedule on teacher trajectories of N steps (as L2P is fitted): at every skipped step of
the schedule the forecast from the teacher's full-step features, the teacher's tokens since t_k, target the
teacher's f(t); the shortcut's loss (masked MSE + KL through the frozen head). Cached in the store.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from ablate.errors import AblateError
from ablate.methods.base import Knobs, Method
from ablate.methods.taylor import first_order
from ablate.shortcut.train import TRAINING_FORMAT


class ResidualShortcut(Method):
    name = "residual_shortcut"
    label = "Residual shortcut (ours)"
    color = "#e377c2"
    marker = "*"
    rank = 6.5
    learned = True
    training_format = TRAINING_FORMAT  # its teacher trajectories and training pairs (shortcut/train.py)

    class Knobs(Knobs):
        n_block: int = Field(1, ge=0, le=4, description="attention blocks of the correction network")
        bottleneck: int = Field(2, ge=1, description="width ratio r: the network works at width d/r")
        train_steps: int = Field(2000, ge=1, description="optimiser steps of its training")
        lr: float = Field(2e-3, gt=0, le=1, description="AdamW learning rate")
        kl_weight: float = Field(3.0, ge=0, description="weight of the KL through the frozen head (0: MSE only)")
        traj_images: int = Field(1200, ge=1, description="teacher trajectories it learns from")
        train_seed: int = Field(0, ge=0, description="seed of its training (initialisation and batches)")

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        if self.budget >= steps:  # its training pairs are the schedule's skipped steps
            raise AblateError(f"budget: {self.name} learns the skipped steps of its schedule; B = {self.budget} of "
                              f"N = {steps} skips none (use B < N)")
        from ablate.shortcut.model import ShortcutConfig
        from ablate.shortcut.train import TrainConfig
        from ablate.shortcut.trajectories import TrajectoryConfig

        k = self.knobs
        self.sc_cfg = ShortcutConfig(n_block=k.n_block, bottleneck=k.bottleneck)
        self.train_cfg = TrainConfig(steps=k.train_steps, lr=k.lr, rollout=1, kl_weight=k.kl_weight, seed=k.train_seed,
                                     trajectories=TrajectoryConfig(n_images=k.traj_images, steps=steps))
        self.net = None
        self.meta: dict = {}

    def follow_sampler(self, cfg) -> None:
        traj = replace(self.train_cfg.trajectories, cfg_w=cfg.cfg_w, r_temp=cfg.r_temp, sm_temp=cfg.sm_temp,
                       unmasking=cfg.unmasking)
        self.train_cfg = replace(self.train_cfg, trajectories=traj)

    def prepare(self, model, log=print) -> None:
        if self.net is None:
            from ablate.shortcut.cache import load_or_train_residual

            self.net, self.meta = load_or_train_residual(model, self.sc_cfg, self.train_cfg, self.full, log=log)

    def begin(self, model, batch_size):
        self.prepare(model)
        self.ts, self.fs, self.mask_at_full = [], [], None

    def observe(self, state, logits, feature):
        self.ts, self.fs = (self.ts + [state.step])[-2:], (self.fs + [feature])[-2:]
        self.mask_at_full = state.mask.clone()  # masked before this full step commits

    def skip_step(self, model, state):
        since = self.mask_at_full & ~state.mask  # committed at t_k .. t-1
        k = int(since[0].sum())  # every row commits the schedule's count
        pos = since.float().argsort(dim=1, descending=True, stable=True)[:, :k]
        tokens = state.tokens.gather(1, pos)
        ratio = state.mask.float().mean(1)
        r = state.branches
        feature = self.net(first_order(self.ts, self.fs, state.step), tokens.repeat(r, 1), pos.repeat(r, 1), ratio.repeat(r))
        return model.head(feature), feature

    def num_params(self) -> int:
        return self.net.num_params() if self.net is not None else 0
