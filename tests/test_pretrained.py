"""Trained bundles: verified by sha256 before use; damage gives a clear error, never a wrong model."""

import shutil

import pytest
import torch

from ablate import pretrained
from ablate.errors import AblateError
from ablate.paths import weights_dir


@pytest.fixture
def copied_bundle(tiny_bundle, tmp_path, monkeypatch):
    """A private copy of the tiny bundle in a fresh cache, safe to damage."""
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    dst = weights_dir("digits")
    shutil.copytree(tiny_bundle.path, dst)
    return dst


def test_tiny_bundle_loads_and_measures(tiny_bundle):
    b = pretrained.load("digits")
    assert b.base.num_classes == 10 and b.base.seq_len == 49
    m = tiny_bundle.manifest
    assert set(m["files"]) == set(pretrained.FILES)
    assert 0 <= m["measured"]["classifier_held_out_acc"] <= 1
    assert "--retrain" in m["command"] and "--set base.depth=2" in m["command"]
    images = b.decode(torch.randint(0, 128, (2, 49)))
    assert images.shape == (2, 1, 28, 28) and images.dtype == torch.uint8


def test_corrupted_file_is_named(copied_bundle):
    path = copied_bundle / "base.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AblateError, match=r"^weights: .*base\.safetensors fails its sha256 check.*--retrain"):
        pretrained.load("digits")


def test_missing_file_is_named(copied_bundle):
    (copied_bundle / "classifier.safetensors").unlink()
    with pytest.raises(AblateError, match=r"^weights: .*classifier\.safetensors is missing"):
        pretrained.load("digits")


def test_no_bundle_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    with pytest.raises(AblateError, match=r"prepare --dataset digits"):
        pretrained.load("digits")


def test_retrain_is_bit_for_bit(tiny_bundle, tmp_path):
    """The manifest's command + seed rebuild identical files (same torch and thread count)."""
    from tests.conftest import TINY_OVERRIDES

    cfg = pretrained.apply_overrides(pretrained.PrepareConfig(), TINY_OVERRIDES)
    again = pretrained.train_bundle("digits", cfg, tmp_path / "again", TINY_OVERRIDES, log=lambda *_: None)
    for name in pretrained.FILES:
        assert again.manifest["files"][name]["sha256"] == tiny_bundle.manifest["files"][name]["sha256"], name


def test_overrides_parse_types():
    cfg = pretrained.apply_overrides(pretrained.PrepareConfig(), ["base.depth=3", "base_train.lr=0.01", "seed=5"])
    assert cfg.base.depth == 3 and cfg.base_train.lr == 0.01 and cfg.seed == 5
