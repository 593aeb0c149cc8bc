"""Every method on a tiny model, the identities that pin their meaning down, and the registry's contract."""

import pytest
import torch

from ablate import methods
from ablate.errors import AblateError
from ablate.metrics import cost
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.shortcut.model import Shortcut, ShortcutConfig

LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def run(model, method, steps=6, budget=None, **knobs):
    acc = methods.build(method, steps=steps, budget=budget, **knobs)
    sampler = MaskGITSampler(model, SamplerConfig(steps=acc.steps))
    return sampler.sample(LABELS, torch.Generator().manual_seed(0), acc), acc


def test_every_method_fills_every_position(tiny_model):
    for method in methods.REGISTRY:
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
    from ablate.methods.taylor import Taylor

    class Head(torch.nn.Module):
        def head(self, f):
            return f

    t = Taylor(steps=8, budget=3, knobs=Taylor.Knobs(order=1))
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
    acc = methods.build("ml_cache", steps=20)  # warm-up 30% = 6 steps, then every 5th
    assert sorted(acc.full) == [0, 1, 2, 3, 4, 5, 6, 11, 16] and acc.budget == 9


def test_partial_steps_cost_less(tiny_model):
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=6))
    for method, knobs in (("ml_cache", {"cache_ratio": 0.7}), ("recap", {})):
        acc = methods.build(method, steps=6, budget=2, **knobs)
        m = cost.count_flops(sampler, LABELS, torch.Generator().manual_seed(0), acc).as_measures()
        assert 0 < m["accel_cost_ratio"] < 1, method


def test_step_reduction_runs_budget_steps(tiny_model):
    out, acc = run(tiny_model, "step_reduction", steps=6, budget=3)
    assert acc.steps == 3 and out.full_steps == [0, 1, 2] and acc.describe()["steps"] == 6


def test_untrained_shortcut_equals_feature_cache(tiny_model):
    """The shortcut's output layer starts at zero, so it outputs its input: feature caching."""
    a, _ = run(tiny_model, "feature_cache", budget=2)
    acc = methods.build("shortcut", steps=6, budget=2)
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
        methods.build(method, steps=8, budget=3, **knobs)


def test_cli_knobs_are_typed_by_the_method():
    """--knob values are strings; the method's Knobs model types them (and refuses what does not fit)."""
    raw = methods.parse_knobs(["n_block=2", "use_tokens=false", "kl_weight=0.5"])
    k = methods.knobs("shortcut", raw)
    assert (k.n_block, k.use_tokens, k.kl_weight) == (2, False, 0.5)
    with pytest.raises(AblateError, match="^n_block: "):
        methods.knobs("shortcut", methods.parse_knobs(["n_block=two"]))
    with pytest.raises(AblateError, match="^--knob: expected NAME=VALUE"):
        methods.parse_knobs(["n_block"])


def test_every_registered_method_describes_itself():
    """Label, colour, marker, help for every knob, and a description that holds every knob with its default."""
    for name, cls in methods.REGISTRY.items():
        assert cls.label and cls.color.startswith("#") and cls.marker, name
        for k, f in cls.Knobs.model_fields.items():
            assert f.description, f"{name}.{k} has no help text"
        budget = None if name in ("vanilla", "ml_cache") else 2
        d = methods.build(name, steps=6, budget=budget).describe()
        assert d["method"] == name and d["knobs"] == methods.defaults(name), name


def test_a_method_outside_the_package_by_import_path(tmp_path, monkeypatch):
    """`module:Class` imports a user's module, which registers its method; the knobs validate like ours."""
    (tmp_path / "my_methods.py").write_text(
        "from pydantic import Field\n"
        "from ablate.methods import Knobs, Method\n"
        "class Mine(Method):\n"
        "    name = 'mine_for_test'\n"
        "    class Knobs(Knobs):\n"
        "        scale: float = Field(1.0, gt=0, description='a knob')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cls = methods.get("my_methods:Mine")
        assert methods.source("my_methods:Mine") == "my_methods:Mine" and methods.get("mine_for_test") is cls
        assert methods.build("my_methods:Mine", steps=4, budget=2, scale=2).knobs.scale == 2.0
        with pytest.raises(AblateError, match="^scale: "):
            methods.build("mine_for_test", steps=4, budget=2, scale=-1)
        with pytest.raises(AblateError, match="^method: cannot import 'no_such_module:X'"):
            methods.get("no_such_module:X")
    finally:
        methods.REGISTRY.pop("mine_for_test", None)


def test_ideal_speedup_is_the_cost_model():
    assert methods.build("feature_cache", steps=16, budget=4).ideal_speedup(0.5) == pytest.approx(16 / (4 + 12 * 0.5))
    assert methods.build("step_reduction", steps=16, budget=4).ideal_speedup(0.5) == 4.0  # no cheap steps
    assert methods.build("vanilla", steps=16).ideal_speedup(0.3) == 1.0


def test_training_seed_is_a_knob_of_the_shortcut():
    """Claims can vary the shortcut's training seed as well as the sampling seed: a second seed is a second model."""
    a, b = methods.build("shortcut", steps=16, budget=4), methods.build("shortcut", steps=16, budget=4, train_seed=1)
    assert a.train_cfg.seed == 0 and b.train_cfg.seed == 1 and a.train_cfg != b.train_cfg
