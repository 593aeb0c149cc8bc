"""Find or make the trained shortcut for (base model, shortcut knobs, training config).

Trajectories and trained shortcuts are content-addressed store entries keyed by their config and
the base model's hash, so one trained shortcut serves every budget and trial that share them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from ablate import store
from ablate.device import model_device
from ablate.errors import AblateError
from ablate.models.protocol import token_table
from ablate.shortcut.model import Shortcut, ShortcutConfig
from ablate.shortcut import train as training
from ablate.shortcut.train import TrainConfig, train_shortcut
from ablate.shortcut.trajectories import Trajectories, TrajectoryConfig, record

WEIGHTS, META = "shortcut.safetensors", "meta.json"


def base_hash(base: torch.nn.Module) -> str:
    """sha256 of the base model's weights: a shortcut is only valid for the features it was trained on.

    A base with a `weights_hash()` (the transformers adapter: digests of its files) supplies its own.
    """
    if hasattr(base, "weights_hash"):
        return base.weights_hash()
    h = hashlib.sha256()
    for name, t in base.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def trajectories_for(base, cfg: TrajectoryConfig, log=print) -> Trajectories:
    """The teacher trajectories of this config (a store entry, shared by every method that learns from them)."""
    key = {"format": training.TRAINING_FORMAT, "base": base_hash(base), **asdict(cfg)}

    def build(folder: Path):
        log(f"recording {cfg.n_images} teacher trajectories (N_train={cfg.steps}); cached after")
        record(base, cfg, folder)

    return Trajectories(store.get_or_build("trajectories", key, build, log=log))


def save(folder: Path, net: Shortcut, meta: dict) -> None:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    (folder / META).write_text(json.dumps(meta, indent=2))


def load(path: Path, base) -> tuple[Shortcut, dict]:
    """A saved shortcut (its folder or its .safetensors file), refused if made for another base model."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / WEIGHTS).is_file() or not (folder / META).is_file():
        raise AblateError(f"checkpoint: {path} holds no shortcut ({WEIGHTS} + {META})")
    meta = json.loads((folder / META).read_text())
    if meta.get("base_hash") != base_hash(base):
        raise AblateError(f"checkpoint: {path} was trained for another base model; retrain it for this one")
    net = Shortcut(ShortcutConfig(**meta["shortcut"]), token_table(base), base.position_embedding())
    net.load_state_dict(load_file(str(folder / WEIGHTS)))
    return net.to(model_device(base)).eval().requires_grad_(False), meta


# TrainConfig fields added after shortcuts were first stored: left out of the store key at their defaults, so
# the shortcuts already stored (and shipped) are still found.
_ADDED_DEFAULTS = {"rollout_tokens": "teacher"}


def train_key(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    return {k: v for k, v in d.items() if not (k in _ADDED_DEFAULTS and v == _ADDED_DEFAULTS[k])}


def load_or_train(base, sc_cfg: ShortcutConfig, cfg: TrainConfig, checkpoint: Optional[str] = None, log=print):
    if checkpoint:
        return load(Path(checkpoint), base)
    bh = base_hash(base)
    key = {"format": training.TRAINING_FORMAT, "base": bh, "shortcut": asdict(sc_cfg), "train": train_key(cfg)}

    def build(folder: Path):
        traj = trajectories_for(base, cfg.trajectories, log)
        log(f"training shortcut {json.dumps(asdict(sc_cfg))} ({cfg.steps} steps); cached after")
        net, stats = train_shortcut(base, traj, sc_cfg, cfg)
        save(folder, net, {"format": training.TRAINING_FORMAT, "shortcut": asdict(sc_cfg), "train": asdict(cfg),
                           "base_hash": bh, "stats": stats})

    return load(store.get_or_build("shortcut", key, build, log=log), base)


def load_or_train_residual(base, sc_cfg: ShortcutConfig, cfg: TrainConfig, full, log=print):
    """The residual shortcut of one full-step schedule (trajectories of cfg.trajectories.steps = the sampler's N)."""
    key = {"format": training.TRAINING_FORMAT, "base": base_hash(base), "shortcut": asdict(sc_cfg),
           "train": train_key(cfg), "full": sorted(full)}

    def build(folder: Path):
        traj = trajectories_for(base, cfg.trajectories, log)
        log(f"training residual shortcut for full steps {sorted(full)} ({cfg.steps} steps); cached after")
        net, stats = training.train_residual(base, traj, sc_cfg, cfg, full)
        save(folder, net, {"format": training.TRAINING_FORMAT, "shortcut": asdict(sc_cfg), "train": asdict(cfg),
                           "full": sorted(full), "base_hash": base_hash(base), "stats": stats})

    return load(store.get_or_build("residual_shortcut", key, build, log=log), base)
