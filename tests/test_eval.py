"""`eval`: one trial end to end on the tiny bundle; same seed, same numbers; bad input, one line."""

import json

import pytest

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
