"""VQ tokenizer: 28x28 images <-> 7x7 grids of code ids."""

from ablate.tokenizer.vqvae import VQVAE, VQVAEConfig, train_vqvae

__all__ = ["VQVAE", "VQVAEConfig", "train_vqvae"]
