"""shortcut: MIGM-Shortcut. Full steps run the base model; the others move the last feature with the
learned shortcut, conditioned on the tokens sampled at the previous step and the mask ratio.

Knobs: `ShortcutMethod.Knobs` (architecture and training, each with its help). Without `checkpoint`, the
shortcut for these knobs is taken from the store, trained there first when missing. Its teacher trajectories
are recorded with the sampler's own guidance and temperatures (`follow_sampler`), so a shortcut is never
used at a guidance it has not seen, unless `traj_cfg_w` asks for that on purpose.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, Optional

from pydantic import Field, model_validator

from ablate.errors import AblateError
from ablate.methods.base import Knobs, Method
from ablate.shortcut.model import ShortcutConfig
from ablate.shortcut.train import TRAINING_FORMAT, TrainConfig
from ablate.shortcut.trajectories import TrajectoryConfig


class ShortcutMethod(Method):
    name = "shortcut"
    label = "MIGM-Shortcut"
    color = "#d62728"
    marker = "o"
    rank = 6
    learned = True
    training_format = TRAINING_FORMAT  # its teacher trajectories and training pairs (shortcut/train.py)

    class Knobs(Knobs):
        n_block: int = Field(1, ge=0, le=4, description="attention blocks (0: a pooled token summary, no attention)")
        use_tokens: bool = Field(True, description="condition on the tokens sampled at the previous step")
        bottleneck: int = Field(2, ge=1, description="width ratio r: the shortcut works at width d/r")
        time_embed: bool = Field(True, description="scale/shift from the mask ratio")
        mlp_ratio: float = Field(2.0, gt=0, description="FFN hidden width over the block width (the paper: 4)")
        train_steps: int = Field(6000, ge=1, description="optimiser steps of its training (6,000: chosen by the "
                                                         "study in results/shortcut_study_N16_B4)")
        lr: float = Field(2e-3, gt=0, le=1, description="AdamW learning rate (x0.1 after two thirds of the steps)")
        rollout: int = Field(2, ge=1, description="steps the shortcut is chained on its own predictions in training")
        rollout_tokens: Literal["teacher", "student"] = Field(
            "teacher", description="tokens of later rollout steps: the teacher's, or sampled from the student's "
                                   "features with the base model's feature on that state as target")
        kl_weight: float = Field(3.0, ge=0, description="weight of the KL through the frozen head (0: MSE only)")
        traj_images: int = Field(1200, ge=1, description="teacher trajectories it learns from")
        traj_steps: int = Field(16, ge=2, description="N_train: steps of the teacher trajectories")
        traj_cfg_w: Optional[float] = Field(None, ge=0, description="guidance of the teacher trajectories "
                                                                     "(default: the sampler's cfg_w)")
        train_seed: int = Field(0, ge=0, description="seed of its training (initialisation and batches)")
        checkpoint: Optional[str] = Field(None, description="a trained shortcut's folder (default: the store's)")
        schedule: Literal["paper", "searched"] = Field(
            "paper", description="which B steps are full: the paper's rule, or searched for token agreement with the "
                                 "unaccelerated run once trained (methods/schedule_search.py; a store entry)")

        @model_validator(mode="after")
        def _rollout_fits(self):
            if self.rollout >= self.traj_steps:
                raise ValueError(f"rollout: must lie in 1..traj_steps-1, got {self.rollout}")
            return self

    def __init__(self, steps, budget=None, knobs=None):
        super().__init__(steps, budget, knobs)
        k = self.knobs
        self.sc_cfg = ShortcutConfig(n_block=k.n_block, use_tokens=k.use_tokens, bottleneck=k.bottleneck,
                                     time_embed=k.time_embed, mlp_ratio=k.mlp_ratio)
        self.train_cfg = TrainConfig(
            steps=k.train_steps,
            lr=k.lr,
            rollout=k.rollout,
            kl_weight=k.kl_weight,
            seed=k.train_seed,
            rollout_tokens=k.rollout_tokens,
            trajectories=TrajectoryConfig(n_images=k.traj_images, steps=k.traj_steps,
                                          **({} if k.traj_cfg_w is None else {"cfg_w": k.traj_cfg_w})),
        )
        self.checkpoint = k.checkpoint
        self.net = None
        self.meta: dict = {}
        self.sampler_cfg = None

    def follow_sampler(self, cfg) -> None:
        """Record the teacher trajectories with the sampler's guidance (unless `traj_cfg_w` is given) and
        temperatures: the features the shortcut learns are those it will be asked to move."""
        self.sampler_cfg = cfg
        traj = self.train_cfg.trajectories
        cfg_w = traj.cfg_w if self.knobs.traj_cfg_w is not None else cfg.cfg_w
        traj = replace(traj, cfg_w=cfg_w, r_temp=cfg.r_temp, sm_temp=cfg.sm_temp, unmasking=cfg.unmasking)
        self.train_cfg = replace(self.train_cfg, trajectories=traj)

    def prepare(self, model, log=print) -> None:
        """Load (or train) the shortcut for this base model; begin() does it on first use."""
        if self.net is None:
            from ablate.models.protocol import token_table
            from ablate.shortcut.cache import load_or_train

            width = token_table(model).shape[1]
            if width != model.dim:
                raise AblateError(f"method: shortcut embeds new tokens with the base's token embedding, whose width "
                                  f"({width}) must equal the feature width ({model.dim})")

            self.net, self.meta = load_or_train(model, self.sc_cfg, self.train_cfg, self.checkpoint, log=log)
        if self.knobs.schedule == "searched" and not getattr(self, "_searched", False):
            from ablate.methods.schedule_search import searched_full_steps
            from ablate.sampling import SamplerConfig

            self._searched = True  # before the search: its own sampling calls begin(), hence prepare()
            self.full = set(searched_full_steps(self, model, self.sampler_cfg or SamplerConfig(self.steps), log=log))

    def begin(self, model, batch_size):
        self.prepare(model)
        self.feature = None

    def observe(self, state, logits, feature):
        self.feature = feature

    def skip_step(self, model, state):
        # Under the mask schedule every row commits the same count at a step; a policy that commits by threshold
        # (parallel_decode) does not, and then rows are padded as training pads them (shortcut/train.py).
        counts = state.committed_prev.sum(1)
        k = int(counts[0])
        valid = None
        if bool((counts == k).all()):
            pos = state.committed_prev.float().argsort(dim=1, descending=True, stable=True)[:, :k]
            tokens = state.tokens.gather(1, pos)
        else:
            from ablate.shortcut.train import padded

            pos, tokens, valid = padded(state.committed_prev, state.tokens)
        ratio = state.mask.float().mean(1)
        r = state.branches
        args = (self.feature, tokens.repeat(r, 1), pos.repeat(r, 1), ratio.repeat(r))
        self.feature = self.net(*args) if valid is None else self.net(*args, valid.repeat(r, 1))
        return model.head(self.feature), self.feature

    def num_params(self) -> int:
        return self.net.num_params() if self.net is not None else 0
