"""`eval`: one trial end to end on the tiny bundle; same seed, same numbers; bad input, one line."""

import json

import pytest
import torch

from ablate.cli import main
from ablate.evaluate import EvalConfig, evaluate

MEASURES = {
    "fid", "kid_mean", "kid_std", "precision", "recall", "class_acc", "latency_ms_per_image",
    "images_per_s", "gflops_per_image", "params",
}


def test_eval_writes_every_measure(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "m.json"
    samples = tmp_path / "png"
    argv = ["eval", "--dataset", "digits", "--steps", "4", "--n-samples", "40", "--batch-size", "20",
            "--json", str(out), "--save-samples", str(samples)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert MEASURES <= set(result["measures"])
    m = result["measures"]
    assert m["fid"] > 0 and 0 <= m["class_acc"] <= 1 and m["latency_batch_size"] == 20
    assert m["images_per_s"] == pytest.approx(1000 / m["latency_ms_per_image"])
    assert len(list(samples.glob("*.png"))) == 40
    printed = capsys.readouterr().out
    assert "fid" in printed and "gflops_per_image" in printed


def test_same_seed_same_metrics(tiny_bundle):
    cfg = EvalConfig(dataset="digits", steps=4, n_samples=30, batch_size=15, seed=5)
    a, b = evaluate(cfg)["measures"], evaluate(cfg)["measures"]
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "class_acc", "gflops_per_image"):
        assert a[key] == b[key], key
    c = evaluate(EvalConfig(dataset="digits", steps=4, n_samples=30, batch_size=15, seed=6))["measures"]
    assert c["fid"] != a["fid"]


@pytest.mark.parametrize(
    "extra,prefix",
    [
        (["--extractor", "vgg"], "error: extractor:"),
        (["--n-samples", "0"], "error: n_samples:"),
        (["--dataset", "imagenet"], "error: dataset:"),
        (["--budget", "9"], "error: budget:"),
    ],
)
def test_bad_input_one_line(extra, prefix, capsys, ablate_home):
    assert main(["eval", "--steps", "4", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(prefix), err


def test_held_out_reference_floor_and_prefixes_from_one_run(tiny_bundle):
    """The default reference is the held-out split; the training split, the smaller sample counts and the
    real-vs-real floor are scored from the same images (no second sampling), and each differs as it must."""
    from ablate import pretrained
    from ablate.data import load_dataset
    from ablate.metrics import quality

    m = evaluate(EvalConfig(dataset="digits", steps=4, budget=2, method="feature_cache", n_samples=600,
                            batch_size=200))["measures"]
    assert m["fid"] == m["fid_held_out"] != m["fid_train"]
    assert m["fid_n500"] != m["fid"] and "fid_n1000" not in m  # only counts below the run's own
    assert m["floor_fid"] < m["fid"]  # real images are closer to real ones than samples of a tiny model
    # The floor is the other split's real images against the reference, exactly as quality.score computes it.
    bundle = pretrained.load("digits")
    man = bundle.manifest["config"]
    train, held = load_dataset("digits").split(man["held_out"], seed=man["seed"])
    pick = __import__("torch").randperm(len(train), generator=__import__("torch").Generator().manual_seed(0))[:600]
    want = quality.score(quality.features(train.images[pick], bundle, "classifier"),
                         quality.features(held.images, bundle, "classifier"))["fid"]
    assert m["floor_fid"] == pytest.approx(want, rel=1e-9)
    assert m["kid_mean"] == m["kid_mean_held_out"]  # the reference split is scored once and reported twice
    t = evaluate(EvalConfig(dataset="digits", steps=4, budget=2, method="feature_cache", n_samples=600,
                            batch_size=200, reference="train"))["measures"]
    assert t["fid"] == pytest.approx(m["fid_train"], rel=1e-9)


def test_the_real_vs_real_floor_is_scored_once_per_sample_count(tiny_bundle, monkeypatch):
    """The floor depends only on the real images, so its score is kept in the store: a stored score equals a
    fresh one bit for bit, and a later run of the same sample count scores only its own images (the main score
    and the other split), never the floor again."""
    from ablate.metrics import quality

    a, b = torch.randn(300, 8, dtype=torch.float64), torch.randn(400, 8, dtype=torch.float64)
    fresh = quality.score(a, b)
    assert quality.real_score(a, b) == fresh and quality.real_score(a, b) == fresh
    assert quality.real_score(a, b, prc=False) == quality.score(a, b, prc=False)  # prc is part of the key
    assert quality.real_score(a, b + 1) == quality.score(a, b + 1) != fresh  # same shapes, other content
    base = dict(dataset="digits", steps=4, budget=2, n_samples=40, batch_size=20)
    m = evaluate(EvalConfig(**base, method="feature_cache"))["measures"]
    calls = []
    real = quality.score
    monkeypatch.setattr(quality, "score", lambda gen, ref, prc=True, **kw: calls.append(len(gen)) or real(gen, ref, prc, **kw))
    again = evaluate(EvalConfig(**base, method="taylor"))["measures"]
    assert calls == [40, 40]  # against the reference, then the other split (no prefix below 40); no floor
    assert again["floor_fid"] == m["floor_fid"] and again["floor_precision"] == m["floor_precision"]


def test_paired_fidelity_against_the_unaccelerated_run(tiny_bundle):
    """Paired measures compare with vanilla's own samples of the same seed: vanilla writes them to the store
    and a method that skips nothing agrees on every token; one that skips agrees less; step reduction runs
    other noise and gets distribution measures only."""
    base = dict(dataset="digits", steps=4, n_samples=40, batch_size=20, seed=3)
    van = evaluate(EvalConfig(**base))["measures"]
    assert van["token_agreement"] == 1.0 and van["ssim"] == pytest.approx(1.0) and "psnr" not in van
    full = evaluate(EvalConfig(**base, method="feature_cache", budget=4))["measures"]
    assert full["token_agreement"] == 1.0 and full["paired_feature_dist"] == 0.0
    skip = evaluate(EvalConfig(**base, method="feature_cache", budget=1))["measures"]
    assert skip["token_agreement"] < 1.0 and skip["ssim"] < 1.0 and skip["paired_feature_dist"] > 0
    assert 0 < skip["psnr"] < 100
    sr = evaluate(EvalConfig(**base, method="step_reduction", budget=2))["measures"]
    assert not {"token_agreement", "psnr", "ssim", "paired_feature_dist"} & set(sr)


def test_adaptive_policy_counts_the_full_steps_it_took(tiny_bundle):
    """An adaptive method's FLOPs and ideal speedup come from the full steps taken in the generated batches,
    not from a fixed budget: with a threshold above any surprise (S <= 1) only step 0 is full in every batch."""
    m = evaluate(EvalConfig(dataset="digits", steps=4, budget=2, method="adaptive", knobs={"threshold": 1.5},
                            n_samples=30, batch_size=15, seed=3))["measures"]
    assert m["full_steps_mean"] == 1.0
    assert m["gflops_per_image"] == pytest.approx(m["gflops_full_step"] + 3 * m["gflops_accel_step"])
    assert m["ideal_speedup"] == pytest.approx(4 / (1 + 3 * m["accel_cost_ratio"]))


def test_a_larger_run_reuses_the_batches_a_smaller_one_drew(tiny_bundle):
    """With reuse_samples, a trial on more samples loads the batches its smaller run stored and samples only the
    new ones; its images are exactly those of a fresh run of that size (batch j: seed (seed, j), same labels)."""
    base = dict(dataset="digits", steps=4, budget=2, method="taylor", batch_size=15, seed=2)
    small = evaluate(EvalConfig(**base, n_samples=30, reuse_samples=True))["measures"]
    big = evaluate(EvalConfig(**base, n_samples=60, reuse_samples=True), keep_images=True)
    fresh = evaluate(EvalConfig(**base, n_samples=60), keep_images=True)
    assert small["sampled_images"] == 30 and big["measures"]["sampled_images"] == 30
    assert fresh["measures"]["sampled_images"] == 60
    assert torch.equal(big["images"], fresh["images"]) and big["measures"]["fid"] == fresh["measures"]["fid"]


def test_parallel_decoding_counts_the_steps_it_took(tiny_bundle):
    """A method whose steps vary logs the mean steps taken, and its FLOPs per image are those steps' (every one a
    full step here), not N's; its ideal speedup is N over them."""
    m = evaluate(EvalConfig(dataset="digits", method="parallel_decode", steps=4, knobs={"tau": 1e-6, "k_max": 49},
                            n_samples=20, batch_size=10))["measures"]
    assert 1 <= m["steps_mean"] < 4 and m["full_steps_mean"] == m["steps_mean"]
    assert m["gflops_per_image"] == pytest.approx(m["steps_mean"] * m["gflops_full_step"])
    assert m["ideal_speedup"] == pytest.approx(4 / m["steps_mean"])


def test_a_run_asked_for_some_measures_computes_only_their_parts(tiny_bundle):
    """A halving sweep's lower rung asks for what promotion compares (`measures`): it gives those with the numbers a
    full run gives, and skips KID, precision/recall, the floor, the splits, the prefixes, class accuracy, the paired
    measures and the feature error; its batches are the full run's (the top rung reuses them), its key its own."""
    from ablate.evaluate import trial_key

    base = dict(dataset="digits", steps=4, budget=2, method="taylor", n_samples=30, batch_size=15, seed=3)
    full = evaluate(EvalConfig(**base))["measures"]
    some = evaluate(EvalConfig(**base, measures="fid,speedup_flops", reuse_samples=True))["measures"]
    assert some["fid"] == full["fid"] and some["gflops_per_image"] == full["gflops_per_image"]
    for skipped in ("kid_mean", "kid_std", "precision", "recall", "floor_fid", "fid_train", "class_acc",
                    "token_agreement"):
        assert skipped in full and skipped not in some, skipped
    assert full["feature_mse"] is not None and some["feature_mse"] is None and some["feature_cos"] is None
    top = evaluate(EvalConfig(**dict(base, n_samples=60), reuse_samples=True))["measures"]
    assert top["sampled_images"] == 30 and "kid_mean" in top and top["feature_mse"] is not None
    assert trial_key(EvalConfig(**base, measures="fid")) != trial_key(EvalConfig(**base))
    assert trial_key(EvalConfig(**base, measures="all")) == trial_key(EvalConfig(**base))


def test_an_unknown_measure_is_one_line(capsys, ablate_home):
    from ablate.errors import AblateError
    from ablate.evaluate import validate

    with pytest.raises(AblateError, match=r"^measures: unknown measure 'fdi'"):
        validate(EvalConfig(measures="fid,fdi"))
