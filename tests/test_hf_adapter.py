"""The transformers adapter: a tiny BERT trained on the MNIST tokens, saved with save_pretrained and
loaded back, drives the sampler and every feature-level method; position-level ones and bad folders
stop with one line. The end-to-end sweep through Ray + MLflow is at the bottom."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablate import methods
from ablate.cli import main
from ablate.errors import AblateError
from ablate.evaluate import EvalConfig, evaluate
from ablate.models import hf_adapter
from ablate.pretrained.mlm import MLMConfig, train_mlm
from ablate.models.protocol import token_table
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.shortcut.model import Shortcut, ShortcutConfig

REPO = Path(__file__).resolve().parents[1]
TINY = MLMConfig(layers=1, hidden=32, heads=2, intermediate=64, steps=40, batch_size=16, warmup=5)
LABELS = torch.tensor([0, 1, 2, 3, 4, 5])
# a shortcut trained in seconds
SC_KNOBS = {"train_steps": 10, "traj_images": 12, "traj_steps": 4}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A 1-layer BERT on the shipped MNIST tokenizer's codes, written with save_pretrained."""
    return train_mlm("mnist", tmp_path_factory.mktemp("bert") / "mnist-bert", TINY, log=lambda *_: None)


@pytest.fixture(scope="module")
def bert(bert_dir):
    return hf_adapter.load(bert_dir)


def test_checkpoint_folder(bert_dir):
    names = {p.name for p in bert_dir.iterdir()}
    assert {"config.json", "model.safetensors", "ablate.json", "manifest.json"} <= names
    layout = json.loads((bert_dir / "ablate.json").read_text())
    assert layout["image_vocab_size"] == 128 and layout["seq_len"] == 49 and layout["mask_token_id"] == 128
    manifest = json.loads((bert_dir / "manifest.json").read_text())
    assert manifest["command"].startswith("python -m ablate train-mlm")
    assert manifest["files"]["model.safetensors"]["sha256"]


def test_protocol(bert):
    assert (bert.vocab_size, bert.mask_id, bert.seq_len, bert.num_classes, bert.dim) == (128, 128, 49, 10, 32)
    assert bert.head_path == ("cls",)
    tokens = torch.randint(0, 129, (3, 49), generator=torch.Generator().manual_seed(0))
    logits, feature = bert(tokens, torch.tensor([0, 1, 10]))
    assert logits.shape == (3, 49, 128) and feature.shape == (3, 49, 32)
    assert torch.allclose(bert.head(feature), logits, atol=1e-5)  # head(feature) = the model's own logits
    assert token_table(bert).shape == (129, 32) and bert.position_embedding().shape == (49, 32)
    # the class token conditions the features
    other, _ = bert(tokens, torch.tensor([5, 6, 10]))
    assert not torch.allclose(other[:2], logits[:2])


def test_drop_label_is_the_null_class(bert):
    tokens = torch.full((2, 49), 128)
    a, _ = bert(tokens, torch.tensor([3, 4]), torch.tensor([True, True]))
    b, _ = bert(tokens, torch.tensor([10, 10]))
    assert torch.equal(a, b)


@pytest.mark.parametrize("method,budget", [("vanilla", None), ("step_reduction", 2), ("feature_cache", 2),
                                           ("taylor", 2)])
def test_feature_level_methods_sample(bert, method, budget):
    acc = methods.build(method, steps=6, budget=budget)
    out = MaskGITSampler(bert, SamplerConfig(steps=acc.steps)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert (out.tokens < bert.mask_id).all() and out.full_steps == sorted(acc.full)


def test_untrained_shortcut_is_feature_cache(bert):
    sampler = MaskGITSampler(bert, SamplerConfig(steps=6))
    a = sampler.sample(LABELS, torch.Generator().manual_seed(0), methods.build("feature_cache", steps=6, budget=2))
    acc = methods.build("shortcut", steps=6, budget=2)
    acc.net = Shortcut(ShortcutConfig(), token_table(bert), bert.position_embedding()).eval()
    b = sampler.sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert torch.equal(a.tokens, b.tokens)


def test_position_level_methods_refused(bert):
    with pytest.raises(AblateError, match="^method: position-level"):
        bert(torch.full((1, 49), 128), torch.tensor([0]), positions=torch.zeros(1, 2, dtype=torch.long))
    for method in ("ml_cache", "recap"):
        with pytest.raises(AblateError, match=f"^method: {method} runs only some positions") as info:
            evaluate(EvalConfig(dataset="mnist", method=method, steps=4, budget=2, n_samples=4,
                                base=f"hf:{bert.folder}"))
        assert "\n" not in str(info.value)


def test_eval_vanilla_and_shortcut_through_the_adapter(bert_dir):
    """The same measures as for the native model (the native/adapter FID ratio: the slow sweep test below)."""
    common = dict(dataset="mnist", steps=4, n_samples=10, batch_size=10, feature_error_images=2)
    hf = evaluate(EvalConfig(**common, base=f"hf:{bert_dir}"))
    m = hf["measures"]
    assert hf["config"]["base"] == f"hf:{bert_dir}" and m["base_params"] == hf_adapter.load(bert_dir).num_params()
    assert m["fid"] > 0 and 0 <= m["class_acc"] <= 1 and m["gflops_full_step"] > 0
    sc = evaluate(EvalConfig(**common, method="shortcut", budget=2, knobs=SC_KNOBS, base=f"hf:{bert_dir}"))["measures"]
    assert sc["shortcut_params"] > 0 and 0 < sc["accel_cost_ratio"] < 1
    assert sc["gflops_per_image"] < m["gflops_per_image"]


def test_shortcut_cache_keyed_by_checkpoint_files(bert_dir, tmp_path):
    a = hf_adapter.load(bert_dir)
    copy = shutil.copytree(bert_dir, tmp_path / "copy")
    assert hf_adapter.load(copy).weights_hash() == a.weights_hash()
    layout = json.loads((copy / "ablate.json").read_text())
    (copy / "ablate.json").write_text(json.dumps({**layout, "autocast": False}))
    with pytest.raises(AblateError, match="ablate.json fails its sha256 check"):  # the manifest notices
        hf_adapter.load(copy)
    (copy / "manifest.json").unlink()
    assert hf_adapter.load(copy).weights_hash() != a.weights_hash()


def _folder(tmp_path, bert_dir, **layout_changes):
    """A copy of the checkpoint; with layout changes it is a user's edited folder (no manifest to check)."""
    folder = shutil.copytree(bert_dir, tmp_path / "m")
    if layout_changes:
        layout = json.loads((folder / "ablate.json").read_text())
        layout.update(layout_changes)
        (folder / "ablate.json").write_text(json.dumps({k: v for k, v in layout.items() if v is not None}))
        (folder / "manifest.json").unlink()
    return folder


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("missing", r"^error: base: /no/such/model is not a folder"),
        ("no config", r"^error: base: .* has no config.json"),
        ("no ablate.json", r"^error: base: .* has no ablate.json"),
        ("damaged file", r"^error: base: .*model.safetensors fails its sha256 check; rebuild with `python -m ablate"),
        ("broken weights", r"^error: base: .* could not be loaded as a masked LM"),
        ("other grid", r"^error: base: .* has seq_len 16, but dataset mnist"),
        ("wrong head", r"^error: base: ablate.json: head \['bert.nothing'\] is not a module path"),
        ("ids beyond vocab", r"^error: base: ablate.json: class tokens reach id"),
        ("not hf", r"^error: base: unknown base 'torch:x'"),
    ],
)
def test_bad_base_one_line(case, pattern, bert_dir, tmp_path, capsys):
    spec = None
    if case == "missing":
        spec = "hf:/no/such/model"
    elif case == "no config":
        folder = _folder(tmp_path, bert_dir)
        (folder / "config.json").unlink()
    elif case == "no ablate.json":
        folder = _folder(tmp_path, bert_dir)
        (folder / "ablate.json").unlink()
    elif case in ("damaged file", "broken weights"):
        folder = _folder(tmp_path, bert_dir)
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
        if case == "broken weights":  # a user's folder: no manifest to check against
            (folder / "manifest.json").unlink()
    elif case == "other grid":
        folder = _folder(tmp_path, bert_dir, seq_len=16)
    elif case == "wrong head":
        folder = _folder(tmp_path, bert_dir, head=["bert.nothing"])
    elif case == "ids beyond vocab":
        folder = _folder(tmp_path, bert_dir, class_offset=1000)
    else:
        spec = "torch:x"
    spec = spec or f"hf:{folder}"
    argv = ["eval", "--dataset", "mnist", "--steps", "4", "--n-samples", "4", "--device", "cpu", "--base", spec]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(pattern, err[0]), err
    if case == "broken weights":  # a plain BERT folder has no code of its own: no trust_remote_code hint
        assert "trust_remote_code" not in err[0], err


def test_train_mlm_bad_setting_one_line(tmp_path, capsys):
    assert main(["train-mlm", "--out", str(tmp_path / "m"), "--set", "depth=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --set: unknown setting 'depth'")
    assert not (tmp_path / "m").exists()


def test_shipped_mnist_bert():
    """The shipped BERT (`hf:mnist-bert`) matches its manifest and speaks the shipped tokenizer's codes."""
    from ablate.models.select import check_base
    from ablate.paths import SHIPPED_WEIGHTS

    assert check_base("hf:mnist-bert") == f"hf:{SHIPPED_WEIGHTS / 'mnist-bert'}"
    m = hf_adapter.load("mnist-bert")  # verifies every file's sha256
    assert (m.vocab_size, m.seq_len, m.num_classes, m.head_path) == (128, 49, 10, ("cls",))
    manifest = json.loads((SHIPPED_WEIGHTS / "mnist-bert" / "manifest.json").read_text())
    assert manifest["command"].startswith("python -m ablate train-mlm --dataset mnist")


def test_space_with_adapter_validates(bert_dir, tmp_path):
    from ablate.sweep.space import grid_trials, load_space

    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndataset: mnist\nbase: hf:{bert_dir}\ngrid: [{{method: feature_cache, budget: 4}}]\n")
    trials = grid_trials(load_space(path))
    assert all(t.base == f"hf:{bert_dir}" for t in trials)
    path.write_text(f"name: s\nbase: hf:{bert_dir}\ngrid: [{{method: ml_cache, budget: 4}}]\n")
    with pytest.raises(AblateError, match=r"^grid\[0\]\.method: ml_cache runs only some positions"):
        load_space(path)
    path.write_text("name: s\nbase: hf:/no/such\ngrid: [{method: vanilla}]\n")
    with pytest.raises(AblateError, match=r"^base: /no/such is not a folder"):
        load_space(path)


@pytest.mark.slow
def test_adapter_sweep_end_to_end(bert_dir, tmp_path):
    """Ray Tune + MLflow with the adapter as base: vanilla reference, feature_cache and shortcut trials."""
    import os

    from mlflow.tracking import MlflowClient

    space = tmp_path / "hf_smoke.yaml"
    space.write_text(f"""
name: hf_smoke
dataset: mnist
base: hf:{bert_dir}
steps: 4
eval: {{n_samples: 20, batch_size: 20, seeds: [0]}}
resources: {{cpu: 1}}
objectives: [{{metric: fid, mode: min}}, {{metric: speedup_flops, mode: max}}]
grid:
  - method: feature_cache
    budget: 2
  - method: shortcut
    budget: 2
    knobs: {json.dumps(SC_KNOBS)}
""")
    env = dict(os.environ, ABLATE_RUNS=str(tmp_path / "runs"), ABLATE_PROGRESS="0", RAY_AUTH_MODE="disabled")
    out = subprocess.run([sys.executable, "-m", "ablate", "sweep", str(space), "--max-concurrent", "1"],
                         capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    c = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("hf_smoke")
    runs = c.search_runs([exp.experiment_id])
    trials = {r.info.run_name: r for r in runs if r.data.tags.get("ablate.role") == "trial"}
    sc_name = "shortcut-N4-B2-train_steps=10-traj_images=12-traj_steps=4"  # non-default knobs are in the name
    assert sorted(trials) == ["feature_cache-N4-B2", sc_name, "vanilla-N4"]
    for r in trials.values():
        assert r.info.status == "FINISHED", r.data.tags.get("ablate.error")
        assert r.data.params["base"] == f"hf:{bert_dir}" and "fid" in r.data.metrics
    assert trials[sc_name].data.metrics["speedup_flops"] > 1.0
    # the native model under the reference trial's settings: the FID ratio the issue asks to report
    native = evaluate(EvalConfig(dataset="mnist", steps=4, n_samples=20, batch_size=20))["measures"]
    ratio = native["fid"] / trials["vanilla-N4"].data.metrics["fid"]
    print(f"\nnative/adapter vanilla FID ratio (1-layer test BERT, N=4, n=20): {ratio:.3f}")
    assert ratio > 0
