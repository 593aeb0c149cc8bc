"""Every accelerator on a tiny model, and the identities that pin their meaning down."""

import pytest
import torch

from ablate import accelerators
from ablate.errors import AblateError
from ablate.metrics import cost
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.shortcut.model import Shortcut, ShortcutConfig

LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def run(model, method, steps=6, budget=None, **knobs):
    acc = accelerators.build(method, steps=steps, budget=budget, **knobs)
    sampler = MaskGITSampler(model, SamplerConfig(steps=acc.steps))
    return sampler.sample(LABELS, torch.Generator().manual_seed(0), acc), acc


def test_every_method_fills_every_position(tiny_model):
    for method in accelerators.REGISTRY:
        if method == "shortcut":
            continue  # needs training: see test_shortcut.py
        budget = None if method == "vanilla" else 3
        out, acc = run(tiny_model, method, budget=budget)
        assert (out.tokens < tiny_model.mask_id).all(), method
        assert out.full_steps == sorted(acc.full), method


def test_feature_cache_equals_vanilla_at_full_budget(tiny_model):
    a, _ = run(tiny_model, "vanilla")
    b, _ = run(tiny_model, "feature_cache", budget=6)
    assert torch.equal(a.tokens, b.tokens)


def test_feature_cache_differs_when_skipping(tiny_model):
    a, _ = run(tiny_model, "vanilla")
    b, _ = run(tiny_model, "feature_cache", budget=2)
    assert b.full_steps == [0, 3] and not torch.equal(a.tokens, b.tokens)


def test_taylor_order0_is_feature_cache(tiny_model):
    a, _ = run(tiny_model, "feature_cache", budget=3)
    b, _ = run(tiny_model, "taylor", budget=3, order=0)
    assert torch.equal(a.tokens, b.tokens)


def test_taylor_extrapolates_a_linear_trajectory():
    from ablate.accelerators.taylor import Taylor

    class Head(torch.nn.Module):
        def head(self, f):
            return f

    t = Taylor(steps=8, budget=3, order=1)
    t.begin(None, 1)

    class S:
        def __init__(self, step):
            self.step = step

    f = lambda step: torch.full((1, 2, 3), 1.0 + 0.5 * step)
    t.observe(S(0), None, f(0))
    t.observe(S(3), None, f(3))
    _, pred = t.skip_step(Head(), S(5))
    assert torch.allclose(pred, f(5))


def test_ml_cache_ratio_zero_equals_vanilla(tiny_model):
    a, _ = run(tiny_model, "vanilla")
    b, _ = run(tiny_model, "ml_cache", budget=2, cache_ratio=0.0)
    assert torch.equal(a.tokens, b.tokens)


def test_ml_cache_own_schedule():
    acc = accelerators.build("ml_cache", steps=20)  # warm-up 30% = 6 steps, then every 5th
    assert sorted(acc.full) == [0, 1, 2, 3, 4, 5, 6, 11, 16] and acc.budget == 9


def test_partial_steps_cost_less(tiny_model):
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=6))
    for method, knobs in (("ml_cache", {"cache_ratio": 0.7}), ("recap", {})):
        acc = accelerators.build(method, steps=6, budget=2, **knobs)
        m = cost.count_flops(sampler, LABELS, torch.Generator().manual_seed(0), acc).as_measures()
        assert 0 < m["accel_cost_ratio"] < 1, method


def test_step_reduction_runs_budget_steps(tiny_model):
    out, acc = run(tiny_model, "step_reduction", steps=6, budget=3)
    assert acc.steps == 3 and out.full_steps == [0, 1, 2] and acc.describe()["steps"] == 6


def test_untrained_shortcut_equals_feature_cache(tiny_model):
    """The shortcut's output layer starts at zero, so it outputs its input: feature caching."""
    a, _ = run(tiny_model, "feature_cache", budget=2)
    acc = accelerators.build("shortcut", steps=6, budget=2)
    acc.net = Shortcut(ShortcutConfig(), tiny_model.tok_emb.weight, tiny_model.position_embedding()).eval()
    out = MaskGITSampler(tiny_model, SamplerConfig(steps=6)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert torch.equal(a.tokens, out.tokens)


@pytest.mark.parametrize(
    "method,knobs,field",
    [
        ("taylor", {"order": 3}, "order"),
        ("ml_cache", {"cache_ratio": 1.5}, "cache_ratio"),
        ("recap", {"margin": 0.5}, "margin"),
        ("shortcut", {"n_block": 5}, "n_block"),
        ("feature_cache", {"order": 1}, "knob"),
    ],
)
def test_bad_knobs(method, knobs, field):
    with pytest.raises(AblateError, match=f"^{field}:"):
        accelerators.build(method, steps=8, budget=3, **knobs)


def test_parse_knobs():
    assert accelerators.parse_knobs(["a=1", "b=0.5", "c=false", "d=x"]) == {"a": 1, "b": 0.5, "c": False, "d": "x"}
