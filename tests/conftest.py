"""Shared fixtures: a private cache folder and a tiny trained bundle (seconds to train)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("ABLATE_PROGRESS", "0")


@pytest.fixture(scope="session", autouse=True)
def ablate_home(tmp_path_factory):
    """Every test runs against a fresh cache (shipped weights stay visible); nothing of the user's is read."""
    home = tmp_path_factory.mktemp("ablate_home")
    old = {k: os.environ.get(k) for k in ("ABLATE_HOME", "ABLATE_STORE")}
    os.environ["ABLATE_HOME"] = str(home)
    os.environ.pop("ABLATE_STORE", None)
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


TINY_OVERRIDES = [
    "tokenizer.steps=60",
    "tokenizer.hidden=16",
    "tokenizer.batch_size=32",
    "classifier.steps=60",
    "classifier.batch_size=32",
    "base.dim=64",
    "base.depth=2",
    "base.heads=2",
    "base_train.steps=80",
    "base_train.batch_size=32",
]


@pytest.fixture(scope="session")
def tiny_bundle(ablate_home):
    """Tokenizer, base and classifier for `digits`, trained with tiny settings into the test cache."""
    from ablate import pretrained
    from ablate.paths import weights_dir

    cfg = pretrained.apply_overrides(pretrained.PrepareConfig(), TINY_OVERRIDES)
    return pretrained.train_bundle("digits", cfg, weights_dir("digits"), TINY_OVERRIDES, log=lambda *_: None)


@pytest.fixture
def tiny_model():
    from ablate.models import MaskGIT, MaskGITConfig

    torch.manual_seed(0)
    return MaskGIT(MaskGITConfig(vocab_size=16, seq_len=9, num_classes=3, dim=32, depth=2, heads=2)).eval()
