"""Datasets: embedded MNIST, sklearn digits, folders of images; the split is deterministic."""

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.data import dataset_key, load_dataset
from ablate.errors import AblateError


def test_mnist_is_5000_real_digits():
    d = load_dataset("mnist")
    assert d.images.shape == (5000, 1, 28, 28) and d.images.dtype == torch.uint8
    assert d.num_classes == 10 and torch.bincount(d.labels).min() > 400
    assert d.images.float().mean() > 20  # real strokes on black, not an empty array


def test_split_is_deterministic_stratified_and_disjoint():
    d = load_dataset("mnist")
    tr1, he1 = d.split(0.2, seed=0)
    tr2, he2 = d.split(0.2, seed=0)
    assert torch.equal(he1.images, he2.images) and torch.equal(tr1.labels, tr2.labels)
    assert len(tr1) + len(he1) == 5000 and len(he1) == 1000
    # disjoint: no held-out image is byte-identical to a training image at the same index set
    _, he3 = d.split(0.2, seed=1)
    assert not torch.equal(he1.images, he3.images)
    counts = torch.bincount(he1.labels, minlength=10).float()
    assert (counts / counts.sum() - torch.bincount(d.labels).float() / 5000).abs().max() < 0.01


def test_digits_resized_to_28():
    d = load_dataset("digits")
    assert d.images.shape[1:] == (1, 28, 28) and len(d) == 1797 and d.num_classes == 10


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


def test_folder_with_class_subfolders(tmp_path):
    _write(tmp_path / "cats" / "a.png", 10)
    _write(tmp_path / "cats" / "b.jpg", 20)
    _write(tmp_path / "dogs" / "c.png", 200)
    d = load_dataset(f"folder:{tmp_path}")
    assert d.class_names == ("cats", "dogs") and d.labels.tolist() == [0, 0, 1]
    assert d.images.shape == (3, 1, 28, 28) and int(d.images[2].float().mean()) == 200


def test_folder_without_subfolders_is_one_class(tmp_path):
    _write(tmp_path / "x.png", 5)
    d = load_dataset(f"folder:{tmp_path}")
    assert d.class_names == ("all",) and d.labels.tolist() == [0]
    assert dataset_key(f"folder:{tmp_path}").startswith("folder-")


@pytest.mark.parametrize("name,match", [("imagenet", "unknown dataset"), ("folder:/no/such/dir", "does not exist")])
def test_bad_dataset_names(name, match):
    with pytest.raises(AblateError, match=f"^dataset: .*{match}"):
        load_dataset(name)


def test_empty_folder(tmp_path):
    with pytest.raises(AblateError, match="no PNG/JPEG"):
        load_dataset(f"folder:{tmp_path}")
