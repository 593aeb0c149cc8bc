"""shortcut: MIGM-Shortcut. Full steps run the base model; the others move the last feature with the
learned shortcut, conditioned on the tokens sampled at the previous step and the mask ratio.

Knobs: n_block (0..4), use_tokens, bottleneck (r), time_embed, and the training config
(train_steps, rollout, kl_weight, traj_images, traj_steps). Without `checkpoint`, the shortcut for
these knobs is taken from the store, trained there first when missing.
"""

from __future__ import annotations

from typing import Optional


from ablate.accelerators.base import Accelerator
from ablate.errors import AblateError
from ablate.shortcut.model import ShortcutConfig
from ablate.shortcut.train import TrainConfig
from ablate.shortcut.trajectories import TrajectoryConfig


class ShortcutAccelerator(Accelerator):
    name = "shortcut"

    def __init__(
        self,
        steps,
        budget=None,
        n_block: int = 1,
        use_tokens: bool = True,
        bottleneck: int = 2,
        time_embed: bool = True,
        train_steps: int = 2000,
        rollout: int = 2,
        kl_weight: float = 3.0,
        traj_images: int = 1200,
        traj_steps: int = 16,
        checkpoint: Optional[str] = None,
    ):
        super().__init__(steps, budget)
        if not 0 <= n_block <= 4:
            raise AblateError(f"n_block: must lie in 0..4, got {n_block}")
        if bottleneck < 1:
            raise AblateError(f"bottleneck: must be at least 1, got {bottleneck}")
        if rollout < 1 or rollout >= traj_steps:
            raise AblateError(f"rollout: must lie in 1..traj_steps-1, got {rollout}")
        self.sc_cfg = ShortcutConfig(n_block=n_block, use_tokens=use_tokens, bottleneck=bottleneck, time_embed=time_embed)
        self.train_cfg = TrainConfig(
            steps=train_steps,
            rollout=rollout,
            kl_weight=kl_weight,
            trajectories=TrajectoryConfig(n_images=traj_images, steps=traj_steps),
        )
        self.checkpoint = checkpoint
        self.net = None
        self.meta: dict = {}

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

    def begin(self, model, batch_size):
        self.prepare(model)
        self.feature = None

    def observe(self, state, logits, feature):
        self.feature = feature

    def skip_step(self, model, state):
        k = int(state.committed_prev[0].sum())
        pos = state.committed_prev.float().argsort(dim=1, descending=True, stable=True)[:, :k]
        tokens = state.tokens.gather(1, pos)
        ratio = state.mask.float().mean(1)
        r = state.branches
        self.feature = self.net(self.feature, tokens.repeat(r, 1), pos.repeat(r, 1), ratio.repeat(r))
        return model.head(self.feature), self.feature

    def num_params(self) -> int:
        return self.net.num_params() if self.net is not None else 0

    def describe(self):
        from dataclasses import asdict

        return {**super().describe(), **asdict(self.sc_cfg), "train_steps": self.train_cfg.steps,
                "rollout": self.train_cfg.rollout, "kl_weight": self.train_cfg.kl_weight}
