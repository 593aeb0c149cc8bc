"""mnist14: the scaling study's longer sequence as a real workload (14x14 tokens, a wider base).

Its bundle is trained by `prepare` (on a GPU in practice); here with tiny settings on the CPU, end to
end through the CLI, and the GPU space that uses it stops with a clear line while it is missing.
"""

import json
import os
import subprocess
import sys

import torch

from ablate import pretrained
from ablate.tokenizer.vqvae import VQVAE, VQVAEConfig

TINY = ["tokenizer.steps=5", "classifier.steps=5", "base_train.steps=3", "base.depth=1", "base.dim=32", "base.heads=2"]


def _cli(args, home, runs=None, timeout=600):
    env = {**os.environ, "ABLATE_HOME": str(home), "ABLATE_PROGRESS": "0"}
    if runs is not None:
        env["ABLATE_RUNS"] = str(runs)
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_mnist14_defaults_are_14x14_tokens_and_a_wider_base():
    cfg = pretrained.config_for("mnist14")
    assert cfg.tokenizer.downsample == 1 and cfg.base.dim == 256 and cfg.base.heads == 8 and cfg.base.depth == 12
    assert pretrained.config_for("mnist") == pretrained.PrepareConfig()
    # the user's --set lines come last and win
    assert pretrained.config_for("mnist14", overrides=["base.dim=64"]).base.dim == 64


def test_tokenizer_downsample_1_keeps_a_14x14_grid_and_the_layer_names():
    torch.manual_seed(0)
    t14, t7 = VQVAE(VQVAEConfig(downsample=1)), VQVAE(VQVAEConfig())
    codes = t14.encode(torch.rand(3, 1, 28, 28))
    assert t14.grid == 14 and codes.shape == (3, 14, 14) and t7.grid == 7
    assert t14.decode(codes.flatten(1)).shape == (3, 1, 28, 28)
    assert t14.state_dict().keys() == t7.state_dict().keys()  # shipped 7x7 weights load as before


def test_prepare_and_eval_mnist14_through_the_cli(tmp_path):
    r = _cli(["prepare", "--dataset", "mnist14", *sum((["--set", s] for s in TINY), [])], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "weights" / "mnist14" / "manifest.json").read_text())
    assert manifest["config"]["tokenizer"]["downsample"] == 1 and manifest["config"]["base"]["seq_len"] == 196
    assert manifest["train_device"] == "cpu" and "--dataset mnist14" in manifest["command"]
    out = tmp_path / "eval.json"
    r = _cli(["eval", "--dataset", "mnist14", "--steps", "4", "--budget", "2", "--method", "feature_cache",
              "--n-samples", "4", "--batch-size", "4", "--device", "cpu", "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    m = result["measures"]
    assert result["full_steps"] == [0, 2] and m["fid"] >= 0 and m["gflops_full_step"] > m["gflops_accel_step"] >= 0


def test_gpu_space_without_mnist14_models_stops_before_logging(tmp_path):
    # a few seconds when the check holds; without it Ray would start and run failing trials
    r = _cli(["sweep", "gpu_default", "--device", "cpu", "--no-report"], tmp_path / "home", tmp_path / "runs",
             timeout=120)
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "no trained models for dataset 'mnist14'" in line and "prepare --dataset mnist14 --device cuda" in line
    assert not (tmp_path / "runs" / "mlflow.db").exists()
