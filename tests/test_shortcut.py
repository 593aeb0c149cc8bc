"""The learned shortcut: shapes, ablation variants, trajectories on disk, training lowers the loss, caching."""

import pytest
import torch

from ablate.shortcut.cache import base_hash, load, load_or_train
from ablate.shortcut.model import Shortcut, ShortcutConfig
from ablate.shortcut.train import TrainConfig
from ablate.shortcut.trajectories import Trajectories, TrajectoryConfig, record


@pytest.mark.parametrize("n_block", [0, 1, 2])
@pytest.mark.parametrize("use_tokens", [True, False])
def test_variants_shapes_and_token_use(tiny_model, n_block, use_tokens):
    torch.manual_seed(0)
    net = Shortcut(ShortcutConfig(n_block=n_block, use_tokens=use_tokens), tiny_model.tok_emb.weight, tiny_model.position_embedding())
    torch.nn.init.normal_(net.out.weight)  # leave the zero start so the output depends on the inputs
    f = torch.randn(4, 9, 32)
    pos = torch.tensor([[0, 1]] * 4)
    a = net(f, torch.tensor([[1, 2]] * 4), pos, torch.full((4,), 0.5))
    b = net(f, torch.tensor([[3, 4]] * 4), pos, torch.full((4,), 0.5))
    assert a.shape == f.shape
    assert torch.allclose(a, b) != use_tokens  # tokens matter exactly when they are used


def test_shortcut_is_small_next_to_base(tiny_model):
    net = Shortcut(ShortcutConfig(), tiny_model.tok_emb.weight, tiny_model.position_embedding())
    assert net.num_params() < sum(p.numel() for p in tiny_model.parameters())


@pytest.fixture
def traj(tiny_model, tmp_path):
    cfg = TrajectoryConfig(n_images=24, steps=5, shard_size=10)
    return Trajectories(record(tiny_model, cfg, tmp_path / "traj"))


def test_trajectories_on_disk(traj):
    data = traj.load(0)
    assert len(traj.shards) == 3
    assert data["features"].shape == (10, 2, 5, 9, 32)
    assert data["order"].min() == 0 and data["order"].max() == 4


def test_training_lowers_loss(tiny_model, traj):
    from ablate.shortcut.train import train_shortcut

    _, stats = train_shortcut(tiny_model, traj, ShortcutConfig(), TrainConfig(steps=80, batch_size=8, lr=3e-3))
    assert stats["loss_last"] < 0.7 * stats["loss_first"]


def test_trained_shortcut_is_cached_and_checked(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    cfg = TrainConfig(steps=5, batch_size=4, trajectories=TrajectoryConfig(n_images=6, steps=4, shard_size=6))
    logs = []
    net, meta = load_or_train(tiny_model, ShortcutConfig(), cfg, log=logs.append)
    assert any("training shortcut" in line for line in logs) and meta["base_hash"] == base_hash(tiny_model)
    logs.clear()
    load_or_train(tiny_model, ShortcutConfig(), cfg, log=logs.append)
    assert logs == []  # served from the store
    other = type(tiny_model)(tiny_model.cfg)
    folder = next(p for p in (tmp_path / "store" / "shortcut").iterdir() if p.is_dir())
    from ablate.errors import AblateError

    with pytest.raises(AblateError, match="^checkpoint: .*another base model"):
        load(folder, other)
