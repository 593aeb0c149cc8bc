"""The VQ tokenizer: shapes, code range, and that training makes reconstructions better."""

import torch

from ablate.data import load_dataset
from ablate.tokenizer import VQVAE, VQVAEConfig, train_vqvae


def test_encode_decode_shapes():
    m = VQVAE(VQVAEConfig(codebook_size=8, hidden=8)).eval()
    x = torch.rand(3, 1, 28, 28)
    codes = m.encode(x)
    assert codes.shape == (3, 7, 7) and codes.dtype == torch.long and int(codes.max()) < 8
    assert m.decode(codes).shape == (3, 1, 28, 28)
    assert torch.equal(m.decode(codes.flatten(1)), m.decode(codes))


def test_training_improves_reconstruction_and_uses_codes():
    images = load_dataset("digits").images[:400]
    x = images.float() / 255
    cfg = VQVAEConfig(codebook_size=32, hidden=16, steps=80, batch_size=32)
    untrained = VQVAE(cfg).eval()
    trained = train_vqvae(images, cfg)
    err0 = (untrained.decode(untrained.encode(x)) - x).pow(2).mean()
    err1 = (trained.decode(trained.encode(x)) - x).pow(2).mean()
    assert err1 < 0.5 * err0
    assert trained.encode(x).unique().numel() >= 16  # dead codes get restarted


def test_training_is_deterministic():
    images = load_dataset("digits").images[:200]
    cfg = VQVAEConfig(codebook_size=16, hidden=8, steps=10, batch_size=16)
    a, b = train_vqvae(images, cfg), train_vqvae(images, cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
