"""Cost measures: FLOPs by torch's counter agree with a hand count and grow linearly in steps."""

import pytest
import torch

from ablate.methods import Method
from ablate.metrics import cost
from ablate.models import MaskGIT, MaskGITConfig
from ablate.sampling import MaskGITSampler, SamplerConfig


def hand_count_full_step(cfg: MaskGITConfig, branches: int = 2) -> int:
    """FLOPs of one full step per image: 2 per multiply-add of every matmul, attention included."""
    d, L, V = cfg.dim, cfg.seq_len, cfg.vocab_size
    hidden = int(d * cfg.mlp_ratio)
    per_layer = L * (3 * d * d + d * d + 2 * d * hidden) + 2 * L * L * d  # qkv, proj, mlp, QK^T and AV
    return 2 * branches * (cfg.depth * per_layer + L * d * V)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MaskGIT(MaskGITConfig(vocab_size=32, seq_len=16, num_classes=3, dim=48, depth=3, heads=2)).eval()


def test_full_step_flops_match_hand_count(model):
    sampler = MaskGITSampler(model, SamplerConfig(steps=4))
    count = cost.count_flops(sampler, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(0))
    per_step = count.as_measures()["gflops_full_step"] * 1e9
    expected = hand_count_full_step(model.cfg)
    assert abs(per_step - expected) / expected < 0.10
    assert [s for s, full, _, _ in count.per_step] == [0, 1, 2, 3]


def test_a_full_step_costs_the_same_per_image_when_finished_samples_leave_the_batch(model):
    """Parallel decoding sends only the samples still decoding through the base: a full step's FLOPs per image are
    those FLOPs over the images it computed, the same as vanilla's (checked against the former count, which divided
    by every image of the batch: 20-50% low here)."""
    from ablate import methods

    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    sampler = MaskGITSampler(model, SamplerConfig(steps=8))
    van = cost.count_flops(sampler, labels, torch.Generator().manual_seed(0)).as_measures()
    for tau in (0.032, 0.034, 0.03):  # some samples finish early (k_max: all 16 positions)
        acc = methods.build("parallel_decode", steps=8, tau=tau, k_max=16)
        count = cost.count_flops(sampler, labels, torch.Generator().manual_seed(0), acc)
        rows = [n for *_, n in count.per_step]
        if len(set(rows)) > 1:
            break
    assert len(set(rows)) > 1, "no tau made samples finish at different steps"
    assert count.as_measures()["gflops_full_step"] == pytest.approx(van["gflops_full_step"], rel=1e-6)


def test_vanilla_flops_linear_in_steps(model):
    per_image = []
    for n in (2, 4, 8, 16):
        sampler = MaskGITSampler(model, SamplerConfig(steps=n))
        count = cost.count_flops(sampler, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
        per_image.append(count.as_measures()["gflops_per_image"])
    ratios = [p / n for p, n in zip(per_image, (2, 4, 8, 16))]
    assert max(ratios) / min(ratios) - 1 < 1e-6


def test_flops_split_by_step_type(model):
    class HalfCost(Method):
        """Skipped steps run a quarter-size matmul: the split must see them as cheaper."""

        def observe(self, state, logits, feature):
            self.last = (logits, feature)

        def skip_step(self, model, state):
            logits, feature = self.last
            feature = feature @ torch.eye(feature.shape[-1])
            return logits, feature

    sampler = MaskGITSampler(model, SamplerConfig(steps=6))
    acc = HalfCost(steps=6, budget=2)
    m = cost.count_flops(sampler, torch.tensor([0, 1]), torch.Generator().manual_seed(0), acc).as_measures()
    L, d = model.seq_len, model.dim
    assert m["gflops_accel_step"] * 1e9 == pytest.approx(2 * 2 * L * d * d)
    assert 0 < m["accel_cost_ratio"] < 0.2
    assert m["gflops_per_image"] == pytest.approx(2 * m["gflops_full_step"] + 4 * m["gflops_accel_step"])


def test_median_latency():
    assert cost.median_ms_per_image([(1.0, 10), (3.0, 10), (0.2, 2)]) == pytest.approx(100.0)


@pytest.mark.slow
def test_scaling_benchmark_runs_and_its_ideal_matches_its_flops(tmp_path):
    """benchmarks/scaling.py (the cost table a GPU check reruns) still runs after a refactor: it broke silently
    once when the ideal speedup moved onto the method. For the shortcut at B = N/4, the FLOPs speedup is the ideal."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "scaling.json"
    run = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"),
                          "--configs", "7x7", "--steps", "8", "--rounds", "1", "--batch-size", "1", "--no-sweep",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    row = json.loads(out.read_text())["rows"][0]
    assert (row["N"], row["B"]) == (8, 2)
    assert row["ideal_speedup"] == pytest.approx(row["speedup_flops"], rel=0.02)
