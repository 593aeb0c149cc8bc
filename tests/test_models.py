"""The base model's contract: shapes, the feature/head split, labels, K/V reuse, subset positions."""

import torch

from ablate.models import MaskGITConfig


def test_forward_returns_logits_and_feature(tiny_model):
    tokens = torch.randint(0, 17, (3, 9))
    logits, feature = tiny_model(tokens, torch.tensor([0, 1, 2]))
    assert logits.shape == (3, 9, 16) and feature.shape == (3, 9, 32)
    assert torch.allclose(tiny_model.head(feature), logits)


def test_drop_label_equals_null_label(tiny_model):
    tokens = torch.randint(0, 17, (2, 9))
    labels = torch.tensor([1, 2])
    dropped, _ = tiny_model(tokens, labels, torch.tensor([True, False]))
    explicit, _ = tiny_model(tokens, torch.tensor([tiny_model.null_label, 2]))
    other, _ = tiny_model(tokens, labels)
    assert torch.equal(dropped, explicit)
    assert not torch.allclose(dropped[0], other[0])


def test_subset_positions_with_cache_match_full_forward(tiny_model):
    torch.manual_seed(1)
    tokens = torch.randint(0, 17, (4, 9))
    labels = torch.randint(0, 4, (4,))
    logits, feature, kv = tiny_model(tokens, labels, return_kv=True)
    assert len(kv) == 2 and kv[0][0].shape == (4, 2, 9, 16)
    pos = torch.stack([torch.randperm(9)[:4] for _ in range(4)])
    sub_logits, sub_feature, new_kv = tiny_model(tokens, labels, positions=pos, kv_cache=kv, return_kv=True)
    idx = pos[..., None]
    assert torch.allclose(sub_feature, feature.gather(1, idx.expand(-1, -1, 32)), atol=1e-5)
    assert torch.allclose(sub_logits, logits.gather(1, idx.expand(-1, -1, 16)), atol=1e-5)
    assert torch.allclose(new_kv[1][0], kv[1][0], atol=1e-5)


def test_subset_sees_changed_tokens_only_through_cache(tiny_model):
    """Recomputing positions after other tokens changed: they attend to the *stale* cache (ml_cache's bet)."""
    torch.manual_seed(2)
    tokens = torch.randint(0, 16, (1, 9))
    labels = torch.tensor([1])
    _, _, kv = tiny_model(tokens, labels, return_kv=True)
    changed = tokens.clone()
    changed[0, 0] = (changed[0, 0] + 1) % 16
    pos = torch.tensor([[5, 6]])
    stale, _ = tiny_model(changed, labels, positions=pos, kv_cache=kv)
    fresh, _ = tiny_model(changed, labels)
    same_as_before, _ = tiny_model(tokens, labels)
    assert torch.allclose(stale, same_as_before[:, [5, 6]], atol=1e-5)
    assert not torch.allclose(stale, fresh[:, [5, 6]], atol=1e-5)


def test_positions_require_cache(tiny_model):
    import pytest

    with pytest.raises(ValueError, match="kv_cache"):
        tiny_model(torch.zeros(1, 9, dtype=torch.long), torch.tensor([0]), positions=torch.tensor([[0]]))


def test_training_lowers_loss():
    from ablate.models.train import BaseTrainConfig, train_maskgit

    torch.manual_seed(0)
    codes = torch.randint(0, 4, (64, 9)) * 0 + torch.arange(9) % 4  # a learnable pattern
    labels = torch.zeros(64, dtype=torch.long)
    cfg = MaskGITConfig(vocab_size=4, seq_len=9, num_classes=1, dim=32, depth=1, heads=2)
    model = train_maskgit(codes, labels, cfg, BaseTrainConfig(steps=60, batch_size=16, lr=3e-3, warmup=5))
    logits, _ = model(torch.full((4, 9), model.mask_id), torch.zeros(4, dtype=torch.long))
    assert (logits.argmax(-1) == torch.arange(9) % 4).float().mean() > 0.9
